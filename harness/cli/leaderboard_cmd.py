"""``capcal leaderboard RUN_DIR...``: the leaderboard of one or more runs, rendered from their results.json.

Argument parsing and messages only; the work is :mod:`capcal.report` (imported when the command runs, so
that ``capcal --help`` does not load numpy and the results schema).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..runconfig import split_names
from ._help import add_command

#: the output formats (the keys of :data:`capcal.report.FORMATS`; a test checks that they agree)
FORMAT_NAMES = ("md", "csv", "json", "html")

EPILOG = """examples:
  capcal leaderboard runs/demo                              # Markdown to stdout
  capcal leaderboard runs/a runs/b --format html --output leaderboard.html
  capcal leaderboard runs/a runs/b --output-dir report/     # leaderboard.{md,csv,json,html}"""


HELP = "tabulate runs: model x estimator rows, headline metrics per task"

DESCRIPTION = """\
Build the leaderboard of one or more run directories from their results.json: rows are model x estimator,
columns the headline metrics per task and their mean, with 95% bootstrap intervals. The HTML format is one
self-contained file with plots.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = add_command(subparsers, "leaderboard", HELP, DESCRIPTION, EPILOG)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (or their results.json files)")
    p.add_argument("--format", choices=list(FORMAT_NAMES), default="md", help="output format (default: md)")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--output-dir", metavar="DIR",
                   help="write all four formats as DIR/leaderboard.{md,csv,json,html}")
    p.add_argument("--metrics", metavar="M,...",
                   help="headline metrics (default: the suite's, else cc_brier,cc_ece,rc_brier,rc_ece,auroc,"
                        "passk_mse@4,budget_gain)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..report import load_leaderboard, render, write_all
    from ..report.table import check_metric_names
    from ..rundir import write_atomic

    metrics = split_names(args.metrics) or None
    if metrics:
        check_metric_names(metrics)  # a typo fails before any results file is read
    lb = load_leaderboard([Path(r) for r in args.runs], metrics)
    for warning in lb.warnings:
        print(f"capcal: warning: {warning}", file=sys.stderr)
    if args.output_dir:
        for path in write_all(lb, args.output_dir).values():
            print(f"capcal: wrote {path}", file=sys.stderr)
    text = render(lb, args.format)
    if args.output:
        write_atomic(Path(args.output), text)
        print(f"capcal: wrote {args.output}", file=sys.stderr)
    elif not args.output_dir:
        sys.stdout.write(text)
    return 0
