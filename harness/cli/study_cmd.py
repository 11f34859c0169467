"""``capcal study``: run the calibration study (several local models, same questions) and write its report.

Argument parsing and messages only; the work is :func:`capcal.study.run_study` and
:func:`capcal.study_report.write_report`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from ._help import add_command, add_progress_flags, one_line_errors

EPILOG = """examples:
  capcal study                                  # the 'cpu' preset: sizes that fit a 2-core machine
  capcal study --preset issue                   # the sizes issue 16 asks for (hours on a CPU)
  capcal study --models smollm2-135m --tasks mmlu:20:4 --output runs/mini --summaries runs/mini/summaries \\
      --doc runs/mini/study.md
  capcal study --report-only                    # regenerate docs/study.md from docs/study/runs/*.json

Re-running the same command resumes: every run keeps its samples, so nothing is sampled twice."""


HELP = "run the calibration study over several local models and write docs/study.md"

DESCRIPTION = """\
Run every model of the study on the same questions, tasks and estimators (one resumable capcal run per model
and task), write each run's small summary document, then generate the report (Markdown and SVG figures) from
the summaries alone.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..study_presets import PRESETS

    p = add_command(subparsers, "study", HELP, DESCRIPTION, EPILOG)
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="models, task sizes and training-split size (default: cpu)")
    p.add_argument("--models", metavar="A,B", help="model names (smollm2-135m, qwen2.5-coder-1.5b, "
                                                   "qwen2.5-coder-0.5b); default: the preset's")
    p.add_argument("--tasks", metavar="T:N:K,...", help="tasks as name:questions:k, e.g. mmlu:300:16,gsm8k:50:8; "
                                                        "default: the preset's")
    p.add_argument("--estimators", metavar="A,B", help="--estimators items of every run (default: the study's ten)")
    p.add_argument("--backend", choices=["llamacpp", "embedded", "hf"],
                   help="force a backend (default: llamacpp when installed, else transformers)")
    p.add_argument("--train-limit", "--train_limit", dest="train_limit", type=int, metavar="N",
                   help="questions of the train/validation splits for learned estimators (default: the preset's)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads of the model backend (default: the backend's; 1 on a busy machine)")
    p.add_argument("--seed", type=int, default=0, help="run seed of every run (default 0)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    p.add_argument("--data-dir", "--data_dir", dest="data_dir", default=os.environ.get("CAPCAL_DATA_DIR") or None,
                   metavar="DIR", help="local dataset mirror (default: $CAPCAL_DATA_DIR, else the hub)")
    p.add_argument("--output", "-o", default="runs/study", metavar="DIR",
                   help="where the run directories go (default runs/study)")
    p.add_argument("--summaries", default="docs/study/runs", metavar="DIR",
                   help="where each run's summary document goes (default docs/study/runs)")
    p.add_argument("--doc", default="docs/study.md", metavar="FILE",
                   help="the report; its figures go to a folder of the same name (default docs/study.md)")
    p.add_argument("--report-only", action="store_true",
                   help="only regenerate the report from the summaries (no model, no sampling)")
    add_progress_flags(p, help=None)
    p.set_defaults(func=run)
    one_line_errors(p, "capcal study")
    return p


def plan_from_args(args: argparse.Namespace):
    """The :class:`capcal.study.StudyPlan` of parsed arguments (the preset, overridden by explicit flags)."""
    from ..runconfig import split_names
    from ..study import PRESETS, STUDY_ESTIMATORS, StudyPlan, parse_tasks

    preset = PRESETS[args.preset]
    return StudyPlan(
        models=split_names(args.models) if args.models else list(preset["models"]),
        tasks=parse_tasks(args.tasks or preset["tasks"]),
        estimators=split_names(args.estimators) if args.estimators else list(STUDY_ESTIMATORS),
        seed=args.seed, train_limit=args.train_limit or preset["train_limit"], bootstrap=args.bootstrap,
        backend=args.backend, data_dir=args.data_dir, threads=args.threads, progress=args.progress)


def command_line(argv: list[str] | None = None) -> str:
    """The study's command as typed (recorded in the summaries and the report)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return "capcal " + " ".join(shlex.quote(a) for a in args) if args else "capcal study"


def run(args: argparse.Namespace) -> int:
    from ..study import run_study
    from ..study_report import write_report

    if not args.report_only:
        plan = plan_from_args(args)
        written = run_study(plan, args.output, args.summaries, command=command_line())
        print(f"summaries: {len(written)} in {args.summaries}")
    doc, figs = write_report(args.summaries, args.doc)
    print(f"report: {doc} ({len(figs)} figures in {doc.parent / doc.stem})")
    return 0
