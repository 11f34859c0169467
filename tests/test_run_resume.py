"""Kill ``capcal run`` with SIGKILL in the middle, re-run the same command: same targets as an uninterrupted
run, and no request for a sample that was stored before the kill (issue 3, line 3)."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

from run_fixtures import (
    capcal,
    gsm8k_table,
    popen_capcal,
    requested_samples,
    seed_index,
    stored_at,
    targets_by_id,
)
from stub_server import Faults, StubServer

LIMIT, K, MAX_N = 12, 4, 2


def _count(store_path) -> int:
    if not store_path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_sigkill_then_resume_gives_the_uninterrupted_targets(tmp_path, data_dir):
    table = gsm8k_table(data_dir, LIMIT)
    # a few transient faults too, and some latency so that the kill lands in the middle of sampling
    faults = Faults(rate_500=0.1, rate_429=0.05, retry_after=0.05, seed=11, max_per_request=1)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    index = seed_index("gsm8k", data_dir, LIMIT, K)
    with StubServer(faults=faults, honour_n=True, table=table, latency_s=0.15) as srv:
        def args(out):
            return ("run", "--model", "openai", "--model_args",
                    f"base_url={srv.base_url},model=stub,max_n={MAX_N},backoff_base=0.02,backoff_max=0.1",
                    "--tasks", "gsm8k", "--k", str(K), "--limit", str(LIMIT), "--concurrency", "2",
                    "--data-dir", str(data_dir), "--output", str(out), "--no-progress", "--bootstrap", "50")

        proc = popen_capcal(*args(killed))
        store = killed / "samples.sqlite"
        deadline = time.monotonic() + 120
        while _count(store) < 2 * MAX_N and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        before = stored_at(killed, "gsm8k")
        assert 0 < len(before) < LIMIT * K, "the kill must land in the middle of sampling"
        assert not (killed / "tasks" / "gsm8k" / "targets.jsonl").exists()

        srv.clear_log()
        resumed = capcal(*args(killed))
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        resume_log = srv.request_log
        srv.clear_log()
        uninterrupted = capcal(*args(clean))
        assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]

    # no duplicate requests for stored samples
    asked_again = [s for e in resume_log if e["outcome"] != "bad_request"
                   for s in requested_samples(e, index) if s in before]
    assert asked_again == []
    assert {s for e in resume_log for s in requested_samples(e, index)} == set(index.values()) - set(before)
    # the stored samples survived intact and the targets are exactly those of the uninterrupted run
    after = stored_at(killed, "gsm8k")
    assert len(after) == LIMIT * K and all(after[s] == t for s, t in before.items())
    assert targets_by_id(killed, "gsm8k") == targets_by_id(clean, "gsm8k")
    assert len({r["mu"] for r in targets_by_id(clean, "gsm8k").values()}) > 1
