"""Selective prediction: answer only the questions with the highest confidence (pure numpy).

Keep the fraction c (the coverage) of questions with the highest confidence p. The accuracy at coverage
c is the mean target of the kept questions: the capability target mu (``cc_``) or the response target r
(``rc_``); the risk is ``1 - accuracy``. Questions with the same p are kept or dropped together; a
coverage that falls inside a tie group keeps the needed share of it, and its accuracy is the expected
value over which members are kept (the tie group counts with its mean target).

* **AURC** (area under the risk-coverage curve): the mean of the risk at the N coverages ``k / N``,
  ``k = 1..N`` (N valid questions): ``AURC = 1 - (1/N) sum_k (1/k) sum_{j <= k} t_(j)`` with the
  questions in decreasing confidence. This is LM-Polygraph's ``rcc-auc`` on a 0/1 target (and the
  discrete AURC of Geifman and El-Yaniv).
* **PRR** (prediction rejection ratio): ``(AURC_random - AURC) / (AURC_random - AURC_oracle)``, where the
  oracle keeps the questions in decreasing order of the target itself and the random ordering's AURC is
  its exact expectation ``1 - mean(t)`` (every prefix mean of a random order has expectation mean(t)).
  1 = the oracle's ordering, 0 = no better than random, negative = worse than random; undefined (NaN)
  when every target is equal. On 0/1 targets without ties in p this is exactly LM-Polygraph's normalised
  ``prr`` (its PredictionRejectionArea, the area of mean quality over the N rejection levels, normalised
  between the oracle and random orderings), with the random area taken as its exact expectation instead
  of the mean over 1000 shuffles.

Weights (bootstrap counts) turn a question drawn w times into a tie group of w copies; the sums over k
inside a tie group use harmonic numbers: a group of weight g and mean target m after weight C and target
sum T adds ``g m + (T - C m) (H(C + g) - H(C))``. Everything is vectorised over resamples.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from . import validate as V
from .resampling import resample_counts

#: Coverages of the curve stored with each estimator's analysis.
COVERAGES = tuple(round(0.05 * i, 2) for i in range(1, 21))
#: PRR is undefined when the oracle is better than random by less than this.
_EPS = 1e-12


def digamma(x) -> np.ndarray:
    """The digamma function psi(x) = d/dx ln Gamma(x) for x > 0, elementwise (numpy, no scipy import).

    Whole numbers (the counts this module passes) are looked up in a table of harmonic numbers,
    psi(n) = H(n - 1) - Euler's gamma. Other arguments are lifted to >= 10 by the recurrence
    psi(x) = psi(x + 1) - 1/x, then the asymptotic series ln x - 1/(2x) - sum B_2k / (2k x^2k) (six terms)
    applies; both agree with ``scipy.special.digamma`` to about 1e-13.

    Args:
        x: positive values, any shape.

    Returns:
        psi(x), float64, the shape of ``x``; NaN where ``x <= 0`` or NaN.
    """
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return np.zeros(x.shape)
    bad = ~(x > 0)
    if not bad.any() and x.max() <= 10_000_000 and np.array_equal(x, np.floor(x)):
        table = np.empty(int(x.max()))
        table[0] = -_EULER_GAMMA
        np.cumsum(1.0 / np.arange(1, table.size), out=table[1:])
        table[1:] -= _EULER_GAMMA
        return table[x.astype(np.int64) - 1]
    x = np.where(bad, 1.0, x)
    shift = np.ceil(np.maximum(10.0 - x, 0.0))
    acc = np.zeros_like(x)
    for i in range(int(shift.max())):
        acc -= np.where(shift > i, 1.0 / (x + i), 0.0)
    x = x + shift
    inv2 = 1.0 / (x * x)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 * (1 / 132 - inv2 * 691 / 32760)))))
    out = acc + np.log(x) - 0.5 / x - series
    out[bad] = np.nan
    return out


_EULER_GAMMA = 0.57721566490153286061


def tie_group_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal values in a sorted (Q,) vector; empty for an empty vector."""
    if not sorted_values.size:
        return np.zeros(0, np.int64)
    new = np.empty(sorted_values.size, bool)
    new[0] = True
    new[1:] = sorted_values[1:] != sorted_values[:-1]
    return np.flatnonzero(new)


