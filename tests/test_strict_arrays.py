"""The strict array API: every public numeric function refuses values outside its domain.

Out-of-range confidences, non-binary labels and broken counts raise ``ValueError`` (an
``InvalidArrayError``, also a one-line ``DataError`` for the CLI) naming the argument and how many entries
are bad; NaN confidences stay allowed where a failed question is meaningful.
"""

from __future__ import annotations

import numpy as np
import pytest
from capcal import bootstrap as B
from capcal import budget as G
from capcal import metrics as M
from capcal import passk as P
from capcal.analysis import analyze, point_metrics
from capcal.errors import DataError, InvalidArrayError
from capcal.rundir import Targets

MU = np.array([0.2, 0.5, 0.75])
R = np.array([0.0, 1.0, 1.0])
BAD_P = np.array([1.5, 0.2, 0.3])           # the issue's example: ece([1.5, .2, .3], mu) returned 0.667
NEG_P = np.array([0.1, -0.2, -0.3])
INF_P = np.array([0.1, np.inf, 0.3])

# (name, call with bad confidences, expected argument name, expected bad count)
BAD_CONFIDENCE_CALLS = [
    ("brier", lambda p: M.brier(p, MU), 1),
    ("log_loss", lambda p: M.log_loss(p, MU), 1),
    ("ece", lambda p: M.ece(p, MU), 1),
    ("mce", lambda p: M.mce(p, MU), 1),
    ("reliability_bins", lambda p: M.reliability_bins(p, MU), 1),
    ("brier_decomposition", lambda p: M.brier_decomposition(p, R), 1),
    ("pearson", lambda p: M.pearson(p, MU), 1),
    ("spearman", lambda p: M.spearman(p, MU), 1),
    ("auroc", lambda p: M.auroc(p, R), 1),
    ("auroc_samples", lambda p: M.auroc_samples(p, np.array([[0, 1], [1, 1], [0, np.nan]])), 1),
    ("nan_count", lambda p: M.nan_count(p), 1),
    ("bin_edges", lambda p: M.bin_edges(p, 5, "equal_mass"), 1),
    ("bin_index", lambda p: M.bin_index(p, np.linspace(0, 1, 11)), 1),
    ("passk_predicted", lambda p: P.passk_predicted(p, 4), 1),
    ("passk_mse", lambda p: P.passk_mse(p, [4, 4, 4], [1, 2, 3], ks=(1,)), 1),
    ("passk_curve", lambda p: P.passk_curve(p, [4, 4, 4], [1, 2, 3]), 1),
    ("greedy_allocation", lambda p: G.greedy_allocation(p, 6, 4), 1),
    ("evaluate_budgets", lambda p: G.evaluate_budgets(p, [4, 4, 4], [1, 2, 3], (1, 2)), 1),
    ("PreparedEstimator", lambda p: B.PreparedEstimator(p, B.TaskArrays(MU, R, np.array([4, 4, 4]),
                                                                      np.array([1, 2, 3]))), 1),
    ("point_metrics", lambda p: point_metrics(p, MU, R, np.array([[0, 1.0], [1, 1], [0, 1]])), 1),
]


@pytest.mark.parametrize("name,call,n_bad", BAD_CONFIDENCE_CALLS, ids=[c[0] for c in BAD_CONFIDENCE_CALLS])
@pytest.mark.parametrize("bad", [BAD_P, NEG_P, INF_P], ids=["above-1", "negative", "inf"])
def test_out_of_range_confidences_raise(name, call, n_bad, bad):
    with pytest.raises(ValueError) as info:
        call(bad)
    msg = str(info.value)
    expected = 2 if bad is NEG_P else n_bad
    assert "'p'" in msg and f"{expected} of 3 entries" in msg, msg
    assert isinstance(info.value, InvalidArrayError) and isinstance(info.value, DataError)


@pytest.mark.parametrize("name,call,n_bad", BAD_CONFIDENCE_CALLS, ids=[c[0] for c in BAD_CONFIDENCE_CALLS])
def test_nan_and_edges_are_accepted(name, call, n_bad):
    """0, 1 and NaN are legal confidences (NaN = a failed question) wherever NaN is meaningful."""
    if name in ("greedy_allocation", "evaluate_budgets"):
        with pytest.raises(ValueError, match="1 of 3 entries NaN"):       # budget: NaN must be dropped first
            call(np.array([0.0, np.nan, 1.0]))
        call(np.array([0.0, 0.5, 1.0]))
    else:
        call(np.array([0.0, np.nan, 1.0]))


def test_issue_examples_now_raise():
    with pytest.raises(ValueError, match=r"ece: argument 'p' has 1 of 3 entries outside \[0, 1\]"):
        M.ece([1.5, .2, .3], MU)
    with pytest.raises(ValueError, match="passk_predicted: argument 'p' has 1 of 1 entries"):
        P.passk_predicted(-0.5, 4)
    with pytest.raises(ValueError, match="auroc: argument 'labels' has 1 of 3 entries that are not 0 or 1"):
        M.auroc([0.1, 0.2, 0.3], [2, 0, 1])
    with pytest.raises(ValueError, match="greedy_allocation: argument 'p' has 2 of 3"):
        G.greedy_allocation([1.2, 0.5, -1], 3, 2)


