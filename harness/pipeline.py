"""The pipeline of one run, resumable stage by stage: ``capcal.run(RunConfig(...)) -> RunDir``.

Stages, each writing into the run directory (``docs/run-directory.md``) so that any of them can be resumed
or redone without redoing the ones before it::

    resolve (tasks, examples, prompts, sampling parameters) -> config.json
    sample   every (question, sample index) whose store key is missing -> samples.sqlite (durable, per batch)
    grade    every sample with the task's grader -> tasks/<task>/targets.jsonl
    estimate each requested estimator -> tasks/<task>/estimators/<name>.jsonl (+ .meta.json)
    analyse  metrics + applications -> results.json (capcal.analysis, capcal.results)

Resuming: sampling skips every stored key (:mod:`capcal.store`), so a killed run never asks the backend
again for a stored sample; grading, estimators and results record a fingerprint of their inputs in
``stages.json`` and are skipped while it is unchanged and their output exists. A failing estimator is
recorded (NaN confidences, the reason) and does not stop the run; it is retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import __version__
from .errors import CapcalError, DataError, ModelError, UnknownNameError, build_from_options, parameter_names
from .estimators import EstimatorContext, EstimatorOutput
from .models.base import Completion, GenerationRequest, Messages, ModelBackend, SamplingParams
from .registry import Registry, get_registry
from .runconfig import (
    DEFAULT_K,
    DEFAULT_MAX_TOKENS,
    RunConfig,
    derive_seed,
    parse_estimator_spec,
    redact_secrets,
)
from .rundir import RunDir, read_jsonl
from .store import SampleStore, canonical_json, sample_keys
from .targets import Targets, completion_token_count, grade_split

__all__ = ["TaskSplit", "run", "Pipeline", "FLAG_RATE"]

#: Truncation or empty-reply rate of a task above which the run warns on stderr.
FLAG_RATE = 0.05


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()


@dataclass
class TaskSplit:
    """One split of one task as the pipeline sees it (all lists aligned on questions).

    Attributes:
        name: task name.
        task: the :class:`capcal.tasks.Task`.
        split: ``"eval"``, ``"train"`` or ``"validation"``.
        examples: (Q,) examples in split order.
        messages: (Q,) rendered prompts.
        ids: (Q,) question ids (object array of str).
        k: samples per question.
        params: the sampling parameters every sample of this split is drawn with.
        keys: (Q, k) store keys, ``keys[q][j]`` for sample ``j`` of question ``q``.
        seeds: (Q, k) per-sample seeds (:func:`capcal.runconfig.derive_seed`).
        designated: index of the response-target sample.
    """

    name: str
    task: Any
    split: str
    examples: list[Any]
    messages: list[Messages]
    ids: np.ndarray
    k: int
    params: SamplingParams
    keys: list[list[str]]
    seeds: list[list[int]]
    designated: int
    limit: int | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    targets: Targets | None = None
    targets_fingerprint: str = ""

    @property
    def stage(self) -> str:
        return f"targets/{self.name}/{self.split}"


class Pipeline:
    """Runs one :class:`RunConfig`; use :func:`run` unless you need the pieces.

    Args:
        config: the run configuration.
        registry: the plugin registry (default: the process-wide one).
        backend: a ready backend to use instead of creating ``config.model`` (notebooks, tests).
        log: where one-line notes go (default: stderr, through tqdm so bars are not broken).
    """

    def __init__(self, config: RunConfig, registry: Registry | None = None, backend: ModelBackend | None = None,
                 log: Callable[[str], None] | None = None):
        self.config = config
        self.registry = registry or get_registry()
        self.backend = backend
        self._own_backend = backend is None
        self._prior: dict[str, Any] | None = None  # config.json of an earlier run of this configuration
        self._identity: tuple[str, str] | None = None  # (backend kind, model id) the store keys were made with
        self.rd = RunDir(config.output)
        self.store: SampleStore | None = None
        self.splits: dict[str, TaskSplit] = {}
        self._other_splits: dict[tuple[str, str], TaskSplit] = {}
        self._contexts: dict[tuple[str, str], EstimatorContext] = {}
        self._suite = None
        self._task_plan: dict[str, dict[str, Any]] = {}
        self.log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
        self.estimator_failures: dict[tuple[str, str], str] = {}
        # leakage rule: fit contexts without scored questions, refused splits, splits the current estimator used
        self._fit_contexts: dict[tuple[str, str], tuple[EstimatorContext, dict[str, Any]]] = {}
        self._refused: dict[tuple[str, str], str] = {}
        self._touched: dict[str, dict[str, Any]] = {}

    # -- the whole run ------------------------------------------------------------------------------
    def run(self) -> RunDir:
        """Resolve, sample, grade, estimate and analyse; return the run directory."""
        with self.registry.activate():  # names resolved by plugins come from this run's registry
            return self._run()

    def _run(self) -> RunDir:
        cfg = self.config
        cfg.validate()
        self._plan()
        self.rd.ensure_writable()
        try:
            self.store = SampleStore(self.rd.store_path)
            self._prior = self._prior_config()
            for name in self._task_plan:
                self.splits[name] = self._resolve(name, "eval")
            if any(self._missing(sp) for sp in self.splits.values()):
                self.ensure_backend()  # before config.json, so that it describes the backend that samples
            self._write_config()
            described = self.backend.describe() if self.backend is not None else None
            for sp in self.splits.values():
                self.sample(sp)
                self.grade(sp)
                if cfg.forced_format == "both":
                    self.forced_copy(sp)
            if self.backend is not None and self.backend.describe() != described:
                self._write_config()  # what sampling learned about the server (e.g. its cap on n)
            for sp in self.splits.values():
                self.estimate(sp)
            self.analyse()
        finally:
            if self.store is not None:
                self.store.close()
            if self._own_backend and self.backend is not None:
                self.backend.close()
        return self.rd

    # -- resolving ----------------------------------------------------------------------------------
    def _plan(self) -> None:
        """Tasks, k, limits and estimators from the config and its suite; unknown names fail here, early."""
        cfg = self.config
        if self.backend is None and cfg.model not in self.registry.models:
            raise UnknownNameError("model", cfg.model, self.registry.models)
        suite_tasks: dict[str, Any] = {}
        if cfg.suite:
            from .suites import load_suite

            self._suite = load_suite(cfg.suite)
            suite_tasks = self._suite.tasks
            if not cfg.estimators:
                cfg.estimators = list(self._suite.estimators)
        names = cfg.tasks or list(suite_tasks)
        for name in names:
            self.registry.task_spec(name)  # UnknownNameError with close matches, before anything is sampled
            st = suite_tasks.get(name)
            self._task_plan[name] = {
                "k": cfg.k or (st.k if st else None),
                "limit": cfg.limit if cfg.limit is not None else (st.limit if st else None),
                "split": st.split if st else "eval",
            }
        if cfg.forced_format == "both":
            cfg.estimators = forced_twins(cfg.estimators)
        for est in cfg.estimators:
            name, params = parse_estimator_spec(est)
            _build_estimator(self.registry.estimator_class(name), est, params)

    # -- the backend, created only when something needs it --------------------------------------------
    def _prior_config(self) -> dict[str, Any] | None:
        """config.json of an earlier run into this directory with the same model and model arguments, when
        it says which backend kind and model id made the store keys (else ``None``).

        The OpenAI backend without ``model=`` asks the server for the model name, so its identity is never
        taken from an earlier run.
        """
        cfg = self.config
        if self.backend is not None or (cfg.model == "openai" and not cfg.model_args.get("model")):
            return None
        try:
            prior = self.rd.config if self.rd.config_path.exists() else None
        except (CapcalError, OSError, ValueError):
            return None
        if not isinstance(prior, dict) or prior.get("model") != cfg.model:
            return None
        now = json.loads(canonical_json(redact_secrets(cfg.model_args)))
        if json.loads(canonical_json(prior.get("model_args") or {})) != now:
            return None
        desc = prior.get("backend")
        if not isinstance(desc, dict) or not desc.get("backend") or not prior.get("model_id"):
            return None
        return prior

    def _key_identity(self) -> tuple[str, str]:
        """(backend kind, model id) for the store keys: the backend's, else the earlier run's, else a new
        backend's."""
        if self._identity is None:
            if self.backend is None and self._prior is not None:
                self._identity = (str(self._prior["backend"]["backend"]), str(self._prior["model_id"]))
            else:
                backend = self.ensure_backend()
                self._identity = (backend.backend, backend.model)
        return self._identity

    def ensure_backend(self) -> ModelBackend:
        """The model backend, created on first use (a resumed run with nothing to sample loads no model).

        If the new backend's kind or model id differs from the earlier run's that the keys were made with,
        every resolved split is keyed again (nothing stored under the old identity is reused).
        """
        if self.backend is None:
            self.backend = self._make_backend()
            identity = (self.backend.backend, self.backend.model)
            if self._identity is not None and identity != self._identity:
                self._identity = identity
                for sp in [*self.splits.values(), *self._other_splits.values()]:
                    sp.keys = self._keys(sp.messages, sp.params, sp.k)
                self._contexts.clear()
            self._identity = identity
        return self.backend

    def _missing(self, sp: TaskSplit) -> bool:
        """Whether the store lacks any sample of ``sp``."""
        flat = [key for row in sp.keys for key in row]
        return len(self.store.has_many(flat)) < len(set(flat))

    def _describe(self) -> dict[str, Any]:
        """The backend's settings without those that cannot change an output (for stage fingerprints)."""
        if self.backend is None and self._prior is not None:
            desc = dict(self._prior["backend"])
        else:
            desc = dict(self.ensure_backend().describe())
        for key in _VOLATILE_SETTINGS:
            desc.pop(key, None)
        return redact_secrets(desc)

    def _keys(self, messages: list[Messages], params: SamplingParams, k: int) -> list[list[str]]:
        backend, model = self._key_identity()
        keyed = {**params.to_dict(), "seed": int(self.config.seed)}
        return [sample_keys(backend, model, msgs, keyed, range(k)) for msgs in messages]

    def _make_backend(self) -> ModelBackend:
        cfg = self.config
        args = dict(cfg.model_args)
        if cfg.concurrency is not None and "concurrency" not in args:
            factory = self.registry.models.get(cfg.model)
            if factory is not None and _accepts(factory, "concurrency"):
                args["concurrency"] = cfg.concurrency
            elif factory is not None:
                raise CapcalError(f"--concurrency: model backend {cfg.model!r} takes no concurrency setting")
        return self.registry.model(cfg.model, **args)

    def _resolve(self, name: str, split: str, limit: int | None = None) -> TaskSplit:
        """Load examples, render prompts, fix sampling parameters, keys and seeds of one task split."""
        cfg = self.config
        plan = self._task_plan.get(name, {})
        task = self.registry.task(name, data_dir=cfg.data_dir)
        role = plan.get("split", "eval") if split == "eval" else split
        if limit is None and split == "eval":
            limit = plan.get("limit")
        examples = task.examples(role, limit)
        if not examples:
            raise DataError(f"task {name!r}: split {role!r} has no examples")
        ids = np.array([str(ex.id) for ex in examples], dtype=object)
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if (ids == i).sum() > 1)
            raise DataError(f"task {name!r}: question id {dup!r} appears twice in split {role!r}")
        gen = dict(getattr(task, "generation", None) or {})
        k = int(plan.get("k") or gen.get("k") or DEFAULT_K)
        if cfg.designated >= k:
            raise CapcalError(f"--designated {cfg.designated} must be smaller than k = {k} (task {name!r})")
        params = self._params(gen)
        if cfg.forced_format == "on":
            params = _with_answer_grammar(params, task, examples)
        messages = [task.render(ex) for ex in examples]
        keys = self._keys(messages, params, k)
        seeds = [[derive_seed(cfg.seed, qid, j) for j in range(k)] for qid in ids]
        return TaskSplit(name=name, task=task, split=split, examples=examples, messages=messages, ids=ids, k=k,
                         params=params, keys=keys, seeds=seeds, designated=cfg.designated, limit=limit)

    def _params(self, gen: dict[str, Any]) -> SamplingParams:
        """Sampling parameters: the command line, else the task's defaults, else untruncated sampling."""
        cfg = self.config

        def pick(name: str, default: Any) -> Any:
            value = getattr(cfg, name)
            return value if value is not None else gen.get(name, default)

        stop = gen.get("stop") or ()
        try:
            return SamplingParams(
                temperature=float(pick("temperature", 1.0)), top_p=float(pick("top_p", 1.0)),
                top_k=int(pick("top_k", 0)), min_p=float(pick("min_p", 0.0)),
                max_tokens=int(pick("max_tokens", DEFAULT_MAX_TOKENS)), logprobs=bool(cfg.logprobs),
                top_logprobs=0, stop=tuple([stop] if isinstance(stop, str) else stop))
        except (TypeError, ValueError) as exc:
            raise CapcalError(f"bad generation settings: {exc}") from None

    def _write_config(self) -> None:
        cfg = self.config
        tasks = {}
        for name, sp in self.splits.items():
            tasks[name] = {
                "split": self._task_plan[name]["split"], "k": sp.k, "limit": sp.limit,
                "n_questions": len(sp.ids), "designated": sp.designated,
                "sampling": {**sp.params.to_dict(), "seed": cfg.seed},
                "fingerprint": _task_fingerprint(sp.task, self._task_plan[name]["split"]),
                "grader": getattr(getattr(sp.task, "grader", None), "name", None),
            }
        ks = {t["k"] for t in tasks.values()}
        samplings = [t["sampling"] for t in tasks.values()]
        common = {key: v for key, v in samplings[0].items() if all(s.get(key) == v for s in samplings)}
        if len(common) < len(samplings[0]):  # tasks differ (e.g. max_tokens): see tasks.<task>.sampling
            common["per_task"] = sorted(set(samplings[0]) - set(common))
        doc = {
            "capcal_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "model": cfg.model if self._own_backend else self.backend.backend,
            "model_args": redact_secrets(cfg.model_args),
            "model_id": self._key_identity()[1],
            "backend": redact_secrets(self.backend.describe() if self.backend is not None else self._prior["backend"]),
            "k": ks.pop() if len(ks) == 1 else None,
            "limit": cfg.limit,
            "seed": cfg.seed,
            "seed_recipe": "sha256(f'{seed}:{question_id}:{index}'), first 8 bytes big-endian, mod 2**31",
            "sampling": common,
            "designated": cfg.designated,
            "estimators": list(cfg.estimators),
            "forced_format": cfg.forced_format,
            "suite": self._suite.to_record() if self._suite else None,
            "bootstrap": cfg.bootstrap,
            "train_limit": cfg.train_limit,
            "grade_truncated": bool(cfg.grade_truncated),
            "concurrency": cfg.concurrency,
            "data_dir": None if cfg.data_dir is None else str(cfg.data_dir),
            "tasks": tasks,
            "data_fingerprints": {n: t["fingerprint"] for n, t in tasks.items()},
        }
        self.rd.write_config(redact_secrets(doc))

    # -- sampling -----------------------------------------------------------------------------------
    def sample(self, sp: TaskSplit) -> None:
        """Draw every sample of ``sp`` that the store lacks; each finished batch is stored at once."""
        if self.backend is None and self._missing(sp):
            self.ensure_backend()  # (may key the split again)
        flat = [key for row in sp.keys for key in row]
        have = self.store.has_many(flat)
        wanted: dict[str, dict[str, Any]] = {}
        requests = []
        for q, (qid, row, seeds) in enumerate(zip(sp.ids, sp.keys, sp.seeds, strict=True)):
            missing = [j for j, key in enumerate(row) if key not in have]
            if not missing:
                continue
            for j in missing:
                wanted[row[j]] = {"task": sp.name, "split": sp.split, "id": str(qid), "index": j, "seed": seeds[j]}
            requests.append(GenerationRequest(messages=sp.messages[q], params=sp.params,
                                              sample_ids=[row[j] for j in missing], seeds=[seeds[j] for j in missing]))
        if not requests:
            return
        label = sp.name if sp.split == "eval" else f"{sp.name} [{sp.split}]"
        bar = tqdm(total=len(flat), initial=len(flat) - len(wanted), desc=f"{label}: samples", unit="sample",
                   disable=self._no_progress(), file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

        def on_result(pairs: list[tuple[str, Completion]]) -> None:
            items = [(key, comp.to_dict(), wanted[key]) for key, comp in pairs if key in wanted]
            bar.update(self.store.put_many(items))

        ok = False
        try:
            self.backend.generate(requests, on_result)
            ok = True
        finally:
            bar.leave = ok
            bar.close()
        lost = len(wanted) - len(self.store.has_many(wanted))
        if lost:
            raise ModelError(f"model backend {self.backend.backend!r} returned {len(wanted) - lost} of "
                             f"{len(wanted)} samples for task {sp.name!r}; re-run the command to draw the rest")

    def _no_progress(self) -> bool | None:
        return None if self.config.progress is None else not self.config.progress

    # -- grading ------------------------------------------------------------------------------------
    def grade(self, sp: TaskSplit) -> Targets:
        """Grade every sample of ``sp`` and write its targets (skipped when they are up to date)."""
        grader = getattr(sp.task, "grader", None)
        grade_truncated = bool(getattr(self.config, "grade_truncated", False))
        parts = ["targets", __version__, getattr(grader, "name", None), sp.ids.tolist(), sp.keys, sp.designated]
        if grade_truncated:  # only when set, so that fingerprints of earlier runs stay valid
            parts.append("grade_truncated")
        fp = _fingerprint(*parts)
        path = self.rd.targets_path(sp.name, sp.split)
        if self.rd.stage_done(sp.stage, fp, path):
            rows = read_jsonl(path)
            if any("completion_tokens" not in row for row in rows):
                # targets written before token counts were recorded: add them from the store (no regrading)
                stored = self.store.get_many(k for row in rows for k in row.get("sample_keys", []))
                for row in rows:
                    row["completion_tokens"] = [completion_token_count(stored[k]) if k in stored else None
                                                for k in row.get("sample_keys", [])]
                self.rd.write_targets(sp.name, rows, sp.split)
        else:
            stored = self.store.get_many(k for row in sp.keys for k in row)
            samples = [[Completion.from_dict(stored[key]) for key in row] for row in sp.keys]
            rows = grade_split(sp.task, sp.examples, samples, sp.designated, sp.keys, grade_truncated)
            self.rd.write_targets(sp.name, rows, sp.split)
            self.rd.mark_stage(sp.stage, fp)
        sp.rows, sp.targets, sp.targets_fingerprint = rows, Targets.from_rows(rows), fp
        if sp.split == "eval":
            self._warn_flags(sp)
        return sp.targets

    def _warn_flags(self, sp: TaskSplit) -> None:
        """One stderr warning per task whose truncation or empty-reply rate passes :data:`FLAG_RATE`."""
        t = sp.targets
        total = int(np.sum(t.n))
        if not total:
            return
        if t.truncation_rate > FLAG_RATE:
            what = ("graded anyway (--grade-truncated)" if getattr(self.config, "grade_truncated", False)
                    else "graded incorrect, reason 'truncated'")
            self.log(f"capcal: warning: {sp.name}: {int(np.sum(t.n_truncated))} of {total} samples "
                     f"({t.truncation_rate:.1%}) stopped at the token limit (max_tokens={sp.params.max_tokens}) "
                     f"and were {what}; raise --max-tokens")
        if t.empty_rate > FLAG_RATE:
            self.log(f"capcal: warning: {sp.name}: {int(np.sum(t.n_empty))} of {total} samples "
                     f"({t.empty_rate:.1%}) are empty replies (graded incorrect, reason 'empty')")
    def forced_copy(self, sp: TaskSplit) -> dict[str, Any] | None:
        """``--forced-format both``: draw and grade a copy of ``sp``'s samples under the task's answer
        grammar (same prompts and seeds; its own store keys), written as split ``forced`` beside the free
        targets, and write ``tasks/<task>/forced_format.json`` with both answer parse rates.

        Returns:
            The parse-rate record, or ``None`` when the task's answers have no forced format.
        """
        from dataclasses import replace as _replace

        from .forced_formats import parse_rate_record

        params = _with_answer_grammar(sp.params, sp.task, sp.examples)
        if params.grammar is None:
            return None
        keys = self._keys(sp.messages, params, sp.k)
        twin = _replace(sp, split="forced", params=params, keys=keys, rows=[], targets=None, targets_fingerprint="")
        self._other_splits[(sp.name, "forced")] = twin  # re-keyed with the others if the backend identity changes
        self.sample(twin)
        self.grade(twin)
        record = parse_rate_record(sp.rows, twin.rows)
        self.rd.write_forced_format(sp.name, record)
        return record

    # -- estimators ---------------------------------------------------------------------------------
    def context(self, sp: TaskSplit) -> EstimatorContext:
        """The :class:`EstimatorContext` of a sampled and graded split (cached)."""
        key = (sp.name, sp.split)
        if key not in self._contexts:
            stored = self.store.get_many(k for row in sp.keys for k in row)
            samples = [[Completion.from_dict(stored[k]) for k in row] for row in sp.keys]
            self._contexts[key] = EstimatorContext(
                task=sp.task, split=sp.split, examples=sp.examples, messages=sp.messages, ids=sp.ids,
                backend=_LazyBackend(self), samples=samples, targets=sp.targets, cache_dir=self.rd.cache_dir(sp.name, sp.split),
                seed=self.config.seed, split_context=lambda split, _n=sp.name: self.split_context(_n, split),
                sampling=sp.params, registry=self.registry)
        return self._contexts[key]

    def split_context(self, name: str, split: str) -> EstimatorContext:
        """Context of another split of task ``name``: sampled and graded through the same store first.

        The leakage rule is enforced here, for every estimator whatever it does: a training or validation
        context never holds a scored question. A split that IS the evaluation split (a suite with
        ``split: train``) is refused before anything is sampled; questions of another split that repeat a
        scored one (same id, or same normalised question text) are dropped, and the drop is recorded in the
        estimator's meta (``fit_splits``).

        Raises:
            DataError: the task has no such split.
            capcal.leakage.LeakageError: the split is the evaluation split, or every question of it is scored.
        """
        from .leakage import LeakageError, without_scored

        if split == "eval":
            return self.context(self.splits[name])
        key = (name, split)
        if key in self._refused:
            self._touched[split] = {"split": split, "refused": self._refused[key]}
            raise LeakageError(self._refused[key])
        if key not in self._fit_contexts:
            eval_role = self._task_plan.get(name, {}).get("split", "eval")
            spec = getattr(self.splits[name].task, "spec", None)
            eval_name = spec.split_name(eval_role) if spec is not None and eval_role != "eval" else None
            if split == eval_role or (eval_name is not None and spec.split_name(split) == eval_name):
                self._refused[key] = (f"task {name!r}: split {split!r} is the evaluation split of this run "
                                      f"(suite split {eval_role!r}); learned estimators may not fit on the "
                                      "scored questions (leakage rule)")
                self._touched[split] = {"split": split, "refused": self._refused[key]}
                raise LeakageError(self._refused[key])
            if key not in self._other_splits:
                sp = self._resolve(name, split, limit=self.config.train_limit)
                self.sample(sp)
                self.grade(sp)
                self._other_splits[key] = sp
            try:
                ctx, record = without_scored(self.context(self._other_splits[key]), self.context(self.splits[name]),
                                             f"task {name!r}, split {split!r}")
            except LeakageError as exc:
                self._refused[key] = str(exc)
                self._touched[split] = {"split": split, "refused": str(exc)}
                raise
            if record["removed"]:
                self.log(f"capcal: warning: {name}: {record['removed']} questions of split {split!r} are also "
                         f"scored ({record['removed_by_id']} by id, {record['removed_by_text']} by question text); "
                         "learned estimators fit without them")
            self._fit_contexts[key] = (ctx, record)
        ctx, record = self._fit_contexts[key]
        self._touched[split] = record
        return ctx

    def _optional_split(self, name: str, split: str) -> EstimatorContext | None:
        try:
            return self.split_context(name, split)
        except DataError:
            return None

    def estimate(self, sp: TaskSplit) -> None:
        """Run every requested estimator on ``sp`` (skipping those whose output is up to date)."""
        names = self.config.estimators
        if not names:
            return
        bar = tqdm(names, desc=f"{sp.name}: estimators", unit="est", disable=self._no_progress(),
                   file=sys.stderr, dynamic_ncols=True)
        for name in bar:
            bar.set_postfix_str(name)
            base, params = parse_estimator_spec(name)
            est = _build_estimator(self.registry.estimator_class(base), name, params)
            fp = _fingerprint("estimator", __version__, name, _params_of(est), sp.targets_fingerprint,
                              self._describe(), self.config.train_limit, self.config.seed)
            stage = f"estimator/{sp.name}/{name}"
            if self.rd.stage_done(stage, fp, self.rd.estimator_path(sp.name, name)):
                continue
            t0 = time.perf_counter()
            self._touched = {}
            try:
                out = self._predict(est, sp)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - a failing estimator is recorded, the run goes on
                reason = f"estimator failed: {type(exc).__name__}: {exc}".splitlines()[0]
                refused = [t["refused"] for t in self._touched.values() if "refused" in t]
                if refused and not any(r in reason for r in refused):
                    reason += f" ({refused[0]})"
                reason = reason[:400]
                self.estimator_failures[(sp.name, name)] = reason
                self.log(f"capcal: warning: {sp.name}/{name}: {reason}")
                nan = np.full(len(sp.ids), np.nan)
                self.rd.write_estimator(sp.name, name, sp.ids, nan, [reason] * len(sp.ids),
                                        {"error": reason, "traceback": traceback.format_exc(limit=8),
                                         "params": _params_of(est), "elapsed_s": time.perf_counter() - t0})
                self.rd.mark_stage(stage, None)
                continue
            meta = {**out.meta, "params": _params_of(est), "failure_rate": out.failure_rate,
                    "elapsed_s": time.perf_counter() - t0}
            if self._touched:  # what the estimator was allowed to fit on (and what was refused or dropped)
                meta["fit_splits"] = [self._touched[k] for k in sorted(self._touched)]
            self.rd.write_estimator(sp.name, name, sp.ids, out.confidence, out.reasons, meta)
            self.rd.mark_stage(stage, fp)

    def _predict(self, est: Any, sp: TaskSplit) -> EstimatorOutput:
        from .leakage import check_disjoint

        ctx = self.context(sp)
        if getattr(est, "learns", False):
            # Learned estimators fit on the task's training split (validation for selection); a task
            # without one (triviaqa offline, math500, ...) passes None and the estimator says what it did.
            # split_context has already removed every scored question; check_disjoint is the last guard.
            train, validation = self._optional_split(sp.name, "train"), self._optional_split(sp.name, "validation")
            for split, fit_ctx in (("train", train), ("validation", validation)):
                check_disjoint(fit_ctx, ctx, f"task {sp.name!r}, split {split!r}")
            est.fit(train, validation)
        out = est.predict(ctx)
        if not isinstance(out, EstimatorOutput):
            raise TypeError(f"predict returned {type(out).__name__}, expected EstimatorOutput")
        if len(out.confidence) != len(sp.ids):
            raise ValueError(f"predict returned {len(out.confidence)} confidences for {len(sp.ids)} questions")
        return out

    # -- metrics and results --------------------------------------------------------------------------
    def analyse(self) -> Path:
        """Write ``results.json`` (metrics + applications) unless it is up to date."""
        from . import results  # numpy/scipy-heavy: imported when the stage runs

        stages = self.rd.stages()
        inputs = sorted((k, v) for k, v in stages.items() if k.startswith(("targets/", "estimator/")))
        fp = _fingerprint("results", __version__, inputs, self.config.bootstrap, self.config.seed,
                          sorted(self.rd.tasks()))
        if self.rd.stage_done("results", fp, self.rd.results_path):
            return self.rd.results_path
        path = results.write_results(self.rd, n_boot=self.config.bootstrap, seed=self.config.seed)
        self.rd.mark_stage("results", fp)
        return Path(path)


def run(config: RunConfig, *, registry: Registry | None = None, backend: ModelBackend | None = None) -> RunDir:
    """Run (or resume) one configuration end to end and return its run directory.

    Args:
        config: what to run (:class:`capcal.runconfig.RunConfig`).
        registry: plugin registry to resolve names in (default: the installed plugins).
        backend: an already-built backend to use instead of ``config.model`` / ``config.model_args``.

    Raises:
        CapcalError: bad configuration, unknown names, unreadable data, an unwritable output directory, or a
            backend that cannot serve (each with a one-line message).
    """
    return Pipeline(config, registry=registry, backend=backend).run()


# -- helpers ------------------------------------------------------------------------------------------
#: Backend settings that change how samples are fetched, not what they are (left out of stage fingerprints).
_VOLATILE_SETTINGS = ("concurrency", "base_urls", "timeout", "max_retries", "backoff_base", "backoff_max",
                      "transport", "api_key_env", "n_honoured", "n_cap", "server", "top_k_off", "batch_size")


class _LazyBackend:
    """Stands in for the pipeline's backend in estimator contexts: the backend is created on first use, so
    estimators that never call the model (oracles, constant) load none."""

    def __init__(self, pipeline: Pipeline):
        self._pipeline = pipeline

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipeline.ensure_backend(), name)


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    accepted = parameter_names(factory)
    return accepted is None or name in accepted


