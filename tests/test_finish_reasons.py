"""Finish reasons are first-class: truncated samples are incorrect (reason ``truncated``), empty replies are
flagged, and both rates reach the targets, results.json, the leaderboard and a stderr warning.

The end-to-end test runs the real ``capcal run`` against the stub OpenAI-compatible server on 127.0.0.1,
which cuts answers at ``max_tokens`` word tokens with ``finish_reason: "length"``.
"""

from __future__ import annotations

import json

import pytest
from capcal.grading import grade_file, grade_sample, normalize_finish_reason, sample_flags
from capcal.registry import get_registry
from capcal.report import load_leaderboard, render
from capcal.results import load_results
from capcal.rundir import RunDir
from model_fixtures import embedded_backend_fixture  # noqa: F401  (fixture "embedded_backend")
from run_fixtures import capcal, questions
from stub_server import StubServer

LIMIT, K, MAX_TOKENS = 6, 6, 6


def _table(data_dir):
    """Per prompt: a long right-looking answer the token limit cuts after the gold number, a short right
    answer that finishes, and an empty reply."""
    _, qs = questions("gsm8k", data_dir, LIMIT)
    table, gold = {}, {}
    for ex, prompt in qs:
        g = int(ex.fields["answer"])
        gold[ex.id] = g
        # 6 word tokens end with "<g>," : the old last-number fallback read g out of this half sentence
        table[prompt] = [f"First {g - 6} + 6 = {g}, so the answer is {g}.", f"The answer is {g}.", ""]
    return table, gold


@pytest.fixture(scope="module")
def truncated_run(tmp_path_factory, data_dir):
    table, gold = _table(data_dir)
    out = tmp_path_factory.mktemp("trunc") / "run"
    with StubServer(table=table, honour_n=True) as srv:
        proc = capcal("run", "--model", "openai", "--model_args", f"base_url={srv.base_url},model=stub",
                      "--tasks", "gsm8k", "--k", str(K), "--limit", str(LIMIT), "--max-tokens", str(MAX_TOKENS),
                      "--data-dir", str(data_dir), "--output", str(out), "--no-progress", "--bootstrap", "20",
                      "--estimators", "oracle_cc")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc, gold


def test_truncated_samples_are_incorrect_with_reason(truncated_run):
    out, _, gold = truncated_run
    rd = RunDir(out)
    rows = rd.target_rows("gsm8k")
    from capcal.store import SampleStore

    n_trunc = n_empty = 0
    with SampleStore(out / "samples.sqlite") as store:
        for row in rows:
            comps = store.get_many(row["sample_keys"])
            for j, key in enumerate(row["sample_keys"]):
                comp = comps[key]
                assert row["finish_reasons"][j] == comp["finish_reason"]
                if comp["finish_reason"] == "length":
                    n_trunc += 1
                    # the stored text holds the gold number, yet the sample is wrong and nothing was parsed
                    assert str(gold[row["id"]]) in comp["text"]
                    assert row["correct"][j] == 0 and row["extracted"][j] is None
                    assert row["reasons"][j] == "truncated"
                elif not comp["text"].strip():
                    n_empty += 1
                    assert row["correct"][j] == 0 and row["reasons"][j] == "empty"
                else:
                    assert row["correct"][j] == 1 and row["reasons"][j] is None
            assert row["n_truncated"] == sum(f == "length" for f in row["finish_reasons"])
            assert row["c"] == sum(row["correct"])
    assert n_trunc > 0 and n_empty > 0
    total = LIMIT * K
    t = rd.targets("gsm8k")
    assert t.truncation_rate == pytest.approx(n_trunc / total) and t.empty_rate == pytest.approx(n_empty / total)
    doc = load_results(out)
    task = doc["tasks"]["gsm8k"]
    assert task["truncation_rate"] == pytest.approx(n_trunc / total)
    assert task["empty_rate"] == pytest.approx(n_empty / total)
    assert task["finish_reasons"]["length"] == n_trunc and sum(task["finish_reasons"].values()) == total
    # mu counts only the short answers that finished
    assert task["mean_mu"] == pytest.approx((total - n_trunc - n_empty) / total)


def test_rates_are_flagged_on_the_leaderboard_and_warned(truncated_run):
    out, proc, _ = truncated_run
    doc = load_results(out)
    trunc = doc["tasks"]["gsm8k"]["truncation_rate"]
    assert trunc > 0.05
    assert "capcal: warning: gsm8k:" in proc.stderr and "stopped at the token limit" in proc.stderr
    assert f"max_tokens={MAX_TOKENS}" in proc.stderr and "empty replies" in proc.stderr
    assert "Traceback" not in proc.stderr
    lb = load_leaderboard([out])
    md = render(lb, "md")
    flag = next(f for f in lb.flags if f.startswith(f"{doc['run_name']}/gsm8k: "))
    assert f"truncation rate {trunc:.3g}" in flag and "empty-reply rate" in flag
    assert "## Failures and flags" in md and f"- {flag}" in md
    assert flag in render(lb, "html").replace("&#x27;", "'")


