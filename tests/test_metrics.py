"""Calibration metrics against scikit-learn, scipy and hand-derived cases; the Brier identity of DESIGN.md."""

from __future__ import annotations

import numpy as np
import pytest
from capcal import metrics as M
from metrics_fixtures import graded_fixture  # noqa: F401  (session fixture "graded")
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.metrics import log_loss as sk_log_loss


@pytest.fixture
def binary_case():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 400)
    y = (rng.random(400) < p).astype(float)
    return p, y


def test_brier_and_logloss_match_sklearn(binary_case):
    p, y = binary_case
    assert M.brier(p, y) == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    assert M.log_loss(p, y) == pytest.approx(sk_log_loss(y, p), rel=1e-12)


def test_soft_logloss_is_cross_entropy_and_clipped():
    p = np.array([0.2, 0.9, 0.0, 1.0])
    mu = np.array([0.25, 0.5, 0.0, 0.75])
    q = np.clip(p, 1e-6, 1 - 1e-6)
    want = -np.mean(mu * np.log(q) + (1 - mu) * np.log(1 - q))
    assert M.log_loss(p, mu) == pytest.approx(want, rel=1e-12)
    assert np.isfinite(M.log_loss(np.array([0.0]), np.array([1.0])))


def test_auroc_matches_sklearn_with_ties(binary_case):
    p, y = binary_case
    assert M.auroc(p, y) == pytest.approx(roc_auc_score(y, p), rel=1e-12)
    tied = np.round(p, 1)                                   # many ties
    assert M.auroc(tied, y) == pytest.approx(roc_auc_score(y, tied), rel=1e-12)
    assert M.auroc(np.full(10, 0.5), np.r_[np.ones(5), np.zeros(5)]) == 0.5
    assert np.isnan(M.auroc(p[:5], np.ones(5)))             # one class: undefined, not an error


def test_auroc_samples_matches_sklearn_on_expanded_pairs(graded):
    _, targets, conf = graded
    labels = targets.labels.copy()
    labels[::7, 5:] = np.nan                                # some questions with fewer samples
    score = np.round(conf, 2)
    mask = ~np.isnan(labels)
    want = roc_auc_score(labels[mask], np.repeat(score[:, None], labels.shape[1], axis=1)[mask])
    assert M.auroc_samples(score, labels) == pytest.approx(want, rel=1e-12)


def test_correlations_match_scipy(graded):
    _, targets, conf = graded
    mu = targets.mu
    assert M.pearson(conf, mu) == pytest.approx(pearsonr(conf, mu)[0], rel=1e-12)
    assert M.spearman(conf, mu) == pytest.approx(spearmanr(conf, mu)[0], rel=1e-12)
    tied = np.round(conf, 1)
    assert M.spearman(tied, mu) == pytest.approx(spearmanr(tied, mu)[0], rel=1e-12)
    assert np.isnan(M.pearson(np.full(100, 0.3), mu))       # constant: undefined
    assert np.isnan(M.spearman(np.full(100, 0.3), mu))


def test_ece_hand_derived_with_exact_edges():
    # bins: 0.3 -> bin 3, 0.6 -> 6, 0.7 -> 7, 1.0 -> 9 (last bin closed)
    p = np.array([0.3, 0.3, 0.6, 0.7, 1.0, 1.0])
    t = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    # |0.3-0.5|*2 + |0.6-1|*1 + |0.7-0|*1 + 0  over 6
    assert M.ece(p, t) == pytest.approx((0.4 + 0.4 + 0.7) / 6, abs=1e-15)
    assert M.mce(p, t) == pytest.approx(0.7, abs=1e-15)
    bins = M.reliability_bins(p, t)
    assert [b["count"] for b in bins] == [0, 0, 0, 2, 0, 0, 1, 1, 0, 2]
    assert bins[3]["lo"] == 0.3 and bins[3]["hi"] == 0.4 and bins[9]["hi"] == 1.0
    assert bins[3]["mean_conf"] == pytest.approx(0.3) and bins[3]["mean_target"] == 0.5
    assert np.isnan(bins[0]["mean_conf"])
    # values computed in floating point land where their decimal value says
    computed = np.array([0.1 * 3, 1 - 0.7, 0.2 * 3, 1 - 0.4, 0.7, 0.1 + 0.6, 0.29999999, 0.99999999])
    idx = M.bin_index(computed, M.bin_edges(computed))
    np.testing.assert_array_equal(idx, [3, 3, 6, 6, 7, 7, 2, 9])


