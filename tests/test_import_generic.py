"""``capcal import`` of the generic JSON Lines format: matching, grading, short questions, disagreements (issue 14)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from capcal.cli import main
from capcal.importing import finish_imported_run, import_samples
from capcal.registry import get_registry
from capcal.rundir import RunDir


def _gsm8k(data_dir, n=40):
    task = get_registry().task("gsm8k", data_dir=data_dir)
    return task, task.examples("eval")[:n]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _responses(ex, n_right, n):
    gold = int(ex.fields["answer"])
    return [f"So the answer is {gold}." if j < n_right else f"The answer is {gold + 7}." for j in range(n)]


def test_per_question_matching_by_id_index_and_text(tmp_path, data_dir):
    task, exs = _gsm8k(data_dir)
    rows, expected = [], {}
    for i, ex in enumerate(exs[:30]):
        n = 8 if i not in (3, 17) else 5  # two short questions
        right = i % 9
        right = min(right, n)
        line = {"responses": _responses(ex, right, n)}
        if i < 10:
            line["id"] = ex.id
        elif i < 20:
            line["index"] = ex.index
        else:  # text only, with different case and spacing
            line["question"] = "  " + ex.fields["question"].upper().replace(" ", "   ") + "\n"
        rows.append(line)
        expected[ex.id] = (right, n)
    rows.append({"id": "no-such-question", "responses": ["4"]})
    rows.append({"index": 10**6, "responses": ["4"]})
    rows.append({"question": "What is the airspeed of an unladen swallow?", "responses": ["4"]})
    rows.append({"index": 2, "question": "A question that is not document 2", "responses": ["4"]})
    src = _write(tmp_path / "samples.jsonl", rows)

    report = import_samples(src, "gsm8k", tmp_path / "run", data_dir=data_dir, model_id="my-model")
    assert report.n_source == 34 and report.n_matched == 30
    assert report.matched_by == {"id": 10, "index": 10, "text": 10}
    assert report.unmatched["count"] == 4
    reasons = dict(map(tuple, report.unmatched["examples"]))
    assert "no document has this id" in reasons["id 'no-such-question'"]
    assert "outside the split" in reasons["index 1000000"]
    assert "no document has this question text" in reasons["question 'What is the airspeed of an unladen swallow?'"]
    assert "document 2 has another question" in reasons["index 2"]
    assert report.short["count"] == 2
    assert sorted(report.short["examples"]) == sorted([[exs[3].id, 5], [exs[17].id, 5]])
    assert (report.n_min, report.n_max, report.n_samples) == (5, 8, 28 * 8 + 2 * 5)

    rd = RunDir(tmp_path / "run")
    got = {r["id"]: r for r in rd.target_rows("gsm8k")}
    assert set(got) == set(expected)
    for qid, (right, n) in expected.items():
        row = got[qid]
        assert row["n"] == n and row["c"] == right and row["correct"] == [1] * right + [0] * (n - right)
        assert abs(row["mu"] - right / n) < 1e-12 and row["r"] == int(right > 0)
    assert [r["index"] for r in rd.target_rows("gsm8k")] == sorted(r["index"] for r in got.values())
    config = rd.config
    assert config["model"] == "imported" and config["model_id"] == "my-model"
    assert config["tasks"]["gsm8k"]["k"] == 8 and config["tasks"]["gsm8k"]["n_min"] == 5
    record = json.loads((rd.task_dir("gsm8k") / "imports" / "eval.json").read_text())
    assert record["unmatched"]["count"] == 4 and record["short"]["count"] == 2


def test_per_sample_lines_finish_reasons_and_disagreements(tmp_path, data_dir):
    task, exs = _gsm8k(data_dir, 6)
    lines = []
    flipped = 0
    for i, ex in enumerate(exs):
        gold = int(ex.fields["answer"])
        for j in reversed(range(4)):  # out of order: sample_index decides
            text = f"The answer is {gold}." if j % 2 == 0 else "I am not sure."
            correct = j % 2 == 0
            if i == 1 and j == 0:  # the source's grader says wrong where capcal's says right
                correct = False
                flipped += 1
            line = {"id": ex.id, "sample_index": j, "response": text, "correct": correct,
                    "finish_reason": "stop", "completion_tokens": 5 + j}
            if i == 2 and j == 2:  # hit the token limit: incorrect whatever the text says
                line["finish_reason"] = "length"
            lines.append(line)
    src = _write(tmp_path / "per_sample.jsonl", lines)
    report = import_samples(src, "gsm8k", tmp_path / "run", data_dir=data_dir)
    assert report.verdicts == 24
    # sample 2 of question 2 is truncated: the grader says wrong, the source said right
    assert report.disagreements["count"] == flipped + 1
    assert report.truncated == 1
    rows = {r["id"]: r for r in RunDir(tmp_path / "run").target_rows("gsm8k")}
    assert rows[exs[0].id]["correct"] == [1, 0, 1, 0]
    assert rows[exs[2].id]["correct"] == [1, 0, 0, 0] and rows[exs[2].id]["extracted"][2] is None
    assert rows[exs[1].id]["correct"] == [1, 0, 1, 0]  # capcal's grader defines the targets by default

    report2 = import_samples(src, "gsm8k", tmp_path / "run2", data_dir=data_dir, labels="imported")
    rows2 = {r["id"]: r for r in RunDir(tmp_path / "run2").target_rows("gsm8k")}
    assert rows2[exs[1].id]["correct"] == [0, 0, 1, 0]  # the source's verdicts
    assert report2.disagreements["count"] == report.disagreements["count"]


def test_estimators_and_results_on_an_imported_run(tmp_path, data_dir):
    task, exs = _gsm8k(data_dir, 20)
    rng = np.random.default_rng(1)
    rows = []
    for ex in exs:
        right = int(rng.integers(0, 7))
        rows.append({"id": ex.id, "responses": _responses(ex, right, 6)})
    src = _write(tmp_path / "s.jsonl", rows)
    out = tmp_path / "run"
    assert main(["import", str(src), "--task", "gsm8k", "--output", str(out), "--data-dir", str(data_dir),
                 "--estimators", "consistency,oracle_cc,oracle_rc,constant", "--bootstrap", "50"]) == 0
    rd = RunDir(out)
    targets = rd.targets("gsm8k")
    conf, _, meta = rd.estimator_output("gsm8k", "consistency")
    assert meta["samples_overlap_mu"] is True  # no model: the stored samples are reused and flagged
    # independent: share of the most frequent extracted answer among the 6 samples
    for i in range(len(exs)):
        right = int(targets.c[i])
        assert conf[i] == pytest.approx(max(right, 6 - right) / 6)
    doc = json.loads(rd.results_path.read_text())
    est = doc["tasks"]["gsm8k"]["estimators"]
    assert set(est) == {"consistency", "oracle_cc", "oracle_rc", "constant"}
    assert est["oracle_cc"]["metrics"]["cc_brier"]["value"] == pytest.approx(0.0, abs=1e-15)
    mu = targets.mu
    assert est["constant"]["metrics"]["cc_brier"]["value"] == pytest.approx(np.mean((mu.mean() - mu) ** 2))
    assert doc["model"]["backend"] == "imported"

    # the leaderboard reads it like any run
    md = tmp_path / "lb.md"
    assert main(["leaderboard", str(out), "--output", str(md)]) == 0
    text = md.read_text()
    assert "consistency" in text and "oracle_cc" in text

    # re-running the same command changes nothing and keeps the estimators
    before = rd.results_path.read_text()
    assert main(["import", str(src), "--task", "gsm8k", "--output", str(out), "--data-dir", str(data_dir),
                 "--estimators", "consistency,oracle_cc,oracle_rc,constant", "--bootstrap", "50"]) == 0
    assert json.loads(rd.results_path.read_text())["tasks"] == json.loads(before)["tasks"]


def test_bad_input_is_one_line_and_exit_2(tmp_path, data_dir, capsys):
    _, exs = _gsm8k(data_dir, 2)
    mixed = _write(tmp_path / "mixed.jsonl", [{"id": exs[0].id, "responses": ["1"]}, {"id": exs[1].id, "response": "2"}])
    none = _write(tmp_path / "none.jsonl", [{"id": "nope", "responses": ["1"]}])
    badc = _write(tmp_path / "badc.jsonl", [{"id": exs[0].id, "responses": ["1"], "correct": ["yes"]}])
    for src, message in ((mixed, "mixes one-line-per-sample"), (none, "none of its 1 questions matched"),
                         (badc, "'correct' must be true/false or 0/1, got 'yes'")):
        code = main(["import", str(src), "--task", "gsm8k", "--output", str(tmp_path / "r"), "--data-dir", str(data_dir)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert message in err and "Traceback" not in err
        assert len([ln for ln in err.splitlines() if ln.startswith("capcal: error")]) == 1
    # a sampled run is never overwritten by an import
    (tmp_path / "sampled").mkdir()
    (tmp_path / "sampled" / "config.json").write_text(json.dumps({"model": "embedded"}))
    good = _write(tmp_path / "good.jsonl", [{"id": exs[0].id, "responses": ["1"]}])
    assert main(["import", str(good), "--task", "gsm8k", "--output", str(tmp_path / "sampled"),
                 "--data-dir", str(data_dir)]) == 2
    assert "holds a sampled run" in capsys.readouterr().err


def test_finish_imported_run_refuses_a_sampled_run(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": "embedded"}))
    with pytest.raises(Exception, match="not an imported run"):
        finish_imported_run(tmp_path, ["oracle_cc"])


def test_recalibration_and_constant_fit_on_an_imported_training_split(tmp_path, data_dir):
    from capcal.importing import import_confidences

    task = get_registry().task("gsm8k", data_dir=data_dir)
    rng = np.random.default_rng(3)
    conf_rows = []
    out = tmp_path / "run"
    fitted = {}
    for split, exs in (("train", task.examples("train")[:60]), ("eval", task.examples("eval")[:30])):
        rows = []
        for ex in exs:
            right = int(rng.integers(0, 5))
            rows.append({"id": ex.id, "responses": _responses(ex, right, 4)})
            p = float(np.clip(right / 4 + rng.normal(0, 0.15), 0, 1))
            conf_rows.append({"id": ex.id, "confidence": p})
            fitted.setdefault(split, []).append((p, right / 4))
        import_samples(_write(tmp_path / f"{split}.jsonl", rows), "gsm8k", out, split=split, data_dir=data_dir)
    conf_file = _write(tmp_path / "ext.jsonl", conf_rows)
    rep = import_confidences(out, conf_file, "ext", analyse=False)
    assert rep.n_matched == 30 and rep.unknown["count"] == 60  # the training ids are kept for the wrapper
    spec = "recalibrated:base=imported:base_source=ext:method=histogram:bins=5"
    finish_imported_run(out, [spec, "constant"], bootstrap=20)
    rd = RunDir(out)
    got, _, meta = rd.estimator_output("gsm8k", spec)
    assert meta["fitted_on"] == "train"
    # independent histogram binning fitted on the training split's (imported confidence, mu) pairs
    tp, tmu = np.array(fitted["train"]).T
    bins = np.minimum((np.round(tp * 5, 9)).astype(int), 4)
    table = np.array([tmu[bins == b].mean() if (bins == b).any() else tmu.mean() for b in range(5)])
    ep = np.array(fitted["eval"])[:, 0]
    np.testing.assert_allclose(got, table[np.minimum((np.round(ep * 5, 9)).astype(int), 4)])
    const, _, cmeta = rd.estimator_output("gsm8k", "constant")
    assert cmeta["source"] == "train" and const[0] == pytest.approx(tmu.mean())
    assert "ext" in json.loads(rd.results_path.read_text())["tasks"]["gsm8k"]["estimators"]


def test_compare_route_and_logprob_baselines_on_imported_runs(tmp_path, data_dir, capsys):
    task, exs = _gsm8k(data_dir, 40)
    rng = np.random.default_rng(7)
    runs = {}
    for name, skill in (("small", 0.3), ("large", 0.8)):
        rows = []
        for ex in exs:
            right = int(rng.binomial(6, skill))
            responses = []
            for text in _responses(ex, right, 6):
                words = text.split(" ")
                tokens = [w if i == 0 else " " + w for i, w in enumerate(words)]
                lp = [-float(rng.uniform(0.01, 2.0)) for _ in tokens]
                responses.append({"text": text, "tokens": tokens, "token_logprobs": lp,
                                  "completion_tokens": len(tokens) * (3 if name == "large" else 1)})
            rows.append({"id": ex.id, "responses": responses})
        src = _write(tmp_path / f"{name}.jsonl", rows)
        runs[name] = tmp_path / name
        assert main(["import", str(src), "--task", "gsm8k", "--output", str(runs[name]), "--data-dir", str(data_dir),
                     "--model-id", f"model-{name}", "--estimators", "consistency,oracle_cc,logprob_mean",
                     "--bootstrap", "50"]) == 0
    rd = RunDir(runs["small"])
    conf, _, _ = rd.estimator_output("gsm8k", "logprob_mean")
    first = [json.loads(line) for line in (tmp_path / "small.jsonl").read_text().splitlines()]
    want = [float(np.exp(np.mean(r["responses"][0]["token_logprobs"]))) for r in first]
    np.testing.assert_allclose(conf, want)  # the imported token logprobs of the designated sample
    rows = rd.target_rows("gsm8k")
    assert rows[0]["completion_tokens"] == [len(t["tokens"]) for t in first[0]["responses"]]
    capsys.readouterr()
    assert main(["compare", str(runs["small"]), str(runs["large"]), "--n-boot", "50"]) in (0, 1)
    out = capsys.readouterr().out
    assert "consistency" in out
    assert main(["route", str(runs["small"]), str(runs["large"]), "--estimator", "consistency", "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert "consistency" in out and "oracle" in out
