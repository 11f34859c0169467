"""Readers (and the official writer) of sample files made by other tools, for ``capcal import`` / ``export``.

Each reader turns one source into :class:`ImportedQuestion` records (question keys + samples) and a
:class:`SourceInfo`; matching them to a task's documents and building the run directory is
:mod:`capcal.importing`. Formats (``docs/import.md``):

* ``generic``: capcal's documented JSON Lines, one line per question or one line per sample
  (:mod:`capcal.formats.generic`);
* ``official``: the output directory of the paper's official code (``sampled.jsonl``,
  ``ground_truth.jsonl``, ``confidence_predictions_<cc|rc>.jsonl``) (:mod:`capcal.formats.official`);
* ``lm_eval``: lm-evaluation-harness ``--log_samples`` files of a task with ``repeats``
  (:mod:`capcal.formats.lm_eval`);
* ``inspect``: inspect_ai eval logs with epochs (:mod:`capcal.formats.inspect_log`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CapcalError, DataError
from .records import ImportedQuestion, ImportedSample, SourceInfo

FORMATS = ("generic", "official", "lm_eval", "inspect")

__all__ = ["FORMATS", "ImportedQuestion", "ImportedSample", "SourceInfo", "detect_format", "read_source"]


def detect_format(path: str | Path) -> str:
    """Guess the format of a source path (``--format auto``).

    A directory holding ``sampled.jsonl`` (or a file named so) is ``official``; ``*.eval`` files and JSON
    documents with ``eval`` and ``samples`` keys are ``inspect``; JSON Lines whose first line has
    ``doc_id`` and ``resps`` is ``lm_eval``; any other JSON Lines is ``generic``.

    Raises:
        DataError: the path does not exist, or nothing recognisable is there.
    """
    import json

    path = Path(path)
    if not path.exists():
        raise DataError(f"import source not found: {path}")
    if path.is_dir():
        if (path / "sampled.jsonl").is_file():
            return "official"
        if any(path.rglob("samples_*.jsonl")):
            return "lm_eval"
        if any(path.glob("*.eval")):
            return "inspect"
        raise DataError(f"{path}: a directory without sampled.jsonl (official), samples_*.jsonl (lm-eval) or "
                        "*.eval (inspect_ai) files; name a file, or pass --format")
    if path.name == "sampled.jsonl":
        return "official"
    if path.suffix == ".eval":
        return "inspect"
    with open(path, encoding="utf-8") as fh:
        head = ""
        for line in fh:
            if line.strip():
                head = line
                break
    try:
        first = json.loads(head) if head else None
    except json.JSONDecodeError:
        first = None
        if path.suffix == ".json":
            return "inspect"
    if isinstance(first, dict):
        if "doc_id" in first and "resps" in first:
            return "lm_eval"
        if "eval" in first and "samples" in first:
            return "inspect"
    return "generic"


def read_source(path: str | Path, fmt: str = "auto", *, task: str | None = None
                ) -> tuple[list[ImportedQuestion], SourceInfo]:
    """Read one source into imported questions.

    Args:
        path: a file or directory, depending on the format.
        fmt: one of :data:`FORMATS`, or ``"auto"`` (:func:`detect_format`).
        task: the capcal task being imported (an lm-eval directory holding several tasks' sample files
            uses it to pick one).

    Raises:
        CapcalError: unknown format; DataError: unreadable or malformed input (file and line named).
    """
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "generic":
        from .generic import read_generic

        return read_generic(path)
    if fmt == "official":
        from .official import read_official

        return read_official(path)
    if fmt == "lm_eval":
        from .lm_eval import read_lm_eval

        return read_lm_eval(path, task=task)
    if fmt == "inspect":
        from .inspect_log import read_inspect

        return read_inspect(path)
    raise CapcalError(f"unknown import format {fmt!r}; expected auto, {', '.join(FORMATS)}")
