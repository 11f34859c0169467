"""Routing and cascades between the runs of different models on the same questions (``capcal route``).

Reads run directories (their ``targets.jsonl`` and estimator outputs), matches questions **by task and
question id** (questions present in only some runs are counted, reported and left out; runs are never
joined by position), and scores with :mod:`capcal.routing`:

* **routing** between the first run (the small, cheap model) and the last (the large one): per estimator
  of the small run, the routing curve of its confidence, the scores with paired-bootstrap intervals, and
  the paired differences between estimators; baselines random, oracle and, where the large run has the
  same estimator, routing by the large model's own confidence (its most confident questions first);
* a **cascade** over every run in the given order (cheapest first), per estimator that every run but the
  last has.

The cost ratio of a model is its mean completion tokens per answer over the matched questions divided
by the first run's (``targets.jsonl`` records them; for older runs they are read from the run's sample
store), unless given. It scales the cost axis only: the gain, the accuracies at 20 % and 50 % routed
and the decision accuracy do not depend on it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import routing as R
from .bootstrap import percentile_ci
from .errors import CapcalError, UnknownNameError
from .results import clean_json
from .rundir import RunDir, completion_token_count, write_atomic

#: Scores printed per estimator, with their column titles.
ROUTE_COLUMNS = tuple(R.HEADLINE_SCORES.items())
#: Scores whose paired differences between estimators are reported.
DIFF_SCORES = tuple(R.HEADLINE_SCORES)


class RouteError(CapcalError):
    """The runs cannot be routed between (fewer than two, no shared question, bad cost ratio, ...)."""


@dataclass
class RunInfo:
    """One run directory as routing sees it."""

    path: str
    name: str
    model: str


def _model_label(rd: RunDir) -> str:
    try:
        config = rd.config
    except CapcalError:
        return rd.path.name
    model = config.get("model")
    args = config.get("model_args") if isinstance(config.get("model_args"), dict) else {}
    if isinstance(model, dict):
        return str(model.get("model_id") or model.get("name") or rd.path.name)
    return str(config.get("model_id") or args.get("model") or args.get("pretrained") or model or rd.path.name)


def _mean_tokens(rd: RunDir, task: str, rows: list[dict[str, Any]]) -> float | None:
    """Mean completion tokens per answer over ``rows``: from targets, else from the run's sample store."""
    counts = [t for row in rows for t in (row.get("completion_tokens") or []) if isinstance(t, (int, float))]
    if not counts and rd.store_path.exists():
        from .store import SampleStore

        keys = [k for row in rows for k in row.get("sample_keys", [])]
        with SampleStore(rd.store_path) as store:
            stored = store.get_many(keys)
        counts = [c for c in (completion_token_count(stored[k]) for k in keys if k in stored) if c is not None]
    return float(np.mean(counts)) if counts else None


@dataclass
class TaskRoute:
    """Routing and cascade results of one task (every number a plain float, NaN as ``None`` in JSON)."""

    task: str
    n_shared: int
    left_out: dict[str, int]
    left_out_examples: list[str]
    mean_mu: list[float]
    mean_tokens: list[float | None]
    cost_ratios: list[float] | None
    cost_source: str
    routing: dict[str, Any] = field(default_factory=dict)
    cascade: dict[str, Any] = field(default_factory=dict)


@dataclass
class RouteReport:
    """Everything :func:`route_runs` computed."""

    runs: list[RunInfo]
    n_boot: int
    seed: int
    threshold: float
    tasks: list[TaskRoute]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return clean_json({"runs": [vars(r) for r in self.runs], "n_boot": self.n_boot, "seed": self.seed,
                           "threshold": self.threshold, "warnings": self.warnings,
                           "tasks": {t.task: vars(t) for t in self.tasks}})


def _ci(values: np.ndarray) -> list[float]:
    return list(percentile_ci(values)) if values.size else [float("nan"), float("nan")]


