"""The HTML leaderboard: one self-contained file (inline CSS, inline SVG plots, a few lines of inline
JavaScript for sortable columns); it needs no network and no other file to be viewed."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from ..metric_catalogue import ROUTING_HEADLINE_SCORES as HEADLINE_SCORES
from .plots import budget_svg, passk_svg, reliability_svg, risk_coverage_svg, routing_svg
from .table import IN_SAMPLE_MARK, MEAN, Cell, Leaderboard
from .text import fmt_coverage, fmt_value, header_title

_HERE = Path(__file__).resolve().parent


def _asset(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


def _td(cell: Cell) -> str:
    if cell.value is None:
        return '<td data-value="">–</td>'
    ci = "" if cell.lo is None or cell.hi is None else \
        f"<br><small>[{fmt_value(cell.lo)}, {fmt_value(cell.hi)}]</small>"
    return f'<td data-value="{cell.value!r}">{fmt_value(cell.value)}{ci}</td>'


def _name_td(text: str) -> str:
    return f'<td class="name" data-value="{escape(text)}">{escape(text)}</td>'


def _estimator_td(row) -> str:
    """The estimator's name; an in-sample row carries the mark and says why in its tooltip."""
    if not row.in_sample:
        return _name_td(row.estimator)
    why = "; ".join(f"{t}: {w}" for t, w in sorted(row.in_sample.items()))
    return (f'<td class="name in-sample" data-value="{escape(row.estimator)}" title="in-sample: {escape(why)}">'
            f'{escape(row.estimator)} <span class="mark">{IN_SAMPLE_MARK}</span></td>')


def _coverage_td(value: float | None) -> str:
    return f'<td data-value="{"" if value is None else repr(value)}">{fmt_coverage(value)}</td>'


