"""The leaderboard table, built from results documents (never from in-memory run state).

Rows are model x estimator; for every headline metric there is one column per task and one for the mean
over tasks. The renderers (:mod:`capcal.report.text`, :mod:`capcal.report.html`) only format this table.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CapcalError, UnknownNameError
from ..metric_catalogue import headline_defaults, is_known_metric, metric_names
from ..results import in_sample_reason, load_results

#: Headline metrics when the runs do not name a suite (the catalogue's headline defaults).
DEFAULT_METRICS = headline_defaults()
MEAN = "mean"
#: The mark of a row whose confidences are in-sample (fitted on the evaluated questions, or computed from the
#: samples that define mu); explained in "Failures and flags".
IN_SAMPLE_MARK = "†"


@dataclass(frozen=True)
class Cell:
    """One number of the table with its 95% bootstrap interval (``None`` where absent)."""

    value: float | None
    lo: float | None = None
    hi: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": None if self.lo is None or self.hi is None else [self.lo, self.hi]}


@dataclass
class Row:
    """One model x estimator row: ``cells[(task, metric)]``, with task ``"mean"`` for the mean over tasks."""

    model: str
    run: str
    estimator: str
    suite: str | None
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    #: per task (and ``"mean"``), the share of questions with a confidence (``None`` where absent)
    coverage: dict[str, float | None] = field(default_factory=dict)
    #: per task, why the row's confidences are in-sample (only the tasks where they are)
    in_sample: dict[str, str] = field(default_factory=dict)

    def cell(self, task: str, metric: str) -> Cell:
        return self.cells.get((task, metric), Cell(None))

    @property
    def label(self) -> str:
        """The estimator's name as shown, with :data:`IN_SAMPLE_MARK` when any task's row is in-sample."""
        return f"{self.estimator} {IN_SAMPLE_MARK}" if self.in_sample else self.estimator


@dataclass
class Leaderboard:
    """The table: ``tasks`` (column groups, in order), ``metrics`` (headline metrics), ``rows``.

    Attributes:
        runs: one summary per results document (run name, model, suite, created, capcal version, tasks).
        warnings: why the rows may not be comparable (mixed suites or versions); also printed by the CLI.
        notes: per run x task x estimator, what qualifies its numbers: failures (NaN share and reasons),
            verbalized parse rates, consistency samples that overlap the samples defining mu.
        flags: per run x task, what qualifies the targets (samples truncated at the token limit, empty
            replies), and the in-sample rows (marked :data:`IN_SAMPLE_MARK`); shown with the notes.
        routing: routing between runs of one suite by different models (weaker -> stronger), filled by
            :func:`load_leaderboard` from the run directories (see :mod:`capcal.report.decisions`).
        documents: the results documents the table was built from, in input order (the HTML plots use them).
    """

    tasks: list[str]
    metrics: list[str]
    rows: list[Row]
    runs: list[dict[str, Any]]
    warnings: list[str]
    documents: list[dict[str, Any]] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    routing: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def columns(self) -> list[str]:
        """Column groups: the tasks, then ``"mean"``."""
        return [*self.tasks, MEAN]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: tasks, metrics, runs, warnings and rows with ``{task: {metric: {value, ci}}}``."""
        return {
            "tasks": self.tasks, "metrics": self.metrics, "runs": self.runs, "warnings": self.warnings,
            "notes": self.notes, "flags": self.flags,
            "routing": [{k: v for k, v in pair.items() if k != "tasks"}
                        | {"tasks": {t: {k: v for k, v in e.items() if k != "curves"} for t, e in pair["tasks"].items()}}
                        for pair in self.routing],
            "rows": [{"model": r.model, "run": r.run, "estimator": r.estimator, "suite": r.suite,
                      "coverage": {t: r.coverage.get(t) for t in self.columns}, "in_sample": r.in_sample,
                      "cells": {t: {m: r.cell(t, m).to_dict() for m in self.metrics} for t in self.columns}}
                     for r in self.rows],
        }


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _cell(entry: Any) -> Cell:
    if not isinstance(entry, dict):
        return Cell(None)
    ci = entry.get("ci") or [None, None]
    return Cell(_num(entry.get("value")), _num(ci[0]), _num(ci[1]))