@pytest.mark.parametrize("labels,n_bad", [([2, 0, 1], 1), ([0.5, 0, 1], 1), ([np.nan, 0, -1], 2)])
def test_non_binary_labels_raise(labels, n_bad):
    p = [0.1, 0.5, 0.9]
    with pytest.raises(ValueError, match=f"'labels' has {n_bad} of 3 entries that are not 0 or 1"):
        M.auroc(p, labels)
    with pytest.raises(ValueError, match=f"'r' has {n_bad} of 3"):
        B.TaskArrays(MU, np.asarray(labels, float), np.array([4, 4, 4]), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="'label_matrix' has 1 of 6"):
        M.auroc_samples(p, np.array([[0, 1], [1, 3], [0, np.nan]]))


@pytest.mark.parametrize("call", [
    lambda t: M.brier([0.1, 0.5, 0.9], t), lambda t: M.ece([0.1, 0.5, 0.9], t),
    lambda t: M.log_loss([0.1, 0.5, 0.9], t), lambda t: M.pearson([0.1, 0.5, 0.9], t),
    lambda t: M.mce([0.1, 0.5, 0.9], t), lambda t: M.brier_decomposition([0.1, 0.5, 0.9], t),
    lambda t: M.spearman([0.1, 0.5, 0.9], t), lambda t: M.reliability_bins([0.1, 0.5, 0.9], t),
])
def test_targets_outside_unit_interval_raise(call):
    with pytest.raises(ValueError, match="2 of 3 entries outside"):
        call([1.2, 0.5, np.nan])


@pytest.mark.parametrize("n,c,arg,n_bad", [
    ([4, 4, 4], [5, 2, 1], "'c'", 1), ([4, 4, 4], [-1, 2, -3], "'c'", 2), ([4, -1, 4], [0, 0, 0], "'n'", 1),
    ([4, 4, 4], [1.5, 2, 1], "'c'", 1),
])
def test_counts_must_satisfy_0_le_c_le_n(n, c, arg, n_bad):
    p = np.array([0.1, 0.5, 0.9])
    for call in (lambda: P.passk_table(n, c), lambda: P.passk_unbiased(n, c, 2), lambda: P.passk_mse(p, n, c),
                 lambda: P.passk_curve(p, n, c), lambda: G.evaluate_budgets(p, n, c, (1,)),
                 lambda: B.TaskArrays(np.array([0.25, 0.5, 0.25]), R, np.asarray(n), np.asarray(c))):
        with pytest.raises(ValueError) as info:
            call()
        assert arg in str(info.value) and f"{n_bad} of 3" in str(info.value), str(info.value)


def test_sizes_and_ks():
    with pytest.raises(ValueError, match="'k' has 1 of 1 entries below 1"):
        P.passk_predicted([0.5], 0)
    with pytest.raises(ValueError, match="'k' has 1 of 1 entries below 0"):
        P.passk_unbiased(4, 2, -1)
    with pytest.raises(ValueError, match="'n_boot'"):
        list(B.resample_counts(10, -1))
    with pytest.raises(ValueError, match="'cap' has 1 of 3 entries below 0"):
        G.greedy_allocation([0.1, 0.5, 0.9], 2, [1, -1, 2])
    with pytest.raises(ValueError, match="'alloc'"):
        G.solve_rate(P.passk_table([2, 2], [1, 1]), np.array([1, 3]))
    with pytest.raises(ValueError, match="level"):
        B.percentile_ci(np.arange(10.0), 1.5)
    with pytest.raises(ValueError, match="one entry per question"):
        M.brier([0.1, 0.2], [0.1, 0.2, 0.3])


def test_analyze_refuses_bad_labels_and_confidences():
    rows = [{"id": str(i), "correct": [1, 0, 1, 1]} for i in range(3)]
    targets = Targets.from_rows(rows)
    with pytest.raises(ValueError, match=r"confidences\['x'\].*1 of 3 entries outside"):
        analyze(targets, {"x": BAD_P}, n_boot=0)
    targets.labels[0, 1] = 2.0
    with pytest.raises(ValueError, match="'targets.labels' has 1 of 12 entries that are not 0 or 1"):
        analyze(targets, {"x": np.array([0.5, 0.5, 0.5])}, n_boot=0)


def test_valid_inputs_give_independent_values():
    """The checks change no value: Brier and pass@k agree with direct computations."""
    p = np.array([0.0, 0.25, 1.0, np.nan])
    mu = np.array([0.5, 0.25, 0.75, 0.1])
    assert M.brier(p, mu) == pytest.approx(np.mean([0.25, 0.0, 0.0625]))
    assert float(P.passk_unbiased(4, 2, 2)) == pytest.approx(1 - 1 / 6)
    assert float(P.passk_predicted(0.5, 2)) == pytest.approx(0.75)
