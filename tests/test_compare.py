"""`capcal compare`: a run against itself passes, planted regressions fail, and the numbers agree with
independent computations (scikit-learn on explicitly resampled questions; a hand-derived McNemar p)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from capcal.bootstrap import resample_counts
from capcal.cli import main
from capcal.compare import CompareError, compare_runs
from report_fixtures import make_run, qwen_estimators, qwen_rows
from sklearn.metrics import mean_squared_error

N_BOOT = 300


def _shuffle_estimators(ests):
    rng = np.random.default_rng(11)
    return {**ests, "prm": rng.permutation(ests["prm"]), "consistency": 1.0 - ests["consistency"]}


def _drop_accuracy(correct):
    """Designated sample of the first 12 questions it gets right turned wrong (a planted accuracy drop)."""
    out = correct.copy()
    rows = np.flatnonzero(out[:, 0] == 1)[:12]
    out[rows, 0] = 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("compare")
    return {
        "base": make_run(root, data_dir, "base"),
        "regressed": make_run(root, data_dir, "regressed", estimator_fn=_shuffle_estimators),
        "oracle_noise": make_run(root, data_dir, "oracle_noise", estimator_fn=lambda e: {
            **e, "oracle_cc": np.random.default_rng(3).uniform(size=len(e["oracle_cc"]))}),
        "dropped": make_run(root, data_dir, "dropped", correct_fn=_drop_accuracy),
        "subset": make_run(root, data_dir, "subset", tasks={"math": slice(0, 60)}),
        "elsewhere": make_run(root, data_dir, "elsewhere", tasks={"other": slice(None)}),
    }


def test_run_against_itself_is_no_change(runs, capsys):
    base = str(runs["base"].path)
    assert main(["compare", base, base, "--n-boot", str(N_BOOT)]) == 0
    out = capsys.readouterr().out
    assert "OK: no significant worsening of CC-Brier (exit 0)" in out
    assert "0 metric(s) significantly better, 0 significantly worse." in out
    cmp = compare_runs(base, base, n_boot=N_BOOT)
    assert {c.verdict for c in cmp.changes} <= {"no change", "n/a"}
    assert all(c.diff == 0 and c.lo == 0 and c.hi == 0 for c in cmp.changes if c.diff is not None)
    acc = cmp.accuracy[0]
    assert (acc.base_only, acc.new_only, acc.mcnemar_p, acc.wilcoxon_p, acc.verdict) == (0, 0, 1.0, 1.0, "no change")


def test_planted_regression_fails(runs, capsys, tmp_path):
    report = tmp_path / "cmp.json"
    code = main(["compare", str(runs["base"].path), str(runs["regressed"].path), "--n-boot", str(N_BOOT),
                 "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 1
    assert "REGRESSION: CC-Brier got significantly worse on math/consistency, math/prm (exit 1)" in out
    data = json.loads(report.read_text())
    assert data["exit_code"] == 1 and {r["estimator"] for r in data["regressions"]} == {"consistency", "prm"}


def test_gating_can_be_restricted(runs):
    base, new = runs["base"].path, runs["regressed"].path
    assert compare_runs(base, new, n_boot=N_BOOT, estimators=["constant"]).exit_code == 0
    assert compare_runs(base, new, n_boot=N_BOOT, metric="auroc", estimators=["prm"]).exit_code == 1
    # reference rows do not gate by default, even when they change a lot
    noisy = compare_runs(base, runs["oracle_noise"].path, n_boot=N_BOOT)
    assert any(c.estimator == "oracle_cc" and c.metric == "cc_brier" and c.verdict == "worse" for c in noisy.changes)
    assert noisy.exit_code == 0 and "oracle_cc" not in noisy.gated_estimators


def test_paired_bootstrap_matches_explicit_resampling(runs, data_dir):
    """Difference and interval of CC-Brier recomputed with scikit-learn on the resampled questions."""
    rows = qwen_rows(data_dir)
    mu = np.array([np.mean(r["score"]) for r in rows], dtype=float)
    p_base = qwen_estimators(rows)["prm"]
    p_new = _shuffle_estimators(qwen_estimators(rows))["prm"]
    cmp = compare_runs(runs["base"].path, runs["regressed"].path, n_boot=N_BOOT, seed=5, alpha=0.1)
    got = next(c for c in cmp.changes if c.estimator == "prm" and c.metric == "cc_brier")
    assert got.base == pytest.approx(mean_squared_error(mu, p_base), abs=1e-12)
    assert got.diff == pytest.approx(mean_squared_error(mu, p_new) - mean_squared_error(mu, p_base), abs=1e-12)
    diffs = []
    for w in resample_counts(len(mu), N_BOOT, seed=5):
        for counts in w.astype(int):
            idx = np.repeat(np.arange(len(mu)), counts)
            diffs.append(mean_squared_error(mu[idx], p_new[idx]) - mean_squared_error(mu[idx], p_base[idx]))
    lo, hi = np.percentile(diffs, [5, 95])
    assert (got.lo, got.hi) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))


def test_mcnemar_on_a_planted_accuracy_drop(runs):
    cmp = compare_runs(runs["base"].path, runs["dropped"].path, n_boot=N_BOOT)
    acc = cmp.accuracy[0]
    assert (acc.base_only, acc.new_only) == (12, 0)
    assert acc.mcnemar_p == pytest.approx(2 * 0.5**12, rel=1e-12)  # exact two-sided binomial, by hand
    assert acc.new_accuracy == pytest.approx(acc.base_accuracy - 0.12)
    assert acc.mu_diff == pytest.approx(-12 / 8 / 100) and acc.mu_hi < 0
    assert acc.wilcoxon_p < 0.05 and acc.verdict == "worse"


def test_partial_overlap_is_compared_on_shared_questions(runs):
    cmp = compare_runs(runs["base"].path, runs["subset"].path, n_boot=50)
    assert cmp.accuracy[0].n_questions == 60
    assert any("compared on the 60 shared questions" in w for w in cmp.warnings)


@pytest.mark.parametrize("extra, message", [
    (["--metric", "accuracy"], "metric 'accuracy' cannot be compared"),
    (["--alpha", "1.5"], "alpha must be in (0, 1)"),
])
def test_bad_options_are_one_line_errors(runs, capsys, extra, message):
    base = str(runs["base"].path)
    assert main(["compare", base, base, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_no_overlap_is_an_error(runs, capsys):
    with pytest.raises(CompareError, match="share no task and question id"):
        compare_runs(runs["base"].path, runs["elsewhere"].path, n_boot=10)
    assert main(["compare", str(runs["base"].path), str(runs["elsewhere"].path)]) == 2
    assert "share no task and question id" in capsys.readouterr().err
