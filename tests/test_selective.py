"""Selective prediction (capcal.selective): AURC and PRR against hand-computed cases on 0/1 targets and
fractional mu, PRR against LM-Polygraph's definition, the curve against a loop over thresholds, the
bootstrap against repeated data, and their place in the analysis."""

from __future__ import annotations

import numpy as np
import pytest
from capcal import selective as S
from capcal.analysis import analyze
from capcal.bootstrap import resample_counts
from capcal.rundir import Targets


def test_hand_computed_binary_case():
    # kept in order t = 1, 0, 1, 0: prefix accuracies 1, 1/2, 2/3, 1/2 -> risks 0, 1/2, 1/3, 1/2
    p, t = [0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]
    assert S.aurc(p, t) == pytest.approx(1 / 3, abs=1e-15)
    sc = S.selective_scores(p, t)
    # oracle 1, 1, 0, 0: risks 0, 0, 1/3, 1/2 -> 5/24; random 1 - mean t = 1/2
    assert sc["oracle_aurc"] == pytest.approx(5 / 24, abs=1e-15)
    assert sc["random_aurc"] == pytest.approx(0.5, abs=1e-15)
    assert S.prr(p, t) == pytest.approx((1 / 2 - 1 / 3) / (1 / 2 - 5 / 24), abs=1e-12)   # 4/7


def test_hand_computed_fractional_mu_with_a_tie():
    # mu kept as .75, then the tie {.25, 1.0} (mean .625), then 0:
    # k=1 .75; k=2 (.75 + .625)/2; k=3 2/3; k=4 1/2 -> mean accuracy 125/192, AURC 67/192
    p, mu = [0.9, 0.5, 0.5, 0.1], [0.75, 0.25, 1.0, 0.0]
    assert S.aurc(p, mu) == pytest.approx(67 / 192, abs=1e-15)
    # oracle order 1, .75, .25, 0: 1, .875, 2/3, 1/2 -> AURC 23/96; PRR = (1/2 - 67/192) / (1/2 - 23/96) = .58
    assert S.selective_scores(p, mu)["oracle_aurc"] == pytest.approx(23 / 96, abs=1e-15)
    assert S.prr(p, mu) == pytest.approx(0.58, abs=1e-12)
    # the oracle itself scores PRR 1, a constant 0, the reversed oracle below 0
    assert S.prr(mu, mu) == pytest.approx(1.0, abs=1e-12)
    assert abs(S.prr([0.3] * 4, mu)) < 1e-12
    assert S.prr([-x for x in mu], mu) < 0


def test_nan_confidences_are_left_out_and_constant_targets_undefined():
    assert S.aurc([0.9, np.nan, 0.7, 0.6], [1, 1, 0, 1]) == pytest.approx(S.aurc([0.9, 0.7, 0.6], [1, 0, 1]))
    assert np.isnan(S.prr([0.1, 0.5, 0.9], [1, 1, 1]))
    assert np.isnan(S.aurc([np.nan, np.nan], [1, 0]))