def mean_cell(cells: list[Cell]) -> Cell:
    """Mean over tasks of one metric, with an interval that treats the tasks as independent.

    Tasks hold disjoint questions, so their bootstrap estimates are independent. Each side of a task's
    95% percentile interval gives a standard error for that side (``(value - lo) / 1.96`` below,
    ``(hi - value) / 1.96`` above); the errors of a mean of T independent estimates add in quadrature, so

        lo = mean - sqrt(sum_t (value_t - lo_t)^2) / T,   hi = mean + sqrt(sum_t (hi_t - value_t)^2) / T.

    With one task this is exactly that task's interval; the bounds always lie within
    ``[mean(lo_t), mean(hi_t)]``, so they never leave the metric's range (a Brier score stays >= 0).

    Returns:
        ``Cell(None)`` when any task lacks the value (a mean over a subset would not be comparable); the
        interval is ``None`` when any task lacks one.
    """
    if not cells or any(c.value is None for c in cells):
        return Cell(None)
    mean = math.fsum(float(c.value) for c in cells) / len(cells)
    if len(cells) == 1:
        return cells[0]
    if any(c.lo is None or c.hi is None for c in cells):
        return Cell(mean)
    below = math.sqrt(math.fsum((float(c.value) - float(c.lo)) ** 2 for c in cells))
    above = math.sqrt(math.fsum((float(c.hi) - float(c.value)) ** 2 for c in cells))
    t = len(cells)
    return Cell(mean, mean - below / t, mean + above / t)


def _suite_label(doc: dict[str, Any]) -> str | None:
    suite = doc.get("suite")
    return f"{suite['name']}@{suite['version']}" if suite else None


def _headline(docs: list[dict[str, Any]]) -> list[str]:
    suites = {(d["suite"] or {}).get("name") for d in docs}
    if len(suites) == 1 and None not in suites:
        from ..suites import load_suite

        try:
            return load_suite(next(iter(suites))).headline_metrics
        except UnknownNameError:
            return list(DEFAULT_METRICS)
    return list(DEFAULT_METRICS)


def _warnings(docs: list[dict[str, Any]]) -> list[str]:
    labels = [_suite_label(d) for d in docs]
    out = []
    if len(set(labels)) > 1:
        shown = ", ".join(f"{d['run_name']}: {lab or 'no suite'}" for d, lab in zip(docs, labels, strict=True))
        out.append(f"runs come from different suites or suite versions, so rows are not comparable ({shown})")
    task_sets = {tuple(sorted(d["tasks"])) for d in docs}
    if len(task_sets) > 1:
        out.append("runs cover different tasks; the mean column is left empty for rows missing a task")
    return out


def check_metric_names(metrics: list[str]) -> None:
    """Raise a one-line error for the first name that is not a metric of the results schema.

    Args:
        metrics: metric names (``cc_brier``, ``passk_mse@4``, ...).

    Raises:
        CapcalError: naming the unknown metric, its close matches and every known name.
    """
    known = sorted(metric_names(include_families=False))
    for m in metrics:
        if not is_known_metric(m):
            close = difflib.get_close_matches(m, known, n=2)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            raise CapcalError(f"unknown metric {m!r} for the leaderboard{hint}; expected one of: "
                              f"{', '.join(known)}, passk_mse@K")


def build_leaderboard(documents: list[dict[str, Any]], metrics: list[str] | None = None) -> Leaderboard:
    """Build the leaderboard from validated results documents.

    Args:
        documents: results documents (see :func:`capcal.results.load_results`), one per run.
        metrics: headline metrics (columns); default: the suite's when every run has the same suite,
            else :data:`DEFAULT_METRICS`.

    Returns:
        The table; tasks are the union over the runs, sorted; rows ordered by model, run, then estimator.

    Raises:
        CapcalError: for no documents or an unknown metric name.
    """
    if not documents:
        raise CapcalError("no results to put on a leaderboard")
    metrics = list(metrics) if metrics else _headline(documents)
    check_metric_names(metrics)
    tasks = sorted({t for d in documents for t in d["tasks"]})
    model_ids = [d["model"]["model_id"] for d in documents]
    rows: list[Row] = []
    for doc, model_id in zip(documents, model_ids, strict=True):
        label = model_id if model_ids.count(model_id) == 1 else f"{model_id} ({doc['run_name']})"
        names = sorted({e for t in doc["tasks"].values() for e in t["estimators"]})
        for est in names:
            row = Row(model=label, run=doc["run_name"], estimator=est, suite=_suite_label(doc))
            answered = asked = 0
            for task in tasks:
                entry = doc["tasks"].get(task, {}).get("estimators", {}).get(est)
                for m in metrics:
                    row.cells[(task, m)] = _cell(entry["metrics"].get(m)) if entry else Cell(None)
                if entry:
                    cov = _coverage(entry)
                    row.coverage[task] = cov
                    if cov is not None and entry.get("n"):
                        answered, asked = answered + cov * entry["n"], asked + entry["n"]
                    # documents written before "in_sample" existed: the reason from the estimator's meta
                    why = entry.get("in_sample") or in_sample_reason(entry.get("meta") or {})
                    if why:
                        row.in_sample[task] = why
            row.coverage[MEAN] = answered / asked if asked and all(t in row.coverage for t in tasks) else None
            for m in metrics:
                row.cells[(MEAN, m)] = mean_cell([row.cell(t, m) for t in tasks])
            rows.append(row)
    rows.sort(key=lambda r: (r.model, r.run, r.estimator))
    runs = [{"run": d["run_name"], "model": d["model"]["model_id"], "backend": d["model"]["backend"],
             "suite": _suite_label(d), "created": d["created"], "capcal_version": d["capcal_version"],
             "tasks": sorted(d["tasks"])} for d in documents]
    flags = [f for d in documents for f in task_flags(d)]
    flags += [f"{r.run}/{task}/{r.estimator} {IN_SAMPLE_MARK}: in-sample, {why}; not comparable with "
              f"held-out estimators" for r in rows for task, why in sorted(r.in_sample.items())]
    return Leaderboard(tasks=tasks, metrics=metrics, rows=rows, runs=runs, warnings=_warnings(documents),
                       documents=list(documents), notes=[n for d in documents for n in estimator_notes(d)],
                       flags=flags)


