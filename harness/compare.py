"""Paired comparison of two runs on the same questions (checkpoint regression tests).

Questions are matched by task and question id. For every task x estimator present in both runs, each
metric is computed on both runs over the shared questions, and a **paired bootstrap** (the same question
resamples for both runs, every estimator and every metric) gives the difference NEW - BASE with a
``1 - alpha`` percentile interval. A difference is significant when that interval excludes 0; the metric's
direction (:func:`capcal.metric_catalogue.metric_direction`) says whether it got better or worse.

Per task, the correctness of the designated sample (response target r) is compared with an exact
McNemar test (two-sided binomial test on the discordant pairs), and the capability target mu with a
Wilcoxon signed-rank test plus a paired-bootstrap interval of the mean difference.

The statistics are in :mod:`capcal.paired` (arrays in, plain data out); this module reads the run
directories. The metrics and resamples are those of :mod:`capcal.bootstrap` (vectorised weighted metrics; resample j
is drawn from the seed alone), so BASE and NEW see exactly the same question resamples and the values
agree with the intervals of ``results.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .bootstrap import TaskArrays
from .errors import CapcalError
from .metric_catalogue import comparable_metrics, compare_defaults, is_known_metric, metric_title
from .paired import AccuracyChange, MetricChange, accuracy_change, metric_changes
from .results import in_sample_reason
from .rundir import RunDir

__all__ = ["COMPARABLE_METRICS", "DEFAULT_METRICS", "REFERENCE_ROWS", "AccuracyChange", "CompareError",
           "Comparison", "MetricChange", "compare_runs", "format_comparison"]

#: Metrics the paired bootstrap supports (``passk_mse@K`` for any K <= min n as well), from the catalogue.
COMPARABLE_METRICS = comparable_metrics()
#: Compared by default (plus ``passk_mse@4`` when every shared question has n >= 4), from the catalogue.
DEFAULT_METRICS = compare_defaults()
#: Reference rows that do not gate the exit code by default (their scores move with the model, not
#: with the quality of a confidence estimator).
REFERENCE_ROWS = ("oracle_cc", "oracle_rc", "constant")


class CompareError(CapcalError):
    """The two runs cannot be compared (no shared questions, unknown metric, ...)."""


# ---------------------------------------------------------------------------------------------------
# per-question arrays of one task
def _aligned_targets(rd: RunDir, task: str, ids: np.ndarray) -> tuple[TaskArrays, np.ndarray]:
    """The targets of ``task`` restricted to (and ordered as) ``ids``: the bootstrap's arrays and the
    (Q, n_max) per-sample labels (NaN padded)."""
    t = rd.targets(task)
    pos = {q: i for i, q in enumerate(t.ids)}
    sel = np.array([pos[q] for q in ids], dtype=np.int64)
    n, c = t.n[sel].astype(np.int64), t.c[sel].astype(np.int64)
    return TaskArrays(mu=c / n, r=t.r[sel].astype(float), n=n, c=c), t.labels[sel]


@dataclass
class Comparison:
    """Everything :func:`compare_runs` found; :attr:`exit_code` is what a CI job should return."""

    base: str
    new: str
    metric: str
    alpha: float
    n_boot: int
    seed: int
    gated_estimators: list[str]
    changes: list[MetricChange] = field(default_factory=list)
    accuracy: list[AccuracyChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: estimators left out of gating because their confidences are in-sample (name -> why)
    in_sample: dict[str, str] = field(default_factory=dict)

    @property
    def regressions(self) -> list[MetricChange]:
        """Significant worsenings of the chosen metric on the gated estimators."""
        return [c for c in self.changes
                if c.metric == self.metric and c.verdict == "worse" and c.estimator in self.gated_estimators]

    @property
    def exit_code(self) -> int:
        """1 when the chosen metric got significantly worse for a gated task x estimator, else 0."""
        return 1 if self.regressions else 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["regressions"] = [asdict(c) for c in self.regressions]
        d["exit_code"] = self.exit_code
        return d


def compare_runs(base: str | Path, new: str | Path, *, metric: str = "cc_brier", metrics: list[str] | None = None,
                 alpha: float = 0.05, n_boot: int = 1000, seed: int = 0,
                 estimators: list[str] | None = None) -> Comparison:
    """Compare two run directories question by question.

    Args:
        base, new: run directories (their ``tasks/<task>/targets.jsonl`` and estimator outputs are read).
        metric: the metric that decides the exit code.
        metrics: metrics to report (default :data:`DEFAULT_METRICS`, plus ``passk_mse@4`` where n >= 4);
            ``metric`` is always included.
        alpha: significance level; intervals are ``1 - alpha`` percentile intervals.
        n_boot: paired bootstrap resamples (same resamples for every estimator and metric of a task).
        seed: bootstrap seed.
        estimators: estimators whose ``metric`` gates the exit code (default: every shared estimator except
            :data:`REFERENCE_ROWS`). An estimator whose confidences are in-sample in either run (its meta
            says ``in_sample`` or ``samples_overlap_mu``; :func:`capcal.results.in_sample_reason`) never
            gates, even when named here (a warning says so). Each estimator is compared on the questions
            where both runs have a confidence.

    Returns:
        A :class:`Comparison`; its ``exit_code`` is 1 on a significant worsening of ``metric``.

    Raises:
        CompareError: no task or question id in common, an unknown metric, alpha outside (0, 1).
        RunDirError: a run directory without targets.
    """
    if not 0 < alpha < 1:
        raise CompareError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 0:
        raise CompareError(f"n_boot must be >= 0, got {n_boot}")
    wanted = list(dict.fromkeys([metric, *(metrics or DEFAULT_METRICS)]))
    for m in wanted:
        if not is_known_metric(m) or not (m in COMPARABLE_METRICS or m.startswith("passk_mse@")):
            raise CompareError(f"metric {m!r} cannot be compared; choose from {', '.join(COMPARABLE_METRICS)}, "
                               "passk_mse@K")
    rb, rn = RunDir(base), RunDir(new)
    for rd in (rb, rn):
        if not rd.path.is_dir():
            raise CompareError(f"{rd.path}: not a run directory")
    tasks_b, tasks_n = set(rb.tasks()), set(rn.tasks())
    cmp = Comparison(base=str(base), new=str(new), metric=metric, alpha=alpha, n_boot=n_boot, seed=seed,
                     gated_estimators=[])
    for only, where in ((tasks_b - tasks_n, "BASE"), (tasks_n - tasks_b, "NEW")):
        if only:
            cmp.warnings.append(f"tasks only in {where} are skipped: {', '.join(sorted(only))}")
    gated: set[str] = set()
    in_sample: dict[str, str] = {}
    any_overlap = False
    for task in sorted(tasks_b & tasks_n):
        ids_b, ids_n = rb.targets(task).ids, set(rn.targets(task).ids)
        shared = np.array([q for q in ids_b if q in ids_n], dtype=object)
        if not shared.size:
            cmp.warnings.append(f"{task}: no question id in common; skipped")
            continue
        any_overlap = True
        if len(shared) < max(len(ids_b), len(ids_n)):
            cmp.warnings.append(f"{task}: compared on the {len(shared)} shared questions "
                                f"(BASE has {len(ids_b)}, NEW {len(ids_n)})")
        (tb, lb), (tn, ln) = _aligned_targets(rb, task, shared), _aligned_targets(rn, task, shared)
        cmp.accuracy.append(accuracy_change(task, tb, tn, alpha, n_boot, seed))
        task_metrics = [m for m in wanted if not m.startswith("passk_mse@")
                        or int(m.split("@")[1]) <= min(tb.n.min(), tn.n.min())]
        if metrics is None and min(tb.n.min(), tn.n.min()) >= 4 and "passk_mse@4" not in task_metrics:
            task_metrics.append("passk_mse@4")
        names_b, names_n = set(rb.estimators(task)), set(rn.estimators(task))
        if names_b ^ names_n:
            cmp.warnings.append(f"{task}: estimators in only one run are skipped: {', '.join(sorted(names_b ^ names_n))}")
        for est in sorted(names_b & names_n):
            pb, _, meta_b = rb.estimator_output(task, est, shared)
            pn, _, meta_n = rn.estimator_output(task, est, shared)
            # both runs are measured on the questions where BOTH have a confidence: a coverage change is
            # reported as such, never as a change of quality
            common = np.isfinite(pb) & np.isfinite(pn)
            if not common.all() and common.any():
                cmp.warnings.append(f"{task}/{est}: metrics over the {int(common.sum())} of {len(common)} questions "
                                    f"both runs answered (coverage BASE {np.isfinite(pb).mean():.1%}, "
                                    f"NEW {np.isfinite(pn).mean():.1%})")
            pb, pn = np.where(common, pb, np.nan), np.where(common, pn, np.nan)
            cmp.changes += metric_changes(task, est, (pb, tb, lb), (pn, tn, ln), task_metrics, alpha, n_boot, seed)
            why = in_sample_reason(meta_b) or in_sample_reason(meta_n)
            if why:  # an in-sample row never gates, even when asked for by name
                in_sample.setdefault(est, why)
            elif estimators is None and est not in REFERENCE_ROWS or estimators is not None and est in estimators:
                gated.add(est)
    if not any_overlap:
        raise CompareError(f"{base} and {new} share no task and question id; nothing to compare")
    asked_in_sample = sorted(set(estimators or []) & set(in_sample))
    for est in asked_in_sample:
        cmp.warnings.append(f"{est} does not gate the exit code: in-sample ({in_sample[est]})")
    if estimators is not None:
        missing = sorted(set(estimators) - gated - set(in_sample))
        if missing:
            cmp.warnings.append(f"gating estimators not found in both runs: {', '.join(missing)}")
    cmp.gated_estimators = sorted(gated)
    cmp.in_sample = dict(sorted(in_sample.items()))
    return cmp


# ---------------------------------------------------------------------------------------------------
def _f(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def format_comparison(cmp: Comparison, changed_only: bool = False) -> str:
    """A plain-text report: accuracy table, metric table (``changed_only``: significant rows only), verdict."""
    level = f"{100 * (1 - cmp.alpha):g}%"
    lines = [f"capcal compare: BASE {cmp.base}  vs  NEW {cmp.new}",
             f"paired bootstrap: {cmp.n_boot} resamples, seed {cmp.seed}, {level} intervals; alpha = {cmp.alpha:g}", ""]
    lines += [f"warning: {w}" for w in cmp.warnings]
    if cmp.warnings:
        lines.append("")
    head = f"{'task':<12} {'n':>5} {'acc(r) base->new':>18} {'b/c':>9} {'McNemar p':>10} " \
           f"{'mean mu base->new':>19} {'diff [CI]':>28} {'Wilcoxon p':>11}  verdict"
    lines += ["Per-question correctness (designated sample: exact McNemar; mu: Wilcoxon signed-rank)", head]
    for a in cmp.accuracy:
        ci = f"{_f(a.mu_diff, True)} [{_f(a.mu_lo, True)}, {_f(a.mu_hi, True)}]"
        lines.append(f"{a.task:<12} {a.n_questions:>5} {a.base_accuracy:>8.3f} -> {a.new_accuracy:.3f} "
                     f"{f'{a.base_only}/{a.new_only}':>9} {a.mcnemar_p:>10.4g} {a.base_mu:>9.3f} -> {a.new_mu:.3f} "
                     f"{ci:>28} {a.wilcoxon_p:>11.4g}  {a.verdict}")
    lines += ["", "Metrics (diff = NEW - BASE)",
              f"{'task':<12} {'estimator':<16} {'metric':<14} {'base':>8} {'new':>8} {'diff [CI]':>30}  verdict"]
    rows = [c for c in cmp.changes if not changed_only or c.verdict in ("better", "worse")]
    for c in rows:
        ci = f"{_f(c.diff, True)} [{_f(c.lo, True)}, {_f(c.hi, True)}]"
        mark = " <-- regression" if c in cmp.regressions else ""
        lines.append(f"{c.task:<12} {c.estimator:<16} {metric_title(c.metric):<14} {_f(c.base):>8} "
                     f"{_f(c.new):>8} {ci:>30}  {c.verdict}{mark}")
    if changed_only and not rows:
        lines.append("(no significant change)")
    better = sum(c.verdict == "better" for c in cmp.changes)
    worse = sum(c.verdict == "worse" for c in cmp.changes)
    lines += ["", f"{better} metric(s) significantly better, {worse} significantly worse."]
    if cmp.regressions:
        where = ", ".join(f"{c.task}/{c.estimator}" for c in cmp.regressions)
        lines.append(f"REGRESSION: {metric_title(cmp.metric)} got significantly worse on {where} (exit 1)")
    else:
        lines.append(f"OK: no significant worsening of {metric_title(cmp.metric)} (exit 0)")
    return "\n".join(lines) + "\n"