def _table(lb: Leaderboard, table_id: str, columns: list[tuple[str, str, str]], coverage: bool = False) -> str:
    """A sortable table; ``columns`` are ``(header, task, metric)``; ``coverage`` adds the Coverage column
    (of the mean over tasks)."""
    head = '<th class="name">Model</th><th class="name">Estimator</th>' + \
        ("<th>Coverage</th>" if coverage else "") + "".join(f"<th>{escape(h)}</th>" for h, _, _ in columns)
    body = "".join(
        "<tr" + (' class="in-sample"' if r.in_sample else "") + ">" + _name_td(r.model) + _estimator_td(r)
        + (_coverage_td(r.coverage.get(MEAN)) if coverage else "")
        + "".join(_td(r.cell(t, m)) for _, t, m in columns) + "</tr>" for r in lb.rows)
    return (f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _plots(lb: Leaderboard) -> str:
    out = []
    for doc in lb.documents:
        model = doc["model"]["model_id"]
        for task_name, task in sorted(doc["tasks"].items()):
            if not task["estimators"]:
                continue
            where = f"{model} · {task_name}"
            rates = ", ".join(
                f"{escape(n)}: {fmt_value(e['nan_rate'])} failed" for n, e in sorted(task["estimators"].items())
                if e["nan_rate"])
            out.append(
                f'<section class="task-plots" data-run="{escape(doc["run_name"])}" data-task="{escape(task_name)}">'
                f"<h3>{escape(where)} <span class=\"meta\">(run {escape(doc['run_name'])}, "
                f"{task['n_questions']} questions, n = {task['n_samples']['max']}, "
                f"mean mu = {fmt_value(task['mean_mu'])})</span></h3>"
                + (f'<p class="meta">estimator failures: {rates}</p>' if rates else "")
                + '<div class="plots">'
                + reliability_svg(task, "cc", f"Reliability vs capability (mu), {task_name}")
                + reliability_svg(task, "rc", f"Reliability vs response (r), {task_name}")
                + passk_svg(task, f"pass@k: predicted vs actual, {task_name}")
                + budget_svg(task, f"Budget allocation, {task_name}")
                + "</div></section>")
    return "".join(out)


ROUTING_SCORES = tuple((k, f"{t} ↑") for k, t in HEADLINE_SCORES.items())


def _image(svg: str, title: str) -> str:
    """A decision plot as an ``<img>`` holding its SVG as a data URI: self-contained (no file, no network),
    drawn without JavaScript, and kept apart from the inline calibration plots."""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (f'<img class="decision-chart" alt="{escape(title)}" title="{escape(title)}" width="470" height="300" '
            f'src="data:image/svg+xml;base64,{data}">')


def _score_td(entry: dict | None) -> str:
    if not entry:
        return _td(Cell(None))
    lo, hi = entry.get("ci") or [None, None]
    return _td(Cell(entry.get("value"), lo, hi))


def _routing(lb: Leaderboard) -> str:
    """The routing table (one row per pair x task x estimator) and, per pair and task, the routing plot."""
    if not lb.routing:
        return ""
    head = ('<th class="name">Small → large</th><th class="name">Task</th><th class="name">Estimator</th>'
            + "".join(f"<th>{escape(t)}</th>" for _, t in ROUTING_SCORES))
    body, plots = [], []
    for pair in lb.routing:
        label = f"{pair['small_model']} → {pair['large_model']}"
        for task_name, entry in sorted(pair["tasks"].items()):
            for name, sc in list(entry["scores"].items()) + list(entry["baselines"].items()):
                body.append("<tr>" + _name_td(label) + _name_td(task_name) + _name_td(name)
                            + "".join(_score_td(sc.get(k)) for k, _ in ROUTING_SCORES) + "</tr>")
            ratio = "unknown" if entry["cost_ratio"] is None else fmt_value(entry["cost_ratio"])
            plots.append(
                f'<section class="routing-plots" data-small="{escape(pair["small"])}" '
                f'data-large="{escape(pair["large"])}" data-task="{escape(task_name)}">'
                f"<h3>{escape(label)} · {escape(task_name)} <span class=\"meta\">({entry['n_shared']} shared "
                f"questions, mean mu {fmt_value(entry['mean_mu'][0])} → {fmt_value(entry['mean_mu'][-1])}, "
                f"cost ratio {escape(ratio)})</span></h3><div class=\"plots\">"
                + _image(routing_svg(entry, f"Routing {pair['small']} → {pair['large']}, {task_name}"),
                         f"Routing {pair['small']} → {pair['large']}, {task_name}")
                + "</div></section>")
    return ("<h2>Routing</h2><p class=\"meta\">Question i goes to the large model when the small model's "
            "confidence p_i &lt; t; gain captured: random = 0, oracle = 1 (area between the accuracy-vs-routed "
            "curve and the random line, over the oracle's). Rows <code>large:NAME</code> route by the large "
            "model's own confidence instead.</p>"
            f'<table class="sortable" id="routing"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
            "</tbody></table>" + "".join(plots))


def _selective_plots(lb: Leaderboard) -> str:
    """Per run and task, risk against coverage for both targets (selective prediction)."""
    out = []
    for doc in lb.documents:
        model = doc["model"]["model_id"]
        for task_name, task in sorted(doc["tasks"].items()):
            if not any(e.get("selective_curve") for e in task["estimators"].values()):
                continue
            out.append(
                f'<section class="selective-plots" data-run="{escape(doc["run_name"])}" '
                f'data-task="{escape(task_name)}"><h3>{escape(model)} · {escape(task_name)}</h3><div class="plots">'
                + _image(risk_coverage_svg(task, "cc", f"Risk vs coverage (capability mu), {task_name}"),
                         f"Risk vs coverage (capability mu), {task_name}")
                + _image(risk_coverage_svg(task, "rc", f"Risk vs coverage (response r), {task_name}"),
                         f"Risk vs coverage (response r), {task_name}")
                + "</div></section>")
    if not out:
        return ""
    return ("<h2>Selective prediction</h2><p class=\"meta\">Answer only the most confident questions: risk = "
            "1 - mean target of the kept ones (AURC: the area under this curve; PRR: its gain over random as a "
            "share of the oracle's).</p>" + "".join(out))


def _notes(lb: Leaderboard) -> str:
    if not lb.notes and not lb.flags:
        return ""
    items = "".join(f"<li>{escape(n)}</li>" for n in lb.notes + lb.flags)
    legend = (f'<p class="meta">{IN_SAMPLE_MARK} in-sample row: its confidences were fitted on the evaluated '
              "questions or computed from the samples that define mu; <code>capcal compare</code> never gates "
              "on it.</p>") if any(r.in_sample for r in lb.rows) else ""
    return f'<h2>Failures and flags</h2><ul class="notes">{items}</ul>{legend}'


def to_html(lb: Leaderboard, title: str = "capcal leaderboard") -> str:
    """Render the leaderboard as one self-contained HTML page.

    Sections: runs and warnings; a sortable table of the mean over tasks; one sortable table per headline
    metric (columns = tasks and mean); failures and flags (:attr:`Leaderboard.notes`); per run and task, reliability diagrams against both targets, the
    pass@k curves (predicted band vs actual) and the budget curves (greedy vs uniform vs oracle); risk against
    coverage for both targets (selective prediction); when runs of one suite pair different models, the
    routing table and the routing curves (accuracy vs fraction routed, with random and oracle).
    Cells carry ``data-value`` with the full-precision number that sorting uses (missing values sort last).
    """
    runs = "".join(
        f"<li>run <code>{escape(r['run'])}</code>: model <code>{escape(r['model'])}</code> "
        f"({escape(r['backend'])}), suite {escape(r['suite'] or 'none')}, tasks {escape(', '.join(r['tasks']))}, "
        f"created {escape(r['created'])}, capcal {escape(r['capcal_version'])}</li>" for r in lb.runs)
    warnings = "".join(f'<p class="warning">warning: {escape(w)}</p>' for w in lb.warnings)
    summary_title = "Mean over tasks" if len(lb.tasks) > 1 else f"Task {lb.tasks[0]}" if lb.tasks else "Mean"
    parts = [f"<h2>{escape(summary_title)}</h2>",
             _table(lb, "summary", [(header_title(m), MEAN, m) for m in lb.metrics], coverage=True)]
    if len(lb.tasks) > 1:
        for i, m in enumerate(lb.metrics):
            parts.append(f"<h2>{escape(header_title(m))} per task</h2>")
            parts.append(_table(lb, f"metric-{i}", [(t, t, m) for t in lb.columns]))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_asset('report.css')}</style></head><body>"
        f"<h1>{escape(title)}</h1><ul class=\"meta\">{runs}</ul>{warnings}"
        "<p class=\"meta\">Cells: value [95% paired-bootstrap interval]; ↓ lower is better, ↑ higher is better. "
        "Click a column header to sort.</p>"
        + "".join(parts) + _notes(lb) + "<h2>Plots</h2>" + _plots(lb) + _selective_plots(lb) + _routing(lb)
        + f"<script>{_asset('sort.js')}</script></body></html>\n")
