"""Routing between models and cascades over models, scored against the capability target (pure numpy).

**Routing (two models).** Question i goes to the large model when the small model's confidence
``p_i < t``. Over every threshold t the expected accuracy is the mean of ``mu_small`` on the kept
questions and of ``mu_large`` on the routed ones; the x axis is the fraction routed (times a cost ratio
for the cost axis). Questions with the same ``p`` are routed together: the curve has one point per
distinct confidence, and between two points it is the straight line (the expected accuracy when a
random share of the tie group is routed).

Baselines on the same axes: **random** routing (the straight line from "keep everything" to "route
everything") and **oracle** routing (largest ``mu_large - mu_small`` first). Any other ordering (the large
model's own confidence, a difference of confidences) is a *priority*: :func:`routing_curve` routes
higher priorities first.

**Scores** (:func:`routing_scores`): the routing gain captured ``(area - random area) / (oracle area -
random area)`` (random = 0, oracle = 1, below 0 for an ordering worse than random; undefined when the
oracle is no better than random), the accuracy at 20 % and 50 % routed (read off the curve, ties
interpolated), and the decision accuracy at one threshold: a decision is right when it sends the
question to the model with the higher mu (ties, ``mu_large == mu_small``, count as right for keeping).

**Cascades** (:func:`cascade_curve`): models ordered cheapest first; a question stays with the first model
whose own confidence reaches t (``p >= t``), the last model always answers. Accuracy against expected
cost is traced over t. The cost of a question is the sum of the marginal costs of every model after the
first that it reached (the first model answers every question, so its own cost is the baseline 0); with
two models this is exactly routing with cost = fraction routed x cost ratio. Baselines: random (every
model passes a question on with the same probability t, whatever the question) and the oracle (the best
accuracy any assignment of questions to models reaches at each cost: the upper concave hull of each
question's (cost, mu) points, merged by slope).

**Bootstrap.** :func:`routing_bootstrap` and :func:`cascade_bootstrap` evaluate the scores on the count
vectors of :func:`capcal.bootstrap.resample_counts` (the same resamples as every other metric of a task,
for a given seed), vectorised over resamples: a resample is the original questions weighted by their
counts, so a question drawn twice is a tie group of weight 2.

Shapes: every per-question array is (Q,); curves are lists of plain dicts; NaN marks an undefined score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from . import validate as V
from .bootstrap import resample_counts
from .metric_catalogue import ROUTING_HEADLINE_SCORES, ROUTING_SCORE_NAMES
from .selective import tie_group_starts as _groups

#: Fractions routed at which the accuracy is reported (``acc@20``, ``acc@50``).
FRACTIONS = (0.2, 0.5)
#: Default decision threshold: route when ``p < 0.5``.
DEFAULT_THRESHOLD = 0.5
#: A gain is undefined when the oracle area exceeds the random area by less than this.
_EPS = 1e-12
#: Routing score names, in report order, and the headline ones with their titles (the metric catalogue's).
SCORE_NAMES = ROUTING_SCORE_NAMES
HEADLINE_SCORES = ROUTING_HEADLINE_SCORES


@dataclass
class Events:
    """Steps of a piecewise-linear curve, sorted in the order they are switched on.

    Attributes:
        question: (E,) the question each step belongs to (its weight scales the step).
        dx, dy: (E,) the step's move along the x axis (fraction or cost) and in accuracy, per unit weight.
        starts: (G,) first event of every tie group (steps of one group are switched on together).
        key: (G,) the sort value of every group (the confidence, the priority, ...).
    """

    question: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    starts: np.ndarray
    key: np.ndarray

    @classmethod
    def sorted_by(cls, key, question, dx, dy, descending: bool = False) -> Events:
        key = np.asarray(key, dtype=float)
        order = np.argsort(-key if descending else key, kind="stable")
        ks = key[order]
        starts = _groups(ks)
        return cls(np.asarray(question)[order], np.asarray(dx, float)[order], np.asarray(dy, float)[order],
                   starts, ks[starts])

    def curve(self, w: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points of the curve for each row of weights.

        Args:
            w: (b, Q) question weights (bootstrap counts; ones for the data itself).
            base: (b,) accuracy before any step.

        Returns:
            ``(x, y)``, both (b, G + 1): the point before any step, then after every tie group.
        """
        b = w.shape[0]
        x = np.zeros((b, self.starts.size + 1))
        y = np.zeros((b, self.starts.size + 1))
        if self.starts.size:
            we = np.take(w, self.question, axis=1)
            s = w.sum(axis=1)[:, None]
            with np.errstate(invalid="ignore", divide="ignore"):
                np.cumsum(np.add.reduceat(we * self.dx, self.starts, axis=1), axis=1, out=x[:, 1:])
                np.cumsum(np.add.reduceat(we * self.dy, self.starts, axis=1), axis=1, out=y[:, 1:])
                x[:, 1:] /= s
                y[:, 1:] /= s
        y += base[:, None]
        return x, y


