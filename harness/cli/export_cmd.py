"""``capcal export --format official RUN``: write a run's samples in another tool's layout.

Argument parsing and messages only; the work is :mod:`capcal.exporting`.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..runconfig import split_names
from ._help import add_command

EPILOG = """examples:
  capcal export --format official runs/demo --output paper/     # paper/outputs/<task>-<split>__<model>/...
  capcal import paper/outputs/gsm8k-test__smollm2 --task gsm8k --output runs/back   # and back again"""


HELP = "write a run's samples and confidences in the paper's official layout"

DESCRIPTION = """\
Write the evaluation split of each task of a run in the official code's files
(outputs/<task>-<split>__<model>/sampled.jsonl, ground_truth.jsonl, ground_truth_summary.json;
estimator_results/<estimator>/<...>/confidence_predictions_cc.jsonl), so that the paper's scripts read
capcal's samples. See docs/import.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = add_command(subparsers, "export", HELP, DESCRIPTION, EPILOG)
    p.add_argument("run_dir", metavar="RUN", help="the run directory")
    p.add_argument("--format", default="official", choices=["official"], help="output layout (default official)")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="folder to write into")
    p.add_argument("--tasks", default="", metavar="A,B", help="tasks to export (default: all)")
    p.add_argument("--data-dir", "--data_dir", dest="data_dir", default=os.environ.get("CAPCAL_DATA_DIR") or None,
                   metavar="DIR", help="the tasks' data mirror (default: the run's)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..exporting import export_run

    for item in export_run(args.run_dir, args.output, args.format, tasks=split_names(args.tasks) or None,
                           data_dir=args.data_dir):
        est = f", estimators: {', '.join(item['estimators'])}" if item["estimators"] else ""
        print(f"{item['task']}: {item['questions']} questions, {item['samples']} samples -> {item['outputs']}{est}",
              file=sys.stderr)
    return 0
