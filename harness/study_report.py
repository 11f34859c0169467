"""The study's report: ``docs/study.md`` and its SVG figures, generated from the run summaries alone.

:func:`write_report` reads every ``*.json`` summary of a folder (written by :func:`capcal.study.run_study`),
computes the study's questions with :mod:`capcal.study_stats` and writes the Markdown document plus one
SVG file per figure. Nothing is sampled and nothing depends on the clock, so the same summaries always
give byte-identical files (a test regenerates the committed report and compares).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .report.plots import budget_svg, estimator_colors, passk_svg, reliability_svg
from .report.svg import Chart

TASK_ORDER = ("mmlu", "gpqa", "triviaqa", "simpleqa", "gsm8k", "math500", "aime25")
ORACLES = ("oracle_cc", "oracle_rc")
#: Estimators drawn in the figures (the oracle_rc line would only trace the diagonal's ends).
PLOT_EXCLUDE = ("oracle_rc",)
N_BOOT = 1000
SEED = 0
MIN_VALID = 0.5  # an estimator enters the study's questions when it gave a confidence on >= half the questions


# -- loading --------------------------------------------------------------------------------------------
def load_summaries(folder: str | Path) -> list[dict[str, Any]]:
    """Every summary of ``folder``, ordered by model size, then task (see :data:`TASK_ORDER`)."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(folder).glob("*.json"))]
    return sorted(docs, key=lambda d: (d.get("size_b") or math.inf, d["model"], _task_rank(d["task"])))


def _task_rank(task: str) -> tuple[int, str]:
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


def arrays(summary: dict[str, Any]) -> dict[str, Any]:
    """Per-question arrays of a summary: ``n``, ``c``, ``mu``, ``r`` and ``{estimator: confidences}``."""
    labels = summary["questions"]["labels"]
    designated = np.asarray(summary["questions"]["designated"], dtype=np.int64)
    n = np.array([len(s) for s in labels], dtype=np.int64)
    c = np.array([s.count("1") for s in labels], dtype=np.int64)
    r = np.array([float(s[d]) for s, d in zip(labels, designated, strict=True)])
    conf = {k: np.array([np.nan if v is None else v for v in vals], dtype=float)
            for k, vals in summary["confidences"].items()}
    return {"n": n, "c": c, "mu": c / n, "r": r, "conf": conf}