def _area(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Trapezoid area under each row of (b, P) points."""
    return np.sum(np.diff(x, axis=1) * (y[:, 1:] + y[:, :-1]) * 0.5, axis=1)


def _interp_rows(x: np.ndarray, y: np.ndarray, at: float) -> np.ndarray:
    """Each row's piecewise-linear y at ``x = at`` (x nondecreasing from 0; NaN beyond the row's end)."""
    k = np.sum(x < at, axis=1)
    rows = np.arange(x.shape[0])
    out = np.full(x.shape[0], np.nan)
    first = k == 0
    out[first] = y[first, 0]
    ok = (k > 0) & (k < x.shape[1])
    k0, r = k[ok] - 1, rows[ok]
    x0, x1, y0, y1 = x[r, k0], x[r, k0 + 1], y[r, k0], y[r, k0 + 1]
    out[ok] = y0 + (at - x0) * (y1 - y0) / (x1 - x0)
    return out


def _over_resamples(rows, names: list[str], q: int, n_boot: int, seed: int, point: bool):
    """``rows(w)`` -> ``{name: {score: (b,)}}`` evaluated on unit weights (``point``) or on every chunk of
    :func:`resample_counts`, concatenated: ``{name: {score: (n_boot,)}}``."""
    if point:
        return rows(np.ones((1, q)))
    parts = [rows(w) for w in resample_counts(q, n_boot, seed)] if n_boot > 0 else []
    if not parts:
        return {name: {} for name in names}
    return {name: {k: np.concatenate([pt[name][k] for pt in parts]) for k in parts[0][name]} for name in names}


def _check(name: str, a, q: int | None = None, kind: str = "target") -> np.ndarray:
    """``a`` as a (Q,) float array, validated for its ``kind``.

    Args:
        kind: ``"target"`` (a capability target: values in [0, 1], no NaN), ``"confidence"`` (in [0, 1] or
            NaN) or ``"priority"`` (any finite value or NaN).

    Raises:
        ValueError: a shape other than (q,), or entries outside the kind's range (their count is named).
    """
    if kind == "confidence":
        arr = V.confidences(a, name, "routing")
    elif kind == "priority":
        arr = V.finite_or_nan(a, name, "routing")
    else:
        arr = V.unit_interval(a, name, "routing")
    if arr.ndim != 1 or (q is not None and arr.size != q):
        raise ValueError(f"{name}: expected a ({q if q is not None else 'Q'},) array, got shape {arr.shape}")
    return arr


# ------------------------------------------------------------------------------------------------------
# two-model routing
def _routing_events(priority: np.ndarray, d: np.ndarray) -> Events:
    """Higher priority routed first; a routed question moves x by 1 (fraction) and y by ``d``."""
    q = np.arange(priority.size)
    return Events.sorted_by(priority, q, np.ones(priority.size), d, descending=True)


def routing_curve(p, mu_small, mu_large, *, priority=None, cost_ratio: float = 1.0) -> list[dict[str, float]]:
    """The routing curve of one confidence (or of any priority), one point per tie group.

    Args:
        p: (Q,) the small model's confidences; question i is routed when ``p_i < t``. NaN questions must
            be dropped first (they have no decision).
        mu_small, mu_large: (Q,) capability targets of the two models on the same questions.
        priority: (Q,) optional ordering instead of ``p``: higher values are routed first (``p`` is then
            ignored and may be ``None``); the oracle is ``priority = mu_large - mu_small``.
        cost_ratio: the cost of one large-model answer relative to a small-model one; ``cost`` is the
            fraction routed times this ratio.

    Returns:
        ``[{"routed", "cost", "accuracy", "p_max_routed"}]``: the first point routes nothing; point g
        routes every question whose confidence is ``<= p_max_routed`` (with ``priority``: whose priority
        is ``>= p_max_routed``, the key of the last group routed).
    """
    mu_s, mu_l = _check("mu_small", mu_small), _check("mu_large", mu_large, np.size(mu_small))
    key = (-_check("p", p, mu_s.size, "confidence") if priority is None
           else _check("priority", priority, mu_s.size, "priority"))
    if np.isnan(key).any():
        raise ValueError("routing_curve: drop the questions without a confidence (NaN) first")
    ev = _routing_events(key, mu_l - mu_s)
    w = np.ones((1, mu_s.size))
    x, y = ev.curve(w, np.array([mu_s.mean()]) if mu_s.size else np.array([np.nan]))
    keys = [None] + [float(-k if priority is None else k) for k in ev.key]
    return [{"routed": float(a), "cost": float(a) * cost_ratio, "accuracy": float(b), "p_max_routed": k}
            for a, b, k in zip(x[0], y[0], keys, strict=True)]


def random_routing_curve(mu_small, mu_large, *, cost_ratio: float = 1.0, points: int = 2) -> list[dict[str, float]]:
    """The random-routing line from keep-all to route-all, at ``points`` evenly spaced fractions."""
    a, b = float(np.mean(mu_small)), float(np.mean(mu_large))
    return [{"routed": f, "cost": f * cost_ratio, "accuracy": a + f * (b - a)}
            for f in np.linspace(0.0, 1.0, points).tolist()]


def _scores(w: np.ndarray, curve_ev: Events, oracle_ev: Events, mu_s: np.ndarray, mu_l: np.ndarray,
            right: np.ndarray | None, routed_t: np.ndarray | None) -> dict[str, np.ndarray]:
    """Every routing score for each row of weights ``w`` (b, Q)."""
    s = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        base = (w @ mu_s) / s
        top = (w @ mu_l) / s
        x, y = curve_ev.curve(w, base)
        xo, yo = oracle_ev.curve(w, base)
        area, oracle, rand = _area(x, y), _area(xo, yo), 0.5 * (base + top)
        gain = np.where(oracle - rand > _EPS, (area - rand) / (oracle - rand), np.nan)
        out = {"gain": gain, "area": area, "random_area": rand, "oracle_area": oracle,
               "mean_mu_small": base, "mean_mu_large": top}
        for f in FRACTIONS:
            out[f"acc@{round(f * 100)}"] = _interp_rows(x, y, f)
            out[f"oracle_acc@{round(f * 100)}"] = _interp_rows(xo, yo, f)
        if right is not None:
            out["decision_accuracy"] = (w @ right) / s
            out["routed_at_threshold"] = (w @ routed_t) / s
            out["accuracy_at_threshold"] = (w @ np.where(routed_t > 0, mu_l, mu_s)) / s
    empty = s <= 0
    for v in out.values():
        v[empty] = np.nan
    return out


def decisions(p, mu_small, mu_large, threshold: float = DEFAULT_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Per question: routed at ``threshold`` (``p < threshold``) and whether that decision was right.

    A decision is right when it sends the question to the model with the higher mu; ``mu_large ==
    mu_small`` counts as right for keeping (the cheaper model is as good).

    Returns:
        ``(routed, right)``, both (Q,) float 0/1.
    """
    mu_s = _check("mu_small", mu_small)
    mu_l = _check("mu_large", mu_large, mu_s.size)
    return _decide(_check("p", p, mu_s.size, "confidence"), mu_s, mu_l, threshold)


