"""pass@k: the unbiased estimator from n graded samples, the prediction from a confidence, and their errors.

Definitions (DESIGN.md section 1):

* actual pass@k of a question with ``c`` correct out of ``n`` samples: ``1 - C(n - c, k) / C(n, k)``, the
  probability that at least one of ``k`` samples drawn *without replacement* from the ``n`` is correct.
  Only defined for ``0 <= k <= n``; pass@0 is 0. It is computed in the product form
  ``C(n - c, k) / C(n, k) = prod_{j < k} (n - c - j) / (n - j)`` (relative error about ``k`` ulp), and for
  ``k = 1`` it is exactly ``c / n``.
* predicted pass@k of a confidence ``p``: ``1 - (1 - p)^k`` (``k`` independent draws); for ``k = 1`` it is
  exactly ``p``, so the oracle ``p = mu`` has a pass@1 error of exactly zero.

Everything here is vectorised numpy over questions; ``k > n`` gives NaN, never 1.0.

Input checks (:mod:`capcal.validate`): confidences in [0, 1] or NaN, counts whole with ``0 <= c <= n``,
``k`` a whole number (``>= 1`` for predictions, ``>= 0`` for the unbiased estimator). Anything else raises
``ValueError`` (:class:`capcal.errors.InvalidArrayError`) naming the argument and how many entries are bad.
"""

from __future__ import annotations

import numpy as np

from . import validate as V


def curve_ks(n_min: int) -> list[int]:
    """The k of the dataset-level curves: 1, 2, 4, ... up to ``n_min``, plus ``n_min`` itself.

    Args:
        n_min: the smallest number of samples of any question (curves only use ``k <= n_min``).

    Returns:
        Increasing list of ints; empty when ``n_min < 1``. ``curve_ks(100)`` is ``[1, 2, 4, ..., 64, 100]``.

    Raises:
        ValueError: ``n_min`` is not a whole number.
    """
    n_min = int(V._whole(n_min, "n_min", "curve_ks"))
    ks, k = [], 1
    while k <= n_min:
        ks.append(k)
        k *= 2
    if n_min >= 1 and ks[-1] != n_min:
        ks.append(int(n_min))
    return ks


def passk_table(n, c, k_max: int | None = None) -> np.ndarray:
    """Unbiased pass@k of every question for every k from 0 to ``k_max``.

    Args:
        n: (Q,) ints, samples per question (>= 0).
        c: (Q,) ints, correct samples (0 <= c <= n).
        k_max: largest k (default: ``max(n)``).

    Returns:
        (Q, k_max + 1) float array; column k holds pass@k, column 0 is 0, and entries with ``k > n`` are NaN.
        Column 1 equals ``c / n`` exactly.

    Raises:
        ValueError: counts that are not whole numbers, ``c < 0``, ``c > n``, different shapes, ``k_max < 0``.
    """
    n, c = V.counts(np.reshape(n, -1), np.reshape(c, -1), "passk_table")
    if k_max is None:
        k_max = int(n.max()) if n.size else 0
    k_max = int(V.nonnegative_int(k_max, "k_max", "passk_table"))
    j = np.arange(k_max, dtype=np.float64)                       # (k_max,)
    wrong = (n - c).astype(np.float64)[:, None]
    total = n.astype(np.float64)[:, None]
    table = np.empty((n.size, k_max + 1))
    table[:, 0] = 0.0
    if k_max >= 1:
        rest = table[:, 1:]                                       # filled in place: one (Q, k_max) array
        # factor j is (n - c - j) / (n - j); once n - c - j hits 0 the product stays 0 (clip the negatives).
        np.subtract(wrong, j, out=rest)
        np.maximum(rest, 0.0, out=rest)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(rest, total - j, out=rest)
            np.cumprod(rest, axis=1, out=rest)
            np.subtract(1.0, rest, out=rest)
            rest[:, 0] = c / n
        rest[j[None, :] + 1 > total] = np.nan
    return table


def passk_unbiased(n, c, k) -> np.ndarray:
    """Unbiased pass@k ``1 - C(n - c, k) / C(n, k)`` per question.

    Args:
        n: (Q,) or scalar ints, samples per question.
        c: (Q,) or scalar ints, correct samples.
        k: scalar int or (Q,) ints (one k per question), ``k >= 0``.

    Returns:
        float array broadcast from the inputs (a 0-d array for scalars): 0 where ``c = 0``, 1 where ``c = n``
        (and ``k >= 1``), 0 for ``k = 0``, NaN where ``k > n``.

    Raises:
        ValueError: counts that are not whole numbers or break ``0 <= c <= n``, or a negative ``k``.
    """
    k_arr = V.nonnegative_int(k, "k", "passk_unbiased")
    n_arr, c_arr = V.counts(*np.broadcast_arrays(np.asarray(n), np.asarray(c)), "passk_unbiased")
    n_arr, c_arr, k_arr = np.broadcast_arrays(n_arr, c_arr, k_arr)
    shape = n_arr.shape
    n_f, c_f, k_f = n_arr.reshape(-1), c_arr.reshape(-1), k_arr.reshape(-1)
    k_top = int(min(k_f.max(), n_f.max())) if n_f.size else 0
    table = passk_table(n_f, c_f, max(k_top, 0))
    out = np.full(n_f.size, np.nan)
    ok = k_f <= n_f
    out[ok] = table[np.flatnonzero(ok), k_f[ok]]
    return out.reshape(shape)


