"""Loading a task's data split through ``datasets``, from the Hugging Face hub or a local mirror directory.

The mirror (``data_dir`` argument, the ``--data-dir`` flag, or the ``CAPCAL_DATA_DIR`` environment variable)
is laid out like ``../shared/data``::

    <data_dir>/<owner>__<name>/<config or "default">/<split>.jsonl

When a mirror is set, the file must exist there (a missing file is a :class:`~capcal.errors.DataError` naming
the path) and the hub is never contacted. Without a mirror, ``datasets.load_dataset(path, name, split=...)``
is used. Loaded splits are cached in-process.

:func:`load_rows` is what tasks use: it reads a mirror's JSON Lines file directly (no ``datasets`` import, a
few milliseconds for GSM8K's test split instead of most of a second) and gives the rows as ``datasets``
would (every row has every column, missing values ``None``, columns in order of first appearance);
:func:`load_split` returns the ``datasets.Dataset`` itself.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import DataError
from .jsonio import iter_jsonl

ENV_VAR = "CAPCAL_DATA_DIR"

_CACHE: dict[tuple, Any] = {}
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The mirror directory to use: ``data_dir`` if given, else ``$CAPCAL_DATA_DIR``, else ``None`` (the hub).

    Raises:
        DataError: the chosen directory does not exist.
    """
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(ENV_VAR) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        origin = "--data-dir" if data_dir not in (None, "") else ENV_VAR
        raise DataError(f"data directory {str(path)!r} ({origin}) does not exist")
    return path


def mirror_file(data_dir: str | Path, path: str, name: str | None, split: str) -> Path:
    """Where the mirror keeps a split: ``<data_dir>/<owner>__<name>/<config or default>/<split>.jsonl``."""
    return Path(data_dir) / path.replace("/", "__") / (name or "default") / f"{split}.jsonl"


