"""The calibration study: several local models on the same questions, tasks and estimators, then a report.

``capcal study`` (:func:`run_study`) runs every (model, task) pair of a :class:`StudyPlan` as an ordinary
capcal run in ``<output>/<model>/<task>/`` and, after each, writes that run's small summary document into
the summaries folder (``docs/study/runs/<model>__<task>.json`` in the repository: targets as counts,
confidences, the task entry of ``results.json``, the wall time and the command; never the samples). The
report (:mod:`capcal.study_report`) is generated from those summaries alone, so ``docs/study.md`` and its
figures regenerate without sampling (``capcal study --report-only``).

Resuming: every run resumes through its own sample store, so a killed study, run again, never samples a
stored sample twice; each invocation's wall time and number of newly drawn samples are added to
``<output>/<model>/<task>/study-state.json`` and recorded in the summary.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CapcalError
from .models.model_files import MODEL_NAMES, model_title, resolve_model_file
from .rundir import RunDir, write_atomic
from .study_presets import PRESETS  # noqa: F401 (re-exported; a light module the CLI reads at start-up)

SUMMARY_VERSION = 1

#: The estimators of the study (issue 16): free and forced verbalized, P(True), consistency on samples
#: disjoint from those that define mu, mean token probability, the probe (transformers backends only),
#: isotonic recalibration of the verbalized confidence fitted on a held-out split, the constant and the
#: two oracles.
STUDY_ESTIMATORS = ("verbalized", "verbalized:forced=true", "ptrue", "consistency:m=5", "logprob_mean", "probe",
                    "recalibrated:base=verbalized:method=isotonic", "constant", "oracle_cc", "oracle_rc")

#: Estimators that need hidden states, which only transformers backends give.
HIDDEN_STATE_ESTIMATORS = ("probe",)

#: Backends that decode under a GBNF grammar (forced answer formats).
GRAMMAR_BACKENDS = ("llamacpp", "openai")

#: Nominal parameter counts (billions) of the known models, the x axis of the size plots.
MODEL_SIZES_B = {"smollm2-135m": 0.135, "qwen2.5-coder-0.5b": 0.5, "qwen2.5-coder-1.5b": 1.5}


@dataclass(frozen=True)
class StudyTask:
    """One task of the study: ``limit`` questions of its evaluation split, ``k`` samples each.

    ``forced_format`` overrides the plan's ``--forced-format`` for this task (``None`` = the plan's).
    """

    name: str
    limit: int
    k: int
    forced_format: str | None = None


def parse_tasks(spec: str) -> list[StudyTask]:
    """``"mmlu:300:16,gsm8k:50:8:off"`` -> study tasks (``name:limit:k``, optionally ``:off|on|both``, the
    task's forced-format mode).

    Raises:
        capcal.errors.CapcalError: an item that is not ``name:limit:k[:mode]`` with positive integers.
    """
    from .forced_formats import FORCED_FORMAT_MODES

    out = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        parts = item.split(":")
        try:
            name, limit, k = parts[0], int(parts[1]), int(parts[2])
            mode = parts[3] if len(parts) == 4 else None
            if len(parts) > 4 or limit < 1 or k < 1 or not name or (mode and mode not in FORCED_FORMAT_MODES):
                raise ValueError
        except (IndexError, ValueError):
            raise CapcalError(f"--tasks item {item!r}: expected name:limit:k[:off|on|both], "
                              "e.g. mmlu:300:16 or gsm8k:50:8:off") from None
        out.append(StudyTask(name, limit, k, mode))
    if not out:
        raise CapcalError("--tasks: no task given (expected name:limit:k,...)")
    return out


@dataclass
class StudyPlan:
    """What the study runs.

    Attributes:
        models: model names of :mod:`capcal.models.model_files` (``smollm2-135m``, ``qwen2.5-coder-1.5b``...).
        tasks: the tasks with their sizes.
        estimators: ``--estimators`` items of every run.
        seed: run seed (the same for every model, so all models see the same questions).
        train_limit: questions of the train / validation splits for the learned estimators.
        bootstrap: bootstrap resamples of each run's intervals.
        backend: force a backend (``llamacpp``, ``embedded``, ``hf``); ``None`` = llama.cpp when installed,
            else transformers.
        data_dir: local dataset mirror (``None`` = ``CAPCAL_DATA_DIR`` / the hub).
        forced_format: ``--forced-format`` of every run unless a task says otherwise (default ``both``: the
            free samples define mu, a forced copy gives the forced parse rate, and a forced verbalized row
            joins the free one).
        threads: CPU threads of the backend (``None`` = the backend's default; 1 is fastest on a machine
            whose cores are busy with other work, where spinning threads wait on each other).
        progress: progress bars (``None`` = on a terminal only).
    """

    models: list[str]
    tasks: list[StudyTask]
    estimators: list[str] = field(default_factory=lambda: list(STUDY_ESTIMATORS))
    seed: int = 0
    train_limit: int = 100
    bootstrap: int = 1000
    backend: str | None = None
    data_dir: str | None = None
    forced_format: str = "both"
    threads: int | None = None
    progress: bool | None = None

    def validate(self) -> None:
        for m in self.models:
            if m.lower() not in MODEL_NAMES:
                raise CapcalError(f"study model {m!r}: expected one of {', '.join(MODEL_NAMES)}")
        if not self.tasks:
            raise CapcalError("the study has no tasks")


def has_llamacpp(registry: Any) -> bool:
    """Whether the ``llamacpp`` backend is registered and llama-cpp-python is importable."""
    return "llamacpp" in registry.models and importlib.util.find_spec("llama_cpp") is not None


def backend_for(model: str, registry: Any, force: str | None = None) -> tuple[str, dict[str, Any]]:
    """The backend name and ``--model_args`` that run ``model``.

    SmolLM2 runs on the ``embedded`` backend: llama.cpp in process when installed (hidden states for the
    probe from its transformers copy), else transformers. Any other model runs on ``llamacpp``
    (``model=<name>``) when installed, else on ``hf`` over the GGUF in bfloat16. ``force`` picks
    ``llamacpp``, ``embedded`` (SmolLM2 only) or ``hf``.
    """
    kind = force or ("llamacpp" if has_llamacpp(registry) else "transformers")
    if model == "smollm2-135m" and kind in ("llamacpp", "embedded", "transformers"):
        engine = "transformers" if kind == "transformers" or not has_llamacpp(registry) else "llamacpp"
        return "embedded", {"engine": engine}
    if kind == "llamacpp":
        return "llamacpp", {"model": model}
    if kind in ("hf", "transformers", "embedded"):
        path = resolve_model_file(model)
        return "hf", {"model": str(path.parent), "gguf_file": path.name, "dtype": "bfloat16"}
    raise CapcalError(f"--backend {force!r}: expected llamacpp, embedded or hf")


def threads_arg(backend: str, model_args: dict[str, Any]) -> str:
    """The ``--model_args`` key of the CPU thread count: llama.cpp's ``n_threads``, torch's ``num_threads``."""
    llama = backend == "llamacpp" or (backend == "embedded" and model_args.get("engine") == "llamacpp")
    return "n_threads" if llama else "num_threads"


def decodes_grammars(backend: str, model_args: dict[str, Any]) -> bool:
    """Whether the backend decodes under a GBNF grammar: llama.cpp (also as the embedded engine) and servers."""
    return backend in GRAMMAR_BACKENDS or (backend == "embedded" and model_args.get("engine") == "llamacpp")


def _estimators_for(plan: StudyPlan, backend: str, grammars: bool) -> tuple[list[str], dict[str, str]]:
    """The estimators a backend can run, and why the others are skipped."""
    from .runconfig import parse_estimator_spec

    kept, skipped = [], {}
    for est in plan.estimators:
        name, params = parse_estimator_spec(est)
        if name in HIDDEN_STATE_ESTIMATORS and backend not in ("embedded", "hf"):
            skipped[est] = f"the {backend} backend gives no hidden states (probes need a transformers backend)"
        elif params.get("forced") and not grammars:
            skipped[est] = f"the {backend} backend cannot decode under a grammar (forced formats need llamacpp)"
        else:
            kept.append(est)
    return kept, skipped


def _forced_mode(plan: StudyPlan, task: StudyTask, grammars: bool) -> str:
    """The task's ``--forced-format``: the task's, else the plan's; ``off`` on a backend without grammars."""
    mode = task.forced_format or plan.forced_format
    return mode if grammars else "off"


def run_dir_of(output: Path, model: str, task: str) -> Path:
    return Path(output) / model / task


def summary_path(summaries: Path, model: str, task: str) -> Path:
    return Path(summaries) / f"{model}__{task}.json"


def _round(values: np.ndarray, digits: int = 6) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), digits) for v in values]


