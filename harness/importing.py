"""Bring your own samples: build a run directory from generations made elsewhere (``capcal import``).

:func:`import_samples` reads a source (:mod:`capcal.formats`), matches its questions to one split of a
task (:mod:`capcal.matching`: id, then index, then normalised question text; nothing guessed), stores every
sample in ``samples.sqlite`` and grades them into ``targets.jsonl`` through the targets stage
(:mod:`capcal.targets`), exactly as a sampled run is graded. :func:`finish_imported_run` then runs estimators and writes ``results.json``
through the ordinary pipeline stages (:class:`ImportedPipeline`), so the leaderboard, ``compare`` and
``route`` read an imported run like any other. :func:`import_confidences` turns a file of
id -> confidence into an estimator output of any existing run.

What an import writes besides the usual files (``docs/import.md``)::

    RUN/tasks/<task>/imports/<split>.json        the import record: source, matching, short questions,
                                                 grader-vs-source disagreements, source id -> capcal id
    RUN/tasks/<task>/imported/<name>.jsonl        raw imported confidences (every id of the file)

Library use::

    from capcal.importing import import_samples, finish_imported_run
    report = import_samples("samples.jsonl", "gsm8k", "runs/mine", data_dir="data")
    finish_imported_run("runs/mine", estimators=["consistency", "oracle_cc"])
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .defaults import DEFAULT_MAX_TOKENS
from .errors import CapcalError, DataError, RunDirError
from .formats import ImportedQuestion, SourceInfo, read_source
from .matching import match_questions
from .models.base import SamplingParams
from .pipeline import Pipeline, TaskSplit, _build_estimator
from .registry import Registry, get_registry
from .runconfig import RunConfig, parse_estimator_spec
from .rundir import RunDir, Targets, read_jsonl, write_atomic
from .store import SampleStore, canonical_json, sample_keys

__all__ = ["ConfidenceReport", "ImportReport", "ImportedPipeline", "finish_imported_run", "import_confidences",
           "import_samples"]

#: The backend name of imported samples (part of their store keys and of ``config.json``).
IMPORT_BACKEND = "imported"
#: How many examples of each kind of problem the report lists.
N_EXAMPLES = 5


def _digest(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (plain JSON values take the fast path)."""
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = canonical_json(obj)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_digest(paths: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@dataclass
class ImportReport:
    """What an import did (also written to ``RUN/tasks/<task>/imports/<split>.json``).

    Attributes:
        task, split: where the samples went.
        format, source: the source's format and path.
        model_id: the model the samples are recorded under.
        n_source: questions in the source.
        n_matched: questions matched to a document and imported.
        matched_by: ``{"id"|"doc"|"index"|"text": count}``.
        unmatched: ``{"count", "examples": [[label, reason], ...]}`` (up to 5 examples).
        empty: questions matched but without a single sample (left out), same shape.
        n_samples: samples imported.
        n_min, n_max: fewest and most samples of an imported question (the run records n per question).
        short: questions with fewer samples than ``n_max``: ``{"count", "examples": [[id, n], ...]}``.
        labels: ``"grader"`` (targets use capcal's grader) or ``"imported"`` (the source's verdicts).
        verdicts: samples that carried the source's verdict.
        disagreements: ``{"count", "examples": [{"id", "sample", "source", "grader", "extracted"}]}``:
            samples where capcal's grader and the source's verdict differ.
        truncated: samples with finish reason ``length`` (graded incorrect, never parsed).
        mean_mu: mean capability target of the imported questions.
        confidences: names of the confidence files imported with the samples.
        notes: the source reader's remarks.
        id_map: ``{source question id: capcal question id}`` of the matched questions with a source id.
    """

    task: str
    split: str
    format: str
    source: str
    model_id: str
    n_source: int = 0
    n_matched: int = 0
    matched_by: dict[str, int] = field(default_factory=dict)
    unmatched: dict[str, Any] = field(default_factory=lambda: {"count": 0, "examples": []})
    empty: dict[str, Any] = field(default_factory=lambda: {"count": 0, "examples": []})
    n_samples: int = 0
    n_min: int = 0
    n_max: int = 0
    short: dict[str, Any] = field(default_factory=lambda: {"count": 0, "examples": []})
    labels: str = "grader"
    verdicts: int = 0
    disagreements: dict[str, Any] = field(default_factory=lambda: {"count": 0, "examples": []})
    truncated: int = 0
    mean_mu: float | None = None
    confidences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    id_map: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The human summary, one line per fact (the CLI prints them)."""
        by = ", ".join(f"by {k} {v}" for k, v in self.matched_by.items()) or "none"
        out = [f"imported {self.n_matched} of {self.n_source} questions of {self.task} [{self.split}] from "
               f"{self.format} source {self.source} ({by}); {self.n_samples} samples, n = "
               + (f"{self.n_min}" if self.n_min == self.n_max else f"{self.n_min}..{self.n_max}") + " per question"]
        if self.unmatched["count"]:
            ex = "; ".join(f"{a} ({b})" for a, b in self.unmatched["examples"])
            out.append(f"{self.unmatched['count']} questions matched no document and were left out, e.g. {ex}")
        if self.empty["count"]:
            ex = ", ".join(str(a) for a, _ in self.empty["examples"])
            out.append(f"{self.empty['count']} matched questions have no samples and were left out, e.g. {ex}")
        if self.short["count"]:
            ex = ", ".join(f"{a} (n={b})" for a, b in self.short["examples"])
            out.append(f"{self.short['count']} questions have fewer samples than the others (n_max = {self.n_max}), "
                       f"e.g. {ex}")
        if self.verdicts:
            d = self.disagreements
            use = ("capcal's grader" if self.labels == "grader" else "the source's verdicts")
            line = (f"capcal's grader and the source's verdict disagree on {d['count']} of {self.verdicts} samples "
                    f"(targets use {use})")
            if d["examples"]:
                e = d["examples"][0]
                line += (f", e.g. {e['id']} sample {e['sample']}: source {e['source']}, grader {e['grader']} "
                         f"(extracted {e['extracted']!r})")
            out.append(line)
        if self.truncated:
            out.append(f"{self.truncated} samples stopped at the token limit (finish reason 'length'): "
                       "graded incorrect")
        if self.confidences:
            out.append(f"imported confidences: {', '.join(self.confidences)}")
        out.extend(self.notes)
        return out


def _examples(report: dict[str, Any], items: list, n: int = N_EXAMPLES) -> dict[str, Any]:
    report["count"] = len(items)
    report["examples"] = [list(x) if isinstance(x, tuple) else x for x in items[:n]]
    return report


# -- grading imported samples into target rows -----------------------------------------------------------
def grade_imported(task: Any, examples: Sequence[Any], samples: Sequence[Sequence[Any]], keys: Sequence[Sequence[str]],
                   designated: int = 0, labels: str = "grader") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Grade every imported sample into ``targets.jsonl`` rows through the targets stage (:mod:`capcal.targets`).

    The samples enter :func:`capcal.targets.grade_responses` and :func:`capcal.targets.target_row` as
    completions, exactly as a sampled run's stored samples do: finish reason ``length`` (the token limit)
    is incorrect and never parsed, ``content_filter`` / ``error`` and blank replies are incorrect, the
    task's grader decides the rest, equal replies to one question are graded once.

    Args:
        task: the :class:`capcal.tasks.Task`.
        examples: (Q,) the matched examples.
        samples: (Q,) per question its :class:`capcal.formats.ImportedSample` list (n_q >= 1 each).
        keys: (Q,) per question the store keys, aligned with ``samples``.
        designated: index of the response-target sample (< n_q for every question).
        labels: ``"grader"``: ``correct`` is the grader's verdict; ``"imported"``: the source's verdict where
            it gave one (the grader's elsewhere).

    Returns:
        ``(rows, stats)``: the target rows in ``examples`` order, and ``{"verdicts", "disagreements"
        (list of dicts), "truncated"}``.
    """
    from .models.base import Completion
    from .targets import grade_responses, target_row

    rows, disagreements = [], []
    verdicts = truncated = 0
    for ex, row_samples, row_keys in zip(examples, samples, keys, strict=True):
        comps = [Completion.from_dict(s.completion()) for s in row_samples]
        graded = grade_responses(task, ex, comps)
        row = target_row(str(ex.id), int(ex.index), comps, graded, designated, sample_keys=row_keys)
        for j, (s, (g, _why)) in enumerate(zip(row_samples, graded, strict=True)):
            if s.correct is None:
                continue
            verdicts += 1
            if bool(s.correct) != bool(g.correct):
                disagreements.append({"id": str(ex.id), "sample": j, "source": bool(s.correct),
                                      "grader": bool(g.correct), "extracted": g.extracted})
            if labels == "imported":
                row["correct"][j] = int(bool(s.correct))
        if labels == "imported":
            row["c"] = sum(row["correct"])
            row["mu"] = row["c"] / row["n"]
            row["r"] = row["correct"][designated]
        truncated += row["n_truncated"]
        rows.append(row)
    return rows, {"verdicts": verdicts, "disagreements": disagreements, "truncated": truncated}


# -- the import ---------------------------------------------------------------------------------------------
def _imported_config(rd: RunDir) -> dict[str, Any] | None:
    """The existing config of an imported run; ``None`` for a new directory; RunDirError for a sampled run."""
    if not rd.config_path.exists():
        return None
    config = rd.config
    if config.get("model") != IMPORT_BACKEND:
        raise RunDirError(f"{rd.path} holds a sampled run (model {config.get('model')!r}); import samples into a "
                          "new directory (imported confidences can go into any run: capcal import --confidences)")
    return config


def import_samples(source: str | Path, task: str, output: str | Path, *, fmt: str = "auto", split: str = "eval",
                   data_dir: str | Path | None = None, model_id: str | None = None, labels: str = "grader",
                   designated: int = 0, confidences: bool = True,
                   registry: Registry | None = None) -> ImportReport:
    """Import one source's samples of one task split into a run directory (created or extended).

    Args:
        source: the file or directory to read (see :mod:`capcal.formats`).
        task: the registered task the questions belong to.
        output: the run directory (a new one, or an imported run to extend with another task or split).
        fmt: ``"auto"`` or a format name (:data:`capcal.formats.FORMATS`).
        split: ``"eval"`` (targets.jsonl), or ``"train"`` / ``"validation"`` (for learned estimators).
        data_dir: the task's data mirror.
        model_id: the model to record (default: what the source names, else ``"unknown"``).
        labels: ``"grader"`` (default) or ``"imported"`` (see :func:`grade_imported`).
        designated: index of the response-target sample.
        confidences: also import the confidence files the source carries (official format).
        registry: plugin registry (default: the installed plugins).

    Returns:
        The :class:`ImportReport` (also written to ``RUN/tasks/<task>/imports/<split>.json``).

    Raises:
        CapcalError: unknown task or format, unreadable source, no question matched, a sampled run as
            output, ``designated`` not below some question's n.
    """
    if labels not in ("grader", "imported"):
        raise CapcalError(f"--labels {labels!r}: expected 'grader' or 'imported'")
    if isinstance(designated, bool) or not isinstance(designated, int) or designated < 0:
        raise CapcalError(f"--designated {designated!r}: expected an integer >= 0")
    registry = registry or get_registry()
    rd = RunDir(output)
    old_config = _imported_config(rd)
    the_task = registry.task(task, data_dir=data_dir)
    examples = the_task.examples(split)
    questions, info = read_source(source, fmt, task=task)
    model_id = model_id or info.model_id or (old_config or {}).get("model_id") or "unknown"
    report = ImportReport(task=task, split=split, format=info.format, source=str(source), model_id=str(model_id),
                          n_source=len(questions), labels=labels, notes=list(info.notes))
    matching = match_questions(questions, examples, the_task)
    report.matched_by = matching.by
    _examples(report.unmatched, matching.unmatched)
    chosen: list[tuple[ImportedQuestion, Any]] = []
    empty = []
    for q, m in zip(questions, matching.matches, strict=True):
        if m is None:
            continue
        if not q.samples:
            empty.append((q.label(), "no samples"))
            continue
        chosen.append((q, examples[m.position]))
    _examples(report.empty, empty)
    if not chosen:
        why = f"; e.g. {matching.unmatched[0][0]}: {matching.unmatched[0][1]}" if matching.unmatched else ""
        raise DataError(f"{source}: none of its {len(questions)} questions matched a document of task {task!r} "
                        f"[{split}] with samples{why}")
    chosen.sort(key=lambda pair: pair[1].index)  # split order, as a sampled run
    ns = np.array([len(q.samples) for q, _ in chosen])
    too_few = [(str(ex.id), int(n)) for (q, ex), n in zip(chosen, ns, strict=True) if n <= designated]
    if too_few:
        raise CapcalError(f"--designated {designated}: {len(too_few)} questions have only {too_few[0][1]} or fewer "
                          f"samples (e.g. {too_few[0][0]}); choose a smaller designated index")
    report.n_matched, report.n_samples = len(chosen), int(ns.sum())
    report.n_min, report.n_max = int(ns.min()), int(ns.max())
    _examples(report.short, [(str(ex.id), len(q.samples)) for q, ex in chosen if len(q.samples) < report.n_max])
    report.id_map = {str(q.id): str(ex.id) for q, ex in chosen if q.id is not None and str(q.id) != str(ex.id)}

    # store the samples: keys depend on the model, the prompt, the question and the sample's content
    rd.ensure_writable()
    keys, items = [], []
    for q, ex in chosen:
        messages = q.prompt or the_task.render(ex)
        comps = [s.completion() for s in q.samples]
        extras = [{"correct": s.correct, "completion_tokens": s.completion_tokens, "prompt_tokens": s.prompt_tokens,
                   "extracted": s.extracted} for s in q.samples]
        # the key covers the question's imported content: a changed re-import never reuses old samples
        params = {"imported": _digest([comps, extras]), "question_id": str(ex.id)}
        row = sample_keys(IMPORT_BACKEND, str(model_id), messages, params, range(len(comps)))
        for j, (key, comp, extra) in enumerate(zip(row, comps, extras, strict=True)):
            items.append((key, comp, {"task": task, "split": split, "id": str(ex.id), "index": j, "seed": None,
                                      "source": info.format, "source_id": q.id,
                                      **{k: v for k, v in extra.items() if v is not None}}))
        keys.append(row)
    with SampleStore(rd.store_path) as store:
        store.put_many(items)

    # grade into targets (the same stage a sampled run has)
    rows, stats = grade_imported(the_task, [ex for _, ex in chosen], [q.samples for q, _ in chosen], keys,
                                 designated, labels)
    report.verdicts, report.truncated = stats["verdicts"], stats["truncated"]
    _examples(report.disagreements, stats["disagreements"])
    report.mean_mu = float(np.mean([r["mu"] for r in rows]))
    stage = f"targets/{task}/{split}"
    grader = getattr(the_task.grader, "name", None)
    fp = _digest(["targets", __version__, grader, labels, [r["id"] for r in rows], keys, designated])
    rd.write_targets(task, rows, split)
    rd.mark_stage(stage, fp)

    _write_import_config(rd, old_config, the_task, split, report, info, designated, data_dir,
                         sha=_file_digest(info.files) if info.files else None)
    record = _import_record_path(rd, task, split)
    write_atomic(record, json.dumps(report.to_dict(), indent=1, default=str) + "\n")
    if confidences and info.confidences and split == "eval":  # after the record: it maps the source's ids
        for name, path in sorted(info.confidences.items()):
            import_confidences(rd.path, path, name, task=task, registry=registry, analyse=False)
            report.confidences.append(name)
        write_atomic(record, json.dumps(report.to_dict(), indent=1, default=str) + "\n")
    return report


def _import_record_path(rd: RunDir, task: str, split: str) -> Path:
    return rd.task_dir(task) / "imports" / f"{split}.json"


def _write_import_config(rd: RunDir, old: dict[str, Any] | None, task: Any, split: str, report: ImportReport,
                         info: SourceInfo, designated: int, data_dir: Any, sha: str | None) -> None:
    config = dict(old or {})
    tasks = dict(config.get("tasks") or {})
    imports = dict(config.get("imports") or {})
    try:
        fingerprint = task.fingerprint(split)
    except (CapcalError, OSError, NotImplementedError):
        fingerprint = None
    record = {"format": info.format, "source": report.source, "sha256": sha, "model_id": report.model_id,
              "n_questions": report.n_matched, "n_min": report.n_min, "n_max": report.n_max,
              "labels": report.labels, "imported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    imports[f"{report.task}/{split}"] = record
    if split == "eval":
        tasks[report.task] = {"split": "eval", "k": report.n_max, "n_min": report.n_min, "limit": None,
                              "n_questions": report.n_matched, "designated": designated,
                              "sampling": dict(info.sampling), "fingerprint": fingerprint,
                              "grader": getattr(task.grader, "name", None), "imported_from": info.format}
    ks = {t["k"] for t in tasks.values()}
    config.update({
        "capcal_version": __version__,
        "created": config.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": IMPORT_BACKEND, "model_id": report.model_id, "model_args": {},
        "backend": {"backend": IMPORT_BACKEND, "model": report.model_id},
        "k": ks.pop() if len(ks) == 1 else None, "limit": None, "seed": config.get("seed", 0),
        "designated": designated, "sampling": dict(info.sampling) or config.get("sampling") or {},
        "estimators": list(config.get("estimators") or []), "suite": None,
        "bootstrap": config.get("bootstrap", 1000), "train_limit": None, "concurrency": None,
        "data_dir": None if data_dir is None else str(data_dir), "tasks": tasks,
        "data_fingerprints": {n: t.get("fingerprint") for n, t in tasks.items()}, "imports": imports,
    })
    rd.write_config(config)


# -- estimators and results on an imported run ------------------------------------------------------------
class ImportedPipeline(Pipeline):
    """The estimator and results stages of :class:`capcal.pipeline.Pipeline` on an imported run.

    Nothing is sampled: every split comes from its ``targets.jsonl`` and the samples in ``samples.sqlite``.
    Estimators that need no model work as on a sampled run (consistency reuses the stored samples and flags
    it, the oracles, constant and recalibration fit on an imported training split, with the pipeline's
    leakage rule); an estimator that calls the model gets the ``backend`` given here, or NaN with its
    reason when there is none. Learned estimators see the imported ``train`` / ``validation`` splits
    (``capcal import --split train``).
    """

    def __init__(self, output: str | Path, estimators: Sequence[str] = (), *, bootstrap: int | None = None,
                 seed: int | None = None, registry: Registry | None = None, backend: Any = None,
                 progress: bool | None = None):
        rd = RunDir(output)
        config = rd.config
        if config.get("model") != IMPORT_BACKEND:
            raise RunDirError(f"{rd.path} is not an imported run (model {config.get('model')!r})")
        cfg = RunConfig(output=output, model=IMPORT_BACKEND, estimators=list(estimators),
                        seed=int(config.get("seed", 0) if seed is None else seed),
                        bootstrap=int(config.get("bootstrap", 1000) if bootstrap is None else bootstrap),
                        data_dir=config.get("data_dir"), designated=int(config.get("designated", 0)),
                        progress=progress)
        super().__init__(cfg, registry=registry, backend=backend)
        self._own_backend = False
        self.run_config = config

    def run(self):
        """Estimate every configured estimator on every imported task, then write ``results.json``."""
        tasks = sorted(self.run_config.get("tasks") or {})
        for est in self.config.estimators:
            name, params = parse_estimator_spec(est)
            _build_estimator(self.registry.estimator_class(name), est, params)
            for task in tasks:
                if self.rd.is_imported_estimator(task, est):
                    raise CapcalError(f"--estimators {est!r}: {task} already has imported confidences of that "
                                      "name; they would be overwritten")
        self.store = SampleStore(self.rd.store_path)
        try:
            for name in tasks:
                self._task_plan[name] = {"k": None, "limit": None, "split": "eval"}
                self.splits[name] = self._resolve(name, "eval")
            for sp in self.splits.values():
                self.estimate(sp)
            config = self.rd.config
            config["estimators"] = list(dict.fromkeys(list(config.get("estimators") or []) + self.config.estimators))
            config["bootstrap"], config["seed"] = self.config.bootstrap, self.config.seed
            self.rd.write_config(config)
            self.analyse()
        finally:
            self.store.close()
        return self.rd

    # the backend: only the one given (estimators that call the model get None and say so)
    def ensure_backend(self):
        if self.backend is None:
            raise CapcalError("this is an imported run without a model backend (pass --model to capcal import)")
        return self.backend

    def _describe(self) -> dict[str, Any]:
        return {"backend": IMPORT_BACKEND} if self.backend is None else super()._describe()

    def context(self, sp: TaskSplit):
        ctx = super().context(sp)
        ctx.backend = self.backend  # None without --model: model-free estimators know what to do
        return ctx

    # the splits come from the imported targets; nothing is sampled or graded again
    def _resolve(self, name: str, split: str, limit: int | None = None) -> TaskSplit:
        return self._from_targets(name, split)

    def sample(self, sp: TaskSplit) -> None:
        return None

    def grade(self, sp: TaskSplit) -> Targets:
        return sp.targets

    def _from_targets(self, name: str, split: str) -> TaskSplit:
        path = self.rd.targets_path(name, split)
        stage = f"targets/{name}/{split}"
        fp = self.rd.stages().get(stage)
        if not path.exists() or fp is None:
            raise DataError(f"task {name!r} has no imported {split} split in {self.rd.path} "
                            f"(capcal import --split {split})")
        rows = read_jsonl(path)
        task = self.registry.task(name, data_dir=self.config.data_dir)
        pool = {str(ex.id): ex for ex in task.examples(split)}
        missing = [r["id"] for r in rows if str(r["id"]) not in pool]
        if missing:
            raise RunDirError(f"{path}: {len(missing)} question ids are not in task {name!r} [{split}] "
                              f"(e.g. {missing[0]!r}); was the data changed since the import?")
        examples = [pool[str(r["id"])] for r in rows]
        sampling = (self.run_config.get("tasks", {}).get(name, {}) or {}).get("sampling") or {}
        if split == "eval":
            # learned estimators depend on the imported training splits too
            others = {s: self.rd.stages().get(f"targets/{name}/{s}") for s in ("train", "validation")}
            fp = _digest([fp, others])
        sp = TaskSplit(name=name, task=task, split=split, examples=examples,
                       messages=[task.render(ex) for ex in examples],
                       ids=np.array([str(r["id"]) for r in rows], dtype=object),
                       k=max(len(r["correct"]) for r in rows), params=_params_from(sampling, task),
                       keys=[list(r["sample_keys"]) for r in rows], seeds=[[] for _ in rows],
                       designated=int(rows[0].get("designated", 0)))
        sp.rows, sp.targets, sp.targets_fingerprint = rows, Targets.from_rows(rows), fp
        return sp


def _params_from(sampling: dict[str, Any], task: Any) -> SamplingParams:
    gen = dict(getattr(task, "generation", None) or {})

    def pick(key: str, default: Any) -> Any:
        value = sampling.get(key)
        return value if value is not None else gen.get(key, default)

    try:
        return SamplingParams(temperature=float(pick("temperature", 1.0)), top_p=float(pick("top_p", 1.0)),
                              top_k=int(pick("top_k", 0)), min_p=float(pick("min_p", 0.0)),
                              max_tokens=int(pick("max_tokens", DEFAULT_MAX_TOKENS)))
    except (TypeError, ValueError):
        return SamplingParams()


def finish_imported_run(output: str | Path, estimators: Sequence[str] = (), *, bootstrap: int | None = None,
                        seed: int | None = None, registry: Registry | None = None, backend: Any = None,
                        progress: bool | None = None) -> RunDir:
    """Run ``estimators`` on an imported run and (re)write its ``results.json``.

    Re-running with the same arguments does nothing new (every stage is fingerprinted); estimators named
    on an earlier call stay in the results.
    """
    return ImportedPipeline(output, estimators, bootstrap=bootstrap, seed=seed, registry=registry,
                            backend=backend, progress=progress).run()


# -- imported confidences ------------------------------------------------------------------------------------
@dataclass
class ConfidenceReport:
    """What :func:`import_confidences` did.

    Attributes:
        name: the estimator name the confidences are stored under.
        task: the task.
        n_rows: rows in the file.
        n_matched: evaluation questions that got a confidence.
        n_missing: evaluation questions without one (NaN, reason "no imported confidence").
        n_failed: rows that the source marks as failed (NaN, with the source's reason).
        unknown: ``{"count", "examples"}`` of file ids that are no question of the run.
    """

    name: str
    task: str
    n_rows: int = 0
    n_matched: int = 0
    n_missing: int = 0
    n_failed: int = 0
    unknown: dict[str, Any] = field(default_factory=lambda: {"count": 0, "examples": []})

    def line(self) -> str:
        out = (f"imported confidences {self.name!r} for {self.task}: {self.n_matched} questions "
               f"({self.n_rows} rows read")
        if self.n_failed:
            out += f", {self.n_failed} marked failed in the source"
        if self.n_missing:
            out += f", {self.n_missing} questions without a confidence"
        if self.unknown["count"]:
            out += f", {self.unknown['count']} ids not in the run, e.g. {', '.join(map(repr, self.unknown['examples']))}"
        return out + ")"


def read_confidences(path: str | Path) -> list[tuple[str | None, float, str | None, int | None]]:
    """Rows ``(id or None, confidence or NaN, failure reason or None, index or None)`` of a confidence file.

    Accepted: JSON Lines with ``id`` (or ``example_id``) and ``confidence`` (or ``p``), optional ``reason``
    and ``index``; the official code's ``confidence_predictions_<cc|rc>.jsonl`` (``parse_success: false``
    rows, where that code wrote a 0.5 fallback, become NaN); its ``consistency_k<k>.jsonl``; or CSV with a
    header naming ``id`` and ``confidence``. ``null`` / empty confidences are failures.

    Raises:
        DataError: unreadable file, a row without id or confidence, a confidence outside [0, 1].
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise DataError(f"confidence file not found: {path}")
    raw: list[tuple[str, dict]] = []
    if path.suffix.lower() == ".csv":
        with open(path, encoding="utf-8", newline="") as fh:
            for lineno, row in enumerate(csv.DictReader(fh), 2):
                raw.append((f"{path}:{lineno}", dict(row)))
    else:
        from .formats.generic import iter_jsonl

        raw = [(f"{path}:{lineno}", obj) for lineno, obj in iter_jsonl(path)]
    out = []
    for where, row in raw:
        qid = row.get("id", row.get("example_id"))
        if (qid is None or str(qid) == "") and row.get("index") in (None, ""):
            raise DataError(f"{where}: a confidence row needs 'id' (or 'example_id', or 'index')")
        key = "confidence" if "confidence" in row else "p" if "p" in row else None
        if key is None:
            raise DataError(f"{where}: a confidence row needs 'confidence'")
        value, reason = row[key], row.get("reason") or None
        if value is None or value == "":
            conf = math.nan
            reason = reason or "no confidence in the source"
        else:
            try:
                conf = float(value)
            except (TypeError, ValueError):
                raise DataError(f"{where}: confidence {value!r} is not a number") from None
            if math.isnan(conf):
                reason = reason or "no confidence in the source"
            elif not 0.0 <= conf <= 1.0:
                raise DataError(f"{where}: confidence {conf} is outside [0, 1]")
        if row.get("parse_success") in (False, "false", "False", 0):
            conf, reason = math.nan, "unparseable reply (the source wrote a fallback value)"
        index = row.get("index")
        try:
            index = None if index in (None, "") else int(index)
        except (TypeError, ValueError):
            raise DataError(f"{where}: index {index!r} is not an integer") from None
        out.append((None if qid in (None, "") else str(qid), conf, reason, index))
    if not out:
        raise DataError(f"{path}: no confidence rows")
    return out


def import_confidences(run_dir: str | Path, path: str | Path, name: str, *, task: str | None = None,
                       registry: Registry | None = None, analyse: bool = True, bootstrap: int | None = None,
                       seed: int | None = None) -> ConfidenceReport:
    """Make a file of id -> confidence an estimator output (``name``) of an existing run.

    Ids are the run's question ids; an imported run also knows the source's ids (its import records), and a
    row may give ``index`` (row of the split) instead. The raw rows are kept under
    ``tasks/<task>/imported/<name>.jsonl`` so that ``imported`` (the estimator reading them) and
    ``recalibrated:base=imported`` can use them on an imported training split. Questions without a row get
    NaN ("no imported confidence"); file ids that are no question of the run are reported.

    Args:
        run_dir: any run directory with targets (sampled or imported).
        path: the confidence file (:func:`read_confidences`).
        name: the estimator name to store it under (must not be a built-in estimator's).
        task: the task (default: the run's only task).
        analyse: rewrite ``results.json`` afterwards so the leaderboard shows it.

    Raises:
        CapcalError: bad name, unknown task, unreadable file, no row matching a question.
    """
    import re

    rd = RunDir(run_dir)
    tasks = rd.tasks()
    if not tasks:
        raise RunDirError(f"{rd.path}: no task has targets (import or sample samples first)")
    if task is None:
        if len(tasks) > 1:
            raise CapcalError(f"{rd.path} has several tasks ({', '.join(tasks)}); name one with --task")
        task = tasks[0]
    elif task not in tasks:
        raise CapcalError(f"{rd.path} has no targets for task {task!r} (it has: {', '.join(tasks)})")
    if not re.fullmatch(r"[A-Za-z0-9_.:=@+-]+", name or ""):
        raise CapcalError(f"--name {name!r}: use letters, digits and _ . : = @ + - only")
    registry = registry or get_registry()
    computed = rd.config.get("estimators", []) if rd.config_path.exists() else []
    if name in computed and rd.estimator_path(task, name).exists() and not rd.is_imported_estimator(task, name):
        raise CapcalError(f"--name {name!r}: this run computes an estimator of that name itself; choose another "
                          f"(e.g. {name}_imported)")
    rows = read_confidences(path)
    targets = rd.target_rows(task)
    by_id = {str(r["id"]): i for i, r in enumerate(targets)}
    by_index = {int(r["index"]): i for i, r in enumerate(targets) if r.get("index") is not None}
    id_map: dict[str, str] = {}
    for record in sorted((rd.task_dir(task) / "imports").glob("*.json")):
        try:
            id_map.update(json.loads(record.read_text(encoding="utf-8")).get("id_map") or {})
        except (OSError, json.JSONDecodeError):
            continue
    conf = np.full(len(targets), np.nan)
    reasons: list[str | None] = ["no imported confidence"] * len(targets)
    report = ConfidenceReport(name=name, task=task, n_rows=len(rows))
    unknown, kept = [], []
    for qid, value, reason, index in rows:
        capcal_id = qid if qid in by_id else id_map.get(qid) if qid is not None else None
        pos = by_id.get(capcal_id) if capcal_id is not None else by_index.get(index) if index is not None else None
        if capcal_id is None and pos is not None:
            capcal_id = str(targets[pos]["id"])
        kept.append({"id": capcal_id or qid, "source_id": qid, "confidence": None if math.isnan(value) else value,
                     "reason": reason})
        if pos is None:
            unknown.append(qid if qid is not None else f"index {index}")
            continue
        conf[pos], reasons[pos] = value, (reason if math.isnan(value) else None)
        report.n_failed += math.isnan(value)
    report.n_matched = int(sum(r != "no imported confidence" for r in reasons))
    report.n_missing = len(targets) - report.n_matched
    _examples(report.unknown, unknown, 3)
    if report.n_matched == 0:
        raise DataError(f"{path}: none of its {len(rows)} ids is a question of {task!r} in {rd.path} "
                        f"(e.g. {unknown[0]!r})")
    from .rundir import write_jsonl

    write_jsonl(rd.task_dir(task) / "imported" / f"{name}.jsonl", kept)
    sha = _file_digest([str(path)])
    meta = {"source": "imported", "file": str(path), "sha256": sha, "n_rows": report.n_rows,
            "n_failed_in_source": report.n_failed, "n_missing": report.n_missing,
            "unknown_ids": report.unknown["count"], "samples_overlap_mu": False}
    rd.write_estimator(task, name, [r["id"] for r in targets], conf, reasons, meta)
    rd.mark_stage(f"estimator/{task}/{name}", _digest(["imported", sha, name]))
    if rd.config_path.exists():
        config = rd.config
        names = list(config.get("estimators") or [])
        if name not in names:
            config["estimators"] = names + [name]
            rd.write_config(config)
    if analyse:
        _reanalyse(rd, bootstrap, seed)
    return report


def _reanalyse(rd: RunDir, bootstrap: int | None, seed: int | None) -> None:
    """Rewrite ``results.json`` from the run's targets and estimator outputs."""
    from . import results

    config = rd.config if rd.config_path.exists() else {}
    results.write_results(rd, n_boot=int(config.get("bootstrap", 1000) if bootstrap is None else bootstrap),
                          seed=int(config.get("seed", 0) if seed is None else seed))
    rd.mark_stage("results", None)  # a later pipeline run recomputes it with its own fingerprint