def test_equal_mass_bins():
    p = np.linspace(0.005, 0.995, 100)
    t = (np.arange(100) % 2).astype(float)
    bins = M.reliability_bins(p, t, n_bins=4, binning="equal_mass")
    assert [b["count"] for b in bins] == [25, 25, 25, 25]
    want = sum(abs(p[i:i + 25].mean() - t[i:i + 25].mean()) * 25 for i in range(0, 100, 25)) / 100
    assert M.ece(p, t, 4, "equal_mass") == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError):
        M.bin_edges(p, 10, "nope")


def test_brier_decomposition_exact_when_bins_hold_one_value(graded):
    _, targets, conf = graded
    p = (np.floor(conf * 10) + 0.5) / 10                    # one confidence value per bin
    for t in (targets.mu, targets.r):
        d = M.brier_decomposition(p, t)
        assert M.brier(p, t) == pytest.approx(d["reliability"] - d["resolution"] + d["uncertainty"], abs=1e-12)
    r = targets.r
    assert M.brier_decomposition(p, r)["uncertainty"] == pytest.approx(r.mean() * (1 - r.mean()), abs=1e-15)
    assert M.brier_decomposition(p, targets.mu)["uncertainty"] == pytest.approx(np.var(targets.mu), abs=1e-15)


def test_nan_confidences_are_excluded_and_counted(binary_case):
    p, y = binary_case
    q = p.copy()
    q[::10] = np.nan
    keep = ~np.isnan(q)
    assert M.nan_count(q) == 40
    assert M.brier(q, y) == pytest.approx(M.brier(p[keep], y[keep]), rel=1e-15)
    assert M.ece(q, y) == pytest.approx(M.ece(p[keep], y[keep]), rel=1e-15)
    assert M.auroc(q, y) == pytest.approx(roc_auc_score(y[keep], p[keep]), rel=1e-12)
    assert np.isnan(M.brier(np.full(3, np.nan), y[:3]))


def _identity_gap(p, labels):
    """mean over the n designated choices of RC-Brier, minus CC-Brier, minus mean mu (1 - mu)."""
    n = labels.shape[1]
    mu = labels.mean(axis=1)
    rc = np.mean([M.brier(p, labels[:, j]) for j in range(n)])
    return rc - M.brier(p, mu) - np.mean(mu * (1 - mu))


def test_identity_on_random_data():
    """Acceptance 2: averaged RC-Brier = CC-Brier + mean mu (1 - mu), to 1e-12."""
    rng = np.random.default_rng(3)
    for n in (2, 5, 16, 100):
        labels = (rng.random((300, n)) < rng.random((300, 1))).astype(float)
        for p in (rng.random(300), np.full(300, 0.5), labels.mean(axis=1)):
            assert abs(_identity_gap(p, labels)) < 1e-12


def test_identity_on_real_matrix(graded):
    """Acceptance 2 on ../shared/data/graded/qwen25math_math_cot_100 (100 x 8 real labels)."""
    rows, targets, conf = graded
    labels = np.array([[float(bool(s)) for s in r["score"]] for r in rows])
    assert labels.shape == (100, 8) and labels.sum() == 728
    for p in (conf, targets.mu, np.full(100, 0.91), labels[:, 0]):
        assert abs(_identity_gap(p, labels)) < 1e-12


def test_midranks_equal_scipy_rankdata_with_ties():
    from capcal.metrics import midranks
    from scipy.stats import rankdata

    rng = np.random.default_rng(7)
    for _ in range(100):
        x = rng.integers(0, 5, rng.integers(1, 50)) / 4.0
        np.testing.assert_array_equal(midranks(x), rankdata(x))
    assert midranks([]).shape == (0,)
    np.testing.assert_array_equal(midranks([0.3, 0.1, 0.3, 0.2]), [3.5, 1.0, 3.5, 2.0])


def test_numpy_digamma_equals_scipy():
    from capcal.selective import digamma
    from scipy.special import digamma as reference

    whole = np.arange(1, 50001, dtype=float)
    np.testing.assert_allclose(digamma(whole), reference(whole), rtol=1e-13, atol=1e-13)
    frac = np.concatenate([np.linspace(1e-3, 60, 5001), [0.5, 2.5, 1e6]])
    np.testing.assert_allclose(digamma(frac), reference(frac), rtol=1e-12, atol=2e-13)
    grid = np.arange(1, 13, dtype=float).reshape(3, 4)
    np.testing.assert_allclose(digamma(grid), reference(grid), atol=1e-13)
    assert np.isnan(digamma([0.0, -1.0, np.nan])).all() and digamma([]).shape == (0,)
