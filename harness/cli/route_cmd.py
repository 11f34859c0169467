"""``capcal route RUN_A RUN_B [RUN_C ...]``: routing and cascades between runs of different models.

Argument parsing and messages only; the work is :func:`capcal.routing_runs.route_runs`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import CapcalError
from ..runconfig import split_names
from ._help import add_command

EPILOG = """examples:
  capcal route runs/small runs/large                        # every estimator of runs/small
  capcal route runs/small runs/large --estimator verbalized --cost-ratio 8
  capcal route runs/a runs/b runs/c --output-dir route/     # cascade a -> b -> c, curves written

Questions are matched by task and question id; questions missing from some run are reported and left
out. The cost ratio defaults to the runs' mean completion tokens per answer; it scales the cost axis
only (gain captured, accuracy at 20%/50% routed and decision accuracy do not depend on it)."""


def _ratios(value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise CapcalError(f"--cost-ratio expects numbers separated by commas, got {value!r}") from None


HELP = "route questions between models by confidence (routing gain, cascades)"

DESCRIPTION = """\
Score routing between the runs of different models on the same questions: question i goes to the larger
model when the small model's confidence p_i < t. Per estimator: the routing gain captured (random = 0,
oracle = 1), the accuracy at 20% and 50% routed and the decision accuracy at --threshold, with 95% paired-
bootstrap intervals and paired differences between estimators; baselines random, oracle and the large
model's own confidence. With three or more runs, also the cascade over the runs in the given order (cheapest
first).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = add_command(subparsers, "route", HELP, DESCRIPTION, EPILOG)
    p.add_argument("runs", metavar="RUN", nargs="+", help="run directories, cheapest model first (two or more)")
    p.add_argument("--estimator", "--estimators", dest="estimator", metavar="NAME[,NAME]",
                   help="estimators to score (default: every estimator of the first run)")
    p.add_argument("--cost-ratio", "--cost_ratio", dest="cost_ratio", metavar="R[,R]",
                   help="cost of one answer of each later model relative to the first (one number per later run); "
                        "default: the ratio of mean completion tokens per answer")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="decision threshold of the decision accuracy: route when p < T (default 0.5)")
    p.add_argument("--tasks", metavar="T,...", help="only these tasks (default: every task of every run)")
    p.add_argument("--n-boot", "--n_boot", dest="n_boot", type=int, default=1000,
                   help="paired bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir", metavar="DIR", default=None,
                   help="where route.json and route_curves.csv go (default: route/ inside the first run)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..routing_runs import format_route, route_runs, write_route

    report = route_runs([Path(r) for r in args.runs], estimators=split_names(args.estimator) or None,
                        cost_ratio=_ratios(args.cost_ratio), threshold=args.threshold, n_boot=args.n_boot,
                        seed=args.seed, tasks=split_names(args.tasks) or None)
    sys.stdout.write(format_route(report))
    out = Path(args.output_dir) if args.output_dir else Path(args.runs[0]) / "route"
    paths = write_route(report, out)
    sys.stdout.write("curves: " + ", ".join(str(p) for p in paths) + "\n")
    return 0
