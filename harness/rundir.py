"""The run directory: the files each pipeline stage writes and the next one reads.

Layout (every file is written atomically: temp file + ``os.replace``, or appended durably)::

    RUN/
      config.json                         resolved configuration, secrets removed, capcal version
      samples.sqlite                      the durable response store (see capcal.store)
      stages.json                         {stage: fingerprint of its inputs} of every finished stage
      tasks/<task>/targets.jsonl          one line per question (see Targets)
      tasks/<task>/splits/<split>/targets.jsonl  targets of the train / validation split (learned estimators)
      tasks/<task>/cache/<split>/         estimators' caches (hidden-state features, ...)
      tasks/<task>/estimators/<name>.jsonl      one line per question: {"id", "confidence", "reason"}
      tasks/<task>/estimators/<name>.meta.json  what the estimator recorded (parameters, chosen layer, ...)
      results.json                        the versioned results document (capcal.results)

This module only reads and writes these files; it knows nothing about models or metrics. The format of
each file is documented in ``docs/run-directory.md``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RunDirError


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder, fsync, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as JSON Lines atomically (NaN is written as ``null``)."""
    write_atomic(path, "".join(json.dumps(_jsonable(r), ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSON Lines; a malformed line raises :class:`RunDirError` naming file and line number."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RunDirError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return rows


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


def completion_token_count(record: dict[str, Any]) -> int | None:
    """Generated tokens of one stored sample (a ``Completion`` as a dict), ``None`` when unknown.

    The backend's own count (``completion_tokens``) when it gave one, else the number of returned tokens
    (present when logprobs were asked for), else ``None``.
    """
    count = record.get("completion_tokens")
    if isinstance(count, (int, float)) and not isinstance(count, bool):
        return int(count)
    tokens = record.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None


@dataclass
class Targets:
    """Per-question targets of one task, as arrays aligned on ``ids``.

    Attributes:
        ids: (Q,) question ids (str).
        n: (Q,) number of graded samples per question.
        c: (Q,) number of correct samples.
        designated: (Q,) index of the designated sample whose correctness is the response target.
        labels: (Q, n_max) per-sample correctness as float 0/1, NaN where a question has fewer samples.
        extracted: per question, the list of extracted answers (``None`` where extraction failed).
        n_truncated: (Q,) samples that stopped at the token limit (finish reason ``length``); zeros when the
            rows predate finish reasons.
        n_empty: (Q,) samples whose reply was empty or blank.
        reasons: per question, per sample, why it was graded without parsing (``"truncated"``, ``"empty"``,
            ``"content_filter"``, ``"error"``) or ``None``.
    """

    ids: np.ndarray
    n: np.ndarray
    c: np.ndarray
    designated: np.ndarray
    labels: np.ndarray
    extracted: list[list[str | None]] = field(default_factory=list)
    n_truncated: np.ndarray | None = None
    n_empty: np.ndarray | None = None
    reasons: list[list[str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        q = len(self.ids)
        if self.n_truncated is None:
            self.n_truncated = np.zeros(q, np.int64)
        if self.n_empty is None:
            self.n_empty = np.zeros(q, np.int64)

    def take(self, idx) -> Targets:
        """The targets of the questions at positions ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        return Targets(ids=np.asarray(self.ids)[idx], n=np.asarray(self.n)[idx], c=np.asarray(self.c)[idx],
                       designated=np.asarray(self.designated)[idx], labels=np.asarray(self.labels)[idx],
                       extracted=[self.extracted[i] for i in idx] if self.extracted else [],
                       n_truncated=np.asarray(self.n_truncated)[idx], n_empty=np.asarray(self.n_empty)[idx],
                       reasons=[self.reasons[i] for i in idx] if self.reasons else [])

    @property
    def truncation_rate(self) -> float:
        """Share of all graded samples that stopped at the token limit (NaN without samples)."""
        total = int(np.sum(self.n))
        return float(np.sum(self.n_truncated)) / total if total else float("nan")

    @property
    def empty_rate(self) -> float:
        """Share of all graded samples whose reply was empty or blank (NaN without samples)."""
        total = int(np.sum(self.n))
        return float(np.sum(self.n_empty)) / total if total else float("nan")

    @property
    def mu(self) -> np.ndarray:
        """(Q,) capability target c / n."""
        return self.c / self.n

    @property
    def r(self) -> np.ndarray:
        """(Q,) response target: correctness of the designated sample."""
        return self.labels[np.arange(len(self.ids)), self.designated]

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> Targets:
        """Build from ``targets.jsonl`` rows (``id``, ``correct`` list, ``designated``, ``extracted``)."""
        q = len(rows)
        n_max = max((len(r["correct"]) for r in rows), default=0)
        labels = np.full((q, n_max), np.nan)
        for i, row in enumerate(rows):
            labels[i, : len(row["correct"])] = row["correct"]
        n = np.array([len(r["correct"]) for r in rows], dtype=np.int64)
        return cls(
            ids=np.array([str(r["id"]) for r in rows], dtype=object),
            n=n,
            c=np.nansum(labels, axis=1).astype(np.int64) if q else np.zeros(0, np.int64),
            designated=np.array([int(r.get("designated", 0)) for r in rows], dtype=np.int64),
            labels=labels,
            extracted=[list(r.get("extracted", [])) for r in rows],
            n_truncated=np.array([int(r.get("n_truncated", 0)) for r in rows], dtype=np.int64),
            n_empty=np.array([int(r.get("n_empty", 0)) for r in rows], dtype=np.int64),
            reasons=[list(r.get("reasons") or [None] * len(r["correct"])) for r in rows],
        )


class RunDir:
    """A run directory on disk (see the module docstring for the layout)."""

    def __init__(self, path: str | Path | RunDir):
        self.path = Path(path.path if isinstance(path, RunDir) else path)

    # -- locations ---------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def store_path(self) -> Path:
        return self.path / "samples.sqlite"

    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    def task_dir(self, task: str) -> Path:
        return self.path / "tasks" / task

    @property
    def stages_path(self) -> Path:
        return self.path / "stages.json"

    def targets_path(self, task: str, split: str = "eval") -> Path:
        """``tasks/<task>/targets.jsonl`` for the evaluation split, ``tasks/<task>/splits/<split>/...`` else."""
        if split == "eval":
            return self.task_dir(task) / "targets.jsonl"
        return self.task_dir(task) / "splits" / split / "targets.jsonl"

    def cache_dir(self, task: str, split: str = "eval") -> Path:
        """A folder where estimators may cache expensive features of one task split (created)."""
        path = self.task_dir(task) / "cache" / split
        path.mkdir(parents=True, exist_ok=True)
        return path

    def estimator_path(self, task: str, name: str) -> Path:
        return self.task_dir(task) / "estimators" / f"{name}.jsonl"

    # -- reading -----------------------------------------------------------------------------------
    def ensure_writable(self) -> None:
        """Create the folder and check that files can be written there (else RunDirError)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".capcal-write-check"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(f"output directory {self.path} is not writable: {exc.strerror or exc}") from None

    @property
    def config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise RunDirError(f"{self.path} is not a capcal run directory (no config.json)")
        return json.loads(self.config_path.read_text(encoding="utf-8"))

    def tasks(self) -> list[str]:
        """Names of the tasks that have targets, sorted."""
        root = self.path / "tasks"
        return sorted(p.name for p in root.iterdir() if (p / "targets.jsonl").exists()) if root.exists() else []

    def target_rows(self, task: str) -> list[dict[str, Any]]:
        path = self.targets_path(task)
        if not path.exists():
            raise RunDirError(f"{self.path}: no targets for task {task!r} ({path} is missing)")
        return read_jsonl(path)

    def targets(self, task: str) -> Targets:
        return Targets.from_rows(self.target_rows(task))

    def estimators(self, task: str) -> list[str]:
        root = self.task_dir(task) / "estimators"
        return sorted(p.stem for p in root.glob("*.jsonl")) if root.exists() else []

    def estimator_output(self, task: str, name: str, ids: np.ndarray | None = None):
        """Confidences of one estimator, aligned on ``ids`` (default: the task's target ids).

        Returns:
            ``(confidence, reasons, meta)``: a (Q,) float array with NaN where the estimator failed or has
            no row for the question, a list of Q failure reasons (``None`` when it succeeded), and the meta
            dict (``{}`` when absent).
        """
        if ids is None:
            ids = self.targets(task).ids
        rows = {str(r["id"]): r for r in read_jsonl(self.estimator_path(task, name))}
        conf = np.array([np.nan if rows.get(i, {}).get("confidence") is None else float(rows[i]["confidence"])
                         for i in ids], dtype=float)
        reasons = [rows[i].get("reason") if i in rows else "no output for this question" for i in ids]
        meta_path = self.estimator_path(task, name).with_suffix(".meta.json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return conf, reasons, meta

    def is_imported_estimator(self, task: str, name: str) -> bool:
        """Whether estimator output ``name`` holds imported confidences (its meta says ``"source": "imported"``)."""
        meta_path = self.estimator_path(task, name).with_suffix(".meta.json")
        try:
            return json.loads(meta_path.read_text(encoding="utf-8")).get("source") == "imported"
        except (OSError, json.JSONDecodeError, AttributeError):
            return False

    # -- writing -----------------------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        write_atomic(self.config_path, json.dumps(_jsonable(config), indent=2, sort_keys=True) + "\n")

    def write_targets(self, task: str, rows: list[dict[str, Any]], split: str = "eval") -> None:
        write_jsonl(self.targets_path(task, split), rows)

    # -- stage bookkeeping -------------------------------------------------------------------------
    def stages(self) -> dict[str, str]:
        """``{stage name: fingerprint of its inputs}`` of every stage that finished (``{}`` when none)."""
        if not self.stages_path.exists():
            return {}
        try:
            data = json.loads(self.stages_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{self.stages_path}: not valid JSON ({exc.msg}); delete it to redo every stage") \
                from None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def stage_done(self, name: str, fingerprint: str, *outputs: Path) -> bool:
        """Whether stage ``name`` finished with these inputs (same ``fingerprint``) and its outputs exist."""
        return self.stages().get(name) == fingerprint and all(p.exists() for p in outputs)

    def mark_stage(self, name: str, fingerprint: str | None) -> None:
        """Record that stage ``name`` finished with inputs ``fingerprint`` (``None`` forgets the stage)."""
        stages = self.stages()
        if fingerprint is None:
            stages.pop(name, None)
        else:
            stages[name] = fingerprint
        write_atomic(self.stages_path, json.dumps(stages, indent=1, sort_keys=True) + "\n")

    def forced_format_path(self, task: str) -> Path:
        """``tasks/<task>/forced_format.json``: free and forced answer parse rates (``--forced-format both``)."""
        return self.task_dir(task) / "forced_format.json"

    def write_forced_format(self, task: str, record: dict[str, Any]) -> None:
        write_atomic(self.forced_format_path(task), json.dumps(_jsonable(record), indent=1, sort_keys=True) + "\n")

    def forced_format(self, task: str) -> dict[str, Any] | None:
        """The record written by ``--forced-format both`` for ``task``, or ``None``."""
        path = self.forced_format_path(task)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def write_estimator(self, task: str, name: str, ids, confidence, reasons, meta: dict | None = None) -> None:
        """Write one estimator's output: ``confidence`` (Q,) with NaN for failures, ``reasons`` (Q,)."""
        rows = [{"id": str(i), "confidence": None if not np.isfinite(p) else float(p), "reason": why}
                for i, p, why in zip(ids, np.asarray(confidence, dtype=float), reasons, strict=True)]
        write_jsonl(self.estimator_path(task, name), rows)
        write_atomic(self.estimator_path(task, name).with_suffix(".meta.json"),
                     json.dumps(_jsonable(meta or {}), indent=2, sort_keys=True) + "\n")
