"""A real ``capcal run`` against the fault-injecting OpenAI-compatible stub server (issue 3, lines 2 and 4)."""

from __future__ import annotations

import json
from collections import Counter

from capcal.cli import main
from capcal.store import SampleStore
from run_fixtures import (
    capcal,
    ceil_div,
    gsm8k_table,
    questions,
    requested_samples,
    seed_index,
    stored_at,
    targets_by_id,
    wall_clock,
)
from stub_server import OUTCOMES, Faults, StubServer

LIMIT, K = 6, 6


def _model_args(srv, **extra) -> str:
    args = {"base_url": srv.base_url, "model": "stub", **extra}
    return ",".join(f"{k}={v}" for k, v in args.items())


def test_every_fault_mode_on_the_run_finishes_with_k_graded_samples(tmp_path, data_dir):
    table = gsm8k_table(data_dir, LIMIT)
    faults = Faults(rate_429=0.1, rate_500=0.1, rate_stall=0.05, rate_drop=0.1, rate_truncate=0.1,
                    retry_after=0.05, stall_s=3.0, seed=3, max_per_request=2,
                    schedule=("429", "500", "stall", "drop", "truncate"))
    out = tmp_path / "run"
    with StubServer(faults=faults, honour_n=True, table=table) as srv:
        t0 = wall_clock(srv)
        proc = capcal("run", "--model", "openai",
                      "--model_args", _model_args(srv, max_n=4, timeout=1.0, max_retries=6, backoff_base=0.02,
                                                  backoff_max=0.2),
                      "--tasks", "gsm8k,triviaqa", "--k", str(K), "--limit", str(LIMIT), "--concurrency", "4",
                      "--data-dir", str(data_dir), "--output", str(out), "--no-progress", "--temperature", "0.7")
        log = srv.request_log
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr

    outcomes = Counter(e["outcome"] for e in log)
    assert all(outcomes[o] >= 1 for o in OUTCOMES), outcomes  # every fault mode really happened

    task, qs = questions("gsm8k", data_dir, LIMIT)
    rows = targets_by_id(out, "gsm8k")
    assert set(rows) == {ex.id for ex, _ in qs}
    with SampleStore(out / "samples.sqlite") as store:
        for ex, prompt in qs:
            row = rows[ex.id]
            assert row["n"] == K and len(row["correct"]) == K and len(set(row["sample_keys"])) == K
            comps = store.get_many(row["sample_keys"])
            assert len(comps) == K
            # independent grading: the stub's table says which answers carry the gold number
            gold = int(ex.fields["answer"])
            expected = [int(c["text"] in (table[prompt][0], table[prompt][3])) for c in
                        (comps[key] for key in row["sample_keys"])]
            assert all(c["text"] in table[prompt] for c in comps.values())
            assert row["correct"] == expected, (ex.id, gold, row)
            assert row["c"] == sum(expected) and abs(row["mu"] - sum(expected) / K) < 1e-12
            assert row["r"] == expected[0] and row["designated"] == 0
    assert len({r["mu"] for r in rows.values()}) > 1  # the table makes mu vary across questions
    assert all(r["n"] == K for r in targets_by_id(out, "triviaqa").values())

    # the request log: no sample requested after it was stored; every request sent the sampling explicitly
    for name in ("gsm8k", "triviaqa"):
        index = seed_index(name, data_dir, LIMIT, K)
        stored = stored_at(out, name)
        assert len(stored) == LIMIT * K
        entries = [e for e in log if e["outcome"] != "bad_request" and (e["prompt"], e["seed"]) in index]
        assert entries
        for e in entries:
            arrived = t0 + e["t"]
            for sample in requested_samples(e, index):
                assert arrived < stored[sample], f"{sample} requested again after it was stored ({e})"
            body = e["body"]
            assert body["temperature"] == 0.7 and body["top_p"] == 1.0 and body["min_p"] == 0.0
            assert body["top_k"] in (0, -1) and body["max_tokens"] >= 1 and isinstance(body["seed"], int)

    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "openai" and config["model_args"]["model"] == "stub"
    assert config["tasks"]["gsm8k"]["sampling"]["temperature"] == 0.7
    assert config["tasks"]["gsm8k"]["k"] == K and config["concurrency"] == 4


def test_honoured_n_sends_ceil_k_over_max_n_requests_per_question(tmp_path, data_dir, capsys):
    """Runs the CLI in-process (same code path as ``capcal run``, without paying the start-up time thrice)."""
    limit = 4
    _, qs = questions("gsm8k", data_dir, limit)
    for k, max_n in ((8, 4), (6, 4), (5, 32)):
        out = tmp_path / f"run-{k}-{max_n}"
        argv = ["run", "--model", "openai", "--tasks", "gsm8k", "--k", str(k), "--limit", str(limit),
                "--data-dir", str(data_dir), "--output", str(out), "--no-progress", "--bootstrap", "50"]
        with StubServer(honour_n=True) as srv:
            assert main([*argv, "--model_args", _model_args(srv, max_n=max_n)]) == 0, capsys.readouterr().err
            per_prompt = Counter(e["prompt"] for e in srv.request_log if e["outcome"] == "ok")
            assert per_prompt == {p: ceil_div(k, max_n) for _, p in qs}
            assert sum(e["n"] for e in srv.request_log) == k * limit
            srv.clear_log()
            assert main([*argv, "--model_args", _model_args(srv, max_n=max_n)]) == 0
            assert srv.request_log == []  # everything was stored: resuming a finished run sends nothing
        assert all(r["n"] == k for r in targets_by_id(out, "gsm8k").values())


