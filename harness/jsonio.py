"""The one place for turning values into plain JSON and for writing files atomically.

* :func:`clean_json`: numpy scalars and arrays, tuples, dataclasses and non-finite floats become plain JSON
  values (NaN and infinities become ``None``), so a document never holds ``NaN`` (not JSON).
* :func:`write_atomic`: write a file through a temporary file in the same folder, ``fsync`` it, then
  ``os.replace`` it over the target, so that a reader sees either the old file or the whole new one.
* :func:`write_json`, :func:`write_jsonl`, :func:`read_jsonl`, :func:`iter_jsonl`: the JSON and JSON Lines forms of the above.

Nothing here knows about runs, models or metrics; every capcal module that writes a file uses it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

__all__ = ["clean_json", "iter_jsonl", "read_jsonl", "write_atomic", "write_json", "write_jsonl"]


def clean_json(obj: Any, *, nonfinite_to_none: bool = True) -> Any:
    """``obj`` as plain JSON values.

    Mappings become dicts with ``str`` keys; lists, tuples and numpy arrays become lists; numpy scalars
    become Python scalars (``np.bool_`` -> ``bool``); dataclass instances become dicts (through their ``to_dict()`` when they have one); NaN and +-infinity
    become ``None`` (with ``nonfinite_to_none=False`` they are kept, so that ``json.dumps(...,
    allow_nan=False)`` rejects them: the store's keys do). Anything else is returned unchanged (``json``
    decides whether it can be written).
    """
    np = sys.modules.get("numpy")  # a process that never imported numpy holds no numpy values
    if np is not None and isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if not nonfinite_to_none or math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): clean_json(v, nonfinite_to_none=nonfinite_to_none) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v, nonfinite_to_none=nonfinite_to_none) for v in obj]
    if np is not None and isinstance(obj, np.ndarray):
        return clean_json(obj.tolist(), nonfinite_to_none=nonfinite_to_none)
    if is_dataclass(obj) and not isinstance(obj, type):  # the class's own form first (SamplingParams.to_dict)
        to_dict = getattr(obj, "to_dict", None)
        return clean_json(to_dict() if callable(to_dict) else asdict(obj), nonfinite_to_none=nonfinite_to_none)
    return obj


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically and durably; return the path.

    The parent folder is created. The data goes to a temporary file next to ``path``, is flushed and
    ``fsync``-ed, then renamed over ``path`` (``os.replace``); on any error the temporary file is removed
    and ``path`` is left as it was.

    Raises:
        OSError: the folder cannot be created or written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``clean_json(obj)`` as one JSON document (sorted keys, trailing newline) atomically."""
    text = json.dumps(clean_json(obj), indent=indent, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return write_atomic(path, text + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    """Write one ``clean_json(row)`` per line (JSON Lines) atomically; NaN is written as ``null``."""
    return write_atomic(path, "".join(json.dumps(clean_json(r), ensure_ascii=False, allow_nan=False) + "\n"
                                      for r in rows))


def iter_jsonl(path: str | Path, error: type[Exception] = ValueError, *,
               objects: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, value)`` for each non-blank line of a JSON Lines file (lines count from 1).

    Args:
        path: the file (opening errors such as a missing file propagate as ``OSError``).
        error: the exception class raised for a malformed line, with the message ``cannot read FILE: line N
            is not valid JSON (...)`` (callers pass :class:`capcal.errors.RunDirError`, ``DataError``, ...).
        objects: also refuse a line whose value is not a JSON object (``... is not a JSON object``).
    """
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"cannot read {path}: line {lineno} is not valid JSON ({exc.msg})") from None
            if objects and not isinstance(value, dict):
                raise error(f"cannot read {path}: line {lineno} is not a JSON object "
                            f"(got {type(value).__name__})")
            yield lineno, value


def read_jsonl(path: str | Path, error: type[Exception] = ValueError) -> list[Any]:
    """Every value of a JSON Lines file, in order (blank lines skipped); errors as :func:`iter_jsonl`."""
    return [value for _, value in iter_jsonl(path, error)]
