"""Errors that capcal reports to users as one clear line (the CLI exits with code 2)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CapcalError(Exception):
    """Base class of every error that is the user's input rather than a bug in capcal.

    The CLI prints ``str(error)`` on one line and exits with :attr:`exit_code` (2), no traceback.
    """

    exit_code = 2


class SpecError(CapcalError):
    """A task spec (YAML) is invalid.

    Args:
        path: the spec file.
        key: dotted key inside the spec (``"dataset.split"``), or ``None`` for file-level errors.
        message: what was expected, or what went wrong.
    """

    def __init__(self, path: str, key: str | None, message: str):
        self.path, self.key, self.message = str(path), key, message
        where = f"{self.path}: key '{key}'" if key else self.path
        super().__init__(f"{where}: {message}")


class UnknownNameError(CapcalError, KeyError):
    """A task, grader, estimator, model backend or template name that is not registered.

    The message lists the close matches (``difflib``) or, failing that, every known name.
    """

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        if close:
            hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
        else:
            hint = "known: " + (", ".join(known) if known else "(none registered)")
        super().__init__(f"unknown {kind} {name!r}; {hint}")

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return self.args[0]


class DataError(CapcalError):
    """A data file or column is missing or malformed."""


class InvalidArrayError(DataError, ValueError):
    """An array given to a numeric function holds values outside its domain (a confidence above 1, a label
    that is not 0/1, ``c > n``). Both a :class:`ValueError` for library users and a one-line CLI error."""


class ModelError(CapcalError):
    """A model backend could not be created or reached (bad --model spec, unreachable server)."""


class RunDirError(CapcalError):
    """A run directory is unusable (unwritable, or holds results of an incompatible version)."""