def _score_table(point: dict[str, dict[str, np.ndarray]], boot: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    return {name: {k: {"value": float(v[0]), "ci": _ci(boot[name][k]) if boot.get(name) else [None, None]}
                   for k, v in vals.items()} for name, vals in point.items()}


def _differences(names: list[str], point, boot, scores=DIFF_SCORES) -> dict[str, Any]:
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            out[f"{a}-{b}"] = {
                s: {"value": float(point[a][s][0] - point[b][s][0]),
                    "ci": _ci(boot[a][s] - boot[b][s]) if boot.get(a) and boot.get(b) else [None, None]}
                for s in scores if s in point[a] and s in point[b]}
    return out


def route_task(task: str, runs: list[RunDir], *, estimators: list[str] | None = None,
               cost_ratios: list[float] | None = None, threshold: float = R.DEFAULT_THRESHOLD,
               n_boot: int = 1000, seed: int = 0, cascade: bool = True) -> TaskRoute | None:
    """Route one task between ``runs`` (cheapest first); ``None`` when they share no question id.

    ``cascade=False`` skips the cascade over every run (the routing section of the leaderboard needs
    only the routing)."""
    rows = [{str(r["id"]): r for r in rd.target_rows(task)} for rd in runs]
    first = list(rows[0])
    shared = [q for q in first if all(q in other for other in rows[1:])]
    seen = set().union(*[set(r) for r in rows])
    left = sorted(q for q in seen if not all(q in r for r in rows))
    left_out = {rd.path.name: sum(1 for q in r if q not in set(shared)) for rd, r in zip(runs, rows, strict=True)}
    if not shared:
        return None
    ids = np.array(shared, dtype=object)
    mus = [np.array([r[q]["c"] / len(r[q]["correct"]) if r[q].get("correct") else float(r[q]["mu"])
                     for q in shared]) for r in rows]
    tokens = [_mean_tokens(rd, task, [r[q] for q in shared]) for rd, r in zip(runs, rows, strict=True)]
    if cost_ratios is not None:
        ratios, source = list(cost_ratios), "given"
    elif all(t is not None and t > 0 for t in tokens):
        ratios, source = [t / tokens[0] for t in tokens[1:]], "mean completion tokens per answer"
    else:
        ratios, source = None, "a run records no completion tokens; pass --cost-ratio"
    out = TaskRoute(task=task, n_shared=len(shared), left_out=left_out, left_out_examples=left[:5],
                    mean_mu=[float(m.mean()) for m in mus], mean_tokens=tokens, cost_ratios=ratios,
                    cost_source=source)
    names_small = runs[0].estimators(task)
    if estimators is not None:
        names_small = [n for n in names_small if n in estimators]
    conf = {rd_i: {} for rd_i in range(len(runs))}
    for i, rd in enumerate(runs):
        for name in rd.estimators(task):
            if estimators is None or name in estimators:
                conf[i][name] = rd.estimator_output(task, name, ids)[0]
    # --- routing: first run -> last run
    mu_s, mu_l = mus[0], mus[-1]
    ratio = None if ratios is None else float(ratios[-1])   # last model's answer relative to the first's
    confs = {name: conf[0][name] for name in names_small}
    rows_point = R.routing_bootstrap(confs, mu_s, mu_l, threshold=threshold, point=True) if confs else {}
    rows_boot = R.routing_bootstrap(confs, mu_s, mu_l, threshold=threshold, n_boot=n_boot, seed=seed) \
        if confs and n_boot else {}
    # the large model's own confidence as a router (not the constant reference row: it orders nothing)
    large = {f"large:{name}": conf[len(runs) - 1][name] for name in names_small
             if name in conf[len(runs) - 1] and name != "constant"}
    if large:
        blank = {k: None for k in large}
        lp = R.routing_bootstrap(blank, mu_s, mu_l, priorities=large, point=True)
        lb = R.routing_bootstrap(blank, mu_s, mu_l, priorities=large, n_boot=n_boot, seed=seed) if n_boot else {}
    else:
        lp, lb = {}, {}
    curves = {}
    for name, p in confs.items():
        valid = ~np.isnan(p)
        curves[name] = R.routing_curve(p[valid], mu_s[valid], mu_l[valid], cost_ratio=ratio or 1.0)
    for name, p in large.items():
        valid = ~np.isnan(p)
        curves[name] = R.routing_curve(None, mu_s[valid], mu_l[valid], priority=p[valid], cost_ratio=ratio or 1.0)
    curves["oracle"] = R.routing_curve(None, mu_s, mu_l, priority=mu_l - mu_s, cost_ratio=ratio or 1.0)
    curves["random"] = R.random_routing_curve(mu_s, mu_l, cost_ratio=ratio or 1.0)
    if ratio is None:
        for c in curves.values():
            for pt in c:
                pt["cost"] = None
    out.routing = clean_json({
        "small": runs[0].path.name, "large": runs[-1].path.name, "cost_ratio": ratio,
        "n_nan": {name: int(np.isnan(p).sum()) for name, p in confs.items()},
        "scores": _score_table(rows_point, rows_boot),
        "baselines": _score_table(lp, lb),
        "differences": _differences(list(confs), rows_point, rows_boot),
        "curves": curves,
    })
    # --- cascade over every run (the confidences of every run but the last)
    cascade_names = [n for n in names_small if all(n in conf[i] for i in range(len(runs) - 1))]
    if cascade_names and cascade:
        cratios = ratios if ratios is not None else [1.0] * (len(runs) - 1)
        cconf = {n: [conf[i][n] for i in range(len(runs) - 1)] for n in cascade_names}
        cp = R.cascade_bootstrap(cconf, mus, cratios, point=True)
        cb = R.cascade_bootstrap(cconf, mus, cratios, n_boot=n_boot, seed=seed) if n_boot else {}
        ccurves = {}
        for n in cascade_names:
            valid = ~np.any([np.isnan(c) for c in cconf[n]], axis=0)
            ccurves[n] = R.cascade_curve([c[valid] for c in cconf[n]], [m[valid] for m in mus], cratios)
        ccurves["oracle"] = R.oracle_cascade_curve(mus, cratios)
        ccurves["random"] = R.random_cascade_curve(mus, cratios)
        out.cascade = clean_json({"runs": [rd.path.name for rd in runs], "cost_ratios": cratios,
                                  "cost_known": ratios is not None, "scores": _score_table(cp, cb),
                                  "differences": _differences(cascade_names, cp, cb, scores=("gain",)),
                                  "curves": ccurves})
    return out


def route_runs(run_dirs: list[str | Path], *, estimators: list[str] | None = None,
               cost_ratio: list[float] | float | None = None, threshold: float = R.DEFAULT_THRESHOLD,
               n_boot: int = 1000, seed: int = 0, tasks: list[str] | None = None,
               cascade: bool = True) -> RouteReport:
    """Route between runs of different models (cheapest first) on every task they share.

    Args:
        run_dirs: two or more run directories, cheapest model first.
        estimators: the estimators to score (default: every estimator of the first run).
        cost_ratio: the cost of each later model's answer relative to the first's: one number per later
            run (a single number for two runs); default from the mean completion tokens per answer.
        threshold: the decision threshold of the decision accuracy (route when ``p < threshold``).
        n_boot, seed: paired bootstrap (the same resamples for every estimator of a task).
        tasks: restrict to these tasks.
        cascade: also score the cascade over every run in the given order.

    Raises:
        RouteError: fewer than two runs, a run without targets, a cost ratio that does not fit, or no task
            with a shared question id.
        UnknownNameError: an estimator that no run has.
    """
    if len(run_dirs) < 2:
        raise RouteError("routing needs at least two runs (cheapest model first)")
    if not 0.0 <= threshold <= 1.0:
        raise RouteError(f"the threshold must be in [0, 1], got {threshold}")
    if n_boot < 0:
        raise RouteError(f"n_boot must be >= 0, got {n_boot}")
    rds = [RunDir(p) for p in run_dirs]
    for rd in rds:
        if not rd.path.is_dir():
            raise RouteError(f"{rd.path}: not a run directory")
        if not rd.tasks():
            raise RouteError(f"{rd.path}: no task has targets (tasks/<task>/targets.jsonl)")
    ratios = None
    if cost_ratio is not None:
        ratios = [float(cost_ratio)] if np.isscalar(cost_ratio) else [float(c) for c in cost_ratio]
        if len(ratios) != len(rds) - 1 or not all(np.isfinite(r) and r > 0 for r in ratios):
            raise RouteError(f"--cost-ratio needs {len(rds) - 1} positive number(s), one per run after the first "
                             f"(relative to it), got {','.join(f'{r:g}' for r in ratios)}")
    names = [rd.path.name for rd in rds]
    if len(set(names)) < len(names):
        names = [str(rd.path) for rd in rds]
    report = RouteReport(runs=[RunInfo(str(rd.path), n, _model_label(rd)) for rd, n in zip(rds, names, strict=True)],
                         n_boot=n_boot, seed=seed, threshold=threshold, tasks=[])
    common = sorted(set.intersection(*[set(rd.tasks()) for rd in rds]))
    every = sorted(set().union(*[set(rd.tasks()) for rd in rds]))
    if set(every) - set(common):
        report.warnings.append(f"tasks not in every run are left out: {', '.join(sorted(set(every) - set(common)))}")
    if tasks:
        missing = [t for t in tasks if t not in common]
        if missing:
            raise RouteError(f"task(s) not in every run: {', '.join(missing)}")
        common = [t for t in common if t in tasks]
    if estimators:
        known = {n for rd in rds for t in common for n in rd.estimators(t)}
        for e in estimators:
            if e not in known:
                raise UnknownNameError("estimator", e, sorted(known))
    for task in common:
        tr = route_task(task, rds, estimators=estimators, cost_ratios=ratios, threshold=threshold,
                        n_boot=n_boot, seed=seed, cascade=cascade)
        if tr is None:
            report.warnings.append(f"{task}: no question id in every run; left out")
            continue
        dropped = {k: v for k, v in tr.left_out.items() if v}
        if dropped:
            report.warnings.append(
                f"{task}: {sum(dropped.values())} question(s) not in every run are left out "
                f"({', '.join(f'{k}: {v}' for k, v in dropped.items())}; e.g. {', '.join(tr.left_out_examples[:3])})")
        report.tasks.append(tr)
    if not report.tasks:
        raise RouteError("the runs share no task with a common question id; nothing to route")
    return report


# ------------------------------------------------------------------------------------------------------
def _f(x: float | None, signed: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _cell(entry: dict[str, Any] | None, signed: bool = False) -> str:
    if not entry:
        return "–"
    lo, hi = entry["ci"]
    ci = "" if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)) else \
        f" [{_f(lo, signed)}, {_f(hi, signed)}]"
    return _f(entry["value"], signed) + ci


