"""A generic import of 500 questions x 20 samples, then grading, consistency, metrics and the leaderboard;
imported confidences scored beside the built-ins in that leaderboard (issue 14). Its speed is measured by
``benchmarks/import_speed.py`` (docs/benchmarks.md), not here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from capcal.cli import main
from capcal.registry import get_registry
from capcal.rundir import RunDir

Q, K, SHORT, UNMATCHED = 500, 20, 13, 9


@pytest.fixture(scope="module")
def imported(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("scale")
    task = get_registry().task("gsm8k", data_dir=data_dir)
    exs = task.examples("eval")[:Q]
    rows, expected = [], {}
    for i, ex in enumerate(exs):
        gold = int(ex.fields["answer"])
        n = K - 5 if i % 37 == 0 else K  # 14 short questions (i = 0, 37, ..., 481)
        right = (i * 7) % (n + 1)
        rows.append({"id": ex.id, "responses": [f"The answer is {gold}." if j < right else f"I think {gold + j + 1}."
                                                for j in range(n)]})
        expected[ex.id] = (right, n)
    rows += [{"id": f"not-a-gsm8k-question-{i}", "responses": ["The answer is 1."] * K} for i in range(UNMATCHED)]
    src = root / "samples.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = root / "run"
    return src, out, expected


def test_import_grades_estimates_and_reports_unmatched_and_short(imported, data_dir, capsys):
    src, out, expected = imported
    assert main(["import", str(src), "--task", "gsm8k", "--output", str(out), "--data-dir", str(data_dir),
                 "--estimators", "consistency,oracle_cc,constant", "--no-progress"]) == 0
    err = capsys.readouterr().err
    n_short = sum(n < K for _, n in expected.values())
    assert n_short == SHORT + 1
    # both problems are reported, with counts and examples
    assert f"imported {Q} of {Q + UNMATCHED} questions" in err
    assert f"{UNMATCHED} questions matched no document and were left out, e.g. id 'not-a-gsm8k-question-0'" in err
    assert f"{n_short} questions have fewer samples than the others (n_max = {K})" in err
    rd = RunDir(out)
    record = json.loads((rd.task_dir("gsm8k") / "imports" / "eval.json").read_text())
    assert record["unmatched"]["count"] == UNMATCHED and record["short"]["count"] == n_short
    targets = rd.targets("gsm8k")
    assert len(targets.ids) == Q
    for qid, c, n in zip(targets.ids, targets.c, targets.n, strict=True):
        assert (int(c), int(n)) == expected[qid]
    # consistency (m = 10) on the first 10 reused samples: the right answer is one cluster, the wrong ones
    # are all different
    conf, _, meta = rd.estimator_output("gsm8k", "consistency")
    assert meta["samples_overlap_mu"] is True and meta["m"] == 10
    want = np.array([max(min(right, 10), 1 if right < 10 else 0) / 10 for right, _ in (expected[i] for i in targets.ids)])
    np.testing.assert_allclose(conf, want)
    doc = json.loads(rd.results_path.read_text())["tasks"]["gsm8k"]
    assert doc["n_questions"] == Q and doc["n_samples"] == {"min": K - 5, "max": K}
    mu = targets.mu
    cc = doc["estimators"]["consistency"]["metrics"]["cc_brier"]["value"]
    assert cc == pytest.approx(float(np.mean((want - mu) ** 2)), abs=1e-12)
    assert main(["leaderboard", str(out), "--output", str(out / "lb.md")]) == 0
    assert "consistency" in (out / "lb.md").read_text()


def test_imported_confidences_beside_a_built_in_estimator_in_one_leaderboard(imported, tmp_path):
    src, out, expected = imported
    rd = RunDir(out)
    targets = rd.targets("gsm8k")
    rng = np.random.default_rng(0)
    p = np.clip(targets.mu + rng.normal(0, 0.2, len(targets.ids)), 0, 1)
    rows = [{"id": qid, "confidence": float(v)} for qid, v in zip(targets.ids, p, strict=True)]
    rows[3]["confidence"] = None  # a failure in the other tool
    rows.append({"id": "someone-else", "confidence": 0.5})
    conf_file = tmp_path / "polygraph.jsonl"
    conf_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["import", "--confidences", str(conf_file), "--name", "lm_polygraph", str(out)]) == 0
    doc = json.loads(rd.results_path.read_text())["tasks"]["gsm8k"]["estimators"]
    assert {"lm_polygraph", "consistency", "oracle_cc", "constant"} <= set(doc)
    keep = np.arange(len(p)) != 3
    mu, r = targets.mu, targets.r
    got = doc["lm_polygraph"]["metrics"]
    assert got["cc_brier"]["value"] == pytest.approx(float(np.mean((p[keep] - mu[keep]) ** 2)), abs=1e-12)
    assert got["rc_brier"]["value"] == pytest.approx(float(np.mean((p[keep] - r[keep]) ** 2)), abs=1e-12)
    assert doc["lm_polygraph"]["n_nan"] == 1
    lb = tmp_path / "lb.md"
    assert main(["leaderboard", str(out), "--output", str(lb)]) == 0
    table = lb.read_text()
    assert "lm_polygraph" in table and "consistency" in table  # one leaderboard, both rows
    # a name the run computes itself is refused, one line, nothing changed
    assert main(["import", "--confidences", str(conf_file), "--name", "consistency", str(out)]) == 2
