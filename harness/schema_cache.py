"""Which documents a JSON schema has accepted before, so that a command need not import ``jsonschema``
(about a tenth of a second) to check an unchanged task spec or results file again.

A verdict is kept only for a document the schema **accepted**, as an empty file named by the sha256 of
the schema's fingerprint and the document's canonical JSON, under ``$CAPCAL_CACHE_DIR/validated/``
(default ``~/.cache/capcal``). A changed document or schema has another digest and is validated afresh;
a rejected document is never remembered, so its error is reported every time. A cache that cannot be
read or written costs only the validation it would have saved.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .defaults import cache_root

__all__ = ["accepted_before", "fingerprint", "remember_accepted"]


def _root() -> Path:
    return cache_root() / "validated"


def fingerprint(value: Any) -> str:
    """sha256 (hex) of ``value``'s canonical JSON (sorted keys, no spaces); non-JSON leaves as ``str``."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _path(schema: str, document: Any) -> Path:
    digest = hashlib.sha256(f"{schema}\0{fingerprint(document)}".encode()).hexdigest()
    return _root() / digest[:2] / digest


def accepted_before(schema: str, document: Any) -> bool:
    """Whether the schema with fingerprint ``schema`` accepted ``document`` (equal as canonical JSON) before."""
    try:
        return _path(schema, document).is_file()
    except OSError:
        return False


def remember_accepted(schema: str, document: Any) -> None:
    """Record that the schema with fingerprint ``schema`` accepted ``document`` (best effort)."""
    try:
        path = _path(schema, document)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        pass
