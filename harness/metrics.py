"""Calibration metrics of confidences against the capability target mu and the response target r.

Every function takes ``p`` (Q,) confidences in [0, 1] where NaN marks a question the estimator failed on:
those questions are excluded (callers report how many, see :func:`nan_count`). Targets are (Q,) arrays:
``mu = c / n`` (soft, in [0, 1]) or ``r`` (0/1, the designated sample). Undefined values (a correlation of
a constant, an AUROC with one class, any metric of zero valid questions) are NaN, never an exception.

Binning (ECE, MCE, reliability diagram, Brier decomposition): ``"equal_width"`` uses ``n_bins`` bins of
width ``1 / n_bins`` over [0, 1], bin ``i`` = [i/B, (i+1)/B) and the last bin closed, so ``p = 1.0`` is
counted; the bin index is ``floor(round(p * B, 9))``, which puts 0.3, 0.6, 0.7 (whose products with 10
are 3.0000000000000004, 6.0, 7.000000000000001 in floating point) into bins 3, 6, 7 as their decimal value
says. ``"equal_mass"`` uses the quantiles of the valid confidences as edges (values on an inner edge go
to the upper bin; repeated edges leave empty bins, which count for nothing).

Input checks (every public function; :mod:`capcal.validate`): confidences must lie in [0, 1] or be NaN,
targets in [0, 1] (no NaN), labels exactly 0 or 1 (NaN only as the padding of a per-sample label matrix),
and the arrays must have one entry per question. Anything else raises ``ValueError``
(:class:`capcal.errors.InvalidArrayError`) naming the function, the argument and how many entries are bad.

The formulas are written out in docs/metrics.md.
"""

from __future__ import annotations

import numpy as np

from . import validate as V

LOGLOSS_EPS = 1e-6
BINNINGS = ("equal_width", "equal_mass")


def nan_count(p) -> int:
    """Number of NaN confidences (failed questions) in ``p``.

    Raises:
        ValueError: a confidence outside [0, 1].
    """
    return int(np.isnan(V.confidences(p, "p", "nan_count")).sum())


def _valid(p, *targets):
    p = np.asarray(p, dtype=float)
    keep = ~np.isnan(p)
    return (p[keep],) + tuple(np.asarray(t, dtype=float)[keep] for t in targets)


def _checked(where: str, p, target, target_name: str = "target", binary: bool = False):
    """Validate ``p`` (confidences) and ``target`` ([0, 1], or 0/1 with ``binary``), then drop NaN questions."""
    p = V.confidences(p, "p", where)
    t = V.binary(target, target_name, where) if binary else V.unit_interval(target, target_name, where)
    V.same_length(where, p=p, **{target_name: t})
    return _valid(p, t)


def brier(p, target) -> float:
    """Mean squared error ``mean (p - target)^2`` over the valid questions (CC-Brier with mu, RC with r).

    Args:
        p: (Q,) confidences in [0, 1], NaN for failed questions (excluded).
        target: (Q,) values in [0, 1] (mu or r).

    Raises:
        ValueError: out-of-range confidences or targets, or arrays of different lengths.
    """
    p, t = _checked("brier", p, target)
    return float(np.mean((p - t) ** 2)) if p.size else float("nan")


def log_loss(p, target, eps: float = LOGLOSS_EPS) -> float:
    """Cross-entropy with a soft target: ``-mean(t log q + (1 - t) log(1 - q))``, ``q = clip(p, eps, 1 - eps)``.

    With a 0/1 target this is the usual log-loss (scikit-learn's ``log_loss`` on the same clipped ``q``).

    Raises:
        ValueError: confidences or targets outside [0, 1], or arrays of different lengths.
    """
    p, t = _checked("log_loss", p, target)
    if not p.size:
        return float("nan")
    q = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(t * np.log(q) + (1.0 - t) * np.log1p(-q)))


def bin_edges(p, n_bins: int = 10, binning: str = "equal_width") -> np.ndarray:
    """(n_bins + 1,) bin edges: ``i / n_bins``, or the quantiles of the valid ``p`` for ``"equal_mass"``.

    Raises:
        ValueError: ``n_bins < 1``, an unknown binning, or a confidence outside [0, 1].
    """
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    p = V.confidences(p, "p", "bin_edges")
    if binning == "equal_width":
        return np.arange(n_bins + 1) / n_bins
    if binning == "equal_mass":
        (v,) = _valid(p)
        if not v.size:
            return np.arange(n_bins + 1) / n_bins
        edges = np.quantile(v, np.linspace(0.0, 1.0, n_bins + 1))
        edges[0], edges[-1] = min(edges[0], 0.0), max(edges[-1], 1.0)
        return edges
    raise ValueError(f"unknown binning {binning!r}; expected one of {', '.join(BINNINGS)}")


