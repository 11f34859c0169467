"""``capcal run``: sample k answers per question, grade them, run estimators, write results.

Argument parsing and messages only; the work is :func:`capcal.run`. Flag names follow
lm-evaluation-harness where one fits (``--model``, ``--model_args``, ``--tasks``, ``--limit``,
``--output_path``, ``--seed``, ``--max_gen_toks``).
"""

from __future__ import annotations

import argparse
import os

from ..runconfig import DEFAULT_TRAIN_LIMIT, RunConfig, split_names
from ._help import add_command, add_progress_flags, one_line_errors

EPILOG = """examples:
  capcal run --tasks triviaqa,gsm8k --limit 10 --k 4 --output runs/demo
  capcal run --model openai --model_args base_url=http://127.0.0.1:8000/v1,model=my-model \\
      --tasks gsm8k --k 16 --estimators verbalized,consistency --output runs/gsm8k
  capcal run --suite capcal-smoke --output runs/smoke

Re-running the same command resumes: stored samples are never requested again, and stages whose inputs
did not change are skipped."""


HELP = "sample, grade, estimate and score one model on tasks"

DESCRIPTION = """\
Sample k answers per question, grade them into capability and response targets, run confidence estimators
and write the results into a run directory.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = add_command(subparsers, "run", HELP, DESCRIPTION, EPILOG)
    m = p.add_argument_group("model")
    m.add_argument("--model", default="embedded", metavar="NAME",
                   help="registered model backend: embedded (default), hf, openai, or a plugin's")
    m.add_argument("--model_args", "--model-args", default="", metavar="K=V,...",
                   help="backend arguments, e.g. base_url=http://127.0.0.1:8000/v1,model=NAME "
                        "(quote values holding commas)")
    m.add_argument("--concurrency", type=int, metavar="N", help="concurrent requests (OpenAI-compatible backend)")
    t = p.add_argument_group("what to run")
    t.add_argument("--tasks", default="", metavar="A,B", help="comma-separated task names (see `capcal list tasks`)")
    t.add_argument("--suite", metavar="NAME", help="a suite of registry.yaml (tasks, k, limits, estimators)")
    t.add_argument("--limit", type=int, metavar="N", help="first N questions of each task's evaluation split")
    t.add_argument("--k", type=int, metavar="K", help="samples per question (default: the suite's, else the task's)")
    t.add_argument("--estimators", default="", metavar="A,B", help="confidence estimators to run after grading; parameters as name:key=value, "
                        "e.g. consistency:m=10,probe:pool=mean (see `capcal list estimators`)")
    t.add_argument("--designated", type=int, default=0, metavar="J",
                   help="index of the sample whose correctness is the response target (default 0)")
    s = p.add_argument_group("sampling (always sent explicitly; defaults: the task's temperature, untruncated)")
    s.add_argument("--temperature", type=float, metavar="T")
    s.add_argument("--top-p", "--top_p", dest="top_p", type=float, metavar="P", help="default 1 (off)")
    s.add_argument("--top-k", "--top_k", dest="top_k", type=int, metavar="K", help="default 0 (off)")
    s.add_argument("--min-p", "--min_p", dest="min_p", type=float, metavar="P", help="default 0 (off)")
    s.add_argument("--max-tokens", "--max_tokens", "--max_gen_toks", dest="max_tokens", type=int, metavar="N")
    s.add_argument("--no-logprobs", dest="logprobs", action="store_false",
                   help="do not ask for per-token log-probabilities")
    s.add_argument("--grade-truncated", "--grade_truncated", dest="grade_truncated", action="store_true",
                   help="grade samples that stopped at the token limit like finished ones (default: incorrect, "
                        "reason 'truncated')")
    s.add_argument("--seed", type=int, default=0, help="run seed; per-sample seeds derive from it (default 0)")
    o = p.add_argument_group("input and output")
    o.add_argument("--output", "--output_path", "--output-path", "-o", dest="output", metavar="DIR",
                   help="run directory (default runs/<model>); re-using it resumes")
    o.add_argument("--data-dir", "--data_dir", dest="data_dir", default=os.environ.get("CAPCAL_DATA_DIR") or None,
                   metavar="DIR", help="local dataset mirror <owner>__<name>/<config>/<split>.jsonl "
                                       "(default: $CAPCAL_DATA_DIR, else the Hugging Face hub)")
    o.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    o.add_argument("--train-limit", "--train_limit", dest="train_limit", type=int, default=DEFAULT_TRAIN_LIMIT,
                   metavar="N", help=f"questions of the train/validation split for learned estimators "
                                     f"(default {DEFAULT_TRAIN_LIMIT})")
    s.add_argument("--forced-format", "--forced_format", dest="forced_format", default="off",
                   choices=["off", "on", "both"],
                   help="decode each answer's final line (and the verbalized confidence) under a grammar: "
                        "off (default), on, or both (free samples define mu; a forced copy is drawn beside "
                        "them and both parse rates are printed)")
    add_progress_flags(o)
    p.set_defaults(func=run)
    one_line_errors(p, "capcal run")
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed ``capcal run`` arguments.

    Raises:
        capcal.errors.ModelError: a malformed ``--model_args``.
    """
    from ..models.factories import parse_model_args

    return RunConfig(
        output=args.output or os.path.join("runs", args.model), model=args.model,
        model_args=parse_model_args(args.model_args), tasks=split_names(args.tasks), suite=args.suite,
        k=args.k, limit=args.limit, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        min_p=args.min_p, max_tokens=args.max_tokens, logprobs=args.logprobs, seed=args.seed,
        data_dir=args.data_dir, estimators=split_names(args.estimators), concurrency=args.concurrency,
        designated=args.designated, bootstrap=args.bootstrap, train_limit=args.train_limit,
        progress=args.progress, grade_truncated=args.grade_truncated,
        forced_format=args.forced_format)


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def parse_rate_lines(rd, task: str) -> list[str]:
    """Free and forced parse rates side by side, for a run with ``--forced-format both``."""
    record = rd.forced_format(task)
    if record is None:
        return []
    free, forced = record["free"], record["forced"]
    lines = [f"{task}: answer parse rate  free {_rate(free['answer_parse_rate'])}  forced "
             f"{_rate(forced['answer_parse_rate'])}   (accuracy free {_rate(free['accuracy'])}, forced "
             f"{_rate(forced['accuracy'])}; {free['n_samples']} samples each)"]
    metas = {}
    for name in rd.estimators(task):
        if name.split(":", 1)[0] == "verbalized":
            _, _, meta = rd.estimator_output(task, name)
            if "forced" in meta:
                metas[bool(meta["forced"])] = meta
    if len(metas) == 2:
        lines.append(f"{task}: verbalized parse rate  free {_rate(metas[False].get('parse_rate'))}  forced "
                     f"{_rate(metas[True].get('parse_rate'))}   (first attempt; after retries "
                     f"{_rate(metas[False].get('final_parse_rate'))} / {_rate(metas[True].get('final_parse_rate'))})")
    return lines


def run(args: argparse.Namespace) -> int:
    from ..pipeline import Pipeline

    pipeline = Pipeline(config_from_args(args))
    rd = pipeline.run()
    for name, sp in pipeline.splits.items():
        t = sp.targets
        mean_mu = float(t.mu.mean()) if len(t.ids) else float("nan")
        print(f"{name}: {len(t.ids)} questions x k={sp.k}, mean mu = {mean_mu:.3f}, "
              f"response-target accuracy = {float(t.r.mean()):.3f}  ->  {rd.targets_path(name)}")
        for line in parse_rate_lines(rd, name):
            print(line)
    for (task, est), reason in sorted(pipeline.estimator_failures.items()):
        print(f"{task}/{est}: FAILED ({reason})")
    if rd.results_path.exists():
        print(f"results: {rd.results_path}")
    return 0
