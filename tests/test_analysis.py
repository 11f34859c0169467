"""analyze / analyze_run: the output structure of docs/metrics.md on the real graded matrix."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from capcal import metrics as M
from capcal.analysis import METRIC_NAMES, analyze
from capcal.errors import CapcalError, DataError, RunDirError, UnknownNameError
from capcal.results import analyze_run
from capcal.rundir import RunDir, Targets
from metrics_fixtures import graded_fixture  # noqa: F401  (session fixture "graded")
from sklearn.metrics import brier_score_loss, roc_auc_score

BIN_KEYS = {"lo", "hi", "count", "mean_conf", "mean_target"}


@pytest.fixture(scope="module")
def estimators(graded):
    rows, targets, reward = graded
    consistency = np.array([Counter(r["pred"]).most_common(1)[0][1] / len(r["pred"]) for r in rows])
    flaky = reward.copy()
    flaky[::9] = np.nan                                    # a failing estimator: 12 NaN
    return {"reward": reward, "consistency": consistency, "flaky": flaky, "oracle_cc": targets.mu,
            "oracle_rc": targets.r, "constant": np.full(100, targets.mu.mean())}


@pytest.fixture(scope="module")
def result(graded, estimators):
    return analyze(graded[1], estimators, n_boot=200, seed=7)


def test_structure_follows_the_contract(result, estimators):
    assert set(result) == {"n_questions", "n_samples", "mean_mu", "bernoulli_variance", "n_boot", "seed", "actual_passk",
                           "estimators", "differences"}
    assert result["n_questions"] == 100 and result["n_samples"] == {"min": 8, "max": 8}
    assert result["mean_mu"] == pytest.approx(0.91) and (result["n_boot"], result["seed"]) == (200, 7)
    assert [row["k"] for row in result["actual_passk"]] == [1, 2, 4, 8]
    assert list(result["estimators"]) == list(estimators)
    expected_metrics = set(METRIC_NAMES) | {"passk_mse@1", "passk_mse@4", "budget_gain"}   # n = 8: no @16, @64
    for name, est in result["estimators"].items():
        assert set(est) == {"n", "n_nan", "nan_rate", "metrics", "reliability", "passk_curve", "budget_curve"}
        assert set(est["metrics"]) == expected_metrics, name
        for m in est["metrics"].values():
            assert set(m) == {"value", "ci"} and len(m["ci"]) == 2
        assert len(est["reliability"]["cc"]) == len(est["reliability"]["rc"]) == 10
        assert all(set(b) == BIN_KEYS for b in est["reliability"]["cc"])
        assert [r["k"] for r in est["passk_curve"]] == [1, 2, 4, 8]
        assert [r["B"] for r in est["budget_curve"]] == [1, 2, 4, 8]
        assert all(set(r) == {"B", "greedy", "uniform", "oracle", "gain"} for r in est["budget_curve"])
    # plain JSON: no NaN, no numpy types
    json.dumps(result, allow_nan=False)
    pairs = len(estimators) * (len(estimators) - 1) // 2
    assert len(result["differences"]) == pairs and "reward-consistency" in result["differences"]


def test_values_match_independent_computations(result, graded, estimators):
    _, targets, _ = graded
    rew = result["estimators"]["reward"]["metrics"]
    p = estimators["reward"]
    assert rew["rc_brier"]["value"] == pytest.approx(brier_score_loss(targets.r, p), rel=1e-12)
    assert rew["auroc"]["value"] == pytest.approx(roc_auc_score(targets.r, p), rel=1e-12)
    assert rew["cc_ece"]["value"] == pytest.approx(M.ece(p, targets.mu), rel=1e-12)
    for m in rew.values():                                 # the point value lies inside its interval
        lo, hi = m["ci"]
        assert lo - 1e-12 <= m["value"] <= hi + 1e-12
    assert result["actual_passk"][0]["value"] == pytest.approx(0.91)


def test_nan_estimator_is_counted_and_excluded(result, graded, estimators):
    _, targets, _ = graded
    fl = result["estimators"]["flaky"]
    assert fl["n_nan"] == 12 and fl["nan_rate"] == pytest.approx(0.12) and fl["n"] == 100
    keep = ~np.isnan(estimators["flaky"])
    assert fl["metrics"]["cc_brier"]["value"] == pytest.approx(
        M.brier(estimators["flaky"][keep], targets.mu[keep]), rel=1e-12)
    assert sum(b["count"] for b in fl["reliability"]["cc"]) == 88


def test_oracle_rows(result):
    cc = result["estimators"]["oracle_cc"]
    assert cc["metrics"]["cc_brier"]["value"] == 0.0 and cc["metrics"]["cc_brier"]["ci"] == [0.0, 0.0]
    assert cc["metrics"]["passk_mse@1"]["value"] == 0.0              # acceptance 3
    assert cc["metrics"]["passk_mse@4"]["value"] > 0.0               # with/without-replacement gap
    for row in cc["budget_curve"]:
        assert row["greedy"] == row["oracle"] >= row["uniform"]
    rc = result["estimators"]["oracle_rc"]
    assert rc["metrics"]["rc_brier"]["value"] == 0.0 and rc["metrics"]["auroc"]["value"] == 1.0
    const = result["estimators"]["constant"]["metrics"]
    assert const["pearson"]["value"] is None and const["spearman"]["value"] is None   # undefined -> None
    assert const["auroc"]["value"] == 0.5


def test_differences_are_paired(graded, estimators):
    out = analyze(graded[1], estimators, n_boot=100, seed=1, reference="constant")
    assert set(out["differences"]) == {f"{n}-constant" for n in estimators if n != "constant"}
    d = out["differences"]["oracle_cc-constant"]["cc_brier"]
    const = out["estimators"]["constant"]["metrics"]["cc_brier"]
    assert d["value"] == pytest.approx(-const["value"])
    # oracle_cc has cc_brier 0 in every resample, so the difference interval is minus the constant's
    assert d["ci"] == pytest.approx([-const["ci"][1], -const["ci"][0]], abs=1e-15)
    same = analyze(graded[1], {"a": estimators["reward"], "b": estimators["reward"].copy()}, n_boot=50)
    assert all(m["value"] == 0 and m["ci"] == [0.0, 0.0] for m in same["differences"]["a-b"].values()
               if m["value"] is not None)


def test_no_bootstrap_and_options(graded, estimators):
    out = analyze(graded[1], {"reward": estimators["reward"]}, n_boot=0, ks=(1, 2), budgets=(2, 64),
                  binning="equal_mass", n_bins=5)
    est = out["estimators"]["reward"]
    assert est["metrics"]["cc_brier"]["ci"] == [None, None]
    assert {m for m in est["metrics"] if m.startswith("passk")} == {"passk_mse@1", "passk_mse@2"}
    assert [r["B"] for r in est["budget_curve"]] == [2]
    assert sum(b["count"] for b in est["reliability"]["cc"]) == 100 and len(est["reliability"]["cc"]) == 5


def test_bad_input_gives_one_line_errors(graded, estimators):
    targets = graded[1]
    cases = [
        ({"x": np.zeros(5)}, {}, DataError, "expected 100 confidences"),
        ({"x": np.full(100, 1.5)}, {}, DataError, "outside [0, 1]"),
        ({"reward": estimators["reward"]}, {"reference": "rewrad"}, UnknownNameError, "did you mean 'reward'"),
        ({"x": estimators["reward"]}, {"binning": "quantile"}, DataError, "unknown binning"),
    ]
    for conf, kw, exc, text in cases:
        with pytest.raises(exc) as info:
            analyze(targets, conf, n_boot=0, **kw)
        assert text in str(info.value) and "\n" not in str(info.value) and isinstance(info.value, CapcalError)
    bad = Targets.from_rows([{"id": "a", "correct": [1, 0], "designated": 2}])
    with pytest.raises(DataError, match="designated sample 2"):
        analyze(bad, {}, n_boot=0)
    with pytest.raises(DataError, match="no graded samples"):
        analyze(Targets.from_rows([{"id": "a", "correct": []}]), {}, n_boot=0)


def test_analyze_run_reads_a_run_directory(tmp_path, graded, estimators):
    rows, targets, _ = graded
    rd = RunDir(tmp_path / "run")
    for task, sl in (("math_a", slice(0, 60)), ("math_b", slice(60, 100))):
        rd.write_targets(task, [{"id": str(r["idx"]), "index": i, "n": 8, "c": int(sum(r["score"])),
                                 "mu": sum(r["score"]) / 8, "designated": 0, "r": int(r["score"][0]),
                                 "correct": [int(s) for s in r["score"]], "extracted": r["pred"]}
                                for i, r in enumerate(rows[sl])])
        for name in ("reward", "flaky"):
            p = estimators[name][sl]
            rd.write_estimator(task, name, targets.ids[sl], p,
                               [None if math.isfinite(x) else "unparseable reply" for x in p])
    out = analyze_run(rd.path, n_boot=50, seed=3)
    assert list(out) == ["math_a", "math_b"]
    # a re-used directory: config.json names what this run has; stale tasks and estimators are ignored
    rd.write_config({"tasks": {"math_b": {}}, "estimators": ["reward"]})
    assert list(analyze_run(rd.path, n_boot=10)) == ["math_b"]
    assert set(analyze_run(rd.path, n_boot=10)["math_b"]["estimators"]) == {"reward"}
    rd.config_path.unlink()
    assert out["math_a"]["n_questions"] == 60 and out["math_b"]["n_questions"] == 40
    assert set(out["math_b"]["estimators"]) == {"flaky", "reward"}
    direct = analyze(Targets.from_rows(rd.target_rows("math_b")), {"flaky": estimators["flaky"][60:],
                     "reward": estimators["reward"][60:]}, n_boot=50, seed=3)
    assert out["math_b"] == direct
    with pytest.raises(RunDirError, match="does not exist"):
        analyze_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="no task has targets"):
        analyze_run(tmp_path / "empty")


def test_all_nan_estimator_and_tiny_tasks():
    targets = Targets.from_rows([{"id": str(i), "correct": [1, 0, 1, 1] if i % 2 else [0, 0, 0, 0]}
                                 for i in range(6)])
    out = analyze(targets, {"dead": np.full(6, np.nan), "ok": np.linspace(0, 1, 6)}, n_boot=20)
    dead = out["estimators"]["dead"]
    assert dead["n_nan"] == 6 and dead["nan_rate"] == 1.0 and dead["budget_curve"] == []
    assert all(m["value"] is None and m["ci"] == [None, None] for m in dead["metrics"].values())
    assert out["differences"]["dead-ok"]["cc_brier"] == {"value": None, "ci": [None, None]}
    one = analyze(Targets.from_rows([{"id": "a", "correct": [1, 0]}]), {"x": np.array([0.5])}, n_boot=10)
    assert one["estimators"]["x"]["metrics"]["auroc"]["value"] is None          # one class
    assert one["estimators"]["x"]["metrics"]["cc_brier"] == {"value": 0.0, "ci": [0.0, 0.0]}


def test_bernoulli_variance_is_the_exact_rc_minus_cc_gap(graded):
    """``bernoulli_variance`` = mean mu(1 - mu) equals, for any estimator, RC-Brier averaged over all n choices
    of the designated sample minus CC-Brier (sklearn's Brier on each choice), on the real 100 x 8 matrix."""
    _, targets, reward = graded
    out = analyze(targets, {"reward": reward}, n_boot=10, seed=0)
    labels = targets.labels.astype(int)
    rc_avg = np.mean([brier_score_loss(labels[:, j], reward) for j in range(labels.shape[1])])
    cc = float(np.mean((reward - targets.mu) ** 2))
    assert out["bernoulli_variance"] == pytest.approx(rc_avg - cc, abs=1e-12)
    assert out["bernoulli_variance"] == pytest.approx(float(np.mean(targets.mu * (1 - targets.mu))), abs=1e-15)
