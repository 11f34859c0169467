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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import RunDirError
from .jsonio import read_jsonl as _read_jsonl
from .jsonio import write_atomic, write_json, write_jsonl

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import numpy as np

    from .targets import Targets, completion_token_count

__all__ = ["RunDir", "Targets", "completion_token_count", "read_jsonl", "write_atomic", "write_jsonl"]


def __getattr__(name: str) -> Any:
    """``Targets`` and ``completion_token_count`` (of :mod:`capcal.targets`), imported on first use, so
    that reading a results document or writing a file through this module does not load numpy."""
    if name in ("Targets", "completion_token_count"):
        from . import targets

        return getattr(targets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSON Lines; a malformed line raises :class:`RunDirError` naming file and line number."""
    return _read_jsonl(path, error=RunDirError)


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
        from .targets import Targets

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
        import numpy as np

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
        write_json(self.config_path, config)

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
        write_json(self.forced_format_path(task), record, indent=1)

    def forced_format(self, task: str) -> dict[str, Any] | None:
        """The record written by ``--forced-format both`` for ``task``, or ``None``."""
        path = self.forced_format_path(task)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def write_estimator(self, task: str, name: str, ids, confidence, reasons, meta: dict | None = None) -> None:
        """Write one estimator's output: ``confidence`` (Q,) with NaN for failures, ``reasons`` (Q,)."""
        import numpy as np

        rows = [{"id": str(i), "confidence": None if not np.isfinite(p) else float(p), "reason": why}
                for i, p, why in zip(ids, np.asarray(confidence, dtype=float), reasons, strict=True)]
        write_jsonl(self.estimator_path(task, name), rows)
        write_json(self.estimator_path(task, name).with_suffix(".meta.json"), meta or {})
