"""The paired bootstrap's resamples: count vectors over questions, drawn from the seed alone.

Resample j of a seed is the same whatever else is computed, so every estimator, every metric and both runs
of a comparison see exactly the same question resamples (:mod:`capcal.bootstrap`, :mod:`capcal.selective`,
:mod:`capcal.paired`). Pure numpy, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from . import validate as V

__all__ = ["CHUNK_ELEMENTS", "ROW_TILE", "resample_counts", "rows_matmul"]

#: Target elements per chunk of resamples (b * Q): 2**23 doubles = 64 MiB, so that the matrix product with
#: the feature matrix runs at full speed (it streams the features once per chunk).
CHUNK_ELEMENTS = 1 << 23

#: Rows of every resample-by-question matrix product are padded to a multiple of this, so that each
#: resample's weighted sums are bit-identical whatever the chunk size: BLAS kernels handle a partial tile of
#: rows (here: a chunk of 7) with another summation order than full tiles, a difference of one ulp.
ROW_TILE = 16


def rows_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for a (rows, Q) matrix ``a``, with each row's result independent of how many rows ``a`` has.

    Args:
        a: (rows, Q) resample weights (or weights times per-question values).
        b: (Q,) or (Q, m).

    Returns:
        (rows,) or (rows, m), equal to ``a @ b`` up to rounding, and the same bits for a row whichever
        chunk of resamples it came in.
    """
    rows = a.shape[0]
    pad = -rows % ROW_TILE
    if pad:
        a = np.concatenate([a, np.zeros((pad, a.shape[1]), dtype=a.dtype)])
    return (a @ b)[:rows]


def resample_counts(n_questions: int, n_boot: int, seed: int = 0,
                    chunk: int | None = None) -> Iterator[np.ndarray]:
    """Yield the bootstrap count matrices, ``chunk`` resamples at a time.

    Args:
        n_questions: Q.
        n_boot: total number of resamples.
        seed: the seed; resample j uses ``SeedSequence(seed).spawn(n_boot)[j]``.
        chunk: resamples per yielded matrix (default: about ``CHUNK_ELEMENTS / Q``).

    Yields:
        (b, Q) float64 matrices of non-negative integer counts, each row summing to Q.
        The default chunk is about ``CHUNK_ELEMENTS / Q`` resamples, a multiple of ``ROW_TILE``.

    Raises:
        ValueError: ``n_questions`` or ``n_boot`` not whole and >= 0, or ``chunk`` not whole and >= 1.
    """
    n_questions = int(V.nonnegative_int(n_questions, "n_questions", "resample_counts"))
    n_boot = int(V.nonnegative_int(n_boot, "n_boot", "resample_counts"))
    if chunk is not None:
        chunk = int(V.positive_int(chunk, "chunk", "resample_counts"))
    if chunk is None:
        chunk = max(ROW_TILE, CHUNK_ELEMENTS // max(n_questions, 1) // ROW_TILE * ROW_TILE)
    children = np.random.SeedSequence(seed).spawn(n_boot)
    for start in range(0, n_boot, chunk):
        kids = children[start:start + chunk]
        counts = np.empty((len(kids), n_questions))
        for row, kid in zip(counts, kids, strict=True):              # one row at a time: bincount stays in cache
            row[:] = np.bincount(np.random.default_rng(kid).integers(0, n_questions, n_questions),
                                 minlength=n_questions)
        yield counts
