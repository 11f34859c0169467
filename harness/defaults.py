"""Defaults that several stages share, defined once (standard library only: every layer may read them)."""

import os
from pathlib import Path

#: Samples per question when neither the command line, the suite nor the task spec sets k.
DEFAULT_K = 8
#: Maximum new tokens per sample when neither the command line nor the task spec sets it.
DEFAULT_MAX_TOKENS = 512


def cache_root() -> Path:
    """capcal's cache directory: ``$CAPCAL_CACHE_DIR``, else ``~/.cache/capcal`` (read at each call)."""
    return Path(os.environ.get("CAPCAL_CACHE_DIR") or Path.home() / ".cache" / "capcal")
