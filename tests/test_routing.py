"""Routing and cascades (capcal.routing): hand-derived cases, the vectorised curves against plain loops
over thresholds, and the bootstrap against the data set that repeats each question as often as drawn."""

from __future__ import annotations

import numpy as np
import pytest
from capcal import routing as R
from capcal.bootstrap import resample_counts


def _grid_acc(curve, f):
    xs = [p["routed"] for p in curve]
    ys = [p["accuracy"] for p in curve]
    return float(np.interp(f, xs, ys))


# ---------------------------------------------------------------------------------------------- hand cases
def test_hand_derived_routing_case():
    # mu_s = [0, .5, 1, .5], mu_l = [1, 1, .5, .5], p = [.1, .3, .3, .9]; d = mu_l - mu_s = [1, .5, -.5, 0]
    # curve: (0, .5) -> route q0: (.25, .75) -> route q1,q2 together (d sum 0): (.75, .75) -> q3: (1, .75)
    # area .15625 + .375 + .1875 = .71875; random (.5 + .75) / 2 = .625
    # oracle d order 1, .5, 0, -.5: (0,.5) (.25,.75) (.5,.875) (.75,.875) (1,.75): area .78125
    mu_s, mu_l, p = [0.0, 0.5, 1.0, 0.5], [1.0, 1.0, 0.5, 0.5], [0.1, 0.3, 0.3, 0.9]
    curve = R.routing_curve(p, mu_s, mu_l, cost_ratio=4.0)
    assert [(c["routed"], c["accuracy"]) for c in curve] == [(0.0, 0.5), (0.25, 0.75), (0.75, 0.75), (1.0, 0.75)]
    assert [c["cost"] for c in curve] == [0.0, 1.0, 3.0, 4.0]
    assert [c["p_max_routed"] for c in curve] == [None, 0.1, 0.3, 0.9]
    s = R.routing_scores(p, mu_s, mu_l, threshold=0.5)
    assert s["area"] == pytest.approx(0.71875, abs=1e-15)
    assert s["random_area"] == pytest.approx(0.625, abs=1e-15)
    assert s["oracle_area"] == pytest.approx(0.78125, abs=1e-15)
    assert s["gain"] == pytest.approx(0.6, abs=1e-12)
    assert s["acc@20"] == pytest.approx(0.7, abs=1e-12) and s["acc@50"] == pytest.approx(0.75, abs=1e-12)
    # p < .5 routes q0, q1, q2: right, right, wrong (mu_l .5 < mu_s 1); q3 kept with mu_l == mu_s: right
    assert s["decision_accuracy"] == 0.75
    assert s["routed_at_threshold"] == 0.75 and s["accuracy_at_threshold"] == pytest.approx(0.75)


def test_oracle_confidence_with_perfect_large_model_reaches_the_oracle_curve():
    rng = np.random.default_rng(3)
    mu_s = rng.integers(0, 9, 200) / 8
    mu_l = np.ones(200)
    curve = R.routing_curve(mu_s, mu_s, mu_l)                      # p = mu_small
    oracle = R.routing_curve(None, mu_s, mu_l, priority=mu_l - mu_s)
    assert len(curve) == len(oracle)
    for a, b in zip(curve, oracle, strict=True):
        assert a["routed"] == pytest.approx(b["routed"], abs=1e-12)
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1e-12)
    s = R.routing_scores(mu_s, mu_s, mu_l)
    assert s["gain"] == pytest.approx(1.0, abs=1e-12)
    assert s["acc@20"] == pytest.approx(s["oracle_acc@20"], abs=1e-12)
    # every question below mu = .5 is routed at t = .5 (right: mu_l = 1 > mu_s); those at >= .5 are kept
    # and right only when mu_s = 1
    assert s["decision_accuracy"] == pytest.approx(np.mean((mu_s < 0.5) | (mu_s == 1.0)), abs=1e-15)


def test_constant_confidence_gives_the_random_line():
    rng = np.random.default_rng(4)
    mu_s, mu_l = rng.random(150), rng.random(150)
    curve = R.routing_curve(np.full(150, 0.37), mu_s, mu_l)
    np.testing.assert_allclose([[c["routed"], c["accuracy"]] for c in curve],
                               [[0.0, mu_s.mean()], [1.0, mu_l.mean()]], atol=1e-12)
    s = R.routing_scores(np.full(150, 0.37), mu_s, mu_l)
    assert abs(s["gain"]) < 1e-12
    assert s["acc@20"] == pytest.approx(mu_s.mean() + 0.2 * (mu_l.mean() - mu_s.mean()), abs=1e-12)
    rand = R.random_routing_curve(mu_s, mu_l, points=11)
    assert [r["accuracy"] for r in rand] == pytest.approx([_grid_acc(curve, f) for f in np.linspace(0, 1, 11)])


