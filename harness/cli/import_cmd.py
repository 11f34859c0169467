"""``capcal import``: build a run directory from samples made elsewhere, or add imported confidences to a run.

Argument parsing and messages only; the work is :mod:`capcal.importing`.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..runconfig import split_names
from ._help import add_command, add_progress_flags

EPILOG = """examples:
  capcal import samples.jsonl --task gsm8k --output runs/mine --estimators consistency,oracle_cc
  capcal import outputs/gsm8k-test__gpt-oss-20b --format official --task gsm8k --output runs/paper
  capcal import lm_eval_out/model/samples_gsm8k_rep_2026.jsonl --task gsm8k --output runs/lmeval
  capcal import train_samples.jsonl --task gsm8k --split train --output runs/mine   # for learned estimators
  capcal import --confidences polygraph.jsonl --name lm_polygraph runs/mine         # any run, sampled or imported

formats (docs/import.md): generic (JSON Lines, one line per question or per sample), official (the paper's
output directory), lm_eval (lm-evaluation-harness --log_samples with repeats), inspect (inspect_ai logs)."""


HELP = "build a run from samples made elsewhere; add imported confidences to a run"

DESCRIPTION = """\
Import k samples per question made by another tool (generic JSON Lines, the paper's official output
directory, lm-evaluation-harness --log_samples with repeats, inspect_ai logs): questions are matched to the
task's documents by id, then index, then normalised question text (never guessed), graded with the task's
grader into targets, and scored by the estimators that need no model. With --confidences, a file of id ->
confidence becomes an estimator output of an existing run instead.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = add_command(subparsers, "import", HELP, DESCRIPTION, EPILOG)
    p.add_argument("path", nargs="?", metavar="SOURCE|RUN",
                   help="the samples to import (file or directory); with --confidences, the run directory")
    p.add_argument("--task", metavar="NAME", help="the capcal task the questions belong to (capcal list tasks)")
    p.add_argument("--output", "-o", metavar="RUN", help="the run directory to create or extend")
    p.add_argument("--format", default="auto", choices=["auto", "generic", "official", "lm_eval", "inspect"],
                   help="source format (default: auto-detected)")
    p.add_argument("--split", default="eval", choices=["eval", "train", "validation"],
                   help="the task split the samples belong to (default eval; train/validation feed learned "
                        "estimators)")
    p.add_argument("--model-id", "--model_id", dest="model_id", metavar="ID",
                   help="the model to record (default: what the source names)")
    p.add_argument("--labels", default="grader", choices=["grader", "imported"],
                   help="targets from capcal's grader (default) or from the source's own verdicts; the grader "
                        "runs either way and disagreements are counted")
    p.add_argument("--designated", type=int, default=0, metavar="J",
                   help="index of the sample whose correctness is the response target (default 0)")
    p.add_argument("--estimators", default="", metavar="A,B",
                   help="estimators to run on the imported run (e.g. consistency,oracle_cc,oracle_rc,constant)")
    p.add_argument("--model", metavar="NAME", help="a backend for estimators that call the model (verbalized, "
                                                    "ptrue, ...); default none (they get NaN)")
    p.add_argument("--model_args", "--model-args", default="", metavar="K=V,...", help="arguments of --model")
    p.add_argument("--no-confidences", dest="with_confidences", action="store_false",
                   help="do not import the confidence files found with an official output directory")
    p.add_argument("--confidences", metavar="FILE",
                   help="import a file of id -> confidence (JSONL/CSV, or the official confidence_predictions) "
                        "into the run as estimator --name")
    p.add_argument("--name", metavar="NAME", help="estimator name of the imported confidences")
    p.add_argument("--data-dir", "--data_dir", dest="data_dir", default=os.environ.get("CAPCAL_DATA_DIR") or None,
                   metavar="DIR", help="the task's data mirror (default: $CAPCAL_DATA_DIR, else the hub)")
    p.add_argument("--bootstrap", type=int, default=None, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=None, help="bootstrap seed (default 0)")
    add_progress_flags(p, help=None)
    p.set_defaults(func=run)
    return p


def _say(line: str) -> None:
    print(f"capcal: {line}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from ..errors import CapcalError
    from ..importing import finish_imported_run, import_confidences, import_samples

    if args.confidences:
        run_dir = args.output or args.path
        if not run_dir or not args.name:
            raise CapcalError("capcal import --confidences FILE --name NAME RUN: give the run directory and --name")
        report = import_confidences(run_dir, args.confidences, args.name, task=args.task, bootstrap=args.bootstrap,
                                    seed=args.seed)
        _say(report.line())
        print(f"results: {os.path.join(str(run_dir), 'results.json')}")
        return 0
    if not args.path or not args.task or not args.output:
        raise CapcalError("capcal import SOURCE --task NAME --output RUN: give the source, the task and the run")
    backend = None
    if args.model:
        from ..models.factories import parse_model_args
        from ..registry import get_registry

        backend = get_registry().model(args.model, **parse_model_args(args.model_args))
    try:
        report = import_samples(args.path, args.task, args.output, fmt=args.format, split=args.split,
                                data_dir=args.data_dir, model_id=args.model_id, labels=args.labels,
                                designated=args.designated, confidences=args.with_confidences)
        for line in report.lines():
            _say(line)
        if args.split == "eval" or split_names(args.estimators):
            rd = finish_imported_run(args.output, split_names(args.estimators), bootstrap=args.bootstrap,
                                     seed=args.seed, backend=backend, progress=args.progress)
            print(f"{args.task}: {report.n_matched} questions, n = {report.n_min}..{report.n_max}, "
                  f"mean mu = {report.mean_mu:.3f}  ->  {rd.targets_path(args.task, args.split)}")
            if rd.results_path.exists():
                print(f"results: {rd.results_path}")
    finally:
        if backend is not None:
            backend.close()
    return 0