def test_grade_truncated_option_grades_them_anyway(tmp_path, data_dir):
    table, _ = _table(data_dir)
    out = tmp_path / "run"
    with StubServer(table=table, honour_n=True) as srv:
        proc = capcal("run", "--model", "openai", "--model_args", f"base_url={srv.base_url},model=stub",
                      "--tasks", "gsm8k", "--k", str(K), "--limit", "2", "--max-tokens", str(MAX_TOKENS),
                      "--data-dir", str(data_dir), "--output", str(out), "--no-progress", "--bootstrap", "0",
                      "--grade-truncated")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = RunDir(out).target_rows("gsm8k")
    truncated = [(row["correct"][j], row["extracted"][j]) for row in rows for j in range(K)
                 if row["finish_reasons"][j] == "length"]
    assert truncated and all(c == 1 and e is not None for c, e in truncated)   # the number was read
    assert all(row["reasons"][j] == "truncated" for row in rows for j in range(K)
               if row["finish_reasons"][j] == "length")
    assert json.loads((out / "config.json").read_text())["grade_truncated"] is True


def test_grade_sample_rules(data_dir):
    task = get_registry().task("gsm8k", data_dir=data_dir)
    ex = task.examples("eval", 1)[0]
    g = ex.fields["answer"]
    half = f"First 12 + 6 = {g}, so the"
    assert grade_sample(task, half, "length", ex) == (grade_sample(task, "", "length", ex)[0], "truncated")
    res, why = grade_sample(task, half, "length", ex)
    assert (res.extracted, res.correct, why) == (None, False, "truncated")
    res, why = grade_sample(task, half, "length", ex, grade_truncated=True)
    assert res.correct and why == "truncated"
    res, why = grade_sample(task, half, "max_tokens", ex)             # a server's synonym of "length"
    assert (res.correct, why) == (False, "truncated")
    res, why = grade_sample(task, f"The answer is {g}.", "stop", ex)
    assert res.correct and why is None
    for text in ("", "   \n", None):                                    # "" and content: null
        res, why = grade_sample(task, text, "stop", ex)
        assert (res.extracted, res.correct, why) == (None, False, "empty")
    res, why = grade_sample(task, f"The answer is {g}.", "content_filter", ex)
    assert (res.correct, why) == (False, "content_filter")
    res, why = grade_sample(task, f"The answer is {g}.", None, ex)    # a backend that reports no reason
    assert res.correct and why is None
    assert sample_flags(["a", "", None, "b"], ["stop", "length", "stop", "max_tokens"]) == (2, 2)
    assert normalize_finish_reason("EOS_TOKEN") == "stop" and normalize_finish_reason(None) is None


def test_capcal_grade_reads_finish_reason(tmp_path, data_dir):
    task = get_registry().task("gsm8k", data_dir=data_dir)
    ex = task.examples("eval", 1)[0]
    g = ex.fields["answer"]
    src = tmp_path / "in.jsonl"
    lines = [{"index": 0, "response": f"First 12 + 6 = {g}, so the", "finish_reason": "length"},
             {"index": 0, "response": [f"The answer is {g}.", "", f"so {g}, and"],
              "finish_reason": ["stop", "stop", "length"]},
             {"index": 0, "response": f"The answer is {g}."}]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out.jsonl"
    summary = grade_file(task, src, out)
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert (got[0]["correct"], got[0]["extracted"], got[0]["reason"]) == (False, None, "truncated")
    assert got[1]["correct"] == [True, False, False] and got[1]["reason"] == [None, "empty", "truncated"]
    assert got[2]["correct"] is True and got[2]["reason"] is None
    assert (summary.rows, summary.correct, summary.truncated, summary.empty) == (5, 2, 2, 1)
    assert summary.line() == "rows=5 correct=2 unparseable=3 truncated=2 empty=1"
    again = grade_file(task, src, tmp_path / "again.jsonl", grade_truncated=True)
    assert again.correct == 4
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"index": 0, "response": ["a", "b"], "finish_reason": ["stop"]}) + "\n")
    proc = capcal("grade", "--task", "gsm8k", "--responses", str(bad), "--data-dir", str(data_dir))
    assert proc.returncode == 2 and "finish_reason" in proc.stderr and "Traceback" not in proc.stderr


def test_embedded_model_records_length_and_the_run_grades_it_truncated(tmp_path, data_dir, embedded_backend):
    """The real embedded model (SmolLM2) cut at 3 new tokens: every sample reports ``length`` and is graded
    incorrect with reason ``truncated``; the truncation rate is 1."""
    from capcal.pipeline import Pipeline
    from capcal.runconfig import RunConfig

    logs: list[str] = []
    cfg = RunConfig(output=tmp_path / "run", tasks=["gsm8k"], k=2, limit=2, max_tokens=3, data_dir=data_dir,
                    progress=False, bootstrap=0)
    Pipeline(cfg, backend=embedded_backend, log=logs.append).run()
    rows = RunDir(tmp_path / "run").target_rows("gsm8k")
    assert all(f == "length" for row in rows for f in row["finish_reasons"])
    assert all(row["reasons"] == ["truncated", "truncated"] and row["c"] == 0 for row in rows)
    assert RunDir(tmp_path / "run").targets("gsm8k").truncation_rate == 1.0
    assert any("4 of 4 samples (100.0%) stopped at the token limit (max_tokens=3)" in m for m in logs)
