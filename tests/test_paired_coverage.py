"""Paired differences on common questions, coverage on the leaderboard, in-sample rows marked and never gating.

Targets and confidences are the real Qwen2.5-Math graded outputs (``report_fixtures``); numbers are checked
against independent computations (scikit-learn on the common questions, an explicitly built bootstrap).
"""

from __future__ import annotations

import numpy as np
import pytest
from capcal.analysis import analyze, common_counts
from capcal.bootstrap import PreparedEstimator, TaskArrays, bootstrap_metrics, percentile_ci
from capcal.compare import compare_runs
from capcal.report import load_leaderboard, render
from capcal.results import load_results, write_results
from capcal.rundir import RunDir
from report_fixtures import make_run
from sklearn.metrics import mean_squared_error, roc_auc_score

N_BOOT = 200


def _hard_questions_nan(ests):
    """prm fails on 30 (seeded) questions: its coverage drops, its quality does not."""
    rows = np.random.default_rng(7).choice(len(ests["prm"]), size=30, replace=False)
    prm = ests["prm"].copy()
    prm[rows] = np.nan
    return {**ests, "prm": prm}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("paired")
    base = make_run(root, data_dir, "base")
    gaps = make_run(root, data_dir, "gaps", estimator_fn=_hard_questions_nan)
    for rd in (base, gaps):
        write_results(rd.path, n_boot=N_BOOT, seed=0)
    return base, gaps


def test_differences_are_on_common_questions(runs):
    _, gaps = runs
    rd = RunDir(gaps.path)
    t = rd.targets("math")
    conf = {name: rd.estimator_output("math", name)[0] for name in ("prm", "consistency")}
    out = analyze(t, conf, n_boot=N_BOOT, seed=0)
    common = np.isfinite(conf["prm"]) & np.isfinite(conf["consistency"])
    assert common.sum() == 70
    d = out["differences"]["prm-consistency"]
    mu = t.mu
    want = (mean_squared_error(mu[common], conf["prm"][common])
            - mean_squared_error(mu[common], conf["consistency"][common]))
    assert d["cc_brier"]["value"] == pytest.approx(want, abs=1e-12)
    r = t.r
    auc = roc_auc_score(r[common], conf["prm"][common]) - roc_auc_score(r[common], conf["consistency"][common])
    assert d["auroc"]["value"] == pytest.approx(auc, abs=1e-12)
    # the estimators' own rows stay on their own questions (consistency on all 100)
    assert out["estimators"]["consistency"]["metrics"]["cc_brier"]["value"] == pytest.approx(
        np.mean((conf["consistency"] - mu) ** 2), abs=1e-12)
    assert common_counts(conf, [("prm", "consistency")]) == {"prm-consistency": 70}
    # the interval equals a bootstrap built by hand on the common questions (same resamples)
    task = TaskArrays(mu=mu, r=r.astype(float), n=t.n, c=t.c)
    a = PreparedEstimator(np.where(common, conf["prm"], np.nan), task)
    b = PreparedEstimator(np.where(common, conf["consistency"], np.nan), task)
    boot = bootstrap_metrics({"a": a, "b": b}, task, N_BOOT, seed=0)
    for metric in ("cc_brier", "rc_brier", "cc_ece", "auroc", "spearman"):
        lo, hi = percentile_ci(boot["a"][metric] - boot["b"][metric])
        assert d[metric]["ci"] == pytest.approx([lo, hi], abs=1e-12), metric


def test_restricted_estimator_equals_a_direct_one(runs):
    """The derived weighted sums of a restricted estimator (its base's minus the dropped questions') give the
    same bootstrap metrics as building it from scratch."""
    base, _ = runs
    rd = RunDir(base.path)
    t = rd.targets("math")
    p = rd.estimator_output("math", "prm")[0]
    task = TaskArrays(mu=t.mu, r=t.r.astype(float), n=t.n, c=t.c)
    keep = np.ones(len(p), bool)
    keep[::3] = False
    full = PreparedEstimator(p, task)
    derived = full.restrict(keep, "full", np.where(keep, p, np.nan), task)
    assert derived.restricted_from is not None and len(derived.restricted_from[1]) == (~keep).sum()
    direct = PreparedEstimator(np.where(keep, p, np.nan), task)
    got = bootstrap_metrics({"full": full, "derived": derived}, task, 50, seed=4)["derived"]
    want = bootstrap_metrics({"direct": direct}, task, 50, seed=4)["direct"]
    for metric in want:
        np.testing.assert_allclose(got[metric], want[metric], rtol=1e-9, atol=1e-12, err_msg=metric)


def test_results_and_leaderboard_show_coverage_and_common_counts(runs):
    _, gaps = runs
    doc = load_results(gaps.path)
    task = doc["tasks"]["math"]
    assert task["estimators"]["prm"]["coverage"] == pytest.approx(0.7)
    assert task["estimators"]["consistency"]["coverage"] == 1.0
    assert task["differences_n_common"]["consistency-prm"] == 70
    assert task["differences_n_common"]["consistency-oracle_cc"] == 100
    lb = load_leaderboard([gaps.path])
    row = next(r for r in lb.rows if r.estimator == "prm")
    assert row.coverage["math"] == pytest.approx(0.7) and row.coverage["mean"] == pytest.approx(0.7)
    md = render(lb, "md")
    assert "| Model | Estimator | Coverage |" in md
    assert any(line.startswith(f"| {row.model} | prm | 70.0% |") for line in md.splitlines())
    html = render(lb, "html")
    assert "<th>Coverage</th>" in html and ">70.0%</td>" in html
    csv = render(lb, "csv")
    assert "math.coverage" in csv.splitlines()[0]


def test_compare_pairs_on_common_questions_and_never_gates_in_sample(runs, data_dir, tmp_path):
    base, gaps = runs
    # the coverage drop of prm alone is not a quality change: compared on the 70 questions both answered
    cmp = compare_runs(base.path, gaps.path, n_boot=N_BOOT)
    prm = next(c for c in cmp.changes if c.estimator == "prm" and c.metric == "cc_brier")
    assert prm.diff == pytest.approx(0.0, abs=1e-15) and prm.verdict == "no change"
    assert any("prm: metrics over the 70 of 100 questions both runs answered" in w for w in cmp.warnings)
    # an estimator flagged in-sample in either run never gates, even when asked for by name
    flagged = make_run(tmp_path, data_dir, "flagged", estimator_fn=lambda e: {
        **e, "prm": np.random.default_rng(5).permutation(e["prm"])})
    rd = RunDir(flagged.path)
    conf, reasons, _ = rd.estimator_output("math", "prm")
    rd.write_estimator("math", "prm", rd.targets("math").ids, conf, reasons, {"in_sample": True, "source": "eval"})
    asked = compare_runs(base.path, flagged.path, n_boot=N_BOOT, metric="auroc", estimators=["prm"])
    assert any(c.estimator == "prm" and c.metric == "auroc" and c.verdict == "worse" for c in asked.changes)
    assert asked.exit_code == 0 and "prm" not in asked.gated_estimators and "prm" in asked.in_sample
    assert any(w.startswith("prm does not gate the exit code: in-sample") for w in asked.warnings)