def _build_estimator(cls: type, label: str, params: dict[str, Any]) -> Any:
    """``cls(**params)``, with a wrong parameter reported as one line naming the ``--estimators`` item,
    the close matches and every parameter the constructor takes (:func:`capcal.errors.build_from_options`)."""
    name = label.split(":", 1)[0]
    return build_from_options(cls, params, where=f"--estimators {label!r}", noun="parameter",
                              owner=f" of estimator {name!r}", catch=(TypeError, ValueError))


def _params_of(est: Any) -> dict[str, Any]:
    try:
        return _jsonable_params(est.get_params())
    except Exception:  # noqa: BLE001 - parameters are only recorded
        return {}


def _jsonable_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in params.items():
        try:
            canonical_json(v)
            out[k] = v
        except (TypeError, ValueError):
            out[k] = repr(v)
    return out


def forced_twins(estimators: list[str]) -> list[str]:
    """``--forced-format both``: after each ``verbalized`` item without a ``forced`` parameter, a forced twin
    (``verbalized:forced=true`` with the same other parameters), unless it is listed already."""
    out: list[str] = []
    for est in estimators:
        out.append(est)
        name, params = parse_estimator_spec(est)
        if name == "verbalized" and "forced" not in params:
            twin = est + ":forced=true"
            if twin not in estimators:
                out.append(twin)
    return list(dict.fromkeys(out))


def _with_answer_grammar(params: SamplingParams, task: Any, examples: list[Any]) -> SamplingParams:
    """``params`` with the grammar of the task's forced answer format (unchanged when it has none)."""
    from dataclasses import replace as _replace

    from .forced_formats import answer_grammar

    n_choices = max((len(ex.fields.get("choices") or ()) for ex in examples), default=0) or 4
    g = answer_grammar(getattr(getattr(task, "grader", None), "name", None), n_choices, params.max_tokens)
    return params if g is None else _replace(params, grammar=g)


def _task_fingerprint(task: Any, split: str) -> str | None:
    try:
        return task.fingerprint(split)
    except (CapcalError, OSError, NotImplementedError):
        return None
