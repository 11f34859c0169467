"""The durable sample store: every sampled response, keyed by what produced it, in one SQLite file.

A sample is identified by :func:`sample_key`, the sha256 of the canonical JSON of
``(backend, model, rendered messages, sampling parameters, sample index)``. The pipeline computes the keys of
every sample it wants, asks the store which ones exist (:meth:`SampleStore.has_many`), requests only the
missing ones from the backend and stores each finished batch at once (:meth:`SampleStore.put_many`), so a
killed run resumes where it stopped and never asks for a stored sample again.

Durability: SQLite in WAL mode with ``synchronous=FULL``; every ``put_many`` is one transaction that is
fsynced before it returns. A crash (SIGKILL, power loss) loses at most the batch being written; SQLite's
journal guarantees that a half-written transaction is rolled back on the next open, so a row is either
complete or absent. Each row also carries a sha256 of its payload, checked on read, so bit rot or a file
edited by hand is reported (:class:`StoreCorruptError`) instead of silently returning a damaged sample.

This module uses nothing of capcal's but its error types: it stores plain JSON-serialisable dicts.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from .errors import RunDirError

#: Version of the key recipe; part of every key, so a change of recipe can never alias old samples.
KEY_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key        TEXT PRIMARY KEY,   -- sample_key(...), 64 hex digits
    payload    TEXT NOT NULL,      -- canonical JSON of the completion dict
    checksum   TEXT NOT NULL,      -- sha256 hex of payload
    info       TEXT NOT NULL,      -- JSON: where the sample belongs (task, split, question id, index, seed)
    stored_at  REAL NOT NULL       -- unix time (s) of the commit that stored it
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS store_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: SQLite's default limit of host parameters per statement is 999 on old builds; stay well below it.
_CHUNK = 500


class StoreCorruptError(RunDirError):
    """The store file is not a capcal sample store, or a row fails its checksum."""


def canonical_json(obj: Any) -> str:
    """Canonical JSON text of ``obj``: sorted keys, no whitespace, UTF-8 kept, tuples as lists.

    Dataclasses are converted with their ``to_dict()`` when they have one (``SamplingParams`` leaves an unset
    ``grammar`` out, so older keys stay valid), else with :func:`dataclasses.asdict`. Floats keep
    Python's shortest round-trip repr, so ``1.0`` and ``1`` give different text (pass numbers with the
    type they have in the request). NaN and infinities are rejected (they are not JSON). Mapping keys
    should be strings (integer keys are written as their decimal text).

    Plain data (dicts with string keys, lists, tuples, strings, numbers) is encoded in one pass of the C
    encoder; anything else (dataclasses, numpy scalars, other mappings) is converted where it is met.
    """
    try:
        return _dumps(obj)
    except TypeError:  # a non-string mapping key somewhere: convert the whole object first
        return _dumps(_plain(obj))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=_default)


def _default(obj: Any) -> Any:
    """What the JSON encoder calls for a value it cannot encode itself."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return _plain(obj)
    if isinstance(obj, Mapping):
        return {str(k): v for k, v in obj.items()}
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy array
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):  # prefer the class's own form (SamplingParams)
        to_dict = getattr(obj, "to_dict", None)
        return _plain(to_dict() if callable(to_dict) else asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    return obj


def sample_key(backend: str, model: str, messages: Sequence[Mapping[str, Any]],
               params: Mapping[str, Any] | Any, index: int) -> str:
    """The store key of one sample: sha256 (64 hex digits) of canonical JSON of what produced it.

    Args:
        backend: registered backend kind (``"openai"``, ``"embedded"``, ...).
        model: the model identifier the backend reports.
        messages: the rendered chat messages, ``[{"role": ..., "content": ...}, ...]``.
        params: the sampling parameters (a dict or a dataclass such as ``SamplingParams``), including
            anything else that changes the distribution (the run seed, for instance).
        index: the sample index within the question, 0-based.

    Returns:
        A lowercase hex string. Equal inputs give equal keys in every process and on every platform; any
        change of backend, model, a message, a parameter or the index gives a different key.
    """
    return sample_keys(backend, model, messages, params, [index])[0]


def sample_keys(backend: str, model: str, messages: Sequence[Mapping[str, Any]],
                params: Mapping[str, Any] | Any, indices: Iterable[int]) -> list[str]:
    """The store keys of several samples of one prompt: ``[sample_key(..., j) for j in indices]``.

    The canonical JSON of the messages and parameters is built once for all indices (it is the expensive
    part), and only the index changes between the hashed texts.

    Raises:
        ValueError: an index that is not a non-negative integer.
    """
    idx = []
    for index in indices:
        if isinstance(index, bool) or int(index) != index or index < 0:
            raise ValueError(f"sample index must be a non-negative integer, got {index!r}")
        idx.append(int(index))
    # canonical_json sorts the keys: backend, index, messages, model, params, v. Encode everything but the
    # index once, then splice each index in (the text equals canonical_json of the whole dict).
    text = canonical_json({"v": KEY_VERSION, "backend": str(backend), "model": str(model),
                           "messages": list(messages), "params": params, "index": 0})
    head, sep, tail = text.partition(',"index":0,')
    if not sep:  # cannot happen with the recipe above; stay correct anyway
        return [hashlib.sha256(canonical_json({"v": KEY_VERSION, "backend": str(backend), "model": str(model),
                                               "messages": list(messages), "params": params, "index": j}
                                              ).encode("utf-8")).hexdigest() for j in idx]
    h0 = hashlib.sha256(f"{head},\"index\":".encode())
    rest = f",{tail}".encode()
    out = []
    for j in idx:
        h = h0.copy()
        h.update(b"%d" % j)
        h.update(rest)
        out.append(h.hexdigest())
    return out


class SampleStore:
    """The durable store of sampled completions of one run directory (SQLite, WAL, ``synchronous=FULL``).

    Safe for one writer process; reads and writes from several threads of that process are serialised by a
    lock. Use as a context manager or call :meth:`close`.

    Args:
        path: the SQLite file; created (with its parent folder) when missing.

    Raises:
        RunDirError: the folder is not writable.
        StoreCorruptError: the file exists but is not a SQLite database / not a capcal store.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise RunDirError(f"cannot open sample store {self.path}: {exc}") from None
        self._lock = threading.Lock()
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if "readonly" in str(exc) or "unable to open" in str(exc):
                raise RunDirError(f"cannot write sample store {self.path}: {exc}") from None
            raise StoreCorruptError(f"{self.path} is not a capcal sample store ({exc})") from None

    # -- context management ---------------------------------------------------------------------
    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]

    # -- writing ----------------------------------------------------------------------------------
    def put_many(self, items: Iterable[tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], Mapping]]
                 ) -> int:
        """Store a batch of samples in one durable transaction.

        Args:
            items: ``(key, completion_dict)`` or ``(key, completion_dict, info)`` tuples. ``completion_dict``
                is any JSON-serialisable mapping (``Completion.to_dict()``); ``info`` describes where the
                sample belongs (task, question id, index, seed) for people reading the store.

        Returns:
            The number of rows newly stored. A key that is already stored keeps its first value (a sample is
            never overwritten: the first answer drawn is the answer).

        The transaction is committed and fsynced (WAL + ``synchronous=FULL``) before this returns.
        """
        now = time.time()
        rows = []
        for item in items:
            key, completion = item[0], item[1]
            info = item[2] if len(item) > 2 else {}
            payload = canonical_json(completion)
            rows.append((str(key), payload, hashlib.sha256(payload.encode("utf-8")).hexdigest(),
                         canonical_json(info), now))
        if not rows:
            return 0
        with self._lock:
            conn = self._connection()
            before = conn.total_changes
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR IGNORE INTO samples (key, payload, checksum, info, stored_at) "
                                 "VALUES (?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return conn.total_changes - before

    # -- reading ----------------------------------------------------------------------------------
    def has_many(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` that is stored."""
        keys = list(dict.fromkeys(keys))
        found: set[str] = set()
        with self._lock:
            conn = self._connection()
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start:start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                found.update(k for (k,) in conn.execute(f"SELECT key FROM samples WHERE key IN ({marks})", chunk))
        return found

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored completions of ``keys`` as ``{key: completion_dict}``; missing keys are simply absent.

        Raises:
            StoreCorruptError: a row's payload does not match its checksum (the message names the key).
        """
        return {key: payload for key, (payload, _info, _t) in self._rows(keys).items()}

    def get_records(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Like :meth:`get_many`, with the bookkeeping: ``{key: {"completion", "info", "stored_at"}}``."""
        return {key: {"completion": payload, "info": info, "stored_at": t}
                for key, (payload, info, t) in self._rows(keys).items()}

    def _rows(self, keys: Iterable[str]) -> dict[str, tuple[dict[str, Any], dict[str, Any], float]]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, tuple[dict[str, Any], dict[str, Any], float]] = {}
        with self._lock:
            conn = self._connection()
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start:start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, payload, checksum, info, stored_at FROM samples WHERE key IN ({marks})"
                for key, payload, checksum, info, stored_at in conn.execute(query, chunk):
                    out[key] = (self._decode(key, payload, checksum), json.loads(info), stored_at)
        return out

    def _decode(self, key: str, payload: str, checksum: str) -> dict[str, Any]:
        if hashlib.sha256(payload.encode("utf-8")).hexdigest() != checksum:
            raise StoreCorruptError(f"{self.path}: sample {key[:12]}... fails its checksum (damaged store)")
        return json.loads(payload)

    def keys(self) -> list[str]:
        """Every stored key, in storage order."""
        with self._lock:
            return [k for (k,) in self._connection().execute("SELECT key FROM samples ORDER BY stored_at, key")]

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection().execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RunDirError(f"sample store {self.path} is closed")
        return self._conn
