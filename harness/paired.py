"""The statistics of a paired comparison of two runs on the same questions: arrays in, plain data out.

:func:`metric_changes` compares one estimator's confidences on BASE and NEW (the same questions, in the
same order) with a paired bootstrap: the same question resamples for both runs, every estimator and every
metric (:mod:`capcal.bootstrap`; resample j is drawn from the seed alone). :func:`accuracy_change`
compares the targets themselves. :mod:`capcal.compare` reads two run directories and calls these; nothing
here reads or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .analysis import DEFAULT_BUDGETS, point_metrics
from .bootstrap import PreparedEstimator, TaskArrays, bootstrap_metrics, resample_counts
from .budget import evaluate_budgets
from .metric_catalogue import metric_direction
from .passk import passk_predicted, passk_table

__all__ = ["AccuracyChange", "MetricChange", "accuracy_change", "interval", "metric_changes", "prepare",
           "verdict"]

@dataclass
class MetricChange:
    """One metric of one task x estimator: BASE, NEW, the difference NEW - BASE and its interval.

    ``verdict`` is ``"better"``, ``"worse"`` (interval excludes 0 on that side), ``"no change"`` or
    ``"n/a"`` (metric undefined on one of the runs).
    """

    task: str
    estimator: str
    metric: str
    base: float | None
    new: float | None
    diff: float | None
    lo: float | None
    hi: float | None
    verdict: str


@dataclass
class AccuracyChange:
    """Per-question correctness of one task: the designated sample (McNemar) and mu (Wilcoxon, bootstrap)."""

    task: str
    n_questions: int
    base_accuracy: float
    new_accuracy: float
    base_only: int        # designated sample right in BASE, wrong in NEW
    new_only: int         # wrong in BASE, right in NEW
    mcnemar_p: float
    base_mu: float
    new_mu: float
    mu_diff: float
    mu_lo: float | None
    mu_hi: float | None
    wilcoxon_p: float
    verdict: str


def prepare(p: np.ndarray, task: TaskArrays, labels: np.ndarray, metrics: list[str],
            n_bins: int = 10) -> tuple[PreparedEstimator, dict[str, float]]:
    """One estimator's bootstrap features (:mod:`capcal.bootstrap`) and its metrics on the full data.

    The pass@k errors (for every ``passk_mse@K`` asked) and, when ``budget_gain`` is asked, the per-question
    budget gain are computed on the full data and kept fixed across resamples, as in
    :func:`capcal.analysis.analyze`.

    Returns:
        ``(prepared, point values {metric: value})``; the point values come from
        :func:`capcal.analysis.point_metrics` (NaN where undefined).
    """
    valid = np.isfinite(p)
    ks = sorted({int(m.split("@")[1]) for m in metrics if m.startswith("passk_mse@")})
    table = passk_table(task.n, task.c)
    err2 = {k: (passk_predicted(p, k) - table[:, k]) ** 2 for k in ks}
    point = point_metrics(p, task.mu, task.r, labels, n_bins)
    for k in ks:
        point[f"passk_mse@{k}"] = float(np.mean(err2[k][valid])) if valid.any() else np.nan
    gain = None
    if "budget_gain" in metrics:
        budgets = [b for b in DEFAULT_BUDGETS if b <= task.n.min()]
        if valid.any() and budgets:
            bud = evaluate_budgets(p[valid], task.n[valid], task.c[valid], budgets, table[valid])
            gain = np.zeros(len(p))
            gain[valid] = bud.per_question_gain()
            point["budget_gain"] = float(np.mean(gain[valid]))
    return PreparedEstimator(p, task, n_bins, "equal_width", err2, gain), point


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def interval(diffs: np.ndarray, alpha: float) -> tuple[float | None, float | None]:
    """The ``1 - alpha`` percentile interval of the finite values of ``diffs``; ``(None, None)`` if none."""
    diffs = diffs[np.isfinite(diffs)]
    if not diffs.size:
        return None, None
    lo, hi = np.percentile(diffs, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def verdict(metric: str, lo: float | None, hi: float | None) -> str:
    """``"better"``/``"worse"`` when the interval ``[lo, hi]`` of NEW - BASE excludes 0 (the catalogue's
    direction of ``metric`` says which), ``"no change"`` otherwise, ``"n/a"`` without an interval."""
    if lo is None or hi is None:
        return "n/a"
    direction = metric_direction(metric)
    if lo > 0:
        return "better" if direction > 0 else "worse" if direction < 0 else "no change"
    if hi < 0:
        return "worse" if direction > 0 else "better" if direction < 0 else "no change"
    return "no change"


def accuracy_change(task: str, tb: TaskArrays, tn: TaskArrays, alpha: float, n_boot: int, seed: int) -> AccuracyChange:
    """Per-question correctness of BASE (``tb``) and NEW (``tn``) on the same questions, in the same order:
    exact McNemar on the designated samples, Wilcoxon signed-rank and a paired-bootstrap interval on mu."""
    base_only = int(np.sum((tb.r == 1) & (tn.r == 0)))
    new_only = int(np.sum((tb.r == 0) & (tn.r == 1)))
    discordant = base_only + new_only
    p_mc = float(stats.binomtest(min(base_only, new_only), discordant, 0.5).pvalue) if discordant else 1.0
    d = tn.mu - tb.mu
    p_w = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    # mean of d in each resample: the same resamples as the metrics (resample_counts, same seed)
    boots = np.concatenate([W @ d / len(d) for W in resample_counts(len(d), n_boot, seed)]) if n_boot else np.array([])
    lo, hi = interval(boots, alpha)
    if p_mc < alpha or p_w < alpha:
        verdict = "better" if (new_only - base_only if p_mc < alpha else d.mean()) > 0 else "worse"
    else:
        verdict = "no change"
    return AccuracyChange(task=task, n_questions=len(d), base_accuracy=float(tb.r.mean()),
                          new_accuracy=float(tn.r.mean()), base_only=base_only, new_only=new_only,
                          mcnemar_p=p_mc, base_mu=float(tb.mu.mean()), new_mu=float(tn.mu.mean()),
                          mu_diff=float(d.mean()), mu_lo=lo, mu_hi=hi, wilcoxon_p=p_w, verdict=verdict)


def metric_changes(task: str, estimator: str, base: tuple[np.ndarray, TaskArrays, np.ndarray],
                   new: tuple[np.ndarray, TaskArrays, np.ndarray], metrics: list[str], alpha: float,
                   n_boot: int, seed: int) -> list[MetricChange]:
    """Every metric of one estimator on BASE and NEW, with paired-bootstrap intervals of NEW - BASE.

    Args:
        task, estimator: names recorded in the result.
        base, new: ``(p, targets, labels)`` of each run: (Q,) confidences (NaN = failed), the bootstrap's
            :class:`TaskArrays` and the (Q, n_max) per-sample labels, all on the same Q questions.
        metrics: catalogue names to compute (``passk_mse@K`` needs K <= min n).
        alpha: intervals are ``1 - alpha`` percentile intervals.
        n_boot: resamples (0: no intervals, every verdict ``"n/a"``).
        seed: bootstrap seed (the same resamples for both runs).

    Returns:
        One :class:`MetricChange` per metric, in the order of ``metrics``.
    """
    (pb, tb, lb), (pn, tn, ln) = base, new
    eb, point_b = prepare(pb, tb, lb, metrics)
    en, point_n = prepare(pn, tn, ln, metrics)
    boot_b = bootstrap_metrics({estimator: eb}, tb, n_boot, seed)[estimator] if n_boot else {}
    boot_n = bootstrap_metrics({estimator: en}, tn, n_boot, seed)[estimator] if n_boot else {}
    out = []
    for m in metrics:
        b, n_ = point_b.get(m, np.nan), point_n.get(m, np.nan)
        diff = boot_n[m] - boot_b[m] if m in boot_b and m in boot_n else np.array([])
        lo, hi = interval(diff, alpha)
        v = verdict(m, lo, hi) if np.isfinite(b) and np.isfinite(n_) else "n/a"
        out.append(MetricChange(task=task, estimator=estimator, metric=m, base=_num(b), new=_num(n_),
                                diff=_num(n_ - b), lo=lo, hi=hi, verdict=v))
    return out