def passk_predicted(p, k) -> np.ndarray:
    """Predicted pass@k ``1 - (1 - p)^k`` of confidences ``p`` (NaN stays NaN; ``k = 1`` returns ``p``).

    Args:
        p: (Q,) confidences in [0, 1] (NaN allowed).
        k: int >= 1, or an array broadcastable with ``p``.

    Raises:
        ValueError: a confidence outside [0, 1], or a ``k`` that is not a whole number >= 1.
    """
    p = V.confidences(p, "p", "passk_predicted")
    k = V.positive_int(k, "k", "passk_predicted")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -np.expm1(k * np.log1p(-np.minimum(p, 1.0)))
    return np.where(k == 1, p, np.where(p >= 1.0, 1.0, out))


def _checked(p, n, c, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(p, n, c, min n)`` checked: confidences in [0, 1] or NaN, counts with ``0 <= c <= n``, equal lengths."""
    p = V.confidences(p, "p", where)
    n, c = V.counts(n, c, where)
    V.same_length(where, p=p, n=n, c=c)
    return p, n, c, int(n.min()) if n.size else 0


def passk_mse(p, n, c, ks=(1, 4, 16, 64)) -> dict[int, float]:
    """Instance-level mean squared error between predicted and actual pass@k.

    Args:
        p: (Q,) confidences; NaN questions are excluded.
        n, c: (Q,) samples and correct samples per question.
        ks: the k to report; only those with ``k <= min(n)`` are returned.

    Returns:
        ``{k: mse}``; NaN when every confidence is NaN.

    Raises:
        ValueError: confidences outside [0, 1], counts breaking ``0 <= c <= n``, or arrays of different lengths.
    """
    p, n, c, n_min = _checked(p, n, c, "passk_mse")
    valid = np.isfinite(p)
    out = {}
    for k in ks:
        if k > n_min:
            continue
        err = passk_predicted(p[valid], k) - passk_unbiased(n[valid], np.asarray(c)[valid], k)
        out[int(k)] = float(np.mean(err ** 2)) if valid.any() else float("nan")
    return out


def passk_curve(p, n, c, ks=None, table: np.ndarray | None = None) -> list[dict[str, float]]:
    """Dataset-level pass@k: mean predicted (with its 95% band) against mean actual.

    The band is ``mean +- 1.96 * sqrt(sum_i S_i (1 - S_i)) / N`` with ``S_i = 1 - (1 - p_i)^k``: the spread of
    the observed solve rate if every question were solved independently with probability ``S_i``.

    Args:
        p: (Q,) confidences; NaN questions are excluded from both the predicted and the actual mean.
        n, c: (Q,) samples and correct samples per question.
        ks: the k (default :func:`curve_ks` of ``min(n)``); k above ``min(n)`` are dropped.
        table: optional precomputed :func:`passk_table` of ``(n, c)``.

    Returns:
        One dict per k: ``{"k", "predicted", "band_lo", "band_hi", "actual"}`` (NaN when no question is valid).

    Raises:
        ValueError: confidences outside [0, 1], counts breaking ``0 <= c <= n``, or arrays of different lengths.
    """
    p, n, c, n_min = _checked(p, n, c, "passk_curve")
    ks = curve_ks(n_min) if ks is None else [int(k) for k in ks if 1 <= k <= n_min]
    valid = ~np.isnan(p)
    m = int(valid.sum())
    if table is None:
        table, rows_of = passk_table(n[valid], np.asarray(c)[valid], max(ks, default=0)), slice(None)
    else:
        rows_of = slice(None) if m == p.size else valid
    rows = []
    for k in ks:
        if m == 0:
            rows.append({"k": k, "predicted": np.nan, "band_lo": np.nan, "band_hi": np.nan, "actual": np.nan})
            continue
        s = passk_predicted(p[valid], k)
        mean = float(s.mean())
        half = 1.96 * float(np.sqrt(np.sum(s * (1.0 - s)))) / m
        rows.append({"k": k, "predicted": mean, "band_lo": mean - half, "band_hi": mean + half,
                     "actual": float(table[rows_of, k].mean())})
    return rows
