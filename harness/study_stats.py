"""The questions the calibration study asks of its runs, on arrays alone (numpy; no I/O, no models).

* :func:`best_estimator_disagreement`: how often choosing the best estimator by RC-Brier picks a different
  one than choosing by CC-Brier, over paired bootstrap resamples of the questions.
* :func:`passk_vs_constant`: whether a confidence predicts pass@k better than a constant (paired bootstrap
  of the MSE difference).
* :func:`budget_saved`: how much of the uniform budget a confidence-guided allocation needs to reach
  uniform's expected solve rate.
* :func:`overconfidence`: mean confidence minus mean accuracy (mean mu), with a bootstrap interval.

Every function takes per-question arrays aligned on the same Q questions: ``n`` (samples), ``c`` (correct
samples), ``r`` (the designated sample's correctness) and confidences (NaN = the estimator failed on that
question). Bootstrap resamples come from :func:`capcal.bootstrap.resample_counts`, so the same seed gives
the same resamples as the rest of capcal.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .bootstrap import percentile_ci, resample_counts
from .budget import greedy_allocation, solve_rate
from .passk import passk_predicted, passk_table


def _stack(confidences: Mapping[str, np.ndarray], q: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    names = list(confidences)
    p = np.array([np.asarray(confidences[k], dtype=float).reshape(-1) for k in names]).reshape(len(names), q)
    valid = np.isfinite(p)
    return names, np.where(valid, p, 0.0), valid.astype(float)


def best_estimator_disagreement(confidences: Mapping[str, np.ndarray], mu, r, n_boot: int = 1000,
                                seed: int = 0) -> dict:
    """The best estimator by CC-Brier and by RC-Brier, on the data and over paired bootstrap resamples.

    Each estimator's Brier score is the mean over the questions where it gave a confidence (in a resample:
    the count-weighted mean). In every resample both scores of every estimator are computed on the same
    resampled questions, the best (lowest) estimator is picked by each, and the two picks are compared.

    Args:
        confidences: ``{name: (Q,) confidences}``, at least two estimators (leave the oracles out: each wins
            its own target by construction).
        mu: (Q,) capability target c / n.
        r: (Q,) response target (0/1).
        n_boot: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        ``{"best_cc", "best_rc"}`` (names, on the data), ``"disagree"`` (bool, on the data),
        ``"disagree_rate"`` (share of resamples whose two picks differ), ``"share_best_cc"`` and
        ``"share_best_rc"`` (``{name: share of resamples where it is best}``), ``"n_boot"``.
    """
    mu = np.asarray(mu, dtype=float).reshape(-1)
    r = np.asarray(r, dtype=float).reshape(-1)
    q = mu.size
    names, p, valid = _stack(confidences, q)
    if len(names) < 2:
        raise ValueError("best_estimator_disagreement needs at least two estimators")
    sq_cc = (p - mu) ** 2 * valid  # (E, Q)
    sq_rc = (p - r) ** 2 * valid

    def best(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        den = weights @ valid.T  # (B, E)
        with np.errstate(invalid="ignore", divide="ignore"):
            cc = np.where(den > 0, (weights @ sq_cc.T) / den, np.inf)
            rc = np.where(den > 0, (weights @ sq_rc.T) / den, np.inf)
        return np.argmin(cc, axis=1), np.argmin(rc, axis=1)

    b_cc, b_rc = best(np.ones((1, q)))
    picks_cc, picks_rc = [], []
    for w in resample_counts(q, n_boot, seed):
        a, b = best(w)
        picks_cc.append(a)
        picks_rc.append(b)
    pc = np.concatenate(picks_cc) if picks_cc else np.zeros(0, dtype=int)
    pr = np.concatenate(picks_rc) if picks_rc else np.zeros(0, dtype=int)
    total = max(len(pc), 1)
    return {
        "best_cc": names[int(b_cc[0])], "best_rc": names[int(b_rc[0])], "disagree": bool(b_cc[0] != b_rc[0]),
        "disagree_rate": float(np.mean(pc != pr)) if len(pc) else float("nan"),
        "share_best_cc": {nm: float(np.sum(pc == i) / total) for i, nm in enumerate(names)},
        "share_best_rc": {nm: float(np.sum(pr == i) / total) for i, nm in enumerate(names)},
        "n_boot": int(n_boot),
    }


def passk_vs_constant(p, constant, n, c, ks=(1, 2, 4, 8, 16), n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Instance-level pass@k MSE of a confidence against that of a constant, with paired bootstrap.

    Predicted pass@k is ``1 - (1 - p)^k``; actual pass@k is the unbiased estimate from each question's
    ``n`` samples. Questions where either confidence is NaN are left out (of both).

    Args:
        p: (Q,) the estimator's confidences.
        constant: (Q,) the constant's confidences (or a scalar).
        n, c: (Q,) samples and correct samples per question.
        ks: the k values (those above ``min(n)`` are skipped).
        n_boot, seed: bootstrap settings.

    Returns:
        One dict per k: ``{"k", "mse", "mse_constant", "diff", "ci"}`` with ``diff = mse - mse_constant``
        (negative = the confidence predicts pass@k better) and its 95 % percentile interval, and
        ``"n"`` (questions used).
    """
    p = np.asarray(p, dtype=float).reshape(-1)
    const = np.broadcast_to(np.asarray(constant, dtype=float), p.shape)
    n = np.asarray(n, dtype=np.int64).reshape(-1)
    c = np.asarray(c, dtype=np.int64).reshape(-1)
    keep = np.isfinite(p) & np.isfinite(const)
    p, const, n, c = p[keep], const[keep], n[keep], c[keep]
    if not p.size:
        return []
    table = passk_table(n, c)
    out = []
    for k in ks:
        if k > int(n.min()):
            continue
        actual = table[:, k]
        se = (passk_predicted(p, k) - actual) ** 2
        se0 = (passk_predicted(const, k) - actual) ** 2
        diffs = [w @ (se - se0) / p.size for w in resample_counts(p.size, n_boot, seed)]
        boot = np.concatenate(diffs) if diffs else np.zeros(0)
        out.append({"k": int(k), "mse": float(se.mean()), "mse_constant": float(se0.mean()),
                    "diff": float((se - se0).mean()), "ci": list(percentile_ci(boot)), "n": int(p.size)})
    return out