def test_reversed_confidence_gives_negative_gain():
    rng = np.random.default_rng(5)
    mu_s = rng.integers(0, 5, 120) / 4
    mu_l = np.ones(120)
    s = R.routing_scores(1.0 - mu_s, mu_s, mu_l)          # most confident exactly where the small model fails
    # the reversed ordering is the oracle's mirror image about the random line: gain exactly -1
    assert s["gain"] < 0
    assert s["gain"] == pytest.approx(-1.0, abs=1e-12)
    # a noisy reversed confidence is still worse than random
    noisy = np.clip(1.0 - mu_s + rng.normal(0, 0.2, 120), 0, 1)
    assert R.routing_scores(noisy, mu_s, rng.random(120) * 0.5 + 0.5)["gain"] < 0


def test_gain_undefined_when_oracle_is_no_better_than_random():
    mu = np.array([0.2, 0.4, 0.6])
    s = R.routing_scores(np.array([0.1, 0.5, 0.9]), mu, mu)        # same model twice: every order is random
    assert np.isnan(s["gain"])
    # equal mu: keeping is right, routing is not (p = .1 < .5 routes question 0 for nothing)
    assert s["decision_accuracy"] == pytest.approx(2 / 3)


def test_two_run_cascade_equals_two_model_routing():
    rng = np.random.default_rng(6)
    q = 300
    p = rng.integers(0, 11, q) / 10                                # many ties
    mu_s, mu_l = rng.integers(0, 5, q) / 4, rng.integers(0, 5, q) / 4
    ratio = 3.5
    route = R.routing_curve(p, mu_s, mu_l, cost_ratio=ratio)
    casc = R.cascade_curve([p], [mu_s, mu_l], [ratio])
    assert len(route) == len(casc)
    for a, b in zip(route, casc, strict=True):
        assert b["cost"] == pytest.approx(a["cost"], abs=1e-12)
        assert b["accuracy"] == pytest.approx(a["accuracy"], abs=1e-12)
        assert b["t_above"] == a["p_max_routed"]
    rs = R.routing_bootstrap({"e": p}, mu_s, mu_l, n_boot=50, seed=2)["e"]
    cs = R.cascade_bootstrap({"e": [p]}, [mu_s, mu_l], [ratio], n_boot=50, seed=2)["e"]
    np.testing.assert_allclose(cs["gain"], rs["gain"], atol=1e-12)
    np.testing.assert_allclose(cs["area"], rs["area"] * ratio, atol=1e-12)
    oracle_r = R.routing_curve(None, mu_s, mu_l, priority=mu_l - mu_s, cost_ratio=ratio)
    oracle_c = R.oracle_cascade_curve([mu_s, mu_l], [ratio])
    xs = np.linspace(0, ratio, 37)
    np.testing.assert_allclose(np.interp(xs, [o["cost"] for o in oracle_c], [o["accuracy"] for o in oracle_c]),
                               np.interp(xs, [o["cost"] for o in oracle_r], [o["accuracy"] for o in oracle_r]),
                               atol=1e-12)


# ------------------------------------------------------------------------------------ vectorised vs loops
def _loop_routing(p, mu_s, mu_l):
    """Plain loop: for t just above each distinct confidence (and below all), route p < t."""
    ts = [-np.inf] + [np.nextafter(v, np.inf) for v in np.unique(p)]
    return [((p < t).mean(), np.where(p < t, mu_l, mu_s).mean()) for t in ts]


def _loop_cascade(confs, mus, costs):
    events = np.unique(np.concatenate([np.maximum.accumulate(np.stack(confs[:m], 0), axis=0)[-1]
                                       for m in range(1, len(mus))]))
    ts = [-np.inf] + [np.nextafter(v, np.inf) for v in events]
    cum = np.concatenate([[0.0], np.cumsum(costs)])
    out = []
    for t in ts:
        accs, cost = [], []
        for i in range(mus[0].size):
            j = next((m for m in range(len(mus) - 1) if confs[m][i] >= t), len(mus) - 1)
            accs.append(mus[j][i])
            cost.append(cum[j])
        out.append((np.mean(cost), np.mean(accs)))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_routing_curve_equals_a_loop_over_thresholds(seed):
    rng = np.random.default_rng(seed)
    q = 257
    p = rng.integers(0, 21, q) / 20                         # ties
    mu_s, mu_l = rng.integers(0, 9, q) / 8, rng.integers(0, 9, q) / 8
    curve = R.routing_curve(p, mu_s, mu_l)
    loop = _loop_routing(p, mu_s, mu_l)
    assert len(curve) == len(loop)
    for c, (f, a) in zip(curve, loop, strict=True):
        assert abs(c["routed"] - f) < 1e-12 and abs(c["accuracy"] - a) < 1e-12


