"""The study's questions on arrays, checked against plain-Python recomputations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from capcal.bootstrap import resample_counts
from capcal.budget import greedy_allocation
from capcal.study_stats import best_estimator_disagreement, budget_saved, overconfidence, passk_vs_constant


def _data(q=40, k=8, seed=3):
    rng = np.random.default_rng(seed)
    mu_true = rng.beta(0.7, 0.9, q)
    c = rng.binomial(k, mu_true)
    n = np.full(q, k)
    labels = np.array([rng.permutation([1] * ci + [0] * (k - ci)) for ci in c])
    r = labels[:, 0].astype(float)
    good = np.clip(c / k + rng.normal(0, 0.15, q), 0, 1)
    noisy = rng.uniform(0, 1, q)
    r_like = np.clip(0.2 + 0.6 * r + rng.normal(0, 0.05, q), 0, 1)
    return n, c, r, {"good": good, "noisy": noisy, "r_like": r_like}


def _brier_weighted(p, t, w):
    ok = np.isfinite(p)
    return sum(wi * (pi - ti) ** 2 for pi, ti, wi, o in zip(p, t, w, ok, strict=True) if o) / sum(
        wi for wi, o in zip(w, ok, strict=True) if o)


def test_best_estimator_disagreement_matches_a_loop():
    n, c, r, conf = _data()
    conf["good"][3] = np.nan  # a failed question is left out of that estimator's mean
    mu = c / n
    out = best_estimator_disagreement(conf, mu, r, n_boot=200, seed=5)
    names = list(conf)
    ones = np.ones(len(mu))
    best_cc = min(names, key=lambda k: _brier_weighted(conf[k], mu, ones))
    best_rc = min(names, key=lambda k: _brier_weighted(conf[k], r, ones))
    assert (out["best_cc"], out["best_rc"]) == (best_cc, best_rc)
    assert out["best_cc"] == "good" and out["best_rc"] == "r_like" and out["disagree"]
    differ, wins_cc = 0, dict.fromkeys(names, 0)
    rows = np.concatenate(list(resample_counts(len(mu), 200, 5)))
    for w in rows:
        a = min(names, key=lambda k: _brier_weighted(conf[k], mu, w))
        b = min(names, key=lambda k: _brier_weighted(conf[k], r, w))
        differ += a != b
        wins_cc[a] += 1
    assert out["disagree_rate"] == pytest.approx(differ / 200, abs=1e-12)
    assert out["share_best_cc"] == pytest.approx({k: v / 200 for k, v in wins_cc.items()})
    with pytest.raises(ValueError):
        best_estimator_disagreement({"one": conf["good"]}, mu, r)


def test_passk_vs_constant_matches_direct_formula():
    n, c, r, conf = _data()
    p = conf["good"]
    const = np.full(len(p), 0.4)
    rows = passk_vs_constant(p, const, n, c, ks=(1, 4, 8, 16), n_boot=100, seed=1)
    assert [row["k"] for row in rows] == [1, 4, 8]  # 16 > n is skipped
    for row in rows:
        k = row["k"]
        actual = [1 - math.comb(ni - ci, k) / math.comb(ni, k) for ni, ci in zip(n, c, strict=True)]
        mse = np.mean([(1 - (1 - pi) ** k - a) ** 2 for pi, a in zip(p, actual, strict=True)])
        mse0 = np.mean([(1 - 0.6 ** k - a) ** 2 for a in actual])
        assert row["mse"] == pytest.approx(mse, abs=1e-12)
        assert row["mse_constant"] == pytest.approx(mse0, abs=1e-12)
        assert row["diff"] == pytest.approx(mse - mse0, abs=1e-12)
        assert row["ci"][0] <= row["diff"] <= row["ci"][1]
    assert rows[0]["ci"][1] < 0  # a confidence close to mu beats a constant at pass@1


def test_budget_saved_is_the_smallest_sufficient_total():
    n, c, r, conf = _data(q=25)
    p = conf["good"]
    out = budget_saved(p, n, c, budgets=(1, 2, 4, 16))
    assert [row["B"] for row in out] == [1, 2, 4]
    table = np.array([[0.0] + [1 - math.comb(ni - ci, b) / math.comb(ni, b) for b in range(1, ni + 1)]
                      for ni, ci in zip(n, c, strict=True)])
    for row in out:
        b = row["B"]
        uniform = table[:, b].mean()
        assert row["uniform"] == pytest.approx(uniform, abs=1e-12)
        rates = [table[np.arange(25), greedy_allocation(p, t, n)].mean() for t in range(0, int(n.sum()) + 1)]
        first = next(t for t, v in enumerate(rates) if v >= uniform - 1e-12)
        assert row["needed_B"] == pytest.approx(first / 25)
        assert row["saved"] == pytest.approx(1 - first / 25 / b)
    assert out[1]["saved"] > 0  # a good confidence reaches uniform's solve rate with fewer samples


def test_overconfidence_gap_and_interval():
    p = np.array([0.9, 0.8, np.nan, 0.7])
    mu = np.array([0.5, 0.25, 1.0, 0.75])
    out = overconfidence(p, mu, n_boot=300)
    assert out["n"] == 3
    assert out["gap"] == pytest.approx(np.mean([0.4, 0.55, -0.05]))
    assert out["mean_conf"] == pytest.approx(0.8) and out["mean_mu"] == pytest.approx(0.5)
    assert out["ci"][0] <= out["gap"] <= out["ci"][1]
