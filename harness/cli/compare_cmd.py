"""``capcal compare BASE NEW``: paired comparison of two runs; exit code 1 on a significant regression.

Argument parsing and messages only; the work is :func:`capcal.compare.compare_runs`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..runconfig import split_names
from ._help import add_command

EPILOG = """examples:
  capcal compare runs/base runs/new                         # gate on CC-Brier at alpha 0.05
  capcal compare runs/base runs/new --metric auroc --alpha 0.01 --changed-only

exit codes: 0 no significant worsening of --metric; 1 --metric got significantly worse for some
task x estimator (reference rows oracle_cc, oracle_rc, constant excluded unless named in
--estimators); 2 bad input."""


HELP = "paired comparison of two runs on the same questions (CI gate)"

DESCRIPTION = """\
Compare NEW with BASE question by question (matched by task and question id): paired bootstrap of every
metric per task x estimator (NEW - BASE with an interval), exact McNemar test on the designated sample's
correctness, Wilcoxon signed-rank test on mu.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = add_command(subparsers, "compare", HELP, DESCRIPTION, EPILOG)
    p.add_argument("base", metavar="BASE", help="run directory of the baseline")
    p.add_argument("new", metavar="NEW", help="run directory of the candidate")
    p.add_argument("--metric", default="cc_brier", help="metric whose significant worsening fails (default cc_brier)")
    p.add_argument("--metrics", metavar="M,...", help="metrics to report (default cc_brier,rc_brier,cc_ece,rc_ece,"
                                                      "auroc,spearman and passk_mse@4 where n >= 4)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--n-boot", type=int, default=1000, help="paired bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--estimators", metavar="E,...", help="estimators that gate the exit code (default: all "
                                                         "shared ones except oracle_cc, oracle_rc, constant)")
    p.add_argument("--changed-only", action="store_true", help="list only significant changes")
    p.add_argument("--json", metavar="FILE", help="also write the full comparison as JSON")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..compare import compare_runs, format_comparison  # numpy/scipy: imported only when used
    from ..rundir import write_atomic

    cmp = compare_runs(Path(args.base), Path(args.new), metric=args.metric,
                       metrics=split_names(args.metrics) or None, alpha=args.alpha, n_boot=args.n_boot,
                       seed=args.seed, estimators=split_names(args.estimators) or None)
    sys.stdout.write(format_comparison(cmp, changed_only=args.changed_only))
    if args.json:
        write_atomic(Path(args.json), json.dumps(cmp.to_dict(), indent=1) + "\n")
    return cmp.exit_code
