"""pass@k: the unbiased estimator against exact fractions, the prediction, instance MSE and curves."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from capcal.passk import curve_ks, passk_curve, passk_mse, passk_predicted, passk_table, passk_unbiased
from metrics_fixtures import graded_fixture  # noqa: F401  (session fixture "graded")


def exact_passk(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def test_documented_value_and_edges():
    assert float(passk_unbiased(100, 37, 4)) == pytest.approx(float(exact_passk(100, 37, 4)), abs=1e-15)
    # the exact value is 1 - 595665/3921225 = 0.8480921...; the "0.848094..." is a rounding slip
    assert exact_passk(100, 37, 4) == 1 - Fraction(595665, 3921225)
    assert f"{float(passk_unbiased(100, 37, 4)):.7f}" == "0.8480921"
    for k in range(1, 101):
        assert passk_unbiased(100, 0, k) == 0.0
        assert passk_unbiased(100, 100, k) == 1.0
    assert passk_unbiased(10, 3, 0) == 0.0
    # k > n is undefined: NaN, never 1.0 (not even when c = 0)
    assert np.isnan(passk_unbiased(8, 0, 16)) and np.isnan(passk_unbiased(8, 8, 9))


def test_against_exact_fractions_on_random_cases():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 400, 300)
    c = rng.integers(0, n + 1)
    k = rng.integers(1, n + 1)
    got = passk_unbiased(n, c, k)
    want = np.array([float(exact_passk(int(a), int(b), int(d))) for a, b, d in zip(n, c, k, strict=True)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_table_columns():
    n = np.array([1, 5, 8, 8, 100])
    c = np.array([1, 2, 0, 8, 37])
    tab = passk_table(n, c)
    assert tab.shape == (5, 101)
    assert (tab[:, 0] == 0).all()
    assert (tab[:, 1] == c / n).all()                         # pass@1 is exactly c / n
    for i in range(5):
        assert np.isnan(tab[i, n[i] + 1:]).all()
        for k in range(1, n[i] + 1):
            assert tab[i, k] == pytest.approx(float(exact_passk(n[i], c[i], k)), abs=1e-14)
    with pytest.raises(ValueError):
        passk_table([3], [4])


def test_predicted():
    p = np.array([0.0, 0.1, 0.3, 0.7, 1.0, np.nan])
    assert np.array_equal(passk_predicted(p, 1), p, equal_nan=True)
    for k in (2, 4, 16, 64):
        np.testing.assert_allclose(passk_predicted(p, k), 1 - (1 - p) ** k, rtol=1e-14)
    assert passk_predicted(np.array([1.0]), 8)[0] == 1.0


def test_oracle_mse_is_zero_at_k1_and_the_replacement_gap_above(graded):
    """Acceptance 3: oracle-CC (p = mu) has pass@1 MSE exactly 0 and, for k > 1, MSE equal to the gap between
    drawing with replacement (1 - (1 - mu)^k) and without (the unbiased estimator), computed independently."""
    _, targets, _ = graded
    rng = np.random.default_rng(1)
    cases = [(targets.n, targets.c)]
    n = np.full(500, 100)
    cases.append((n, rng.binomial(100, rng.beta(0.5, 0.5, 500))))
    for n, c in cases:
        mu = c / n
        mse = passk_mse(mu, n, c, ks=(1, 4, 16, 64))
        assert set(mse) == {k for k in (1, 4, 16, 64) if k <= n.min()}
        assert mse[1] == 0.0
        for k in mse:
            if k == 1:
                continue
            gap = np.mean([float(((1 - (1 - Fraction(int(ci), int(ni))) ** k) - exact_passk(int(ni), int(ci), k)) ** 2)
                           for ni, ci in zip(n, c, strict=True)])
            assert mse[k] == pytest.approx(gap, rel=1e-9, abs=1e-15)
            assert mse[k] > 0


def test_mse_excludes_nan():
    n, c = np.array([4, 4, 4]), np.array([1, 2, 3])
    p = np.array([0.25, np.nan, 0.5])
    assert passk_mse(p, n, c, ks=(1,))[1] == pytest.approx(((0.5 - 0.75) ** 2) / 2)
    assert np.isnan(passk_mse(np.full(3, np.nan), n, c, ks=(1,))[1])


def test_curve_ks():
    assert curve_ks(100) == [1, 2, 4, 8, 16, 32, 64, 100]
    assert curve_ks(8) == [1, 2, 4, 8]
    assert curve_ks(1) == [1] and curve_ks(0) == []


def test_curve_band_and_actual(graded):
    _, targets, conf = graded
    p = conf.copy()
    p[:10] = np.nan
    rows = passk_curve(p, targets.n, targets.c)
    assert [r["k"] for r in rows] == [1, 2, 4, 8]
    v = ~np.isnan(p)
    for row in rows:
        k = row["k"]
        s = 1 - (1 - p[v]) ** k
        assert row["predicted"] == pytest.approx(s.mean(), rel=1e-12)
        half = 1.96 * math.sqrt(float(np.sum(s * (1 - s)))) / v.sum()
        assert row["band_hi"] - row["predicted"] == pytest.approx(half, rel=1e-9)
        assert row["predicted"] - row["band_lo"] == pytest.approx(half, rel=1e-9)
        want = np.mean([float(exact_passk(8, int(ci), k)) for ci in targets.c[v]])
        assert row["actual"] == pytest.approx(want, abs=1e-14)
    # the actual curve rises with k
    assert all(a["actual"] <= b["actual"] for a, b in zip(rows, rows[1:], strict=False))
