"""``capcal grade``: regrade stored model outputs with a task's current grader (logic in ``capcal.grading``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._help import add_command

HELP = "regrade stored responses with a task's grader"

DESCRIPTION = """\
Regrade stored model outputs. Each line of the input JSON Lines file holds 'response' (a string or a list of
strings) and either 'doc' (the task's document fields) or 'index' (row of the task's eval split). Each
output line adds 'extracted' and 'correct'; a summary 'rows=.. correct=.. unparseable=..' goes to stderr.
See docs/grading.md.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_command(subparsers, "grade", HELP, DESCRIPTION)
    parser.add_argument("--task", required=True, help="registered task name (capcal list tasks)")
    parser.add_argument("--responses", required=True, metavar="FILE.jsonl", help="input JSON Lines file")
    parser.add_argument("--output", default=None, metavar="OUT.jsonl",
                        help="write graded lines here (default: standard output)")
    parser.add_argument("--grade-truncated", "--grade_truncated", dest="grade_truncated", action="store_true",
                        help="grade responses whose finish_reason is 'length' like finished ones (default: "
                             "incorrect, reason 'truncated')")
    parser.add_argument("--data-dir", "--data_dir", dest="data_dir", default=None, metavar="DIR",
                        help="local mirror <owner>__<name>/<config>/<split>.jsonl (default $CAPCAL_DATA_DIR, "
                             "else the Hugging Face hub); needed for lines given by 'index'")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..grading import grade_file

    summary = grade_file(args.task, args.responses, args.output, data_dir=args.data_dir,
                         grade_truncated=args.grade_truncated)
    print(summary.line(), file=sys.stderr)
    return 0