_META_KEYS = ("parse_rate", "final_parse_rate", "mean_attempts", "n_unparseable", "forced", "format",
              "chosen_layer", "method", "base", "m", "reuse_samples", "fitted_on", "in_sample", "value")


def summarize(run_dir: Path, model: str, task: str, state: dict[str, Any], command: str,
              skipped: dict[str, str]) -> dict[str, Any]:
    """The small summary document of one finished run: what the report needs, never the samples.

    Args:
        run_dir: the run directory (config.json, targets, estimator outputs and results.json are read).
        model: the study's model name.
        task: the task.
        state: the run's ``study-state.json`` (wall time and samples drawn per invocation).
        command: the study command line.
        skipped: estimators left out of this run and why.
    """
    rd = RunDir(run_dir)
    results = json.loads(rd.results_path.read_text(encoding="utf-8"))
    config = rd.config
    entry = dict(results["tasks"][task])
    entry.pop("differences", None)
    for est in entry.get("estimators", {}).values():
        meta = est.get("meta") or {}
        est["meta"] = {k: meta[k] for k in _META_KEYS if k in meta}
    targets = rd.targets(task)
    confidences = {}
    for name in rd.estimators(task):
        conf, _, _ = rd.estimator_output(task, name, targets.ids)
        confidences[name] = _round(conf)
    labels = ["".join(str(int(x)) for x in row[np.isfinite(row)]) for row in targets.labels]
    return {
        "summary_version": SUMMARY_VERSION,
        "model": model,
        "title": model_title(model),
        "size_b": MODEL_SIZES_B.get(model),
        "backend": config.get("model"),
        "model_id": model_title(model),  # never a local path
        "task": task,
        "k": entry.get("k"),
        "n_questions": int(len(targets.ids)),
        "sampling": config.get("tasks", {}).get(task, {}).get("sampling"),
        "seed": config.get("seed"),
        "train_limit": config.get("train_limit"),
        "command": command,
        "wall_s": round(float(state.get("wall_s", 0.0)), 1),
        "invocations": state.get("invocations", []),
        "skipped_estimators": skipped,
        "forced_format": config.get("forced_format", "off"),
        "answer_parse_rates": rd.forced_format(task),
        "questions": {"ids": [str(i) for i in targets.ids], "labels": labels,
                      "designated": [int(d) for d in targets.designated]},
        "confidences": confidences,
        "results": entry,
    }