def _coverage(entry: dict[str, Any]) -> float | None:
    """Share of questions with a confidence: ``coverage``, else ``1 - nan_rate`` (older documents)."""
    cov = _num(entry.get("coverage"))
    if cov is None and _num(entry.get("nan_rate")) is not None:
        cov = 1.0 - float(entry["nan_rate"])
    return cov


def _share(rate: float, total: int | None) -> str:
    return f"{round(rate * total)} of {total} samples ({rate:.1%})" if total else f"{rate:.1%} of the samples"


def task_flags(doc: dict[str, Any]) -> list[str]:
    """One line per task of a results document whose samples were truncated or empty.

    ``"run/task: 12 of 80 samples (15.0%) stopped at the token limit (graded incorrect, reason truncated);
    3 of 80 (3.8%) are empty replies"``; tasks with neither are left out.
    """
    out = []
    for name, task in sorted(doc["tasks"].items()):
        trunc, empty = _num(task.get("truncation_rate")), _num(task.get("empty_rate"))
        total = sum((task.get("finish_reasons") or {}).values()) or None
        parts = []
        if trunc:
            parts.append(f"{_share(trunc, total)} stopped at the token limit (truncation rate {trunc:.3g}; "
                         "graded incorrect, reason truncated, unless --grade-truncated)")
        if empty:
            parts.append(f"{_share(empty, total)} are empty replies (empty-reply rate {empty:.3g}; graded incorrect)")
        if parts:
            out.append(f"{doc['run_name']}/{name}: " + "; ".join(parts))
    return out


def estimator_notes(doc: dict[str, Any]) -> list[str]:
    """One line per estimator of one results document whose numbers need a qualifier.

    ``"run/task/name: failed on 3 of 8 questions (unparseable reply: 3); reply parse rate 0.625 (first try
    0.25)"``; ``"...: computed from the samples that define mu"`` (oracles by design; consistency when it
    reuses the stored samples). Estimators with nothing to say are left out.
    """
    out = []
    for task_name, task in sorted(doc["tasks"].items()):
        for name, est in sorted(task["estimators"].items()):
            parts = []
            if est.get("n_nan"):
                reasons = ", ".join(f"{why}: {k}" for why, k in sorted((est.get("failure_reasons") or {}).items()))
                parts.append(f"failed on {est['n_nan']} of {est['n']} questions" + (f" ({reasons})" if reasons else ""))
            meta = est.get("meta") or {}
            if meta.get("parse_rate") is not None:  # estimators that parse model replies report it
                final = meta.get("final_parse_rate", meta["parse_rate"])
                parts.append(f"reply parse rate {final:.3g}"
                             + (f" (first try {meta['parse_rate']:.3g})" if final != meta["parse_rate"] else ""))
            if meta.get("samples_overlap_mu"):
                parts.append("computed from the samples that define mu")
            if parts:
                out.append(f"{doc['run_name']}/{task_name}/{name}: " + "; ".join(parts))
    return out


def load_leaderboard(paths: list[str | Path], metrics: list[str] | None = None) -> Leaderboard:
    """Read ``results.json`` of each run directory (or file) and build the leaderboard.

    When runs of one suite come from different models, the routing section (:attr:`Leaderboard.routing`)
    pairs them, computed from the run directories (:mod:`capcal.report.decisions`).
    """
    from .decisions import leaderboard_routing

    docs = [load_results(p) for p in paths]
    lb = build_leaderboard(docs, metrics)
    lb.routing, notes = leaderboard_routing(list(paths), docs)
    lb.notes.extend(notes)
    return lb