@pytest.mark.parametrize("seed", [0, 1])
def test_cascade_curve_equals_a_loop_over_thresholds(seed):
    rng = np.random.default_rng(10 + seed)
    q = 180
    confs = [rng.integers(0, 11, q) / 10 for _ in range(3)]    # four models, ties within and across models
    mus = [rng.integers(0, 5, q) / 4 for _ in range(4)]
    costs = [2.0, 5.0, 11.0]
    curve = R.cascade_curve(confs, mus, costs)
    loop = _loop_cascade(confs, mus, costs)
    assert len(curve) == len(loop)
    for c, (cost, acc) in zip(curve, loop, strict=True):
        assert abs(c["cost"] - cost) < 1e-12 and abs(c["accuracy"] - acc) < 1e-12


def test_random_cascade_area_matches_numeric_integration():
    rng = np.random.default_rng(7)
    mus = [rng.random(60) for _ in range(3)]
    costs = np.array([2.0, 3.0])
    exact = R._random_cascade_area(np.ones((1, 60)), mus, costs)[0]
    curve = R.random_cascade_curve(mus, costs, points=20001)
    numeric = np.trapezoid([c["accuracy"] for c in curve], [c["cost"] for c in curve])
    assert exact == pytest.approx(numeric, abs=1e-8)


def test_oracle_cascade_dominates_every_cascade():
    rng = np.random.default_rng(8)
    q = 80
    mus = [rng.integers(0, 5, q) / 4 for _ in range(3)]
    costs = [1.0, 4.0]
    oracle = R.oracle_cascade_curve(mus, costs)
    ox, oy = [o["cost"] for o in oracle], [o["accuracy"] for o in oracle]
    assert ox[0] == 0 and ox[-1] == pytest.approx(5.0) and oy[-1] == pytest.approx(mus[-1].mean())
    assert np.all(np.diff(np.diff(oy) / np.maximum(np.diff(ox), 1e-300)) <= 1e-12)   # concave
    for _ in range(20):
        confs = [rng.random(q) for _ in range(2)]
        for c in R.cascade_curve(confs, mus, costs):
            assert c["accuracy"] <= np.interp(c["cost"], ox, oy) + 1e-12
    gains = R.cascade_bootstrap({"o": [mus[0], mus[1]]}, mus, costs, point=True)["o"]["gain"]
    assert gains[0] <= 1 + 1e-12


# --------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_row_equals_the_repeated_data_set():
    rng = np.random.default_rng(9)
    q = 40
    p = rng.integers(0, 6, q) / 5
    p[3] = np.nan                                             # a failed estimate is left out
    mu_s, mu_l = rng.integers(0, 5, q) / 4, rng.integers(0, 5, q) / 4
    boot = R.routing_bootstrap({"e": p}, mu_s, mu_l, n_boot=30, seed=4, threshold=0.4)["e"]
    w = np.concatenate(list(resample_counts(q, 30, 4)))
    for j in range(30):
        keep = (w[j] > 0) & ~np.isnan(p)
        rep = np.repeat(np.flatnonzero(keep), w[j][keep].astype(int))
        s = R.routing_scores(p[rep], mu_s[rep], mu_l[rep], threshold=0.4)
        for k in ("gain", "area", "oracle_area", "acc@20", "acc@50", "decision_accuracy", "accuracy_at_threshold"):
            if np.isnan(s[k]):
                assert np.isnan(boot[k][j])
            else:
                assert boot[k][j] == pytest.approx(s[k], abs=1e-12), k
    cb = R.cascade_bootstrap({"e": [p]}, [mu_s, mu_l], [2.0], n_boot=30, seed=4)["e"]
    np.testing.assert_allclose(cb["gain"], boot["gain"], atol=1e-12)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="NaN"):
        R.routing_curve([0.1, np.nan], [0, 1], [1, 1])
    with pytest.raises(ValueError, match="positive marginal costs"):
        R.cascade_curve([[0.1, 0.2]], [[0, 1], [1, 1]], [0.0])
    with pytest.raises(ValueError, match="expected a"):
        R.routing_curve([0.1, 0.2], [0, 1], [1, 1, 1])
