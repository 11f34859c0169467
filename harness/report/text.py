"""Text renderers of the leaderboard: Markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json

from ..metric_catalogue import ROUTING_HEADLINE_SCORES as HEADLINE_SCORES
from ..metric_catalogue import metric_direction, metric_title
from .table import IN_SAMPLE_MARK, MEAN, Cell, Leaderboard


def fmt_value(value: float | None) -> str:
    """A number for a table: 3 decimals, scientific below 0.01 in magnitude; ``""`` for ``None``.

    Magnitudes below 1e-12 (floating-point noise of an exact zero, e.g. the ECE of a constant) print as 0.
    """
    if value is None:
        return ""
    if abs(value) < 1e-12 or abs(value) >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2e}"


def fmt_cell(cell: Cell) -> str:
    """``"0.123 [0.101, 0.145]"``, the value alone without an interval, ``"–"`` when absent."""
    if cell.value is None:
        return "–"
    if cell.lo is None or cell.hi is None:
        return fmt_value(cell.value)
    return f"{fmt_value(cell.value)} [{fmt_value(cell.lo)}, {fmt_value(cell.hi)}]"


def header_title(metric: str) -> str:
    """Metric title with an arrow saying which way is better (``"CC-Brier ↓"``)."""
    arrow = {1: " ↑", -1: " ↓"}.get(metric_direction(metric), "")
    return metric_title(metric) + arrow


def fmt_coverage(value: float | None) -> str:
    """Coverage as a percentage (``"95.0%"``), ``"–"`` when absent."""
    return "–" if value is None else f"{100 * value:.1f}%"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _task_summary(lb: Leaderboard) -> list[str]:
    """Markdown lines: per run and task, the questions, samples per question, mean mu and mean mu(1 - mu)
    (the RC-minus-CC Brier gap every estimator shares)."""
    rows = [_md_row([f"`{doc['run_name']}`", name, str(t["n_questions"]), str(t["n_samples"]["max"]),
                     fmt_value(t["mean_mu"]) or "–", fmt_value(t.get("bernoulli_variance")) or "–"])
            for doc in lb.documents for name, t in sorted(doc["tasks"].items())]
    if not rows:
        return []
    head = ["Run", "Task", "Questions", "n", "mean mu", "mean mu(1-mu)"]
    return [_md_row(head), _md_row(["---"] * len(head)), *rows, ""]


def _score_cell(entry: dict | None) -> str:
    if not entry:
        return "–"
    lo, hi = entry.get("ci") or [None, None]
    return fmt_cell(Cell(entry.get("value"), lo, hi))


def _routing_md(lb: Leaderboard) -> list[str]:
    """Markdown lines of the routing section: one row per pair x task x estimator (and baseline)."""
    if not lb.routing:
        return []
    head = ["Small → large", "Task", "Estimator"] + [f"{t} ↑" for t in HEADLINE_SCORES.values()] + ["Cost ratio"]
    out = ["", "## Routing", "",
           "Question i goes to the large model when the small model's confidence p_i < t (t = 0.5 for the "
           "decision accuracy); gain captured: random = 0, oracle = 1. `large:NAME` rows route by the large "
           "model's own confidence.", "", _md_row(head), _md_row(["---"] * len(head))]
    for pair in lb.routing:
        label = f"{pair['small_model']} → {pair['large_model']}"
        for task, entry in sorted(pair["tasks"].items()):
            ratio = "–" if entry["cost_ratio"] is None else f"{entry['cost_ratio']:.3g}"
            for name, sc in list(entry["scores"].items()) + list(entry["baselines"].items()):
                out.append(_md_row([label, task, name] + [_score_cell(sc.get(k)) for k in HEADLINE_SCORES]
                                   + [ratio]))
    return out


def to_markdown(lb: Leaderboard) -> str:
    """Markdown: the runs, any warnings, a table of the mean over tasks, then one table per metric.

    Each cell is ``value [lo, hi]`` (95% paired-bootstrap interval); ``–`` marks a missing value. The first
    table has a Coverage column (share of questions with a confidence); rows marked ``†`` are in-sample
    (explained under "Failures and flags").
    """
    out = ["# capcal leaderboard", ""]
    for run in lb.runs:
        out.append(f"- run `{run['run']}`: model `{run['model']}` ({run['backend']}), "
                   f"suite {run['suite'] or 'none'}, tasks {', '.join(run['tasks'])}, created {run['created']}")
    out.append("")
    out += _task_summary(lb)
    for w in lb.warnings:
        out += [f"> **warning:** {w}", ""]
    head = ["Model", "Estimator"]
    title = "Mean over tasks" if len(lb.tasks) > 1 else f"Task {lb.tasks[0]}" if lb.tasks else "Mean"
    out += [f"## {title}", "", _md_row(head + ["Coverage"] + [header_title(m) for m in lb.metrics]),
            _md_row(["---"] * (len(head) + 1 + len(lb.metrics)))]
    out += [_md_row([r.model, r.label, fmt_coverage(r.coverage.get(MEAN))]
                    + [fmt_cell(r.cell(MEAN, m)) for m in lb.metrics]) for r in lb.rows]
    if len(lb.tasks) > 1:
        for m in lb.metrics:
            out += ["", f"## {header_title(m)}", "", _md_row(head + lb.columns),
                    _md_row(["---"] * (len(head) + len(lb.columns)))]
            out += [_md_row([r.model, r.label] + [fmt_cell(r.cell(t, m)) for t in lb.columns])
                    for r in lb.rows]
    out += _routing_md(lb)
    if lb.notes or lb.flags:
        out += ["", "## Failures and flags", ""] + [f"- {n}" for n in lb.notes + lb.flags]
        if any(r.in_sample for r in lb.rows):
            out += ["", f"{IN_SAMPLE_MARK} in-sample row: its confidences were fitted on the evaluated questions or "
                        "computed from the samples that define mu; `capcal compare` never gates on it."]
    return "\n".join(out) + "\n"


def csv_header(lb: Leaderboard) -> list[str]:
    """CSV columns: model, run, estimator, suite, in_sample, then per task (and mean) ``task.coverage``,
    ``task.metric``, ``task.metric.lo``, ``task.metric.hi``."""
    cols = ["model", "run", "estimator", "suite", "in_sample"]
    for t in lb.columns:
        cols.append(f"{t}.coverage")
        for m in lb.metrics:
            cols += [f"{t}.{m}", f"{t}.{m}.lo", f"{t}.{m}.hi"]
    return cols


def to_csv(lb: Leaderboard) -> str:
    """CSV, one line per model x estimator; numbers at full precision, empty where absent."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_header(lb))
    for r in lb.rows:
        line = [r.model, r.run, r.estimator, r.suite or "", "true" if r.in_sample else "false"]
        for t in lb.columns:
            cov = r.coverage.get(t)
            line.append("" if cov is None else repr(cov))
            for m in lb.metrics:
                c = r.cell(t, m)
                line += ["" if v is None else repr(v) for v in (c.value, c.lo, c.hi)]
        writer.writerow(line)
    return buf.getvalue()


def to_json(lb: Leaderboard) -> str:
    """JSON form of :meth:`Leaderboard.to_dict` (indented, NaN-free)."""
    return json.dumps(lb.to_dict(), indent=1, allow_nan=False) + "\n"