def _min_total_reaching(p: np.ndarray, cap: np.ndarray, table: np.ndarray, goal: float, hi: int) -> int | None:
    """Smallest total budget T <= hi whose greedy allocation reaches mean solve rate ``goal`` (bisection:
    greedy allocations are nested in T and pass@b grows with b, so the solve rate is monotone in T)."""
    def rate(total: int) -> float:
        return float(solve_rate(table, greedy_allocation(p, total, cap)).mean())

    if rate(hi) < goal - 1e-12:
        return None
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if rate(mid) >= goal - 1e-12:
            hi = mid
        else:
            lo = mid
    return hi


def budget_saved(p, n, c, budgets=(1, 2, 4, 8)) -> list[dict]:
    """How much of uniform's budget a greedy allocation by ``p`` needs to match uniform's solve rate.

    For each average budget B (samples per question), uniform gives every question B samples and solves
    ``mean pass@B``; the greedy allocation (:func:`capcal.budget.greedy_allocation`) is given the smallest
    total T that reaches at least that rate (exact evaluation, no random draws).

    Args:
        p: (Q,) confidences (questions with NaN are left out).
        n, c: (Q,) samples and correct samples per question.
        budgets: average budgets B (those above ``min(n)`` are skipped).

    Returns:
        One dict per B: ``{"B", "uniform", "needed_B"}`` (T / Q, or ``None`` when even ``B * Q`` samples do
        not suffice) and ``"saved"`` (``1 - needed_B / B``; negative when the allocation needs more than
        uniform, ``None`` when it never reaches it).
    """
    p = np.asarray(p, dtype=float).reshape(-1)
    n = np.asarray(n, dtype=np.int64).reshape(-1)
    c = np.asarray(c, dtype=np.int64).reshape(-1)
    keep = np.isfinite(p)
    p, n, c = p[keep], n[keep], c[keep]
    if not p.size:
        return []
    table = np.nan_to_num(passk_table(n, c), nan=1.0)
    out = []
    q = p.size
    for b in budgets:
        if b > int(n.min()):
            continue
        uniform = float(table[:, b].mean())
        total = _min_total_reaching(p, n, table, uniform, hi=int(n.sum()))
        needed = None if total is None else total / q
        out.append({"B": int(b), "uniform": uniform, "needed_B": needed,
                    "saved": None if needed is None else 1.0 - needed / b})
    return out


def overconfidence(p, mu, n_boot: int = 1000, seed: int = 0) -> dict:
    """Mean confidence minus mean capability (positive = overconfident), on the questions with a confidence.

    Returns:
        ``{"gap", "ci", "mean_conf", "mean_mu", "n"}``.
    """
    p = np.asarray(p, dtype=float).reshape(-1)
    mu = np.asarray(mu, dtype=float).reshape(-1)
    keep = np.isfinite(p)
    p, mu = p[keep], mu[keep]
    if not p.size:
        return {"gap": float("nan"), "ci": [float("nan"), float("nan")], "mean_conf": float("nan"),
                "mean_mu": float("nan"), "n": 0}
    d = p - mu
    boot = [w @ d / p.size for w in resample_counts(p.size, n_boot, seed)]
    return {"gap": float(d.mean()), "ci": list(percentile_ci(np.concatenate(boot) if boot else np.zeros(0))),
            "mean_conf": float(p.mean()), "mean_mu": float(mu.mean()), "n": int(p.size)}