def _decide(p: np.ndarray, mu_s: np.ndarray, mu_l: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`decisions` on checked arrays (``p`` may hold ``inf`` for questions that are never routed)."""
    routed = p < threshold
    right = np.where(routed, mu_l > mu_s, mu_l <= mu_s)
    return routed.astype(float), right.astype(float)


def routing_scores(p, mu_small, mu_large, *, threshold: float = DEFAULT_THRESHOLD, priority=None) -> dict[str, float]:
    """The routing scores of one confidence on the data itself (no resampling).

    Args:
        p: (Q,) small-model confidences (no NaN); ignored for the ordering when ``priority`` is given.
        mu_small, mu_large: (Q,) capability targets.
        threshold: the decision threshold (route when ``p < threshold``); needs ``p``.
        priority: optional (Q,) ordering instead of ``p`` (higher routed first); then the threshold
            scores are left out unless ``p`` is given too.

    Returns:
        ``{"gain", "area", "random_area", "oracle_area", "mean_mu_small", "mean_mu_large", "acc@20",
        "acc@50", "oracle_acc@20", "oracle_acc@50", "decision_accuracy", "routed_at_threshold",
        "accuracy_at_threshold"}`` (NaN where undefined).
    """
    boot = routing_bootstrap({"x": p}, mu_small, mu_large, n_boot=0, threshold=threshold,
                             priorities=None if priority is None else {"x": priority}, point=True)
    return {k: float(v[0]) for k, v in boot["x"].items()}


def routing_bootstrap(confidences: Mapping[str, np.ndarray], mu_small, mu_large, *, n_boot: int = 1000,
                      seed: int = 0, threshold: float = DEFAULT_THRESHOLD,
                      priorities: Mapping[str, np.ndarray] | None = None,
                      point: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Paired bootstrap of the routing scores of several confidences on the same questions.

    Args:
        confidences: name -> (Q,) small-model confidences (NaN = failed: that question is left out for
            that estimator, as in every other metric). With ``priorities``, the ordering comes from there
            and a confidence of ``None`` leaves out the threshold scores.
        mu_small, mu_large: (Q,) capability targets.
        n_boot: resamples; resample j is ``resample_counts(Q, n_boot, seed)``'s j-th count vector, the
            same for every estimator (paired).
        seed: bootstrap seed.
        threshold: decision threshold.
        priorities: optional name -> (Q,) ordering (higher routed first) replacing ``-p`` for that name.
        point: return the scores of the data itself (one row of unit weights) instead of resamples.

    Returns:
        ``{name: {score: (n_boot,) values}}`` (``(1,)`` with ``point``); scores as in :func:`routing_scores`.
    """
    mu_s = _check("mu_small", mu_small)
    mu_l = _check("mu_large", mu_large, mu_s.size)
    q = mu_s.size
    d = mu_l - mu_s
    prepared = {}
    for name, p in confidences.items():
        pr = None if priorities is None else priorities.get(name)
        pv = None if p is None else _check(f"confidence {name!r}", p, q, "confidence")
        key = -pv if pr is None else _check(f"priority {name!r}", pr, q, "priority")
        valid = ~np.isnan(key) if pv is None else ~(np.isnan(key) | np.isnan(pv))
        idx = np.flatnonzero(valid)
        ev = Events.sorted_by(key[idx], idx, np.ones(idx.size), d[idx], descending=True)
        oracle = Events.sorted_by(d[idx], idx, np.ones(idx.size), d[idx], descending=True)
        right = routed = None
        if pv is not None:
            routed, right = _decide(np.where(valid, pv, np.inf), mu_s, mu_l, threshold)
        prepared[name] = (valid.astype(float), ev, oracle, right, routed)

    def rows(w):
        return {name: _scores(w * v, ev, orc, mu_s, mu_l, right, routed)
                for name, (v, ev, orc, right, routed) in prepared.items()}

    return _over_resamples(rows, list(prepared), q, n_boot, seed, point)


# ------------------------------------------------------------------------------------------------------
# cascades
def _cascade_events(confidences: Sequence[np.ndarray], mus: Sequence[np.ndarray], costs: np.ndarray) -> Events:
    """One step per (question, model m >= 2): it switches on when t exceeds the largest confidence of the
    models before m (the question then reaches m), adding ``mu_m - mu_{m-1}`` and model m's cost."""
    q = mus[0].size
    reach = np.full(q, -np.inf)
    keys, qs, dx, dy = [], [], [], []
    for m in range(1, len(mus)):
        reach = np.maximum(reach, confidences[m - 1])
        keys.append(reach.copy())
        qs.append(np.arange(q))
        dx.append(np.full(q, float(costs[m - 1])))
        dy.append(mus[m] - mus[m - 1])
    return Events.sorted_by(np.concatenate(keys), np.concatenate(qs), np.concatenate(dx), np.concatenate(dy))


def _oracle_events(mus: Sequence[np.ndarray], costs: np.ndarray) -> Events:
    """The oracle's steps: per question, the edges of the upper concave hull of its points (C_m, mu_m)
    (C_1 = 0, C_m = cost of reaching model m), merged over questions by slope, steepest first."""
    mu = np.stack(mus, axis=1)                                   # (Q, M)
    q, m = mu.shape
    cx = np.concatenate([[0.0], np.cumsum(costs)])               # (M,)
    hull = np.ones((q, m), bool)
    for j in range(1, m - 1):                                    # j is off the hull when some chord a-b
        for a in range(j):                                       # with a < j < b passes on or above it
            for b in range(j + 1, m):
                chord = mu[:, a] + (mu[:, b] - mu[:, a]) * (cx[j] - cx[a]) / (cx[b] - cx[a])
                hull[:, j] &= mu[:, j] > chord + 1e-15
    idx = np.where(hull, np.arange(m), -1)
    prev = np.maximum.accumulate(np.concatenate([np.full((q, 1), -1), idx[:, :-1]], axis=1), axis=1)
    qi, mj = np.nonzero(hull & (prev >= 0))
    pj = prev[qi, mj]
    dx = cx[mj] - cx[pj]
    dy = mu[qi, mj] - mu[qi, pj]
    slope = dy / dx
    return Events.sorted_by(slope, qi, dx, dy, descending=True)


def _check_cascade(confidences, mus, costs):
    mus = [_check(f"mu of model {i + 1}", m) for i, m in enumerate(mus)]
    if len(mus) < 2:
        raise ValueError("a cascade needs at least two models")
    q = mus[0].size
    for i, mu in enumerate(mus):
        if mu.size != q:
            raise ValueError(f"mu of model {i + 1}: expected {q} questions, got {mu.size}")
    if len(confidences) < len(mus) - 1:
        raise ValueError(f"a cascade of {len(mus)} models needs the confidences of the first {len(mus) - 1}")
    conf = [_check(f"confidence of model {i + 1}", c, q, "confidence")
            for i, c in enumerate(confidences[:len(mus) - 1])]
    costs = np.asarray(costs, dtype=float).reshape(-1)
    if costs.size != len(mus) - 1 or not np.all(np.isfinite(costs)) or np.any(costs <= 0):
        raise ValueError(f"a cascade of {len(mus)} models needs {len(mus) - 1} positive marginal costs "
                         f"(models 2..{len(mus)} relative to model 1), got {costs.tolist()}")
    return conf, mus, costs


def _random_cascade_area(w: np.ndarray, mus: Sequence[np.ndarray], costs: np.ndarray) -> np.ndarray:
    """Area under the random cascade: every model passes a question on with probability t, so
    ``acc(t) = sum_a D_a t^(a-1)`` and ``cost(t) = sum_b c_b t^(b-1)``; the area is
    ``sum_{a, b} D_a c_b (b - 1) / (a + b - 2)`` (b from 2)."""
    s = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dmean = [(w @ mus[0]) / s] + [(w @ (mus[a] - mus[a - 1])) / s for a in range(1, len(mus))]
    area = np.zeros(w.shape[0])
    for a in range(1, len(mus) + 1):
        for b in range(2, len(mus) + 1):
            area += dmean[a - 1] * costs[b - 2] * (b - 1) / (a + b - 2)
    return area


def random_cascade_curve(mus: Sequence[np.ndarray], costs, points: int = 21) -> list[dict[str, float]]:
    """Points of the random cascade (each model passes a question on with probability t), t from 0 to 1."""
    mus = [_check(f"mu of model {i + 1}", m) for i, m in enumerate(mus)]
    costs = np.asarray(costs, dtype=float)
    out = []
    for t in np.linspace(0.0, 1.0, points):
        reach = [t ** (m - 1) for m in range(1, len(mus) + 1)]
        acc = float(np.mean(mus[0])) + sum(reach[m] * float(np.mean(mus[m] - mus[m - 1])) for m in range(1, len(mus)))
        cost = sum(reach[m] * float(costs[m - 1]) for m in range(1, len(mus)))
        out.append({"t": float(t), "cost": cost, "accuracy": acc})
    return out


def cascade_curve(confidences: Sequence[np.ndarray], mus: Sequence[np.ndarray], costs) -> list[dict[str, float]]:
    """Accuracy against expected cost of a cascade, one point per distinct threshold.

    Args:
        confidences: the first ``M - 1`` models' own confidences, each (Q,) (no NaN); the last model's is
            not needed (it always answers).
        mus: the M models' capability targets, each (Q,), cheapest model first.
        costs: (M - 1,) the marginal cost of models 2..M relative to model 1 (a question that reaches
            model m costs ``costs[0] + ... + costs[m - 2]``; model 1 answers every question).

    Returns:
        ``[{"t_above", "cost", "accuracy"}]``: the first point (every question stays with model 1),
        then after each distinct confidence value ``t_above``: the curve for ``t`` just above it.
    """
    conf, mus, costs = _check_cascade(confidences, mus, costs)
    if any(np.isnan(c).any() for c in conf):
        raise ValueError("cascade_curve: drop the questions without a confidence (NaN) first")
    ev = _cascade_events(conf, mus, costs)
    x, y = ev.curve(np.ones((1, mus[0].size)), np.array([mus[0].mean()]))
    keys = [None] + [float(k) for k in ev.key]
    return [{"t_above": k, "cost": float(a), "accuracy": float(b)} for a, b, k in zip(x[0], y[0], keys, strict=True)]


def oracle_cascade_curve(mus: Sequence[np.ndarray], costs) -> list[dict[str, float]]:
    """The oracle's accuracy against cost (the merged upper hulls), one point per distinct slope."""
    mus = [_check(f"mu of model {i + 1}", m) for i, m in enumerate(mus)]
    ev = _oracle_events(mus, np.asarray(costs, dtype=float))
    x, y = ev.curve(np.ones((1, mus[0].size)), np.array([mus[0].mean()]))
    return [{"cost": float(a), "accuracy": float(b)} for a, b in zip(x[0], y[0], strict=True)]


def cascade_bootstrap(confidences: Mapping[str, Sequence[np.ndarray]], mus: Sequence[np.ndarray], costs, *,
                      n_boot: int = 1000, seed: int = 0, point: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Paired bootstrap of the cascade scores of several estimators (each: its M - 1 confidence arrays).

    A question is left out for an estimator when any of its first M - 1 confidences is NaN.

    Returns:
        ``{name: {"gain", "area", "random_area", "oracle_area", "max_cost", "accuracy_at_max_cost"}:
        (n_boot,) values}`` (``(1,)`` with ``point``). The areas are under accuracy against cost from
        0 to the cost of sending every question through every model; the gain is normalised so that the
        random cascade is 0 and the oracle 1.
    """
    prepared = {}
    for name, conf in confidences.items():
        conf_c, mus_c, costs_c = _check_cascade(conf, mus, costs)
        valid = ~np.any([np.isnan(c) for c in conf_c], axis=0)
        prepared[name] = (valid.astype(float),
                          _cascade_events([np.where(valid, c, 0.0) for c in conf_c], mus_c, costs_c))
    mus_c = [_check(f"mu of model {i + 1}", m) for i, m in enumerate(mus)]
    costs_c = np.asarray(costs, dtype=float).reshape(-1)
    oracle = _oracle_events(mus_c, costs_c)
    q = mus_c[0].size

    def rows(w):
        out = {}
        for name, (v, ev) in prepared.items():
            wv = w * v
            s = wv.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                base = (wv @ mus_c[0]) / s
                x, y = ev.curve(wv, base)
                xo, yo = oracle.curve(wv, base)
                area, orc = _area(x, y), _area(xo, yo)
                rand = _random_cascade_area(wv, mus_c, costs_c)
                gain = np.where(orc - rand > _EPS, (area - rand) / (orc - rand), np.nan)
            res = {"gain": gain, "area": area, "random_area": rand, "oracle_area": orc,
                   "max_cost": np.full(w.shape[0], float(costs_c.sum())), "accuracy_at_max_cost": y[:, -1]}
            for val in res.values():
                val[s <= 0] = np.nan
            out[name] = res
        return out

    return _over_resamples(rows, list(prepared), q, n_boot, seed, point)
