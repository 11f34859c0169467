"""Budget allocation: spend a total of ``B * N`` samples where a confidence says they help most.

Rule (DESIGN.md section 1): each next sample goes to the question with the largest marginal gain
``p_i (1 - p_i)^{b_i}`` (the predicted increase of ``1 - (1 - p_i)^{b_i}`` from one more sample), with ``p``
clipped to ``[1e-6, 1 - 1e-6]`` and at most ``n_i`` samples per question (what the graded data can evaluate).

Because the gains of one question decrease strictly in ``b``, the greedy allocation equals the ``B * N``
largest entries of the gain matrix ``G[i, b] = p_i (1 - p_i)^b`` (``0 <= b < n_i``). It is found here
without building that matrix: entries are compared as ``log p_i + b log(1 - p_i)``, a threshold is bisected
so that only a small boundary set of entries needs sorting, and ties are broken deterministically (larger
gain first, then the lower question index), which is what the sample-by-sample greedy does when it takes
the first maximum. Cost: O(N) per bisection step, no (N, n) matrix.

An allocation is evaluated *exactly*: the expected solve rate is the mean over questions of the unbiased
pass@{b_i} from that question's own ``n_i`` graded samples (pass@0 = 0), so no random draws are needed.

Input checks (:mod:`capcal.validate`): confidences in [0, 1] (NaN refused: drop failed questions first),
counts whole with ``0 <= c <= n``, caps and totals whole and non-negative. Anything else raises
``ValueError`` (:class:`capcal.errors.InvalidArrayError`) naming the argument and how many entries are bad;
out-of-range confidences are never clipped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import validate as V
from .errors import InvalidArrayError
from .passk import passk_table

P_CLIP = 1e-6


def _count_at_least(lp: np.ndarray, l1: np.ndarray, inv: np.ndarray, cap: np.ndarray, t: float) -> np.ndarray:
    """Per question, how many of its log-gains ``lp + b * l1`` (b = 0 .. cap-1) are ``>= t``.

    ``inv`` is ``-1 / l1``. The closed form ``floor((lp - t) * inv) + 1`` can be off by one through rounding,
    so it is checked against the float values themselves (monotone in b), which are the definition.
    """
    k = np.clip(np.floor((lp - t) * inv) + 1.0, 0, cap).astype(np.int64)
    for _ in range(4):
        up = (k < cap) & (lp + k * l1 >= t)
        down = (k > 0) & (lp + (k - 1) * l1 < t)
        if not (up.any() or down.any()):
            break
        k += up
        k -= down
    return k


def greedy_allocation(p, total: int, cap) -> np.ndarray:
    """Greedy marginal-gain allocation of ``total`` samples.

    Args:
        p: (N,) confidences in [0, 1] (no NaN); clipped to ``[1e-6, 1 - 1e-6]``.
        total: number of samples to hand out (``B * N`` for an average budget ``B``).
        cap: (N,) ints or a scalar, the most samples a question may get (its ``n``).

    Returns:
        (N,) int64 allocation ``b`` with ``sum(b) == total`` and ``0 <= b <= cap``.

    Raises:
        ValueError: when ``total`` exceeds ``sum(cap)``, ``p`` holds NaN or values outside [0, 1], or
            ``cap``/``total`` are not whole non-negative numbers.
    """
    p = _finite_confidences(p, "greedy_allocation")
    cap = np.broadcast_to(V.nonnegative_int(cap, "cap", "greedy_allocation"), p.shape).copy()
    total = int(V.nonnegative_int(total, "total", "greedy_allocation"))
    return _greedy(p, total, cap)


def _greedy(p: np.ndarray, total: int, cap: np.ndarray) -> np.ndarray:
    """:func:`greedy_allocation` on checked inputs (float (N,) p without NaN, int64 (N,) cap)."""
    if total < 0 or total > int(cap.sum()):
        raise ValueError(f"cannot allocate {total} samples with caps summing to {int(cap.sum())}")
    if total == 0:
        return np.zeros(p.shape, np.int64)
    if total == int(cap.sum()):
        return cap
    pc = np.clip(p, P_CLIP, 1.0 - P_CLIP)
    lp, l1 = np.log(pc), np.log1p(-pc)
    inv = -1.0 / l1
    has = cap > 0
    # bracket: everything is >= t_lo (count = sum cap >= total), nothing is >= t_hi (count 0 < total).
    t_hi, n_hi = float(lp.max()) + 1.0, 0
    t_lo = float(np.min((lp + (cap - 1) * l1)[has]))
    k_lo = _count_at_least(lp, l1, inv, cap, t_lo)
    k_hi = np.zeros_like(cap)
    n_lo = int(k_lo.sum())
    interpolate = True
    small = max(4096, p.size // 2)               # boundary entries sorted exactly at the end
    while n_lo - n_hi > small and t_hi - t_lo > 1e-12 * (1.0 + abs(t_lo)):
        # the count is nearly linear in t locally: alternate interpolation with bisection (which guarantees
        # progress) whenever an interpolation step did not halve the gap
        frac = (n_lo - total + 0.5) / (n_lo - n_hi) if interpolate else 0.5
        mid = t_lo + (t_hi - t_lo) * min(max(frac, 1e-3), 1.0 - 1e-3)
        k_mid = _count_at_least(lp, l1, inv, cap, mid)
        n_mid, gap = int(k_mid.sum()), n_lo - n_hi
        if n_mid >= total:
            t_lo, k_lo, n_lo = mid, k_mid, n_mid
        else:
            t_hi, k_hi, n_hi = mid, k_mid, n_mid
        interpolate = (n_lo - n_hi) <= gap // 2 or not interpolate
    # entries (i, b) with k_hi[i] <= b < k_lo[i] decide the boundary: sort them by (gain desc, i asc).
    need = total - int(k_hi.sum())
    extra = k_lo - k_hi
    rows = np.repeat(np.arange(p.size), extra)
    starts = np.repeat(np.cumsum(extra) - extra, extra)
    bs = k_hi[rows] + (np.arange(rows.size) - starts)
    gains = lp[rows] + bs * l1[rows]
    chosen = np.lexsort((bs, rows, -gains))[:need]
    alloc = k_hi.copy()
    np.add.at(alloc, rows[chosen], 1)
    return alloc


def _finite_confidences(p, where: str) -> np.ndarray:
    p = V.confidences(np.reshape(p, -1), "p", where)
    n_nan = int(np.count_nonzero(np.isnan(p)))
    if n_nan:
        raise InvalidArrayError(f"{where}: argument 'p' has {n_nan} of {p.size} entries NaN; "
                                "drop the failed questions first")
    return p


def solve_rate(table: np.ndarray, alloc: np.ndarray) -> np.ndarray:
    """Per-question expected solve probability of an allocation: unbiased pass@{b_i} (0 when b_i = 0).

    Args:
        table: (N, k_max + 1) from :func:`capcal.passk.passk_table`.
        alloc: (N,) ints with ``alloc[i] <= n_i``.

    Returns:
        (N,) floats; their mean is the expected share of questions solved.

    Raises:
        ValueError: an allocation that is not whole, negative, beyond the table's columns, or not one per row.
    """
    table = np.asarray(table, dtype=float)
    alloc = V.nonnegative_int(alloc, "alloc", "solve_rate").reshape(-1)
    if table.ndim != 2 or table.shape[0] != alloc.size:
        raise InvalidArrayError(f"solve_rate: argument 'table' must be (N, k_max + 1) with N = {alloc.size} "
                                f"rows, got shape {table.shape}")
    over = alloc >= table.shape[1]
    if over.any():
        raise InvalidArrayError(f"solve_rate: argument 'alloc' has {int(over.sum())} of {alloc.size} entries "
                                f"above the table's k_max = {table.shape[1] - 1}")
    return _solve_rate(table, alloc)


def _solve_rate(table: np.ndarray, alloc: np.ndarray) -> np.ndarray:
    return table[np.arange(alloc.size), alloc]


@dataclass
class BudgetResult:
    """Allocations and per-question solve probabilities for every average budget B.

    Attributes:
        budgets: the B evaluated (only ``B <= min(n)``).
        greedy, uniform, oracle: (len(budgets), N) per-question expected solve probabilities of the greedy
            allocation from the confidences, of ``b_i = B``, and of the greedy allocation from ``p = mu``.
        alloc: (len(budgets), N) the greedy allocation from the confidences.
    """

    budgets: list[int]
    greedy: np.ndarray
    uniform: np.ndarray
    oracle: np.ndarray
    alloc: np.ndarray

    def curve(self) -> list[dict[str, float]]:
        """``[{"B", "greedy", "uniform", "oracle", "gain"}]``: mean expected solve rates, gain = greedy - uniform."""
        rows = []
        for j, b in enumerate(self.budgets):
            g, u, o = (float(a[j].mean()) if a.shape[1] else float("nan")
                       for a in (self.greedy, self.uniform, self.oracle))
            rows.append({"B": int(b), "greedy": g, "uniform": u, "oracle": o, "gain": g - u})
        return rows

    def per_question_gain(self) -> np.ndarray:
        """(N,) the greedy-minus-uniform solve probability averaged over the budgets (NaN if none)."""
        if not self.budgets:
            return np.full(self.greedy.shape[1], np.nan)
        return (self.greedy - self.uniform).mean(axis=0)


def evaluate_budgets(p, n, c, budgets=(1, 2, 4, 8, 16, 32, 64), table: np.ndarray | None = None,
                     oracle: BudgetResult | None = None) -> BudgetResult:
    """Greedy, uniform and oracle allocations for every budget, evaluated exactly.

    Args:
        p: (N,) confidences without NaN (drop failed questions first).
        n, c: (N,) samples and correct samples per question.
        budgets: average samples per question; those above ``min(n)`` are skipped.
        table: optional precomputed :func:`capcal.passk.passk_table` of ``(n, c)``.
        oracle: optional result for ``p = mu`` on the same questions, to reuse its ``oracle`` rows.

    Returns:
        :class:`BudgetResult`.

    Raises:
        ValueError: NaN or out-of-range confidences, counts breaking ``0 <= c <= n``, or arrays of different
            lengths.
    """
    p = _finite_confidences(p, "evaluate_budgets")
    n, c = V.counts(n, c, "evaluate_budgets")
    V.same_length("evaluate_budgets", p=p, n=n, c=c)
    if table is None:
        table = passk_table(n, c)
    elif np.ndim(table) != 2 or np.shape(table)[0] != p.size or np.shape(table)[1] <= int(n.max(initial=0)):
        raise InvalidArrayError(f"evaluate_budgets: argument 'table' must be passk_table(n, c) of shape "
                                f"({p.size}, >= {int(n.max(initial=0)) + 1}), got {np.shape(table)}")
    n_min = int(n.min()) if n.size else 0
    budgets = [int(b) for b in budgets if 1 <= b <= n_min]
    q = p.size
    greedy = np.zeros((len(budgets), q))
    uniform = np.zeros((len(budgets), q))
    allocs = np.zeros((len(budgets), q), np.int64)
    for j, b in enumerate(budgets):                 # inputs checked once above
        allocs[j] = _greedy(p, b * q, n)
        greedy[j] = _solve_rate(table, allocs[j])
        uniform[j] = table[:, b]
    if oracle is not None:
        oracle_rows = oracle.greedy
    else:
        mu = c / n
        oracle_rows = np.zeros_like(greedy)
        for j, b in enumerate(budgets):
            oracle_rows[j] = _solve_rate(table, _greedy(mu, b * q, n))
    return BudgetResult(budgets, greedy, uniform, oracle_rows, allocs)