# -- formatting -----------------------------------------------------------------------------------------
def _f(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def _ci(m: dict[str, Any] | None, digits: int = 3) -> str:
    if not m or m.get("value") is None:
        return "n/a"
    lo, hi = (m.get("ci") or [None, None])[:2]
    return f"{_f(m['value'], digits)} [{_f(lo, digits)}, {_f(hi, digits)}]"


def _pm(value: float, ci: Iterable[float], digits: int = 3) -> str:
    lo, hi = list(ci)[:2]
    return f"{value:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def _minutes(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min" if seconds >= 3600 else \
        f"{seconds // 60} min {seconds % 60:02d} s"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def _cell(s: dict[str, Any]) -> str:
    return f"{s['title']} / {s['task']}"


def _point_rows(runs: list[dict[str, Any]], key: str, cells) -> list[list[str]]:
    """Table rows ``[model / task, estimator, *cells(point)]`` over every run's ``key`` points per estimator."""
    return [[_cell(r["summary"]), name, *cells(pt)]
            for r in runs for name, pts in sorted(r[key].items()) for pt in pts]


def _fig_name(s: dict[str, Any], kind: str) -> str:
    return f"{s['model']}__{s['task']}__{kind}.svg"


# -- the study's questions ------------------------------------------------------------------------------
def candidates(s: dict[str, Any], a: dict[str, Any]) -> dict[str, np.ndarray]:
    """The estimators that enter the study's questions: not the oracles, confidences on >= half the questions."""
    return {k: v for k, v in sorted(a["conf"].items())
            if k not in ORACLES and np.isfinite(v).mean() >= MIN_VALID}


def constant_of(a: dict[str, Any]) -> tuple[np.ndarray, str]:
    """The constant baseline: the ``constant`` estimator (training split's mean mu) when it answered every
    question, else the evaluation split's own mean mu (an in-sample constant, flagged)."""
    const = a["conf"].get("constant")
    if const is not None and np.isfinite(const).all():
        return const, "constant (training split's mean mu)"
    return np.full(a["mu"].shape, float(a["mu"].mean())), "the evaluation split's own mean mu (in-sample)"


def study_questions(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Compute the study's questions for every (model, task) run: best-estimator disagreement, pass@k
    against a constant, budget saved, overconfidence."""
    from .study_stats import best_estimator_disagreement, budget_saved, overconfidence, passk_vs_constant

    out = []
    for s in summaries:
        a = arrays(s)
        cands = candidates(s, a)
        const, const_label = constant_of(a)
        kmax = int(a["n"].min())
        ks = sorted({k for k in (1, 4, kmax) if k <= kmax})
        budgets = [b for b in (1, 2, 4, 8) if b <= kmax // 2]
        row = {"summary": s, "arrays": a, "constant_label": const_label,
               "disagreement": (best_estimator_disagreement(cands, a["mu"], a["r"], n_boot=N_BOOT, seed=SEED)
                                if len(cands) >= 2 else None),
               "passk": {k: passk_vs_constant(v, const, a["n"], a["c"], ks=ks, n_boot=N_BOOT, seed=SEED)
                         for k, v in cands.items() if k != "constant"},
               "budget": {k: budget_saved(v, a["n"], a["c"], budgets=budgets) for k, v in cands.items()},
               "overconfidence": {k: overconfidence(v, a["mu"], n_boot=N_BOOT, seed=SEED) for k, v in cands.items()}}
        out.append(row)
    return {"runs": out}


# -- figures --------------------------------------------------------------------------------------------
def _plot_task(s: dict[str, Any]) -> dict[str, Any]:
    entry = dict(s["results"])
    entry["estimators"] = {k: v for k, v in entry["estimators"].items() if k not in PLOT_EXCLUDE}
    return entry


def mu_vs_r_svg(s: dict[str, Any], a: dict[str, Any], title: str) -> str:
    """Per-question mu against the response target: for r = 1 and r = 0, the share of those questions at
    each value of mu = c / n (how far one designated sample is from the question's capability)."""
    k = int(a["n"].max())
    grid = [j / k for j in range(k + 1)]
    chart = Chart(title=title, xlabel="per-question mu = c / n", ylabel="share of questions", xlim=(0, 1),
                  ylim=(0, 1))
    for rv, color, label in ((1.0, "#59a14f", "designated sample correct (r = 1)"),
                             (0.0, "#e15759", "designated sample wrong (r = 0)")):
        sel = a["r"] == rv
        cnt = np.array([np.sum(np.isclose(a["mu"][sel], g)) for g in grid], dtype=float)
        share = cnt / max(sel.sum(), 1)
        chart.line(grid, share.tolist(), color, label=f"{label}, {int(sel.sum())} q")
    return chart.to_svg()


def overconfidence_svg(task: str, runs: list[dict[str, Any]], title: str) -> str | None:
    """Mean confidence minus mean mu against model size (billions of parameters, log axis), per estimator."""
    runs = [r for r in runs if r["summary"]["task"] == task and r["summary"].get("size_b")]
    if len(runs) < 1:
        return None
    names = sorted({k for r in runs for k in r["overconfidence"] if k != "constant"})
    sizes = [r["summary"]["size_b"] for r in runs]
    gaps = [r["overconfidence"][k]["gap"] for r in runs for k in names if k in r["overconfidence"]]
    lo = min([0.0] + gaps)
    hi = max([0.0] + gaps)
    pad = 0.05 * max(hi - lo, 0.1)
    chart = Chart(title=title, xlabel="model size (billion parameters)", ylabel="mean confidence - mean mu",
                  xlim=(min(sizes) / 1.3, max(sizes) * 1.3), ylim=(lo - pad, hi + pad), logx=True)
    chart.line([min(sizes) / 1.3, max(sizes) * 1.3], [0.0, 0.0], "#888", label="calibrated on average", dash="4 3",
               width=1, markers=False)
    colors = estimator_colors(names)
    for name in names:
        pts = [(r["summary"]["size_b"], r["overconfidence"][name]["gap"]) for r in runs if name in r["overconfidence"]]
        chart.line([p[0] for p in pts], [p[1] for p in pts], colors[name], label=name)
    return chart.to_svg()


# -- the document ---------------------------------------------------------------------------------------
METRICS = (("cc_brier", "CC-Brier ↓"), ("rc_brier", "RC-Brier ↓"), ("cc_ece", "CC-ECE ↓"), ("auroc", "AUROC ↑"))


def _parse_cell(meta: dict[str, Any]) -> str:
    """``first try (after retries)`` from an estimator's meta, the first alone when equal, ``-`` without one."""
    first, final = meta.get("parse_rate"), meta.get("final_parse_rate")
    if first is None:
        return "-"
    return _f(first) if final in (None, first) else f"{_f(first)} ({_f(final)})"


def _est_rows(s: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, est in sorted(s["results"]["estimators"].items()):
        m = est.get("metrics") or {}
        rows.append([name] + [_ci(m.get(key)) for key, _ in METRICS]
                    + [_f(est.get("nan_rate")), _parse_cell(est.get("meta") or {})])
    for name, why in sorted((s.get("skipped_estimators") or {}).items()):
        rows.append([name] + ["skipped"] * len(METRICS) + ["-", why])
    return rows


def forced_format_section(summaries: list[dict[str, Any]]) -> list[str]:
    """The free and the grammar-forced parse rates side by side, for every run that drew both.

    Answer rates are over samples (``answer_parse_rates`` of the summary, from the run's
    ``forced_format.json``); verbalized rates are over questions, at the first reply and after the
    estimator's retries. Runs without a forced copy (``--forced-format off``) are left out; no run with
    both gives no section.
    """
    rows = []
    for s in summaries:
        rates = s.get("answer_parse_rates") or {}
        free, forced = rates.get("free"), rates.get("forced")
        if not free or not forced:
            continue
        ests = s["results"]["estimators"]
        rows.append([_cell(s), str(free.get("n_samples")), _f(free.get("answer_parse_rate")),
                     _f(forced.get("answer_parse_rate")), _f(free.get("accuracy")), _f(forced.get("accuracy")),
                     *(_parse_cell((ests.get(name) or {}).get("meta") or {})
                       for name in ("verbalized", "verbalized:forced=true"))])
    if not rows:
        return []
    return ["### Does a forced answer format parse better?", "",
            "The final answer line decoded free and under a grammar (`--forced-format both`: the same prompts "
            "and seeds, the reasoning free in both; [forced-formats.md](forced-formats.md)). Answer parse "
            "rates are over samples; verbalized parse rates are over questions, at the first reply and, in "
            "parentheses, after the estimator's retries. Free samples define mu everywhere else in this "
            "report.", ""] + _table(
        ["model / task", "samples", "answer parse free", "answer parse forced", "accuracy free",
         "accuracy forced", "verbalized parse free", "verbalized parse forced"], rows)


def render(summaries: list[dict[str, Any]], fig_dir_name: str = "study") -> tuple[str, dict[str, str]]:
    """The Markdown text and ``{file name: SVG}`` of the report.

    Args:
        summaries: from :func:`load_summaries`.
        fig_dir_name: the figures' folder, relative to the document.
    """
    figs: dict[str, str] = {}
    q = study_questions(summaries)
    runs = q["runs"]
    models = list(dict.fromkeys(s["title"] for s in summaries))
    tasks = sorted({s["task"] for s in summaries}, key=_task_rank)
    total_wall = sum(s.get("wall_s") or 0.0 for s in summaries)
    commands = sorted({s.get("command") or "" for s in summaries})
    L: list[str] = []
    L += ["# A calibration study anyone can reproduce offline", "",
          "<!-- Generated by `capcal study` (capcal.study_report) from the run summaries in "
          f"`docs/{fig_dir_name}/runs/`; do not edit by hand: `capcal study --report-only` rewrites it. -->", "",
          f"Models: {', '.join(models)}. Tasks: {', '.join(tasks)}. Every model answers the same questions "
          "(the first questions of each task's evaluation split) with the same seeds, k samples per question "
          "at temperature 1.0, untruncated (top_p 1, top_k 0, min_p 0). Definitions of every number: "
          "[metrics.md](metrics.md). The intervals are 95 % paired-bootstrap percentile intervals over "
          f"questions ({N_BOOT} resamples, seed {SEED}).", ""]
    # -- how it was run
    L += ["## How it was run", ""]
    L += ["Command" + ("s" if len(commands) > 1 else "") + ":", "", "```bash"] + commands + ["```", ""]
    L += [f"Total wall time: **{_minutes(total_wall)}** on the machine that produced the summaries "
          "(2 shared CPU cores, no GPU). Each run resumes through its own sample store: an interrupted "
          "study, run again, draws only the samples it lacks (the column *samples drawn* lists each "
          "invocation).", ""]
    rows = []
    for s in summaries:
        inv = s.get("invocations") or []
        rows.append([s["title"], s["task"], f"{s['n_questions']} x k={s['k']}", str(s.get("backend")),
                     _minutes(s.get("wall_s") or 0.0), " + ".join(str(i.get("samples_drawn")) for i in inv) or "-"])
    L += _table(["model", "task", "questions x samples", "backend", "wall time", "samples drawn"], rows)
    # -- the questions
    L += ["## The questions", ""]
    L += ["### Do the two targets pick different estimators?", "",
          "The best estimator by CC-Brier (against mu) and by RC-Brier (against one designated sample's "
          "correctness r), among the non-oracle estimators that gave a confidence on at least half the "
          "questions. *Disagree (bootstrap)* is the share of paired bootstrap resamples of the questions in "
          "which the two choices differ.", ""]
    rows = []
    for r in runs:
        d = r["disagreement"]
        if d is None:
            continue
        rows.append([_cell(r["summary"]), d["best_cc"], d["best_rc"], "yes" if d["disagree"] else "no",
                     _f(d["disagree_rate"], 2)])
    L += _table(["model / task", "best by CC-Brier", "best by RC-Brier", "differ on the data", "disagree (bootstrap)"],
                rows)
    L += ["### Does one confidence per question predict pass@k better than a constant?", "",
          "Instance-level MSE of the predicted pass@k, 1 - (1 - p)^k, against the unbiased pass@k of each "
          "question's samples, minus the same MSE of the constant baseline; negative favours the confidence. "
          "*Verdict*: better / worse when the paired-bootstrap interval excludes 0, else *can't tell*.", ""]
    rows = _point_rows(runs, "passk", lambda pt: [
        str(pt["k"]), _f(pt["mse"], 4), _f(pt["mse_constant"], 4), _pm(pt["diff"], pt["ci"], 4),
        "better" if pt["ci"][1] < 0 else ("worse" if pt["ci"][0] > 0 else "can't tell")])
    L += _table(["model / task", "estimator", "k", "MSE", "MSE constant", "difference [CI]", "verdict"], rows)
    consts = sorted({r["constant_label"] for r in runs})
    L += ["The constant is " + "; ".join(f"{c}" for c in consts) + ".", ""]
    L += ["### How much of the budget does confidence-guided allocation save?", "",
          "Uniform gives every question B samples; the greedy allocation by a confidence gets the smallest total "
          "budget that reaches uniform's expected solve rate (evaluated exactly from each question's samples). "
          "*Saved* = 1 - needed / B; negative means the allocation needs more than uniform.", ""]
    rows = _point_rows(runs, "budget", lambda pt: [
        str(pt["B"]), _f(pt["uniform"]), _f(pt["needed_B"], 2) if pt["needed_B"] is not None else "never",
        f"{pt['saved']:+.0%}" if pt["saved"] is not None else "-"])
    L += _table(["model / task", "estimator", "B", "uniform solve rate", "needed (samples / question)", "saved"], rows)
    L += ["### Are larger models better calibrated, and still overconfident?", "",
          "Mean confidence minus mean mu (positive = overconfident) with its bootstrap interval, and CC-ECE.", ""]
    rows = []
    for r in runs:
        s = r["summary"]
        for name, o in sorted(r["overconfidence"].items()):
            m = (s["results"]["estimators"].get(name) or {}).get("metrics") or {}
            rows.append([s["task"], s["title"], name, _pm(o["gap"], o["ci"]), _f(o["mean_conf"]), _f(o["mean_mu"]),
                         _ci(m.get("cc_ece"))])
    rows.sort(key=lambda x: (_task_rank(x[0]), x[2]))
    L += _table(["task", "model", "estimator", "confidence - mu [CI]", "mean confidence", "mean mu", "CC-ECE"], rows)
    for task in tasks:
        svg = overconfidence_svg(task, runs, f"Overconfidence by model size, {task}")
        if svg is not None and len({r['summary']['size_b'] for r in runs if r['summary']['task'] == task}) > 1:
            name = f"overconfidence__{task}.svg"
            figs[name] = svg
            L += [f"![Overconfidence by model size, {task}]({fig_dir_name}/{name})", ""]
    L += forced_format_section(summaries)
    # -- routing
    L += routing_section(runs, figs, fig_dir_name)
    # -- per run
    L += ["## Every model and task", ""]
    for r in runs:
        s, a = r["summary"], r["arrays"]
        res = s["results"]
        L += [f"### {s['title']} on {s['task']}", "",
              f"{s['n_questions']} questions x k = {s['k']}; mean mu {_f(res.get('mean_mu'))}, response-target "
              f"accuracy {_f(float(a['r'].mean()))}, answer parse rate {_f(res.get('answer_parse_rate'))}.", ""]
        L += _table(["estimator"] + [t for _, t in METRICS] + ["NaN share", "reply parse rate (after retries)"],
                    _est_rows(s))
        plot_task = _plot_task(s)
        items = [("reliability_cc", reliability_svg(plot_task, "cc", f"Reliability vs mu, {_cell(s)}")),
                 ("reliability_rc", reliability_svg(plot_task, "rc", f"Reliability vs r, {_cell(s)}")),
                 ("mu_vs_r", mu_vs_r_svg(s, a, f"Per-question mu vs r, {_cell(s)}")),
                 ("passk", passk_svg(plot_task, f"pass@k predicted vs actual, {_cell(s)}")),
                 ("budget", budget_svg(plot_task, f"Budget allocation, {_cell(s)}"))]
        for kind, svg in items:
            figs[_fig_name(s, kind)] = svg
        L += [" ".join(f"![{kind.replace('_', ' ')}]({fig_dir_name}/{_fig_name(s, kind)})" for kind, _ in items), ""]
    L += reading(runs, total_wall)
    return "\n".join(L).rstrip() + "\n", figs


def routing_section(runs: list[dict[str, Any]], figs: dict[str, str], fig_dir_name: str) -> list[str]:
    """The routing curve from the smallest to the largest model, per task, when capcal has routing."""
    try:
        from . import routing  # noqa: F401 - the routing module of capcal (issue 13)
    except ImportError:
        return ["## Routing", "",
                "Not in this version of the study: capcal's routing module had not landed when it was "
                "generated.", ""]
    return _routing_with(runs, figs, fig_dir_name)


def _routing_with(runs: list[dict[str, Any]], figs: dict[str, str], fig_dir_name: str) -> list[str]:
    """Route from the smallest to the largest model of each task, by each of the small model's confidences."""
    from .bootstrap import percentile_ci
    from .routing import random_routing_curve, routing_bootstrap, routing_curve

    L = ["## Routing from the smaller to the larger model", "",
         "A question goes to the larger model when the smaller model's confidence is below a threshold; "
         "over every threshold, the expected accuracy is the mean mu of the model that answers. *Gain "
         "captured* is (area - random area) / (oracle area - random area): 0 for random routing, 1 for the "
         "oracle that routes the questions where the larger model gains most first. Questions where the "
         "confidence failed are left out of that row.", ""]
    rows, any_task = [], False
    for task in sorted({r["summary"]["task"] for r in runs}, key=_task_rank):
        pair = sorted((r for r in runs if r["summary"]["task"] == task and r["summary"].get("size_b")),
                      key=lambda r: r["summary"]["size_b"])
        if len(pair) < 2:
            continue
        small, large = pair[0], pair[-1]
        ids_s, ids_l = small["summary"]["questions"].get("ids"), large["summary"]["questions"].get("ids")
        common = [i for i in (ids_s or []) if i in set(ids_l or [])]
        if len(common) < 2:
            continue
        any_task = True
        at_s = np.array([ids_s.index(i) for i in common])
        at_l = np.array([ids_l.index(i) for i in common])
        mu_s, mu_l = small["arrays"]["mu"][at_s], large["arrays"]["mu"][at_l]
        cands = candidates(small["summary"], small["arrays"])
        cands = {k: v[at_s] for k, v in cands.items() if k != "constant"}
        L += [f"{task}: the {len(common)} questions that both {small['summary']['title']} and "
              f"{large['summary']['title']} answered.", ""]
        boot = routing_bootstrap(cands, mu_s, mu_l, n_boot=N_BOOT, seed=SEED)
        point = routing_bootstrap(cands, mu_s, mu_l, point=True)
        title = f"Routing {small['summary']['title']} -> {large['summary']['title']}, {task}"
        chart = Chart(title=title, xlabel="fraction routed to the larger model", ylabel="expected accuracy",
                      xlim=(0, 1), ylim=_acc_range(mu_s, mu_l))
        rand = random_routing_curve(mu_s, mu_l)
        chart.line([p["routed"] for p in rand], [p["accuracy"] for p in rand], "#888", label="random", dash="4 3",
                   width=1, markers=False)
        orc = routing_curve(None, mu_s, mu_l, priority=mu_l - mu_s)
        chart.line([p["routed"] for p in orc], [p["accuracy"] for p in orc], "#000", label="oracle", dash="1 2",
                   markers=False)
        colors = estimator_colors(list(cands))
        for name, p in cands.items():
            ok = np.isfinite(p)
            curve = routing_curve(p[ok], mu_s[ok], mu_l[ok])
            chart.line([c["routed"] for c in curve], [c["accuracy"] for c in curve], colors[name], label=name,
                       markers=False)
            gain = float(point[name]["gain"][0])
            lo, hi = percentile_ci(boot[name]["gain"])
            rows.append([task, f"{small['summary']['title']} -> {large['summary']['title']}", name,
                         f"{_f(gain)} [{_f(lo)}, {_f(hi)}]", _f(float(point[name]["acc@50"][0])),
                         _f(float(point[name]["oracle_acc@50"][0]))])
        fname = f"routing__{task}.svg"
        figs[fname] = chart.to_svg()
        L += [f"![{title}]({fig_dir_name}/{fname})", ""]
    if not any_task:
        return L + ["No task was run on two models with the same questions, so there is no routing curve.", ""]
    return L + _table(["task", "models", "small model's confidence", "gain captured [CI]",
                       "accuracy at 50 % routed", "oracle at 50 %"], rows)


def _acc_range(mu_s: np.ndarray, mu_l: np.ndarray) -> tuple[float, float]:
    lo = max(0.0, math.floor(min(mu_s.mean(), mu_l.mean()) * 10 - 1) / 10)
    return (lo, 1.0)


def reading(runs: list[dict[str, Any]], total_wall: float) -> list[str]:
    """The short reading: sentences built from the computed numbers (no number typed by hand)."""
    L = ["## Reading", ""]
    cells = [r for r in runs if r["disagreement"] is not None]
    if cells:
        differ = [r for r in cells if r["disagreement"]["disagree"]]
        rates = [r["disagreement"]["disagree_rate"] for r in cells]
        spread = f"{min(rates):.0%}" if min(rates) == max(rates) else f"{min(rates):.0%} to {max(rates):.0%}"
        L.append(f"- **Targets.** The best estimator by RC-Brier differs from the best by CC-Brier in {len(differ)} "
                 f"of {len(cells)} model x task runs on the data; over bootstrap resamples the two choices differ "
                 f"in {spread} of resamples. A share well inside (0, 1) means that at this sample size the choice "
                 "of the best estimator is itself uncertain; a share near 1 means the two targets really do "
                 "crown different estimators.")
    better = [(r, name, pt) for r in runs for name, pts in r["passk"].items() for pt in pts if pt["ci"][1] < 0]
    worse = [(r, name, pt) for r in runs for name, pts in r["passk"].items() for pt in pts if pt["ci"][0] > 0]
    total = sum(len(pts) for r in runs for pts in r["passk"].values())
    if total:
        names = sorted({f"{name} ({r['summary']['title']}, {r['summary']['task']})" for r, name, _ in better})
        L.append(f"- **pass@k.** Of {total} (run, estimator, k) comparisons, a confidence predicts pass@k "
                 f"significantly better than the constant in {len(better)} and worse in {len(worse)}; the rest "
                 "can't be told apart at this size." + (f" Better: {', '.join(names)}." if names else ""))
    saves = [(r, name, pt) for r in runs for name, pts in r["budget"].items() for pt in pts
             if pt["saved"] is not None]
    if saves:
        best = max(saves, key=lambda x: x[2]["saved"])
        r, name, pt = best
        L.append(f"- **Budget.** The largest saving is {pt['saved']:.0%} of uniform's budget at B = {pt['B']}, by "
                 f"{name} on {r['summary']['title']} / {r['summary']['task']}; "
                 f"{sum(1 for _, _, p in saves if p['saved'] > 0)} of {len(saves)} (run, estimator, B) "
                 "allocations need less than uniform.")
    over = [(r, name, o) for r in runs for name, o in r["overconfidence"].items() if name != "constant"]
    if over:
        pos = [x for x in over if x[2]["ci"][0] > 0]
        neg = [x for x in over if x[2]["ci"][1] < 0]
        L.append(f"- **Overconfidence.** {len(pos)} of {len(over)} (run, estimator) confidences are significantly "
                 f"above the model's mean accuracy and {len(neg)} significantly below.")
        for task in sorted({r["summary"]["task"] for r, _, _ in over}, key=_task_rank):
            for name in ("verbalized", "verbalized:forced=true"):
                pts = [(r["summary"]["size_b"], r["summary"]["title"], o["gap"]) for r, n, o in over
                       if n == name and r["summary"]["task"] == task and r["summary"].get("size_b")]
                if len(pts) > 1:
                    pts.sort()
                    trend = "shrinks" if abs(pts[-1][2]) < abs(pts[0][2]) else "does not shrink"
                    L.append(f"  On {task}, the {name} gap {trend} from the smallest to the largest model "
                             f"({', '.join(f'{t}: {g:+.3f}' for _, t, g in pts)}).")
    L.append(f"- **Cost and scale.** The whole study took {_minutes(total_wall)} of wall time. {scale_note(runs)}")
    L.append("")
    return L


def scale_note(runs: list[dict[str, Any]]) -> str:
    """How the study's sizes compare with the full design (:data:`capcal.study.PRESETS` ``"issue"``)."""
    from .study import PRESETS, parse_tasks

    full = {t.name: t for t in parse_tasks(PRESETS["issue"]["tasks"])}
    ran: dict[str, tuple[int, int]] = {}
    for r in runs:
        s = r["summary"]
        ran[s["task"]] = (s["n_questions"], int(s["k"]))
    parts = []
    for name, t in full.items():
        if name not in ran:
            parts.append(f"{name} ({t.limit} x k={t.k}) was not run")
        elif ran[name] != (t.limit, t.k):
            parts.append(f"{name} ran {ran[name][0]} x k={ran[name][1]} instead of {t.limit} x k={t.k}")
    models = sorted({r["summary"]["model"] for r in runs})
    missing = [m for m in PRESETS["issue"]["models"] if m not in models]
    if missing:
        parts.append(f"model {', '.join(missing)} was not run")
    if not parts:
        return "It has the full design's sizes."
    return ("Against the full design (`capcal study --preset issue`), scaled down to fit two shared CPU cores: "
            + "; ".join(parts) + ". The intervals show where that leaves too few questions to tell.")


def write_report(summaries: str | Path, doc: str | Path) -> tuple[Path, list[Path]]:
    """Generate the report from the summaries folder: ``doc`` and its figures in ``<doc dir>/<doc stem>/``.

    Returns:
        The document path and the figure paths written.
    """
    from .rundir import write_atomic

    doc = Path(doc)
    fig_dir = doc.parent / doc.stem
    docs = load_summaries(summaries)
    if not docs:
        from .errors import CapcalError

        raise CapcalError(f"no study summaries (*.json) in {summaries}; run `capcal study` first")
    text, figs = render(docs, fig_dir_name=doc.stem)
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, svg in sorted(figs.items()):
        path = fig_dir / name
        svg = re.sub(r"capcal-clip-\d+", f"clip-{Path(name).stem}", svg)  # a stable id per file
        write_atomic(path, svg + ("\n" if not svg.endswith("\n") else ""))
        paths.append(path)
    write_atomic(doc, text)
    return doc, paths
