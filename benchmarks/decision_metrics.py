"""Cost of the decision metrics: selective prediction in the paired bootstrap, and routing scores.

Measures side by side in one run, on a synthetic task (``benchmarks/analysis_engine.py``'s generator):

1. :func:`capcal.bootstrap.bootstrap_metrics` for every estimator, with and without the AURC / PRR
   columns (``PreparedEstimator.selective_metrics`` switched off), and the ratio;
2. :func:`capcal.routing.routing_bootstrap` (every routing score, vectorised over resamples) against
   a plain loop over the resamples that calls :func:`capcal.routing.routing_scores` on each repeated data
   set, and the ratio.

    .venv/bin/python benchmarks/decision_metrics.py                       # 20,000 questions, 200 resamples
    .venv/bin/python benchmarks/decision_metrics.py --questions 5000 --boot 100
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from capcal import bootstrap as B
from capcal import routing as R

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analysis_engine import make_task  # noqa: E402


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=20000)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--estimators", type=int, default=6)
    ap.add_argument("--boot", type=int, default=200)
    args = ap.parse_args()
    targets, conf = make_task(args.questions, args.samples, args.estimators)
    task = B.TaskArrays(mu=targets.mu, r=targets.r, n=targets.n, c=targets.c)

    def boot():
        ests = {k: B.PreparedEstimator(v, task) for k, v in conf.items()}
        B.bootstrap_metrics(ests, task, args.boot, 0, workers=1)

    with_sel = _time(boot)
    original = B.PreparedEstimator.selective_metrics
    B.PreparedEstimator.selective_metrics = lambda self, w, cache=None: {}
    try:
        without = _time(boot)
    finally:
        B.PreparedEstimator.selective_metrics = original
    print(f"bootstrap, {args.questions} questions x {len(conf)} estimators x {args.boot} resamples: "
          f"with AURC/PRR {with_sel:.2f} s, without {without:.2f} s, ratio {with_sel / without:.2f}")

    rng = np.random.default_rng(1)
    mu_s = targets.mu
    mu_l = np.clip(mu_s + rng.normal(0.2, 0.2, mu_s.size), 0, 1)
    p = conf[next(k for k in conf if k not in ("oracle_cc", "constant"))]
    p = np.where(np.isnan(p), 0.5, p)
    n_loop = max(1, args.boot // 10)
    vec = _time(lambda: R.routing_bootstrap({"e": p}, mu_s, mu_l, n_boot=args.boot, seed=0))
    counts = np.concatenate(list(B.resample_counts(mu_s.size, n_loop, 0)))

    def loop():
        for w in counts:
            idx = np.repeat(np.arange(mu_s.size), w.astype(int))
            R.routing_scores(p[idx], mu_s[idx], mu_l[idx])

    looped = _time(loop) * args.boot / n_loop
    print(f"routing scores, {args.boot} resamples: vectorised {vec:.2f} s, loop over resamples "
          f"{looped:.2f} s (timed on {n_loop}, scaled), ratio {looped / vec:.1f}")


if __name__ == "__main__":
    main()
