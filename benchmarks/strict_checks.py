"""The cost of the numeric core's input checks (capcal.validate), measured side by side in one run.

Runs :func:`capcal.analysis.analyze` on the synthetic task of ``benchmarks/analysis_engine.py`` twice per
round, alternating: with the real checks, and with every check of :mod:`capcal.validate` replaced by a
plain ``numpy.asarray`` conversion (what the functions did before they validated). Prints the CPU and wall
times of both and their ratio.

    .venv/bin/python benchmarks/strict_checks.py                       # 20,000 x 100 x 10, 200 resamples, 3 rounds
    .venv/bin/python benchmarks/strict_checks.py --questions 100000 --boot 1000 --rounds 1
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis_engine import make_task  # noqa: E402
from capcal import validate as V  # noqa: E402
from capcal.analysis import analyze  # noqa: E402


@contextmanager
def checks_off():
    """Every check of capcal.validate as a bare conversion (restored on exit)."""
    saved = {name: getattr(V, name) for name in V.__all__}

    def as_float(x, *args, **kwargs):
        return np.asarray(x, dtype=float)

    def as_int(x, *args, **kwargs):
        return np.asarray(x).astype(np.int64)

    replace = {"confidences": as_float, "unit_interval": as_float, "binary": as_float, "nonnegative": as_float,
               "finite_or_nan": as_float, "nonnegative_int": as_int, "positive_int": as_int,
               "counts": lambda n, c, *a, **k: (as_int(n), as_int(c)), "same_length": lambda *a, **k: None}
    try:
        for name, fn in replace.items():
            setattr(V, name, fn)
        yield
    finally:
        for name, fn in saved.items():
            setattr(V, name, fn)


def timed(targets, conf, boot: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    analyze(targets, conf, n_boot=boot, seed=0)
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=20_000)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--estimators", type=int, default=10)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    targets, conf = make_task(args.questions, args.samples, args.estimators)
    on, off = [], []
    for _ in range(args.rounds):
        on.append(timed(targets, conf, args.boot))
        with checks_off():
            off.append(timed(targets, conf, args.boot))
    med = lambda xs, i: float(np.median([x[i] for x in xs]))  # noqa: E731
    print(f"questions={args.questions} samples={args.samples} estimators={len(conf)} boot={args.boot} "
          f"rounds={args.rounds}")
    print(f"checks on : wall {med(on, 0):.2f} s, cpu {med(on, 1):.2f} s (medians)")
    print(f"checks off: wall {med(off, 0):.2f} s, cpu {med(off, 1):.2f} s")
    print(f"ratio on/off: wall {med(on, 0) / med(off, 0):.3f}, cpu {med(on, 1) / med(off, 1):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