def bin_index(p, edges: np.ndarray, binning: str = "equal_width") -> np.ndarray:
    """(Q,) bin of every confidence (any int for NaN; callers mask those out).

    ``"equal_width"``: ``floor(round(p * B, 9))`` clipped to ``[0, B - 1]`` (see the module docstring).
    ``"equal_mass"``: ``searchsorted(inner edges, p, side="right")``.

    Raises:
        ValueError: a confidence outside [0, 1].
    """
    p = np.nan_to_num(V.confidences(p, "p", "bin_index"), nan=0.0)
    n_bins = len(edges) - 1
    if binning == "equal_width":
        idx = np.floor(np.round(p * n_bins, 9)).astype(np.int64)
    else:
        idx = np.searchsorted(edges[1:-1], p, side="right")
    return np.clip(idx, 0, n_bins - 1)


def _bin_sums(p, target, n_bins, binning, where):
    p, t = _checked(where, p, target)
    edges = bin_edges(p, n_bins, binning)
    idx = bin_index(p, edges, binning)
    count = np.bincount(idx, minlength=n_bins).astype(float)
    sp = np.bincount(idx, weights=p, minlength=n_bins)
    st = np.bincount(idx, weights=t, minlength=n_bins)
    return edges, count, sp, st, t


def reliability_bins(p, target, n_bins: int = 10, binning: str = "equal_width") -> list[dict]:
    """Reliability-diagram data, one dict per bin.

    Returns:
        ``[{"lo", "hi", "count", "mean_conf", "mean_target"}]``; the means are NaN for an empty bin.
    """
    edges, count, sp, st, _ = _bin_sums(p, target, n_bins, binning, "reliability_bins")
    with np.errstate(invalid="ignore", divide="ignore"):
        mc, mt = sp / count, st / count
    return [{"lo": float(edges[i]), "hi": float(edges[i + 1]), "count": int(count[i]),
             "mean_conf": float(mc[i]) if count[i] else float("nan"),
             "mean_target": float(mt[i]) if count[i] else float("nan")} for i in range(n_bins)]


def ece(p, target, n_bins: int = 10, binning: str = "equal_width") -> float:
    """Expected calibration error ``sum_bins (count / N) |mean p - mean target|`` (NaN when N = 0).

    Raises:
        ValueError: confidences or targets outside [0, 1], or arrays of different lengths.
    """
    _, count, sp, st, t = _bin_sums(p, target, n_bins, binning, "ece")
    return float(np.sum(np.abs(sp - st)) / t.size) if t.size else float("nan")


def mce(p, target, n_bins: int = 10, binning: str = "equal_width") -> float:
    """Maximum calibration error: the largest ``|mean p - mean target|`` over non-empty bins.

    Raises:
        ValueError: confidences or targets outside [0, 1], or arrays of different lengths.
    """
    _, count, sp, st, t = _bin_sums(p, target, n_bins, binning, "mce")
    full = count > 0
    return float(np.max(np.abs(sp[full] - st[full]) / count[full])) if full.any() else float("nan")


def brier_decomposition(p, target, n_bins: int = 10, binning: str = "equal_width") -> dict[str, float]:
    """Murphy's decomposition over the bins: reliability, resolution, uncertainty.

    ``reliability = sum_b (n_b/N) (pbar_b - tbar_b)^2``, ``resolution = sum_b (n_b/N) (tbar_b - tbar)^2``,
    ``uncertainty = mean (t - tbar)^2`` (``tbar (1 - tbar)`` for a 0/1 target). When every bin holds a single
    confidence value, ``brier = reliability - resolution + uncertainty`` exactly; otherwise two within-bin
    terms (variance of p, covariance of p and t inside bins) make up the difference.

    Returns:
        ``{"reliability", "resolution", "uncertainty"}``, NaN when no question is valid.

    Raises:
        ValueError: confidences or targets outside [0, 1], or arrays of different lengths.
    """
    _, count, sp, st, t = _bin_sums(p, target, n_bins, binning, "brier_decomposition")
    if not t.size:
        return {"reliability": float("nan"), "resolution": float("nan"), "uncertainty": float("nan")}
    full = count > 0
    tbar = t.mean()
    rel = np.sum((sp[full] - st[full]) ** 2 / count[full]) / t.size
    res = np.sum(count[full] * (st[full] / count[full] - tbar) ** 2) / t.size
    return {"reliability": float(rel), "resolution": float(res), "uncertainty": float(np.mean((t - tbar) ** 2))}


def pearson(p, mu) -> float:
    """Pearson correlation of confidence and mu over the valid questions (NaN if either is constant).

    Raises:
        ValueError: confidences or mu outside [0, 1], or arrays of different lengths.
    """
    p, m = _checked("pearson", p, mu, "mu")
    return _pearson(p, m)


