"""Input checks of the numeric core's public functions (metrics, pass@k, budget, bootstrap, analysis).

Every check is vectorised (a comparison or two over the array, no Python loop) and returns the array as
float64 (or int64 for counts), so a caller validates and converts in one step. A bad input raises
:class:`capcal.errors.InvalidArrayError`, which is both a :class:`ValueError` (for library users) and a
:class:`capcal.errors.DataError` (one line, exit code 2, through the CLI). The message names the function,
the argument and how many entries are bad, e.g.::

    ece: argument 'p' has 1 of 3 entries outside [0, 1] (NaN marks a failed question), e.g. 1.5

The rules:

* confidences (:func:`confidences`): in [0, 1], or NaN for a question the estimator failed on;
  infinities are out of range;
* unit-interval targets (:func:`unit_interval`): mu (c / n) or r, finite, in [0, 1];
* binary labels (:func:`binary`): exactly 0 or 1 (NaN only where the caller allows padding);
* counts (:func:`counts`): whole numbers with ``0 <= c <= n`` per question;
* sizes and orders (:func:`positive_int`, :func:`nonnegative_int`): whole numbers in range.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidArrayError

__all__ = ["confidences", "unit_interval", "binary", "counts", "same_length", "nonnegative_int",
           "positive_int", "nonnegative", "finite_or_nan"]


def _as_float(x: Any, where: str, name: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise InvalidArrayError(f"{where}: argument {name!r} must be numbers") from None


def _example(values: np.ndarray, bad: np.ndarray) -> str:
    first = values[bad].reshape(-1)[:1]
    return f", e.g. {first[0]!r}" if first.size else ""


def _fail(where: str, name: str, n_bad: int, total: int, what: str, values: np.ndarray, bad: np.ndarray):
    raise InvalidArrayError(f"{where}: argument {name!r} has {n_bad} of {total} entries {what}"
                            f"{_example(values, bad)}")


def confidences(p: Any, name: str = "p", where: str = "capcal") -> np.ndarray:
    """``p`` as a float array, checked to lie in [0, 1] with NaN allowed (a failed question).

    Raises:
        InvalidArrayError: an entry below 0, above 1 or infinite (the count is in the message).
    """
    a = _as_float(p, where, name)
    bad = (a < 0.0) | (a > 1.0)
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        _fail(where, name, n_bad, a.size, "outside [0, 1] (NaN marks a failed question)", a, bad)
    return a


def unit_interval(x: Any, name: str = "target", where: str = "capcal", allow_nan: bool = False) -> np.ndarray:
    """``x`` as a float array of values in [0, 1] (a capability target mu or a response target r).

    Args:
        allow_nan: accept NaN entries (otherwise they count as bad).
    """
    a = _as_float(x, where, name)
    ok = (a >= 0.0) & (a <= 1.0)
    if allow_nan:
        ok |= np.isnan(a)
    n_bad = a.size - int(np.count_nonzero(ok))
    if n_bad:
        _fail(where, name, n_bad, a.size, "outside [0, 1]" + ("" if allow_nan else " or NaN"), a, ~ok)
    return a


def binary(labels: Any, name: str = "labels", where: str = "capcal", allow_nan: bool = False) -> np.ndarray:
    """``labels`` as a float array of exactly 0 and 1 (NaN allowed only with ``allow_nan``, as padding)."""
    a = _as_float(labels, where, name)
    ok = (a == 0.0) | (a == 1.0)
    if allow_nan:
        ok |= np.isnan(a)
    n_bad = a.size - int(np.count_nonzero(ok))
    if n_bad:
        _fail(where, name, n_bad, a.size, "that are not 0 or 1" + (" (or NaN padding)" if allow_nan else ""),
              a, ~ok)
    return a


def _whole(x: Any, name: str, where: str) -> np.ndarray:
    a = _as_float(x, where, name)
    bad = ~np.isfinite(a) | (a != np.floor(a))
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        _fail(where, name, n_bad, a.size, "that are not whole numbers", a, bad)
    return a.astype(np.int64)


def counts(n: Any, c: Any, where: str = "capcal", n_name: str = "n", c_name: str = "c"
           ) -> tuple[np.ndarray, np.ndarray]:
    """``(n, c)`` as int64 arrays of the same shape with ``0 <= c <= n`` (samples, correct samples).

    Raises:
        InvalidArrayError: non-whole numbers, a negative ``n`` or ``c``, ``c > n``, or different shapes.
    """
    ni, ci = _whole(n, n_name, where), _whole(c, c_name, where)
    if ni.shape != ci.shape:
        raise InvalidArrayError(f"{where}: arguments {n_name!r} and {c_name!r} must have the same shape, "
                                f"got {ni.shape} and {ci.shape}")
    bad = ni < 0
    if bad.any():
        _fail(where, n_name, int(np.count_nonzero(bad)), ni.size, "below 0", ni, bad)
    bad = (ci < 0) | (ci > ni)
    if bad.any():
        raise InvalidArrayError(f"{where}: argument {c_name!r} has {int(np.count_nonzero(bad))} of {ci.size} "
                                f"entries outside 0 <= {c_name} <= {n_name}{_example(ci, bad)}")
    return ni, ci


def same_length(where: str, **arrays: np.ndarray) -> None:
    """Raise unless every array has the same first dimension (names and lengths in the message)."""
    lengths = {k: (np.shape(v)[0] if np.ndim(v) else 1) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k!r} has {v}" for k, v in lengths.items())
        raise InvalidArrayError(f"{where}: arguments must have one entry per question ({shown})")


def nonnegative(x: Any, name: str, where: str = "capcal") -> np.ndarray:
    """``x`` as a float array of finite values >= 0 (weights)."""
    a = _as_float(x, where, name)
    bad = ~(a >= 0.0) | ~np.isfinite(a)
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        _fail(where, name, n_bad, a.size, "that are negative, infinite or NaN", a, bad)
    return a


def finite_or_nan(x: Any, name: str, where: str = "capcal") -> np.ndarray:
    """``x`` as a float array without infinities (NaN allowed: an excluded question)."""
    a = _as_float(x, where, name)
    bad = np.isinf(a)
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        _fail(where, name, n_bad, a.size, "that are infinite", a, bad)
    return a


def _int_at_least(x: Any, name: str, where: str, lo: int) -> np.ndarray:
    a = _whole(x, name, where)
    bad = a < lo
    if bad.any():
        _fail(where, name, int(np.count_nonzero(bad)), a.size, f"below {lo}", a, bad)
    return a


def nonnegative_int(x: Any, name: str, where: str = "capcal") -> np.ndarray:
    """``x`` (scalar or array) as int64 whole numbers >= 0."""
    return _int_at_least(x, name, where, 0)


def positive_int(x: Any, name: str, where: str = "capcal") -> np.ndarray:
    """``x`` (scalar or array) as int64 whole numbers >= 1."""
    return _int_at_least(x, name, where, 1)