def _read_state(path: Path) -> dict[str, Any]:
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            pass
    return {"wall_s": 0.0, "invocations": []}


def run_study(plan: StudyPlan, output: str | Path, summaries: str | Path, command: str = "capcal study",
              registry: Any = None, log: Callable[[str], None] = print,
              run_fn: Callable[..., Any] | None = None) -> list[Path]:
    """Run (or resume) every (model, task) of ``plan`` and write one summary per run.

    Args:
        plan: what to run.
        output: the study's run directories go under it (``<output>/<model>/<task>``).
        summaries: where the summary documents go (the repository keeps them in ``docs/study/runs``).
        command: the command line recorded in the summaries and the report.
        registry: plugin registry (default: the installed plugins).
        log: where progress lines go.
        run_fn: the pipeline entry point (default :func:`capcal.run`).

    Returns:
        The summary paths written, in run order.
    """
    from .pipeline import run as run_pipeline
    from .registry import get_registry
    from .runconfig import RunConfig
    from .store import SampleStore

    plan.validate()
    registry = registry or get_registry()
    run_fn = run_fn or run_pipeline
    for t in plan.tasks:
        registry.task_spec(t.name)  # unknown tasks fail before anything runs
    written = []
    for model in plan.models:
        backend, model_args = backend_for(model, registry, plan.backend)
        if plan.threads is not None:
            model_args[threads_arg(backend, model_args)] = int(plan.threads)
        grammars = decodes_grammars(backend, model_args)
        estimators, skipped = _estimators_for(plan, backend, grammars)
        for t in plan.tasks:
            rdir = run_dir_of(Path(output), model, t.name)
            rdir.mkdir(parents=True, exist_ok=True)
            state_path = rdir / "study-state.json"
            state = _read_state(state_path)
            store_path = RunDir(rdir).store_path
            before = 0
            if store_path.exists():
                with SampleStore(store_path) as store:
                    before = len(store)
            log(f"study: {model} / {t.name}: {t.limit} questions x k={t.k} on {backend}")
            config = RunConfig(output=rdir, model=backend, model_args=dict(model_args), tasks=[t.name], k=t.k,
                               limit=t.limit, estimators=estimators, seed=plan.seed, data_dir=plan.data_dir,
                               train_limit=plan.train_limit, bootstrap=plan.bootstrap, progress=plan.progress,
                               forced_format=_forced_mode(plan, t, grammars))
            t0 = time.perf_counter()
            try:
                run_fn(config, registry=registry)
            finally:
                elapsed = time.perf_counter() - t0
                with SampleStore(store_path) as store:
                    after = len(store)
                state["wall_s"] = float(state.get("wall_s", 0.0)) + elapsed
                state.setdefault("invocations", []).append(
                    {"wall_s": round(elapsed, 1), "samples_drawn": after - before,
                     "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                write_atomic(state_path, json.dumps(state, indent=1) + "\n")
            log(f"study: {model} / {t.name}: {after - before} new samples, {elapsed:.0f} s")
            doc = summarize(rdir, model, t.name, state, command, skipped)
            path = summary_path(Path(summaries), model, t.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n")
            written.append(path)
    return written
