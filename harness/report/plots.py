"""The report's plots, drawn from one task entry of a results document (``doc["tasks"][task]``).

Every function returns an inline ``<svg>`` string; estimators keep the same colour in every plot
(their position in the sorted estimator names).
"""

from __future__ import annotations

import math
from typing import Any

from .svg import PALETTE, Chart


def estimator_colors(names: list[str]) -> dict[str, str]:
    """A colour per estimator name, stable across plots (sorted order, palette cycled)."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(sorted(names))}


def _ylim(values) -> tuple[float, float]:
    """A y range for rates: from a round 0.1 below the smallest value (at least 0) up to 1."""
    vals = [v for v in values if v is not None]
    if not vals:
        return (0.0, 1.0)
    lo = max(0.0, math.floor((min(vals) - 0.02) * 10) / 10)
    return (min(lo, 0.9), 1.0)


def reliability_svg(task: dict[str, Any], target: str, title: str) -> str:
    """Reliability diagram against ``target`` (``"cc"``: capability mu, ``"rc"``: response r).

    One line per estimator through the non-empty bins' (mean confidence, mean target), marker area
    proportional to the bin's count; the dashed diagonal is perfect calibration.
    """
    label = "mean capability target (mu)" if target == "cc" else "mean response target (r)"
    chart = Chart(title=title, xlabel="mean confidence in bin", ylabel=label, xlim=(0, 1), ylim=(0, 1))
    chart.line([0, 1], [0, 1], "#888", label="perfect", dash="4 3", width=1, markers=False)
    colors = estimator_colors(list(task["estimators"]))
    for name, est in sorted(task["estimators"].items()):
        bins = [b for b in est["reliability"][target]
                if b["count"] > 0 and b["mean_conf"] is not None and b["mean_target"] is not None]
        if not bins:
            continue
        biggest = max(b["count"] for b in bins)
        sizes = [2.0 + 4.0 * math.sqrt(b["count"] / biggest) for b in bins]
        chart.line([b["mean_conf"] for b in bins], [b["mean_target"] for b in bins], colors[name],
                   label=name, sizes=sizes)
    return chart.to_svg()


def passk_svg(task: dict[str, Any], title: str) -> str:
    """Dataset-level pass@k: the actual mean pass@k (black) and each estimator's predicted mean
    ``mean(1 - (1 - p)^k)`` with its band ``+- 1.96 sqrt(sum S(1 - S)) / N`` (shaded)."""
    ks = sorted({pt["k"] for pt in task["actual_passk"]}
                | {pt["k"] for e in task["estimators"].values() for pt in e["passk_curve"]})
    ys = [pt["value"] for pt in task["actual_passk"]] + [
        pt[key] for e in task["estimators"].values() for pt in e["passk_curve"] for key in ("predicted", "band_lo")]
    chart = Chart(title=title, xlabel="k (samples)", ylabel="mean pass@k",
                  xlim=(ks[0], ks[-1]) if ks else (1, 2), ylim=_ylim(ys), logx=True)
    colors = estimator_colors(list(task["estimators"]))
    for name, est in sorted(task["estimators"].items()):
        curve = sorted(est["passk_curve"], key=lambda p: p["k"])
        if not curve:
            continue
        xs = [p["k"] for p in curve]
        chart.band(xs, [p["band_lo"] for p in curve], [p["band_hi"] for p in curve], colors[name])
        chart.line(xs, [p["predicted"] for p in curve], colors[name], label=name, markers=False)
    actual = sorted(task["actual_passk"], key=lambda p: p["k"])
    if actual:
        chart.line([p["k"] for p in actual], [p["value"] for p in actual], "#000", label="actual", width=2.5)
    return chart.to_svg()


def budget_svg(task: dict[str, Any], title: str) -> str:
    """Expected solve rate against the budget B (samples per question on average): greedy allocation
    by each estimator, uniform (B each, dashed) and the oracle allocation with p = mu (dotted)."""
    curves = {n: sorted(e["budget_curve"], key=lambda p: p["B"]) for n, e in task["estimators"].items()}
    bs = sorted({p["B"] for c in curves.values() for p in c})
    ys = [p[key] for c in curves.values() for p in c for key in ("greedy", "uniform", "oracle")]
    chart = Chart(title=title, xlabel="budget B (samples per question)", ylabel="expected solve rate",
                  xlim=(bs[0], bs[-1]) if bs else (1, 2), ylim=_ylim(ys), logx=True)
    if bs:
        ref = next(c for c in curves.values() if c)
        chart.line([p["B"] for p in ref], [p["uniform"] for p in ref], "#555", label="uniform", dash="5 3")
        chart.line([p["B"] for p in ref], [p["oracle"] for p in ref], "#000", label="oracle (p = mu)", dash="2 2")
    colors = estimator_colors(list(task["estimators"]))
    for name, curve in sorted(curves.items()):
        if curve:
            chart.line([p["B"] for p in curve], [p["greedy"] for p in curve], colors[name], label=name)
    return chart.to_svg()


def risk_coverage_svg(task: dict[str, Any], target: str, title: str) -> str:
    """Selective prediction: risk (1 - accuracy of the kept questions) against coverage, keeping the most
    confident questions first, against ``target`` (``"cc"``: capability mu, ``"rc"``: response r). The
    oracle (ordering by the target itself, dotted) and random (the mean target, dashed) are drawn per task
    from the first estimator with a curve (they depend only on the questions kept valid)."""
    label = "risk vs capability (1 - mean mu)" if target == "cc" else "risk vs response (1 - mean r)"
    curves = {n: e.get("selective_curve") or [] for n, e in task["estimators"].items()}
    ys = [1 - pt[f"{target}_{k}"] for c in curves.values() for pt in c for k in ("accuracy", "oracle")
          if pt.get(f"{target}_{k}") is not None]
    hi = min(1.0, max(ys, default=1.0) + 0.05)
    chart = Chart(title=title, xlabel="coverage (share of questions answered)", ylabel=label, xlim=(0, 1),
                  ylim=(0.0, max(hi, 0.1)), css_class="decision-chart")
    ref = next((c for c in curves.values() if c), None)
    if ref:
        xs = [pt["coverage"] for pt in ref]
        chart.line(xs, [None if pt[f"{target}_oracle"] is None else 1 - pt[f"{target}_oracle"] for pt in ref],
                   "#000", label="oracle", dash="2 2", markers=False)
        full = ref[-1][f"{target}_accuracy"]
        if full is not None:
            chart.line([0, 1], [1 - full, 1 - full], "#555", label="random", dash="5 3", markers=False)
    colors = estimator_colors(list(task["estimators"]))
    for name, curve in sorted(curves.items()):
        if curve:
            chart.line([pt["coverage"] for pt in curve],
                       [None if pt[f"{target}_accuracy"] is None else 1 - pt[f"{target}_accuracy"] for pt in curve],
                       colors[name], label=name)
    return chart.to_svg()


def routing_svg(entry: dict[str, Any], title: str, max_points: int = 200) -> str:
    """Routing: expected accuracy (mean mu_small on kept, mu_large on routed questions) against the
    fraction routed, one line per estimator of the small model, the oracle (dotted) and random (dashed).

    Args:
        entry: one task of a routing pair (``{"curves": {series: [{"routed", "accuracy", ...}]}}``).
        max_points: curves with more points are thinned evenly (the end points are kept).
    """
    curves = entry["curves"]
    ys = [pt["accuracy"] for c in curves.values() for pt in c if pt.get("accuracy") is not None]
    chart = Chart(title=title, xlabel="fraction of questions routed to the large model",
                  ylabel="expected accuracy (mu)", xlim=(0, 1), ylim=_ylim(ys), css_class="decision-chart")

    def thin(c):
        if len(c) <= max_points:
            return c
        step = (len(c) - 1) / (max_points - 1)
        return [c[round(i * step)] for i in range(max_points)]

    if "random" in curves:
        c = curves["random"]
        chart.line([p["routed"] for p in c], [p["accuracy"] for p in c], "#555", label="random", dash="5 3",
                   markers=False)
    if "oracle" in curves:
        c = thin(curves["oracle"])
        chart.line([p["routed"] for p in c], [p["accuracy"] for p in c], "#000", label="oracle", dash="2 2",
                   markers=False)
    names = [n for n in curves if n not in ("random", "oracle") and not n.startswith("large:")]
    colors = estimator_colors(names)
    for name in sorted(names):
        c = thin(curves[name])
        chart.line([p["routed"] for p in c], [p["accuracy"] for p in c], colors[name], label=name,
                   markers=len(c) <= 25)
    return chart.to_svg()