def format_route(report: RouteReport) -> str:
    """The plain-text report ``capcal route`` prints: per task, the routing table (every estimator with
    95% paired-bootstrap intervals, then the baselines), the paired differences of the gain, the cascade."""
    lines = ["capcal route: " + "  ->  ".join(f"{r.name} ({r.model})" for r in report.runs),
             f"paired bootstrap: {report.n_boot} resamples, seed {report.seed}, 95% intervals; "
             f"decision threshold: route when p < {report.threshold:g}", ""]
    lines += [f"warning: {w}" for w in report.warnings]
    if report.warnings:
        lines.append("")
    width = 26
    for t in report.tasks:
        rt = t.routing
        tokens = ", ".join("–" if x is None else f"{x:.1f}" for x in t.mean_tokens)
        ratio = "unknown" if rt["cost_ratio"] is None else f"{rt['cost_ratio']:.3g}"
        lines.append(f"{t.task}: {t.n_shared} shared questions; mean mu "
                     + " -> ".join(f"{m:.3f}" for m in t.mean_mu)
                     + f"; mean completion tokens {tokens}; cost ratio {ratio} ({t.cost_source})")
        lines.append(f"routing {rt['small']} -> {rt['large']}")
        nw = max([22] + [len(n) + 1 for n in list(rt["scores"]) + list(rt["baselines"])])
        head = f"  {'estimator':<{nw}}" + "".join(f"{title:>{width}}" for _, title in ROUTE_COLUMNS) + "   n_nan"
        lines.append(head)
        for name, sc in rt["scores"].items():
            lines.append(f"  {name:<{nw}}" + "".join(f"{_cell(sc.get(k)):>{width}}" for k, _ in ROUTE_COLUMNS)
                         + f"   {rt['n_nan'].get(name, 0):>5}")
        for name, sc in rt["baselines"].items():
            lines.append(f"  {name:<{nw}}" + "".join(f"{_cell(sc.get(k)):>{width}}" for k, _ in ROUTE_COLUMNS))
        any_sc = next(iter(rt["scores"].values()), None) or next(iter(rt["baselines"].values()), None)
        if any_sc:
            orc = _f((any_sc.get("oracle_acc@20") or {}).get("value"))
            orc50 = _f((any_sc.get("oracle_acc@50") or {}).get("value"))
            lines.append(f"  {'oracle':<{nw}}{'1 (by definition)':>{width}}{orc:>{width}}{orc50:>{width}}")
            lines.append(f"  {'random':<{nw}}{'0 (by definition)':>{width}}"
                         f"{_f(t.mean_mu[0] + 0.2 * (t.mean_mu[-1] - t.mean_mu[0])):>{width}}"
                         f"{_f(t.mean_mu[0] + 0.5 * (t.mean_mu[-1] - t.mean_mu[0])):>{width}}")
        if rt["differences"]:
            lines.append("  paired differences of the gain captured (A - B):")
            pw = max([40] + [len(pair) + 1 for pair in rt["differences"]])
            for pair, d in rt["differences"].items():
                if "gain" in d:
                    lines.append(f"    {pair:<{pw}} {_cell(d['gain'], True)}")
        cs = t.cascade
        if cs and len(report.runs) > 2:
            costs = ", ".join(f"{c:.3g}" for c in cs["cost_ratios"])
            lines.append(f"cascade {' -> '.join(cs['runs'])} (marginal costs {costs}"
                         + ("" if cs["cost_known"] else ", assumed: pass --cost-ratio") + ")")
            for name, sc in cs["scores"].items():
                lines.append(f"  {name:<{max(22, len(name) + 1)}}{'gain ' + _cell(sc.get('gain')):>{width + 6}}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_route(report: RouteReport, out_dir: str | Path) -> list[Path]:
    """Write ``route.json`` (everything) and ``route_curves.csv`` (one row per curve point) into ``out_dir``.

    CSV columns: task, kind (routing / cascade), series (estimator, ``large:NAME``, oracle, random),
    x (fraction routed; for cascades the cost), cost, accuracy.
    """
    out = Path(out_dir)
    doc = report.to_dict()
    paths = [out / "route.json", out / "route_curves.csv"]
    write_atomic(paths[0], json.dumps(doc, indent=1, allow_nan=False) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task", "kind", "series", "x", "cost", "accuracy"])
    for task, t in doc["tasks"].items():
        for kind in ("routing", "cascade"):
            for series, pts in ((t.get(kind) or {}).get("curves") or {}).items():
                for pt in pts:
                    x = pt.get("routed", pt.get("cost"))
                    w.writerow([task, kind, series, x, pt.get("cost"), pt.get("accuracy")])
    write_atomic(paths[1], buf.getvalue())
    return paths
