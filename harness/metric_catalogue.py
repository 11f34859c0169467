"""The metric catalogue: every metric capcal reports, and what each one means. Nothing else lists them.

For each metric: its name (the key in ``results.json``), a column title, its direction (+1 larger is
better, -1 smaller is better, 0 a property of the targets rather than of the estimator), the target it is
measured against (``"capability"`` mu, ``"response"`` r, or ``"neither"``), the kind of computation that
produces it (``"calibration"`` and ``"selective"``: :func:`capcal.analysis.point_metrics`, the latter from
:mod:`capcal.selective`; ``"passk"``; ``"budget"``), whether
``capcal compare`` may compute and gate on it, and whether (and where) it is a default column of the
leaderboard or a default row of ``capcal compare``.

A *family* is a metric with an integer parameter written after ``@`` (``passk_mse@K``: the instance-level
pass@k MSE for any K >= 1); :func:`lookup` resolves its instances.

The analysis (:mod:`capcal.analysis`), the results schema (:func:`capcal.results.results_schema` takes its
metric names from here), ``capcal compare``, the leaderboard and the suites of ``registry.yaml`` read this
module. A new metric is added here, once, and computed where its ``kind`` says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

__all__ = ["METRICS", "Metric", "calibration_metrics", "comparable_metrics", "compare_defaults",
           "headline_defaults", "is_known_metric", "lookup", "metric_direction", "metric_names", "metric_title",
           "schema_property_names", "selective_metrics"]

TARGETS = ("capability", "response", "neither")


@dataclass(frozen=True)
class Metric:
    """One metric of the catalogue (see the module docstring for the fields).

    Attributes:
        name: key in results documents; for a family the pattern ``"passk_mse@K"``.
        title: column title (``{k}`` is replaced by the parameter of a family instance).
        direction: +1, -1 or 0.
        target: ``"capability"``, ``"response"`` or ``"neither"``.
        kind: ``"calibration"``, ``"selective"``, ``"passk"`` or ``"budget"``.
        comparable: ``capcal compare`` computes it with the paired bootstrap and may gate the exit code on it.
        headline: position among the leaderboard's default columns (1 = first; 0 = not a default).
        compared: position among ``capcal compare``'s default metrics (0 = not a default).
        family_default: for a family, the instance used as a default (``"passk_mse@4"``).
        description: one line for docs and ``--help``.
    """

    name: str
    title: str
    direction: int
    target: str
    kind: str
    comparable: bool
    headline: int = 0
    compared: int = 0
    family_default: str | None = None
    description: str = ""

    @property
    def is_family(self) -> bool:
        return self.name.endswith("@K")


def _m(name, title, direction, target, kind="calibration", comparable=True, headline=0, compared=0,
       family_default=None, description="") -> Metric:
    return Metric(name, title, direction, target, kind, comparable, headline, compared, family_default,
                  description)


#: Every metric, in the order reports list them.
METRICS: tuple[Metric, ...] = (
    _m("cc_brier", "CC-Brier", -1, "capability", headline=1, compared=1, description="mean (p - mu)^2"),
    _m("rc_brier", "RC-Brier", -1, "response", headline=3, compared=2, description="mean (p - r)^2"),
    _m("cc_ece", "CC-ECE", -1, "capability", headline=2, compared=3, description="expected calibration error vs mu"),
    _m("rc_ece", "RC-ECE", -1, "response", headline=4, compared=4, description="expected calibration error vs r"),
    _m("cc_mce", "CC-MCE", -1, "capability", description="maximum calibration error vs mu"),
    _m("rc_mce", "RC-MCE", -1, "response", description="maximum calibration error vs r"),
    _m("cc_logloss", "CC-NLL", -1, "capability", description="log-loss with the soft target mu"),
    _m("rc_logloss", "RC-NLL", -1, "response", description="log-loss against r"),
    _m("pearson", "Pearson", 1, "capability", description="Pearson correlation of p with mu"),
    _m("spearman", "Spearman", 1, "capability", compared=6, description="Spearman correlation of p with mu"),
    _m("auroc", "AUROC", 1, "response", headline=5, compared=5, description="AUROC of p against r"),
    _m("auroc_samples", "AUROC (samples)", 1, "response",
       description="AUROC of p against every per-sample label"),
    _m("cc_reliability", "cc_reliability", -1, "capability", description="Brier reliability vs mu"),
    _m("cc_resolution", "cc_resolution", 1, "capability", description="Brier resolution vs mu"),
    _m("cc_uncertainty", "cc_uncertainty", 0, "capability", comparable=False,
       description="Brier uncertainty of mu (a property of the targets)"),
    _m("rc_reliability", "rc_reliability", -1, "response", description="Brier reliability vs r"),
    _m("rc_resolution", "rc_resolution", 1, "response", description="Brier resolution vs r"),
    _m("rc_uncertainty", "rc_uncertainty", 0, "response", comparable=False,
       description="Brier uncertainty of r (a property of the targets)"),
    _m("cc_aurc", "CC-AURC", -1, "capability", kind="selective",
       description="area under risk (1 - mean mu of the kept) vs coverage, keeping the most confident first"),
    _m("rc_aurc", "RC-AURC", -1, "response", kind="selective",
       description="area under risk (1 - mean r of the kept) vs coverage"),
    _m("cc_prr", "CC-PRR", 1, "capability", kind="selective",
       description="prediction rejection ratio: (AURC_random - AURC) / (AURC_random - AURC_oracle), vs mu"),
    _m("rc_prr", "RC-PRR", 1, "response", kind="selective", description="prediction rejection ratio vs r"),
    _m("passk_mse@K", "pass@{k} MSE", -1, "capability", kind="passk", headline=6, family_default="passk_mse@4",
       description="instance-level MSE of predicted 1 - (1 - p)^K against the unbiased pass@K"),
    _m("budget_gain", "Budget gain", 1, "capability", kind="budget", headline=7,
       description="mean over budgets B of the greedy allocation's solve-rate gain over uniform"),
)

_BY_NAME = {m.name: m for m in METRICS if not m.is_family}
_FAMILIES = {m.name[:-2]: m for m in METRICS if m.is_family}  # "passk_mse" -> Metric
_INSTANCE = re.compile(r"^([a-z][a-z0-9_]*)@(\d+)$")


def lookup(name: str) -> Metric:
    """The catalogue entry of ``name``; a family instance (``"passk_mse@16"``) gets its own name and title.

    Raises:
        KeyError: ``name`` is not a metric of the catalogue.
    """
    if name in _BY_NAME:
        return _BY_NAME[name]
    m = _INSTANCE.match(name)
    if m and m.group(1) in _FAMILIES and int(m.group(2)) >= 1:
        fam = _FAMILIES[m.group(1)]
        return replace(fam, name=name, title=fam.title.format(k=int(m.group(2))), family_default=None)
    raise KeyError(name)


def is_known_metric(name: str) -> bool:
    """True for a metric of the catalogue (``passk_mse@K`` for any integer K >= 1)."""
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def metric_direction(name: str) -> int:
    """+1 when a larger value is better, -1 when smaller is better, 0 for neither.

    Raises:
        KeyError: ``name`` is not a metric of the catalogue.
    """
    return lookup(name).direction


def metric_title(name: str) -> str:
    """Column title (``"cc_brier"`` -> ``"CC-Brier"``, ``"passk_mse@4"`` -> ``"pass@4 MSE"``); an unknown
    name is returned as it is."""
    try:
        return lookup(name).title
    except KeyError:
        return name


def metric_names(include_families: bool = True) -> list[str]:
    """Every plain metric name in report order; with ``include_families`` also the family patterns
    (``"passk_mse@K"``)."""
    return [m.name for m in METRICS if include_families or not m.is_family]


def calibration_metrics() -> tuple[str, ...]:
    """Names computed by :func:`capcal.analysis.point_metrics` for every estimator (calibration and selective
    prediction), in report order."""
    return tuple(m.name for m in METRICS if m.kind in ("calibration", "selective"))


def selective_metrics() -> tuple[str, ...]:
    """The selective-prediction metrics (:mod:`capcal.selective`), in report order."""
    return tuple(m.name for m in METRICS if m.kind == "selective")


def comparable_metrics() -> list[str]:
    """Plain metric names ``capcal compare`` can compute (every ``passk_mse@K`` as well)."""
    return [m.name for m in METRICS if m.comparable and not m.is_family]


def _defaults(rank) -> list[str]:
    chosen = sorted((rank(m), m.family_default or m.name) for m in METRICS if rank(m))
    return [name for _, name in chosen]


def headline_defaults() -> list[str]:
    """The leaderboard's default columns (when the runs name no suite), in column order."""
    return _defaults(lambda m: m.headline)


def compare_defaults() -> list[str]:
    """The metrics ``capcal compare`` reports by default (it adds ``passk_mse@4`` where every n >= 4)."""
    return _defaults(lambda m: m.compared)


def schema_property_names() -> dict:
    """The JSON Schema ``propertyNames`` of a ``metrics`` object: exactly the catalogue's names."""
    families = "|".join(re.escape(prefix) for prefix in sorted(_FAMILIES))
    return {"anyOf": [{"enum": sorted(_BY_NAME)}, {"pattern": f"^({families})@[1-9][0-9]*$"}]}


#: Routing score names (:mod:`capcal.routing`), in report order.
ROUTING_SCORE_NAMES = ("gain", "acc@20", "acc@50", "decision_accuracy", "routed_at_threshold",
                       "accuracy_at_threshold")
#: The headline routing scores every report shows (``capcal route``, the leaderboard's routing section):
#: name -> column title. All are better when larger.
ROUTING_HEADLINE_SCORES = {"gain": "Gain captured", "acc@20": "Acc. at 20% routed",
                           "acc@50": "Acc. at 50% routed", "decision_accuracy": "Decision acc."}
