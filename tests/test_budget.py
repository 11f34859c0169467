"""Budget allocation: the greedy rule against a heap greedy and a brute-force search; exact evaluation."""

from __future__ import annotations

import heapq
import itertools
import math
import time
from fractions import Fraction

import numpy as np
import pytest
from capcal.budget import evaluate_budgets, greedy_allocation, solve_rate
from capcal.passk import passk_table
from metrics_fixtures import graded_fixture  # noqa: F401  (session fixture "graded")


def heap_greedy(p, total, cap):
    """Independent reference: one sample at a time to argmax p (1 - p)^b, ties to the lowest index."""
    pc = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    b = np.zeros(len(pc), int)
    heap = [(-math.log(pc[i]), i) for i in range(len(pc)) if cap[i] > 0]
    heapq.heapify(heap)
    for _ in range(total):
        _, i = heapq.heappop(heap)
        b[i] += 1
        if b[i] < cap[i]:
            heapq.heappush(heap, (-(math.log(pc[i]) + b[i] * math.log1p(-pc[i])), i))
    return b


def predicted_objective(p, b):
    pc = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return float(np.sum(1 - (1 - pc) ** b))


def test_matches_sample_by_sample_greedy():
    rng = np.random.default_rng(0)
    for _ in range(300):
        q = int(rng.integers(1, 40))
        cap = rng.integers(0, 12, q)
        kind = rng.integers(3)
        p = [rng.random(q), rng.integers(0, 5, q) / 4, np.full(q, 0.3)][kind]   # ties on purpose
        total = int(rng.integers(0, cap.sum() + 1))
        got = greedy_allocation(p, total, cap)
        assert got.sum() == total and (got <= cap).all() and (got >= 0).all()
        np.testing.assert_array_equal(got, heap_greedy(p, total, cap))


def test_brute_force_never_beats_greedy():
    """Acceptance 4: no allocation of the same total does better on sum 1 - (1 - p)^b."""
    rng = np.random.default_rng(1)
    for _ in range(60):
        q = int(rng.integers(2, 5))
        cap = rng.integers(1, 5, q)
        p = rng.random(q) if rng.random() < 0.7 else rng.integers(0, 4, q) / 3
        total = int(rng.integers(1, cap.sum() + 1))
        best = max(predicted_objective(p, np.array(b))
                   for b in itertools.product(*[range(c + 1) for c in cap]) if sum(b) == total)
        assert predicted_objective(p, greedy_allocation(p, total, cap)) >= best - 1e-12


def test_ties_are_broken_by_lower_index():
    alloc = greedy_allocation(np.full(4, 0.5), 6, 4)
    np.testing.assert_array_equal(alloc, [2, 2, 1, 1])


def test_bad_input():
    with pytest.raises(ValueError):
        greedy_allocation([0.5, 0.5], 9, 4)
    with pytest.raises(ValueError):
        greedy_allocation([0.5, np.nan], 2, 4)


def test_exact_evaluation():
    n = np.array([4, 4, 6])
    c = np.array([1, 4, 0])
    alloc = np.array([2, 0, 6])
    got = solve_rate(passk_table(n, c), alloc)
    want = [1 - Fraction(math.comb(3, 2), math.comb(4, 2)), 0, 0]
    np.testing.assert_allclose(got, [float(x) for x in want], atol=1e-15)


def test_oracle_on_real_matrix_beats_uniform(graded):
    """Acceptance 4: with p = mu on the real 100 x 8 matrix greedy >= uniform at every B <= n."""
    _, targets, conf = graded
    n, c = targets.n, targets.c
    res = evaluate_budgets(c / n, n, c, budgets=(1, 2, 4, 8, 16))
    assert res.budgets == [1, 2, 4, 8]
    curve = res.curve()
    for row in curve:
        assert row["greedy"] >= row["uniform"] - 1e-15
        assert row["oracle"] == row["greedy"]
        assert row["gain"] == pytest.approx(row["greedy"] - row["uniform"])
    assert curve[0]["gain"] > 0                         # B = 1: moving samples off solved questions pays
    assert curve[-1]["gain"] == pytest.approx(0.0)      # B = n: everyone gets all n samples
    # the uniform rate is the mean unbiased pass@B; greedy allocations spend exactly B * N samples
    for j, b in enumerate(res.budgets):
        assert res.alloc[j].sum() == b * len(n)
        assert curve[j]["uniform"] == pytest.approx(
            np.mean([float(1 - Fraction(math.comb(8 - ci, b), math.comb(8, b))) for ci in c]), abs=1e-14)
    # a real (imperfect) confidence: its greedy solve rate is never above the oracle's
    rm = evaluate_budgets(conf, n, c, budgets=(1, 2, 4, 8))
    for row in rm.curve():
        assert row["greedy"] <= row["oracle"] + 1e-12


def test_large_allocation_is_fast():
    rng = np.random.default_rng(2)
    q = 100_000
    p = rng.beta(0.6, 0.6, q)
    start = time.process_time()
    alloc = greedy_allocation(p, 64 * q, np.full(q, 100))
    assert time.process_time() - start < 5.0
    assert alloc.sum() == 64 * q and alloc.max() <= 100
    # greedy gives no sample to a question while another has a larger next gain
    pc = np.clip(p, 1e-6, 1 - 1e-6)
    last_taken = np.where(alloc > 0, pc * (1 - pc) ** (alloc - 1.0), np.inf)
    next_gain = np.where(alloc < 100, pc * (1 - pc) ** alloc, -np.inf)
    assert last_taken.min() >= next_gain.max() * (1 - 1e-12)