def _polygraph_prr(confidence, target, shuffles=None, seed=42):
    """LM-Polygraph's normalised PRR, written out from its definition: uncertainty ue = -confidence,
    PredictionRejectionArea(ue, target) = mean over rejection levels of the mean target kept (the N
    least uncertain first), normalised between the oracle (ue = -target) and random orderings. Random is
    the mean over ``shuffles`` random permutations, or its exact expectation when ``shuffles`` is None."""
    target = np.asarray(target, dtype=float)
    lo, hi = target.min(), target.max()
    if np.isclose(lo, hi):
        lo, hi = lo - 1, hi + 1
    target = (target - lo) / (hi - lo)

    def pra(ue):
        sorted_t = target[np.argsort(ue)]
        return np.sum((np.cumsum(sorted_t) / np.arange(1, len(ue) + 1))[::-1]) / len(ue)

    value = pra(-np.asarray(confidence, dtype=float))
    oracle = pra(-target)
    if shuffles is None:
        rand = target.mean()
    else:
        rng = np.random.RandomState(seed)
        scores = np.arange(len(target))
        vals = []
        for _ in range(shuffles):
            rng.shuffle(scores)
            vals.append(pra(scores.astype(float)))
        rand = np.mean(vals)
    return (value - rand) / (oracle - rand)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prr_equals_lm_polygraph_on_binary_targets(seed):
    rng = np.random.default_rng(seed)
    t = (rng.random(300) < 0.4).astype(float)
    p = np.clip(0.3 * t + rng.random(300) * 0.7, 0, 1)              # continuous: no ties
    assert S.prr(p, t) == pytest.approx(_polygraph_prr(p, t), abs=1e-12)
    # LM-Polygraph estimates the random area with 1000 shuffles; that estimate converges to ours
    assert S.prr(p, t) == pytest.approx(_polygraph_prr(p, t, shuffles=1000), abs=0.02)
    # and PRR is invariant to the min-max normalisation LM-Polygraph applies to fractional targets
    mu = rng.integers(0, 9, 300) / 8
    assert S.prr(p, mu) == pytest.approx(_polygraph_prr(p, mu), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_risk_coverage_curve_and_aurc_equal_loops(seed):
    rng = np.random.default_rng(seed)
    q = 233
    p = rng.integers(0, 15, q) / 14                                  # ties
    mu = rng.integers(0, 9, q) / 8
    curve = S.risk_coverage_curve(p, mu)
    thresholds = sorted(set(p), reverse=True)
    assert len(curve) == len(thresholds)
    for pt, t in zip(curve, thresholds, strict=True):
        kept = p >= t
        assert pt["threshold"] == t
        assert abs(pt["coverage"] - kept.mean()) < 1e-12 and abs(pt["accuracy"] - mu[kept].mean()) < 1e-12
    # AURC: mean over k = 1..N of the risk when keeping k questions, a tie group at its mean target
    order = np.argsort(-p, kind="stable")
    ps, ms = p[order], mu[order]
    total = 0.0
    for k in range(1, q + 1):
        v = ps[k - 1]
        above, tied = ps > v, ps == v
        total += 1.0 - (ms[above].sum() + (k - above.sum()) * ms[tied].mean()) / k
    assert abs(S.aurc(p, mu) - total / q) < 1e-12
    acc = S.accuracy_at_coverage(p, mu, (0.1, 0.5, 1.0))
    for c, a in zip((0.1, 0.5, 1.0), acc, strict=True):
        k = c * q
        v = ps[int(np.ceil(k - 1e-9)) - 1]
        above, tied = ps > v, ps == v
        assert abs(a - (ms[above].sum() + (k - above.sum()) * ms[tied].mean()) / k) < 1e-12


def test_bootstrap_row_equals_the_repeated_data_set():
    rng = np.random.default_rng(5)
    q = 50
    p = rng.integers(0, 6, q) / 5
    p[7] = np.nan
    mu, r = rng.integers(0, 5, q) / 4, (rng.random(q) < 0.5).astype(float)
    boot = S.selective_bootstrap({"e": p}, {"cc": mu, "rc": r}, 25, seed=3)["e"]
    w = np.concatenate(list(resample_counts(q, 25, 3)))
    for j in range(25):
        keep = (w[j] > 0) & ~np.isnan(p)
        rep = np.repeat(np.flatnonzero(keep), w[j][keep].astype(int))
        for name, t in (("cc", mu), ("rc", r)):
            assert boot[f"{name}_aurc"][j] == pytest.approx(S.aurc(p[rep], t[rep]), abs=1e-12)
            want = S.prr(p[rep], t[rep])
            assert (np.isnan(want) and np.isnan(boot[f"{name}_prr"][j])) or \
                boot[f"{name}_prr"][j] == pytest.approx(want, abs=1e-12)


def test_analysis_reports_aurc_prr_and_the_curve_for_both_targets():
    rng = np.random.default_rng(6)
    q, n = 60, 8
    labels = (rng.random((q, n)) < rng.random((q, 1))).astype(float)
    targets = Targets(ids=np.array([str(i) for i in range(q)], dtype=object), n=np.full(q, n),
                      c=labels.sum(axis=1).astype(int), designated=np.zeros(q, int), labels=labels)
    mu, r = labels.mean(axis=1), labels[:, 0]
    p = np.clip(mu + rng.normal(0, 0.2, q), 0, 1)
    out = analyze(targets, {"noisy": p, "oracle": mu}, n_boot=200, seed=1, selective_curves=True)
    m = out["estimators"]["noisy"]["metrics"]
    assert m["cc_aurc"]["value"] == pytest.approx(S.aurc(p, mu), abs=1e-12)
    assert m["rc_aurc"]["value"] == pytest.approx(S.aurc(p, r), abs=1e-12)
    assert m["cc_prr"]["value"] == pytest.approx(S.prr(p, mu), abs=1e-12)
    assert m["rc_prr"]["value"] == pytest.approx(S.prr(p, r), abs=1e-12)
    lo, hi = m["cc_prr"]["ci"]
    assert lo < m["cc_prr"]["value"] < hi
    assert out["estimators"]["oracle"]["metrics"]["cc_prr"]["value"] == pytest.approx(1.0)
    diff = out["differences"]["noisy-oracle"]["cc_prr"]
    assert diff["value"] == pytest.approx(S.prr(p, mu) - 1.0) and diff["ci"][1] <= 1e-12
    curve = out["estimators"]["noisy"]["selective_curve"]
    assert [c["coverage"] for c in curve] == list(S.COVERAGES)
    assert curve[-1]["cc_accuracy"] == pytest.approx(mu.mean()) and curve[-1]["rc_accuracy"] == pytest.approx(r.mean())
    assert all(c["cc_oracle"] >= c["cc_accuracy"] - 1e-12 for c in curve)