def _pearson(p: np.ndarray, m: np.ndarray) -> float:
    if p.size < 2 or p.min() == p.max() or m.min() == m.max():      # a constant: undefined
        return float("nan")
    dp, dm = p - p.mean(), m - m.mean()
    den = np.sqrt(np.sum(dp * dp) * np.sum(dm * dm))
    return float(np.sum(dp * dm) / den) if den > 0 else float("nan")


def spearman(p, mu) -> float:
    """Spearman rank correlation (Pearson of mid-ranks, so ties are handled) of confidence and mu.

    Raises:
        ValueError: confidences or mu outside [0, 1], or arrays of different lengths.
    """
    p, m = _checked("spearman", p, mu, "mu")
    if p.size < 2:
        return float("nan")
    return _pearson(midranks(p), midranks(m))


def midranks(x) -> np.ndarray:
    """1-based ranks of ``x`` with ties sharing their average rank (``scipy.stats.rankdata``'s default).

    Args:
        x: (N,) finite values.

    Returns:
        (N,) float ranks; ``[]`` for an empty input.
    """
    x = np.asarray(x, dtype=float).ravel()
    n = x.size
    if n == 0:
        return np.zeros(0)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, n))
    ranks = np.empty(n)
    ranks[order] = np.repeat(starts + (counts + 1) / 2.0, counts)
    return ranks


def auroc_weighted(score, pos_weight, neg_weight) -> float:
    """AUROC where question i stands for ``pos_weight[i]`` positives and ``neg_weight[i]`` negatives at score i.

    ``AUROC = sum over (positive, negative) pairs of [s_pos > s_neg] + 0.5 [s_pos = s_neg]``, divided by the
    number of pairs (the Mann-Whitney statistic; equals scikit-learn's ``roc_auc_score`` with ties). NaN
    when there are no positives or no negatives. NaN scores are excluded.

    Args:
        score: (Q,) scores (any real numbers; NaN = excluded).
        pos_weight, neg_weight: (Q,) non-negative finite weights.

    Raises:
        ValueError: an infinite score, a negative or non-finite weight, or arrays of different lengths.
    """
    score = V.finite_or_nan(score, "score", "auroc_weighted")
    pos_weight = V.nonnegative(pos_weight, "pos_weight", "auroc_weighted")
    neg_weight = V.nonnegative(neg_weight, "neg_weight", "auroc_weighted")
    V.same_length("auroc_weighted", score=score, pos_weight=pos_weight, neg_weight=neg_weight)
    return _auroc_weighted(score, pos_weight, neg_weight)


def _auroc_weighted(score: np.ndarray, pos_weight: np.ndarray, neg_weight: np.ndarray) -> float:
    s, a, b = _valid(score, pos_weight, neg_weight)
    tot_a, tot_b = a.sum(), b.sum()
    if tot_a <= 0 or tot_b <= 0:
        return float("nan")
    _, grp = np.unique(s, return_inverse=True)
    ga = np.bincount(grp, weights=a)
    gb = np.bincount(grp, weights=b)
    below = np.cumsum(gb) - gb
    return float(np.sum(ga * (below + 0.5 * gb)) / (tot_a * tot_b))


def auroc(p, labels) -> float:
    """AUROC of confidences against 0/1 labels (the response target r), tie-aware; NaN with one class.

    Raises:
        ValueError: confidences outside [0, 1], labels that are not 0 or 1, or arrays of different lengths.
    """
    p = V.confidences(p, "p", "auroc")
    lab = V.binary(labels, "labels", "auroc")
    V.same_length("auroc", p=p, labels=lab)
    return _auroc_weighted(p, lab, 1.0 - lab)


def auroc_samples(p, label_matrix) -> float:
    """AUROC against every per-sample label: question i's confidence is scored against each of its samples.

    Args:
        p: (Q,) confidences.
        label_matrix: (Q, n_max) 0/1 per-sample correctness, NaN where a question has fewer samples.

    Equals ``roc_auc_score`` on the expanded pairs ``(p_i, label_ij)`` for every real sample j.

    Raises:
        ValueError: confidences outside [0, 1], labels other than 0, 1 and NaN padding, or a label matrix
            without one row per question.
    """
    p = V.confidences(p, "p", "auroc_samples")
    lab = V.binary(label_matrix, "label_matrix", "auroc_samples", allow_nan=True)
    if lab.ndim != 2:
        raise V.InvalidArrayError(f"auroc_samples: argument 'label_matrix' must be 2-D (Q, n), got shape {lab.shape}")
    V.same_length("auroc_samples", p=p, label_matrix=lab)
    pos = np.nansum(lab, axis=1)
    neg = np.sum(~np.isnan(lab), axis=1) - pos
    return _auroc_weighted(p, pos, neg)
