"""Exact next-token sampling on logit arrays (pure numpy, no I/O): what a local backend does at each step.

The distribution a token is drawn from is defined here once:

1. ``x = logits / temperature`` (float64); tokens outside ``allowed`` (a grammar mask) get ``-inf``;
2. **top-k** (``top_k > 0``): keep the tokens whose ``x`` is at least the k-th largest (ties with the k-th
   are kept);
3. **top-p** (``top_p < 1``): on the distribution left by step 2, keep token i when the probability mass
   of the tokens *strictly more likely* than i is below ``top_p`` (so the most likely token is always
   kept, and tied tokens are kept or dropped together);
4. **min-p** (``min_p > 0``): on the distribution left by step 3, keep the tokens with probability at least
   ``min_p`` times the largest;
5. the kept tokens are renormalised: ``softmax(x)`` over them.

Every step keeps the tokens above a probability threshold, so the result never depends on how ties are
ordered. ``temperature == 0`` is greedy: the most likely allowed token (the lowest id among exact ties).

A token is drawn by inverting the cumulative distribution at one uniform number ``u`` in [0, 1) per
sample (``numpy.random.Generator.random``): the first token whose cumulative weight exceeds
``u * total``. A token of weight zero can never be drawn, and the draw depends only on the sample's own
logits and ``u``, not on which other rows share the array.
"""

from __future__ import annotations

import numpy as np

