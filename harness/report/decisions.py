"""The leaderboard's routing section: runs of one suite by different models, paired weaker -> stronger.

When a leaderboard holds runs of the same suite (or runs without a suite) by two or more different models,
every pair is scored as routing from the weaker model (the lower mean mu over the tasks they share) to
the stronger one, with :func:`capcal.routing_runs.route_runs` on the run directories next to the results
files (questions matched by task and id, the same bootstrap seed and resample count as the results).
Runs whose directory no longer holds the targets are left out of this section, with a note.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

from ..errors import CapcalError


def _run_dir(path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_dir() else p.parent


def _mean_mu(doc: dict[str, Any], tasks: list[str]) -> float:
    vals = [doc["tasks"][t]["mean_mu"] for t in tasks if doc["tasks"][t].get("mean_mu") is not None]
    return sum(vals) / len(vals) if vals else 0.0


def _suite(doc: dict[str, Any]) -> str | None:
    s = doc.get("suite")
    return f"{s['name']}@{s['version']}" if s else None


def leaderboard_routing(paths: list[str | Path], documents: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Routing between every pair of runs of the same suite by different models.

    Args:
        paths: the run directories (or results files inside them), aligned with ``documents``.
        documents: their validated results documents.

    Returns:
        ``(pairs, notes)``: one entry per pair, ``{"small", "large", "small_model", "large_model",
        "suite", "tasks": {task: {"n_shared", "cost_ratio", "cost_source", "mean_mu", "scores",
        "baselines", "curves"}}, "warnings"}``, and notes on pairs that could not be scored.
    """
    pairs, notes = [], []
    entries = list(zip(paths, documents, strict=True))
    for (pa, da), (pb, db) in combinations(entries, 2):
        if da["model"]["model_id"] == db["model"]["model_id"] or _suite(da) != _suite(db):
            continue
        shared = sorted(set(da["tasks"]) & set(db["tasks"]))
        if not shared:
            continue
        (ps, ds), (pl, dl) = sorted([(pa, da), (pb, db)], key=lambda e: _mean_mu(e[1], shared))
        from ..routing_runs import RouteError, route_runs  # numpy: only when there is a pair to route
        from ..rundir import RunDir

        rs, rl = RunDir(_run_dir(ps)), RunDir(_run_dir(pl))
        if not (rs.tasks() and rl.tasks()):
            notes.append(f"routing {ds['run_name']} -> {dl['run_name']}: left out (the run directories hold no "
                         "targets next to the results files)")
            continue
        n_boot = min((ds["tasks"][t].get("n_boot") or 0) for t in shared) if shared else 0
        seed = ds["tasks"][shared[0]].get("seed") or 0
        try:
            rep = route_runs([rs.path, rl.path], n_boot=int(n_boot), seed=int(seed), cascade=False)
        except (RouteError, CapcalError) as exc:
            notes.append(f"routing {ds['run_name']} -> {dl['run_name']}: {exc}")
            continue
        tasks = {}
        for t in rep.tasks:
            tasks[t.task] = {"n_shared": t.n_shared, "cost_ratio": t.routing["cost_ratio"],
                             "cost_source": t.cost_source, "mean_mu": t.mean_mu,
                             "scores": t.routing["scores"], "baselines": t.routing["baselines"],
                             "curves": t.routing["curves"]}
        pairs.append({"small": ds["run_name"], "large": dl["run_name"], "small_model": ds["model"]["model_id"],
                      "large_model": dl["model"]["model_id"], "suite": _suite(ds), "tasks": tasks,
                      "warnings": rep.warnings})
    return pairs, notes