class Ordering:
    """The valid questions in decreasing confidence, with their tie groups.

    Args:
        p: (Q,) confidences; NaN questions are left out (weight 0).
    """

    def __init__(self, p):
        p = np.asarray(p, dtype=float)
        self.valid = ~np.isnan(p)
        self.all_valid = bool(self.valid.all())
        idx = np.flatnonzero(self.valid)
        self.order = idx[np.argsort(-p[idx], kind="stable")]
        self.starts = tie_group_starts(p[self.order])
        self.ends = np.append(self.starts[1:], self.order.size)      # one past the last member of each group
        self.ties = self.starts.size < self.order.size
        self.values = p[self.order][self.starts]

    def grouped(self, w: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(group weights, group target sums), both (b, G), for weights ``w`` (b, Q) and a target (Q,)."""
        ws = np.take(w, self.order, axis=1)
        if not self.starts.size:
            return np.zeros((w.shape[0], 0)), np.zeros((w.shape[0], 0))
        return (np.add.reduceat(ws, self.starts, axis=1),
                np.add.reduceat(ws * t[self.order], self.starts, axis=1))


@lru_cache(maxsize=8)
def _harmonic(n_max: int) -> np.ndarray:
    """``H[k] = 1 + 1/2 + ... + 1/k`` for k = 0..n_max (``H[0] = 0``), each exact to rounding (digamma)."""
    return digamma(np.arange(n_max + 1, dtype=float) + 1.0) + np.euler_gamma


def _group_weights(ordering: Ordering, w: np.ndarray) -> np.ndarray:
    """(b, G) total weight of each tie group of ``ordering`` under the weights ``w`` (b, Q)."""
    cum = np.cumsum(np.take(w, ordering.order, axis=1), axis=1)
    end = cum[:, ordering.ends - 1] if ordering.ties else cum
    return np.diff(end, axis=1, prepend=0.0)


def _harmonic_at(end: np.ndarray, total: np.ndarray, integral: bool) -> np.ndarray:
    """H(end) elementwise: from one table for whole-number weights, else through digamma."""
    if integral and end.size:
        return _harmonic(int(total.max()))[end.astype(np.int64)]
    return digamma(end + 1.0) + np.euler_gamma


def _group_coefficients(g: np.ndarray, integral: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per tie group, the factor K that turns its target sum into its share of ``sum_k prefix_k / k``.

    With the groups in keep order, group weights g, C the weight before a group, E = C + g its end, S the
    total and H the harmonic numbers, a group of target sum s and mean m = s / g adds ``g m + (T - C m)
    (H(E) - H(C))`` (T the target sum before it). Summed over groups, ``sum_g T_g (H(E_g) - H(C_g))``
    telescopes to ``sum_j s_j (H(S) - H(E_j))``, so the total is ``sum_g s_g K_g`` with
    ``K_g = 1 + H(S) - H(E_g) - C_g (H(E_g) - H(C_g)) / g_g`` (0 for an empty group): the same factors serve
    every target. Integer weights (bootstrap counts) read H from one table; others use digamma.

    Returns:
        ``(K, S)``: (b, G) factors and (b,) total weights.
    """
    end = np.cumsum(g, axis=1)
    total = end[:, -1] if end.shape[1] else np.zeros(g.shape[0])
    hv = _harmonic_at(end, total, integral)
    h = np.diff(hv, axis=1, prepend=0.0)
    h_total = hv[:, -1:] if hv.shape[1] else np.zeros((g.shape[0], 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(g > 0, 1.0 + h_total - hv - (end - g) * h / np.where(g > 0, g, 1.0), 0.0)
    return k, total


def selective_rows(w: np.ndarray, order: Ordering, targets: Mapping[str, tuple[Ordering, np.ndarray]], *,
                   integral: bool = True, oracle_cache: dict | None = None) -> dict[str, dict[str, np.ndarray]]:
    """AURC, oracle AURC, random AURC and PRR against several targets for each row of weights ``w`` (b, Q).

    Args:
        w: (b, Q) non-negative question weights: bootstrap counts, or ones for the data itself.
        order: the confidence's :class:`Ordering`.
        targets: name -> (the target's own ordering of the same valid questions, the target (Q,) with 0 at
            invalid questions), as :func:`prepare` gives them.
        integral: the weights are whole numbers (counts); ``False`` for arbitrary non-negative weights.
        oracle_cache: a dict shared by the estimators with the same valid questions for the same ``w``:
            the oracle and random AURC of each target are computed once for all of them.

    Returns:
        ``{name: {"aurc", "oracle_aurc", "random_aurc", "prr"}}``, each (b,) (NaN for a row without weight).
    """
    wv = w if order.all_valid else w * order.valid
    ws = np.take(wv, order.order, axis=1)                    # (b, Qv) weights in keep order
    if order.ties:
        end = np.cumsum(ws, axis=1)[:, order.ends - 1]
        g = np.diff(end, axis=1, prepend=0.0)
    else:                                                    # every question its own group
        g, end = ws, np.cumsum(ws, axis=1)
    total = end[:, -1] if end.shape[1] else np.zeros(w.shape[0])
    hv = _harmonic_at(end, total, integral)
    # g K = g (1 + H(S)) - (E H(E) - C H(C)) (the C h and g H(E) terms telescope), with C H(C) the previous
    # group's E H(E): one difference of f = E H(E), no division for questions without ties
    one_plus = (1.0 + hv[:, -1:]) if hv.shape[1] else np.ones((w.shape[0], 1))
    hv *= end
    d = np.diff(hv, axis=1, prepend=0.0)
    if order.ties:
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(g > 0, d / np.where(g > 0, g, 1.0), 0.0)
        grp = np.repeat(np.arange(order.starts.size), np.diff(np.append(order.starts, order.order.size)))
        kq = ws * (one_plus - np.take(d, grp, axis=1))       # a member's factor: its weight times the group's
    else:
        kq = ws * one_plus
        kq -= d
    out = {}
    for name, (oracle, t) in targets.items():
        cached = oracle_cache.get(name) if oracle_cache is not None else None
        if cached is None:
            # the oracle's groups hold equal targets, so its total needs only the group weights
            g_o = _group_weights(oracle, wv)
            k_o, _ = _group_coefficients(g_o, integral)
            t_o = t[oracle.order][oracle.starts]
            with np.errstate(invalid="ignore", divide="ignore"):
                best = 1.0 - (k_o * g_o * t_o).sum(axis=1) / total
                rand = 1.0 - (g_o * t_o).sum(axis=1) / total
            cached = (best, rand)
            if oracle_cache is not None:
                oracle_cache[name] = cached
        best, rand = cached
        with np.errstate(invalid="ignore", divide="ignore"):
            aurc = 1.0 - (kq * t[order.order]).sum(axis=1) / total
            prr = np.where(rand - best > _EPS, (rand - aurc) / (rand - best), np.nan)
        res = {"aurc": aurc, "oracle_aurc": best.copy(), "random_aurc": rand.copy(), "prr": prr}
        for v in res.values():
            v[total <= 0] = np.nan
        out[name] = res
    return out


def aurc_rows(w: np.ndarray, order: Ordering, oracle: Ordering, t: np.ndarray) -> dict[str, np.ndarray]:
    """AURC, oracle AURC, random AURC and PRR against one target for each row of weights ``w`` (b, Q).

    ``order``, ``oracle`` and ``t`` are what :func:`prepare` returns. Returns (b,) arrays.
    """
    return selective_rows(w, order, {"t": (oracle, t)})["t"]


def prepare(p, t) -> tuple[Ordering, Ordering, np.ndarray]:
    """The orderings :func:`aurc_rows` needs: (by confidence, by target, target with 0 at NaN questions).

    ``p`` may be any real score (only its order counts; NaN = left out); ``t`` must lie in [0, 1].

    Raises:
        ValueError: an infinite score, a target outside [0, 1], or shapes that differ.
    """
    p = V.finite_or_nan(p, "p", "selective prediction")   # only its order counts: any real score
    t = V.unit_interval(t, "target", "selective prediction", allow_nan=True)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"confidences {p.shape} and target {t.shape} must be (Q,) arrays of the same length")
    order = Ordering(p)
    # the oracle orders the same valid questions by the target itself
    oracle = Ordering(np.where(order.valid, t, np.nan))
    return order, oracle, np.where(order.valid, t, 0.0)


def aurc(p, t) -> float:
    """Area under the risk-coverage curve (module docstring) of confidences ``p`` against target ``t``.

    Args:
        p: (Q,) confidences, NaN = failed (left out).
        t: (Q,) target in [0, 1]: 0/1 correctness or fractional mu.

    Returns:
        The AURC in [0, 1]; NaN when no question is valid.
    """
    order, oracle, tz = prepare(p, t)
    return float(aurc_rows(np.ones((1, tz.size)), order, oracle, tz)["aurc"][0])


def prr(p, t) -> float:
    """Prediction rejection ratio ``(AURC_random - AURC) / (AURC_random - AURC_oracle)`` (NaN if undefined)."""
    order, oracle, tz = prepare(p, t)
    return float(aurc_rows(np.ones((1, tz.size)), order, oracle, tz)["prr"][0])


def selective_scores(p, t) -> dict[str, float]:
    """``{"aurc", "oracle_aurc", "random_aurc", "prr"}`` of one confidence against one target."""
    order, oracle, tz = prepare(p, t)
    return {k: float(v[0]) for k, v in aurc_rows(np.ones((1, tz.size)), order, oracle, tz).items()}


def selective_bootstrap(confidences: Mapping[str, np.ndarray], targets: Mapping[str, np.ndarray], n_boot: int,
                        seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """AURC and PRR against each target on the resamples of :func:`capcal.bootstrap.resample_counts`.

    Args:
        confidences: estimator name -> (Q,) confidences (NaN left out).
        targets: prefix -> (Q,) target, e.g. ``{"cc": mu, "rc": r}``.
        n_boot: resamples: the same count vectors as every other metric for this seed and Q, shared by
            every estimator (paired).
        seed: bootstrap seed.

    Returns:
        ``{name: {f"{prefix}_aurc": (n_boot,), f"{prefix}_prr": (n_boot,)}}``.
    """
    prepared = {(name, tn): prepare(p, t) for name, p in confidences.items() for tn, t in targets.items()}
    parts: dict[str, dict[str, list[np.ndarray]]] = {
        name: {f"{tn}_{m}": [] for tn in targets for m in ("aurc", "prr")} for name in confidences}
    if n_boot > 0 and prepared:
        q = next(iter(prepared.values()))[2].size
        for w in resample_counts(q, n_boot, seed):
            for (name, tn), (order, oracle, tz) in prepared.items():
                rows = aurc_rows(w, order, oracle, tz)
                parts[name][f"{tn}_aurc"].append(rows["aurc"])
                parts[name][f"{tn}_prr"].append(rows["prr"])
    return {name: {k: np.concatenate(v) if v else np.zeros(0) for k, v in d.items()} for name, d in parts.items()}


def risk_coverage_curve(p, t) -> list[dict[str, float]]:
    """The accuracy at every threshold: keeping the questions with ``p >= threshold``.

    Returns:
        ``[{"threshold", "coverage", "accuracy", "risk"}]``, one point per distinct confidence, in
        decreasing threshold (increasing coverage); NaN questions are left out of both numerator and
        denominator.
    """
    order, _, tz = prepare(p, t)
    g, s = order.grouped(np.ones((1, tz.size)), tz)
    n = g.sum()
    kept, good = np.cumsum(g[0]), np.cumsum(s[0])
    return [{"threshold": float(v), "coverage": float(k / n), "accuracy": float(a / k), "risk": float(1 - a / k)}
            for v, k, a in zip(order.values, kept, good, strict=True)]


def accuracy_at_coverage(p, t, coverages=COVERAGES) -> np.ndarray:
    """The accuracy when keeping the share ``c`` of the most confident valid questions, for each c.

    A coverage inside a tie group keeps that share of the group at its mean target (the expectation over
    which members are kept). Returns (len(coverages),) floats (NaN when no question is valid).
    """
    order, _, tz = prepare(p, t)
    g, s = order.grouped(np.ones((1, tz.size)), tz)
    g, s = g[0], s[0]
    n = g.sum()
    out = np.full(len(coverages), np.nan)
    if n <= 0:
        return out
    cw, cs = np.cumsum(g), np.cumsum(s)
    for i, c in enumerate(coverages):
        mass = c * n
        j = min(int(np.searchsorted(cw, mass - 1e-9 * n)), g.size - 1)
        before_w, before_s = cw[j] - g[j], cs[j] - s[j]
        out[i] = (before_s + (mass - before_w) * s[j] / g[j]) / mass
    return out


def selective_curve(p, mu, r, coverages=COVERAGES) -> list[dict[str, float]]:
    """The stored curve: per coverage, the accuracy against mu and r, and the oracle's (ordering by the
    target) against each.

    Returns:
        ``[{"coverage", "cc_accuracy", "rc_accuracy", "cc_oracle", "rc_oracle"}]``; ``random`` accuracy is
        the mean target at every coverage (not repeated here).
    """
    p = V.finite_or_nan(p, "p", "selective_curve")
    mu = V.unit_interval(mu, "mu", "selective_curve", allow_nan=True)
    r = V.binary(r, "r", "selective_curve", allow_nan=True)
    valid = ~np.isnan(p)
    cols = {"cc_accuracy": accuracy_at_coverage(p, mu, coverages),
            "rc_accuracy": accuracy_at_coverage(p, r, coverages),
            "cc_oracle": accuracy_at_coverage(np.where(valid, mu, np.nan), mu, coverages),
            "rc_oracle": accuracy_at_coverage(np.where(valid, r, np.nan), r, coverages)}
    return [{"coverage": float(c), **{k: float(v[i]) for k, v in cols.items()}} for i, c in enumerate(coverages)]
