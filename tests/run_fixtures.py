"""Helpers shared by the ``capcal run`` tests: the real CLI as a subprocess, prompts and answer tables for the
stub server, and the mapping from the server's request log back to the samples each request asked for."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

from capcal.registry import get_registry
from capcal.runconfig import derive_seed
from capcal.store import SampleStore

ROOT = Path(__file__).resolve().parent.parent


def capcal(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real ``capcal`` command line (``python -m capcal``) and capture its output."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "capcal", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)


def popen_capcal(*args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "capcal", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def questions(task: str, data_dir: Path, limit: int):
    """``[(example, prompt text the stub server sees)]`` of the first ``limit`` eval questions."""
    t = get_registry().task(task, data_dir=data_dir)
    return t, [(ex, [m for m in t.render(ex) if m["role"] == "user"][-1]["content"]) for ex in t.examples("eval", limit)]


def gsm8k_table(data_dir: Path, limit: int) -> dict[str, list[str]]:
    """Per gsm8k prompt: one right and three wrong answers, so that mu varies between questions."""
    _, qs = questions("gsm8k", data_dir, limit)
    table = {}
    for ex, prompt in qs:
        gold = int(ex.fields["answer"])
        table[prompt] = [f"Adding up, the answer is {gold}.", f"The answer is {gold + 1}.",
                         f"So the total is {gold * 2 + 3}.", f"The answer is {gold}."]
    return table


def seed_index(task: str, data_dir: Path, limit: int, k: int, run_seed: int = 0) -> dict[tuple[str, int], tuple[str, int]]:
    """``{(prompt, per-sample seed): (question id, sample index)}`` for every sample of a run."""
    _, qs = questions(task, data_dir, limit)
    return {(prompt, derive_seed(run_seed, ex.id, j)): (ex.id, j) for ex, prompt in qs for j in range(k)}


def requested_samples(entry: dict, index: dict) -> list[tuple[str, int]]:
    """The samples one logged request asked for: ``n`` consecutive indices starting at its seed's sample."""
    qid, j = index[(entry["prompt"], entry["seed"])]
    return [(qid, j + i) for i in range(int(entry.get("n") or 1))]


def wall_clock(server) -> float:
    """Unix time of the in-process stub server's ``t = 0`` (its log's ``t`` is monotonic seconds since)."""
    return time.time() - (time.monotonic() - server._state.t0)


def targets_by_id(run_dir: Path, task: str) -> dict[str, dict]:
    from capcal.rundir import RunDir

    return {row["id"]: row for row in RunDir(run_dir).target_rows(task)}


def stored_at(run_dir: Path, task: str) -> dict[tuple[str, int], float]:
    """``{(question id, sample index): unix time it was stored}`` from the run's sample store."""
    with SampleStore(Path(run_dir) / "samples.sqlite") as store:
        return {(rec["info"]["id"], rec["info"]["index"]): rec["stored_at"]
                for rec in store.get_records(store.keys()).values() if rec["info"]["task"] == task}


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b)