def _quiet_load(*args: Any, **kwargs: Any):
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(*args, **kwargs)
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def load_split(path: str, name: str | None, split: str, data_dir: str | Path | None = None):
    """Load one split as a :class:`datasets.Dataset` (cached in-process).

    Args:
        path: Hugging Face data set id (``"openai/gsm8k"``).
        name: configuration, or ``None`` for the default one.
        split: split name (``"test"``).
        data_dir: mirror directory; ``None`` falls back to ``$CAPCAL_DATA_DIR``, then the hub.

    Returns:
        The data set; ``len()`` rows, columns as in the hub copy.

    Raises:
        DataError: the mirror lacks the file (path named), the file is malformed, or the hub load failed.
    """
    mirror = resolve_data_dir(data_dir)
    if mirror is not None:
        file, key = _mirror_entry(mirror, path, name, split, "file")
        if key not in _CACHE:
            try:
                _CACHE[key] = _quiet_load("json", data_files=str(file), split="train")
            except Exception as exc:  # noqa: BLE001 - datasets raises many kinds on a malformed file
                raise DataError(f"cannot read {file}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
        return _CACHE[key]
    key = ("hub", path, name, split)
    if key not in _CACHE:
        try:
            _CACHE[key] = _quiet_load(path, name, split=split)
        except Exception as exc:  # noqa: BLE001
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise DataError(f"cannot load {path} (config {name or 'default'}, split {split}) through datasets: "
                            f"{type(exc).__name__}: {first}; offline, point --data-dir or {ENV_VAR} at a mirror"
                            ) from None
    return _CACHE[key]


class Rows:
    """The rows of one split as plain dicts, with the two parts of the ``datasets.Dataset`` API tasks use.

    Attributes:
        column_names: the columns, in order of first appearance in the file.
    """

    def __init__(self, rows: list[dict[str, Any]], column_names: list[str]):
        self._rows, self.column_names = rows, column_names

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._rows[i]

    def to_list(self) -> list[dict[str, Any]]:
        """The rows (dicts with every column; a value a row lacks is ``None``)."""
        return self._rows


def read_jsonl_rows(file: Path) -> Rows:
    """Read a JSON Lines file of objects into :class:`Rows` (blank lines skipped).

    Raises:
        DataError: a line that is not a JSON object (file and line number named), or an unreadable file.
    """
    rows: list[dict[str, Any]] = []
    columns: dict[str, None] = {}
    try:
        for _, row in iter_jsonl(file, DataError, objects=True):
            if len(row) != len(columns) or any(k not in columns for k in row):
                for k in row:
                    columns.setdefault(k, None)
            rows.append(row)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {file}: {exc}") from None
    names = list(columns)
    for row in rows:
        if len(row) != len(names):
            for k in names:
                row.setdefault(k, None)
    return Rows(rows, names)


def load_rows(path: str, name: str | None, split: str, data_dir: str | Path | None = None) -> Rows | Any:
    """The rows of one split: read straight from the mirror's JSON Lines file when a mirror is set, else
    :func:`load_split` from the hub (a ``datasets.Dataset``). Cached in-process.

    Args:
        path, name, split, data_dir: as for :func:`load_split`.

    Returns:
        An object with ``len()``, ``column_names`` and ``to_list()`` (:class:`Rows` for a mirror).

    Raises:
        DataError: the mirror lacks the file (path named), the file is malformed, or the hub load failed.
    """
    mirror = resolve_data_dir(data_dir)
    if mirror is None:
        return load_split(path, name, split, data_dir=None)
    file, key = _mirror_entry(mirror, path, name, split, "rows")
    if key not in _CACHE:
        _CACHE[key] = read_jsonl_rows(file)
    return _CACHE[key]


def _mirror_entry(mirror: Path, path: str, name: str | None, split: str, kind: str) -> tuple[Path, tuple]:
    """The mirror's file of a split and its in-process cache key (kind, file, mtime, size).

    Raises:
        DataError: the file does not exist (its path named).
    """
    file = mirror_file(mirror, path, name, split).resolve()
    if not file.is_file():
        raise DataError(f"data file not found: {file} (for {path} config {name or 'default'} split {split})")
    stat = file.stat()
    return file, (kind, str(file), stat.st_mtime_ns, stat.st_size)


def source_of(path: str, name: str | None, split: str, data_dir: str | Path | None = None) -> str:
    """A human-readable name of where a split comes from (the mirror file, or ``hf:path/config/split``)."""
    mirror = resolve_data_dir(data_dir)
    if mirror is not None:
        return str(mirror_file(mirror, path, name, split))
    return f"hf:{path}/{name or 'default'}/{split}"


def require_columns(dataset: Any, columns: Iterable[str], source: str, *, why: str = "") -> None:
    """Raise :class:`DataError` naming the first column of ``columns`` the data set lacks, and the file."""
    have = set(dataset.column_names)
    for col in columns:
        if col not in have:
            extra = f" (needed by {why})" if why else ""
            raise DataError(f"column {col!r}{extra} not found in {source}; columns: {', '.join(sorted(have))}")


def _sha256_file(file: Path) -> str:
    stat = file.stat()
    key = (str(file), stat.st_mtime_ns, stat.st_size)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def fingerprint(path: str, name: str | None, split: str, data_dir: str | Path | None = None) -> str:
    """A fingerprint of a split's content: the sha256 hex digest of the mirror file, else ``datasets``' own.

    Raises:
        DataError: as :func:`load_split`.
    """
    mirror = resolve_data_dir(data_dir)
    if mirror is not None:
        file = mirror_file(mirror, path, name, split).resolve()
        if not file.is_file():
            raise DataError(f"data file not found: {file}")
        return _sha256_file(file)
    ds = load_split(path, name, split, data_dir=None)
    return str(getattr(ds, "_fingerprint", "unknown"))


def clear_cache() -> None:
    """Forget every split loaded in this process."""
    _CACHE.clear()
