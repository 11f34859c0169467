"""Time the whole analysis engine on a synthetic task of realistic size.

Runs :func:`capcal.analysis.analyze` (every metric, paired bootstrap, pass@k curves, budget curves) for
``--questions`` questions x ``--samples`` graded samples x ``--estimators`` estimators and prints the wall
time, the CPU time and the peak memory (resident set size, from ``resource.getrusage``).

    .venv/bin/python benchmarks/analysis_engine.py                 # 100,000 x 100 x 10, 1,000 resamples
    .venv/bin/python benchmarks/analysis_engine.py --questions 10000 --boot 200

The data are drawn at random: per question a true solve probability from a Beta(0.6, 0.6), n Bernoulli
samples, and estimators of varying quality (noisy copies of the truth, a few with NaN failures and with
ties, a constant and the oracle). Only the sizes matter for the timing.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
from capcal.analysis import analyze
from capcal.rundir import Targets


def make_task(q: int, n: int, n_est: int, seed: int = 0) -> tuple[Targets, dict[str, np.ndarray]]:
    """Synthetic targets (q questions x n samples) and ``n_est`` confidence arrays."""
    rng = np.random.default_rng(seed)
    truth = rng.beta(0.6, 0.6, q)
    labels = (rng.random((q, n)) < truth[:, None]).astype(float)
    targets = Targets(ids=np.array([f"q{i}" for i in range(q)], dtype=object), n=np.full(q, n),
                      c=labels.sum(axis=1).astype(np.int64), designated=np.zeros(q, np.int64), labels=labels)
    mu = targets.mu
    conf = {"oracle_cc": mu.copy(), "constant": np.full(q, float(mu.mean()))}
    logit = np.log(np.clip(truth, 1e-4, 1 - 1e-4) / (1 - np.clip(truth, 1e-4, 1 - 1e-4)))
    for j in range(n_est - 2):
        noise = 0.3 + 0.4 * j
        p = 1.0 / (1.0 + np.exp(-(logit * (0.5 + 0.1 * j) + rng.normal(0, noise, q))))
        if j % 3 == 1:
            p = np.round(p, 1)                                   # verbalized-style ties
        if j % 3 == 2:
            p[rng.random(q) < 0.05] = np.nan                     # 5% failures
        conf[f"est{j}"] = p
    return targets, conf


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--estimators", type=int, default=10)
    ap.add_argument("--boot", type=int, default=1000)
    args = ap.parse_args(argv)
    targets, conf = make_task(args.questions, args.samples, args.estimators)
    before = resource.getrusage(resource.RUSAGE_SELF)
    t0, c0 = time.perf_counter(), time.process_time()
    out = analyze(targets, conf, n_boot=args.boot, seed=0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1024 if sys.platform != "darwin" else 1
    print(f"questions={args.questions} samples={args.samples} estimators={len(conf)} boot={args.boot}")
    print(f"wall {wall:.2f} s, cpu {cpu:.2f} s, peak RSS {peak_kib * scale / 2**30:.3f} GiB "
          f"(before analyze {before.ru_maxrss * scale / 2**30:.3f} GiB)")
    ora = out["estimators"]["oracle_cc"]["metrics"]
    print(f"check: oracle cc_brier={ora['cc_brier']['value']:.3g} passk_mse@1={ora['passk_mse@1']['value']:.3g}"
          f" budget_gain={ora['budget_gain']['value']:.4f} ci={ora['budget_gain']['ci']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
