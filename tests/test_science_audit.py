"""Science audit: DESIGN.md section 1 rules and BASELINES.md section 3 defects not covered elsewhere.

Each test names the rule it guards; numbers are checked against exact fractions or direct formulas.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from capcal import metrics as M
from capcal.analysis import analyze
from capcal.budget import evaluate_budgets, greedy_allocation
from capcal.estimators import EstimatorContext
from capcal.estimators_contrib.oracle import OracleRC
from capcal.passk import passk_curve, passk_mse, passk_table, passk_unbiased
from capcal.rundir import Targets
from metrics_fixtures import graded_fixture  # noqa: F401  (session fixture "graded")


def test_budget_cap_is_each_questions_own_n():
    """Budget cap b_i <= n_i (not a global 100): a question with n = 2 never gets a third sample."""
    n = np.array([2, 8, 8])
    c = np.array([1, 0, 8])
    p = np.array([0.5, 0.01, 0.999999])          # question 0 has by far the largest gains after the first
    res = evaluate_budgets(p, n, c, budgets=(1, 2, 4))
    assert res.budgets == [1, 2]                  # B above min n = 2 is not evaluated
    assert (res.alloc <= n).all()
    # B = 2: 6 samples; question 0 is capped at 2 and the rest go where the gains say
    np.testing.assert_array_equal(res.alloc[1], greedy_allocation(p, 6, n))
    assert res.alloc[1][0] == 2
    # exact evaluation: mean unbiased pass@{b_i} from each question's own n
    table = passk_table(n, c)
    want = np.mean([table[i, b] for i, b in enumerate(res.alloc[1])])
    assert res.curve()[1]["greedy"] == pytest.approx(want, abs=1e-15)
    with pytest.raises(ValueError):               # more samples than the questions have: refused
        greedy_allocation(p, 19, n)


def test_passk_above_n_is_never_one():
    """pass@k for k > n is NaN (never 1.0, also with c = 0) and is left out of MSE and curves."""
    for c in (0, 3, 8):
        assert np.isnan(passk_unbiased(8, c, 9)) and np.isnan(passk_unbiased(8, c, 100))
    n = np.array([8, 8])
    c = np.array([0, 4])
    assert set(passk_mse(np.array([0.2, 0.5]), n, c, ks=(1, 4, 16, 64))) == {1, 4}
    assert [r["k"] for r in passk_curve(np.array([0.2, 0.5]), n, c)] == [1, 2, 4, 8]
    # c = 0: pass@k is exactly 0 for every k <= n
    assert (passk_table([8], [0])[0, 1:] == 0).all()
    assert float(passk_unbiased(8, 4, 8)) == 1.0
    assert float(passk_unbiased(8, 4, 5)) == float(1 - Fraction(math.comb(4, 5), math.comb(8, 5)))


@pytest.mark.parametrize("n_bins", [5, 10, 20])
def test_equal_width_edges_are_exact_for_other_bin_counts(n_bins):
    """ECE bins: a confidence on an edge i / B lands in bin i whatever B (float products such as 0.7 * 20)."""
    edges = np.arange(n_bins + 1) / n_bins
    inner = np.array([i / n_bins for i in range(n_bins)])
    idx = M.bin_index(inner, M.bin_edges(inner, n_bins), "equal_width")
    np.testing.assert_array_equal(idx, np.arange(n_bins))
    # decimal values computed in floating point, checked against exact rational arithmetic
    vals = np.array([0.1 * 3, 1 - 0.7, 0.2 * 3, 0.7, 0.1 + 0.6, 0.35 * 2, 1.0])
    exact = [Fraction(3, 10), Fraction(3, 10), Fraction(6, 10), Fraction(7, 10), Fraction(7, 10),
             Fraction(7, 10), Fraction(1)]
    want = [min(math.floor(v * n_bins), n_bins - 1) for v in exact]
    np.testing.assert_array_equal(M.bin_index(vals, edges), want)
    assert sum(b["count"] for b in M.reliability_bins(vals, np.ones(vals.size), n_bins)) == vals.size


def test_ece_counts_one_and_matches_a_direct_loop():
    """One ECE definition: p = 1.0 is counted, and the vectorised value equals a plain per-bin loop."""
    rng = np.random.default_rng(5)
    p = np.r_[rng.integers(0, 11, 200) / 10, np.ones(7)]
    t = rng.random(p.size)
    total = 0.0
    for b in range(10):
        lo, hi = Fraction(b, 10), Fraction(b + 1, 10)
        inb = [i for i in range(p.size) if lo <= Fraction(str(p[i])) < hi or (b == 9 and p[i] == 1.0)]
        if inb:
            total += len(inb) / p.size * abs(p[inb].mean() - t[inb].mean())
    assert M.ece(p, t) == pytest.approx(total, abs=1e-14)


def _oracle_rc(targets: Targets, tmp_path) -> np.ndarray:
    q = len(targets.ids)
    ctx = EstimatorContext(task=None, split="eval", examples=[], messages=[[]] * q, ids=targets.ids, backend=None,
                           samples=[], targets=targets, cache_dir=tmp_path)
    return OracleRC().predict(ctx).confidence


def test_oracle_rc_row_is_exact_and_reads_the_stored_designated_sample(graded, tmp_path):
    """The oracle-RC row: p = the stored designated sample's label, no re-draw; averaged over all n
    designated choices its CC-Brier is exactly mean mu (1 - mu) (the CC value of oracle-CC, 0, plus the
    Bernoulli variance), on the real 100 x 8 matrix."""
    rows, targets, _ = graded
    labels = targets.labels
    n = labels.shape[1]
    mu = targets.mu
    # per-question designated indices, not all equal: the oracle must follow each one
    designated = np.arange(len(rows)) % n
    varied = Targets(ids=targets.ids, n=targets.n, c=targets.c, designated=designated, labels=labels,
                     extracted=[])
    p = _oracle_rc(varied, tmp_path)
    np.testing.assert_array_equal(p, labels[np.arange(len(rows)), designated])
    np.testing.assert_array_equal(_oracle_rc(varied, tmp_path), p)     # deterministic: no random draws
    cc = []
    for j in range(n):
        t = Targets(ids=targets.ids, n=targets.n, c=targets.c, designated=np.full(len(rows), j), labels=labels,
                    extracted=[])
        out = analyze(t, {"oracle_rc": _oracle_rc(t, tmp_path), "oracle_cc": mu}, n_boot=0)
        m = out["estimators"]["oracle_rc"]["metrics"]
        assert m["rc_brier"]["value"] == 0.0
        cc.append(m["cc_brier"]["value"])
        assert out["estimators"]["oracle_cc"]["metrics"]["cc_brier"]["value"] == 0.0
    assert abs(np.mean(cc) - (0.0 + np.mean(mu * (1 - mu)))) < 1e-12