def test_server_that_ignores_n_still_gives_k_distinct_seeded_samples(tmp_path, data_dir):
    limit, k = 3, 4
    out = tmp_path / "run"
    with StubServer(honour_n=False) as srv:
        proc = capcal("run", "--model", "openai", "--model_args", _model_args(srv, max_n=4), "--tasks", "gsm8k",
                      "--k", str(k), "--limit", str(limit), "--data-dir", str(data_dir), "--output", str(out),
                      "--no-progress")
        log = srv.request_log
    assert proc.returncode == 0, proc.stderr[-2000:]
    index = seed_index("gsm8k", data_dir, limit, k)
    asked = Counter((e["prompt"], e["seed"]) for e in log if e["outcome"] == "ok")
    # after the first request shows n is ignored, every further sample gets its own request and seed
    assert set(asked) <= set(index) and all(v == 1 for v in asked.values())
    rows = targets_by_id(out, "gsm8k")
    assert all(r["n"] == k for r in rows.values())
    with SampleStore(out / "samples.sqlite") as store:
        seeds = [rec["completion"]["seed"] for rec in store.get_records(store.keys()).values()]
    assert len(seeds) == limit * k


def test_suite_run_with_estimators_and_results(tmp_path, data_dir, capsys):
    """``--suite capcal-smoke``: the suite's tasks, k, limits and estimators; learned estimators fit on the
    train split (sampled through the same store), and results.json is written and valid."""
    from capcal.results import load_results
    from capcal.rundir import RunDir
    from capcal.suites import load_suite

    suite = load_suite("capcal-smoke")
    out = tmp_path / "run"
    with StubServer(honour_n=True) as srv:
        rc = main(["run", "--model", "openai", "--model_args", _model_args(srv), "--suite", "capcal-smoke",
                   "--train-limit", "10", "--data-dir", str(data_dir), "--output", str(out), "--no-progress",
                   "--bootstrap", "50"])
        assert rc == 0, capsys.readouterr().err
    rd = RunDir(out)
    config = rd.config
    assert config["suite"] == {"name": "capcal-smoke", "version": suite.version}
    assert rd.tasks() == sorted(suite.tasks)
    for name, st in suite.tasks.items():
        rows = rd.target_rows(name)
        assert len(rows) == st.limit and all(r["n"] == st.k for r in rows)
        assert rd.estimators(name) == sorted(suite.estimators)
        conf, _, _ = rd.estimator_output(name, "oracle_cc")
        assert list(conf) == [r["mu"] for r in rows]
    # "constant" learns: it was fitted on the train split, never on the evaluation questions
    train_rows = [r for r in (out / "tasks" / "gsm8k" / "splits" / "train" / "targets.jsonl").read_text().splitlines()]
    assert len(train_rows) == 10
    train_ids = {json.loads(r)["id"] for r in train_rows}
    assert not train_ids & {r["id"] for r in rd.target_rows("gsm8k")}
    doc = load_results(out)
    assert set(doc["tasks"]) == set(suite.tasks) and doc["suite"]["name"] == "capcal-smoke"
    printed = capsys.readouterr().out
    assert "gsm8k: 8 questions x k=4" in printed and "results:" in printed


def test_estimator_parameters_from_the_command_line(tmp_path, data_dir, capsys):
    """``--estimators name:key=value`` builds the estimator with those parameters; two parameterisations of
    one estimator sit side by side; a bad parameter is a one-line error (exit 2)."""
    from capcal.rundir import RunDir

    out = tmp_path / "run"
    with StubServer(honour_n=True) as srv:
        base = ["run", "--model", "openai", "--model_args", _model_args(srv), "--tasks", "gsm8k", "--k", "4",
                "--limit", "3", "--data-dir", str(data_dir), "--output", str(out), "--no-progress",
                "--bootstrap", "20"]
        rc = main([*base, "--estimators", "consistency:m=4:reuse_samples=true,consistency:m=2:reuse_samples=true"])
        assert rc == 0, capsys.readouterr().err
        rd = RunDir(out)
        labels = rd.estimators("gsm8k")
        assert labels == ["consistency:m=2:reuse_samples=true", "consistency:m=4:reuse_samples=true"]
        for m in (2, 4):
            meta = rd.estimator_output("gsm8k", f"consistency:m={m}:reuse_samples=true")[2]
            assert meta["params"]["m"] == m and meta["params"]["reuse_samples"] is True
        capsys.readouterr()
        assert main([*base, "--estimators", "consistency:bogus=1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "consistency:bogus=1" in err[0], err
        assert main([*base, "--estimators", "consistency:m"]) == 2
        assert "is not key=value" in capsys.readouterr().err