_NEG_INF = -np.inf


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (..., V) log-weights (``-inf`` entries get probability 0), in float64."""
    x = np.asarray(x, dtype=np.float64)
    w = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise natural-log probabilities of (..., V) logits, in float64."""
    x = np.asarray(logits, dtype=np.float64)
    m = np.max(x, axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def nucleus_threshold(p: np.ndarray, top_p: float) -> float:
    """The smallest probability kept by top-p on one (V,) distribution ``p`` (summing to 1).

    Token i is kept when the mass of the tokens strictly more likely than i is below ``top_p``; that set is
    ``{i: p_i >= threshold}``. Only the most likely tokens are sorted (64 at first, doubling until their mass
    reaches ``top_p``), so a small nucleus costs O(V), not a full sort.

    Returns:
        The threshold (> 0 whenever ``top_p > 0``).
    """
    v = p.size
    m = min(64, v)
    while True:
        top = p if m >= v else p[np.argpartition(p, v - m)[v - m:]]
        vals = np.sort(top)[::-1]
        if m >= v or vals.sum() >= top_p:
            break
        m *= 2
    before = np.cumsum(vals) - vals  # mass before each value in sorted order
    first = np.searchsorted(-vals, -vals, side="left")  # index of each value's first occurrence
    strictly_greater = before[first]
    kept = vals[strictly_greater < top_p]
    return float(kept[-1]) if kept.size else float(vals[0])


def truncated_logweights(logits: np.ndarray, temperature: float, top_k: int = 0, top_p: float = 1.0,
                         min_p: float = 0.0, allowed: np.ndarray | None = None) -> np.ndarray:
    """Log-weights of the sampling distribution, rows of (B, V) or one (V,) row of raw logits.

    Args:
        logits: raw model logits, (V,) or (B, V), any float dtype.
        temperature: > 0 (greedy decoding does not come here; see :func:`choose_tokens`).
        top_k: keep the ``top_k`` largest (0 = off).
        top_p: nucleus mass in (0, 1] (1 = off).
        min_p: relative probability floor in [0, 1] (0 = off).
        allowed: optional boolean mask of the same shape; ``False`` tokens are excluded before anything else.

    Returns:
        float64 array of the input's shape: ``logits / temperature`` where kept, ``-inf`` where truncated.
        ``softmax`` of it is the exact sampling distribution (see the module docstring).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 here, got {temperature}")
    x = np.array(logits, dtype=np.float64, ndmin=1) / float(temperature)
    squeeze = x.ndim == 1
    x = np.atleast_2d(x)
    if allowed is not None:
        x[~np.atleast_2d(np.asarray(allowed, dtype=bool))] = _NEG_INF
    v = x.shape[-1]
    if top_k and 0 < top_k < v:
        kth = np.partition(x, v - top_k, axis=-1)[:, v - top_k:v - top_k + 1]
        x[x < kth] = _NEG_INF
    if top_p < 1.0:
        p = softmax(x)
        for row in range(x.shape[0]):
            x[row, p[row] < nucleus_threshold(p[row], top_p)] = _NEG_INF
    if min_p > 0.0:
        p = softmax(x)
        x[p < min_p * p.max(axis=-1, keepdims=True)] = _NEG_INF
    return x[0] if squeeze else x


def cumulative_weights(logweights: np.ndarray) -> np.ndarray:
    """Unnormalised CDF of (..., V) log-weights: ``cumsum(exp(x - max))`` along the last axis (float64)."""
    lw = np.asarray(logweights, dtype=np.float64)
    return np.cumsum(np.exp(lw - lw.max(axis=-1, keepdims=True)), axis=-1)


def draw_from_cdf(cdf: np.ndarray, u: float) -> int:
    """The first token of one (V,) unnormalised CDF whose cumulative weight exceeds ``u * total``.

    Never a token of weight zero (its cumulative weight equals its predecessor's); ``u * total`` rounded up
    to the total gives the last token of positive weight.
    """
    total = cdf[-1]
    tok = int(np.searchsorted(cdf, u * total, side="right"))
    if tok >= cdf.size:
        tok = int(np.searchsorted(cdf, total, side="left"))  # the first index that reaches the total
    return tok


def draw(logweights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws for each row of (B, V) log-weights (see :func:`draw_from_cdf`).

    Args:
        logweights: (B, V) float64 log-weights (``-inf`` = excluded); each row needs one finite entry.
        u: (B,) uniforms in [0, 1).

    Returns:
        (B,) int64 token ids; never a token of weight zero.
    """
    cdf = np.atleast_2d(cumulative_weights(logweights))
    u = np.asarray(u, dtype=np.float64).reshape(-1)
    return np.array([draw_from_cdf(cdf[r], float(u[r])) for r in range(cdf.shape[0])], dtype=np.int64)


def choose_tokens(logits: np.ndarray, temperature: float, top_k: int, top_p: float, min_p: float,
                  generators: list[np.random.Generator], allowed: np.ndarray | None = None) -> np.ndarray:
    """One token per row of (B, V) logits, each row drawn with its own generator.

    ``temperature == 0`` picks the most likely allowed token and consumes no random numbers; otherwise
    each row's generator gives exactly one uniform, so a sample's draws depend on its seed only.

    Returns:
        (B,) int64 token ids.
    """
    logits = np.atleast_2d(logits)
    if temperature == 0:
        x = np.array(logits, dtype=np.float64)
        if allowed is not None:
            x[~np.atleast_2d(np.asarray(allowed, dtype=bool))] = _NEG_INF
        return np.argmax(x, axis=-1).astype(np.int64)
    lw = truncated_logweights(logits, temperature, top_k, top_p, min_p, allowed)
    u = np.array([g.random() for g in generators], dtype=np.float64)
    return draw(lw, u)


def top_alternatives(logp: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` largest entries of each row of (B, V) log-probabilities, most likely first.

    Returns:
        ``(ids, values)``: two (B, n) arrays (int64, float64).
    """
    logp = np.atleast_2d(logp)
    n = min(int(n), logp.shape[-1])
    part = np.argpartition(-logp, n - 1, axis=-1)[:, :n]
    vals = np.take_along_axis(logp, part, axis=-1)
    order = np.argsort(-vals, axis=-1, kind="stable")
    return np.take_along_axis(part, order, axis=-1).astype(np.int64), np.take_along_axis(vals, order, axis=-1)
