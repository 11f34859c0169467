"""Errors that capcal reports to users as one clear line (the CLI exits with code 2)."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any


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


def build_from_options(target: Callable[..., Any], options: Mapping[str, Any], *, where: str,
                       noun: str = "option", owner: str = "", error: type[CapcalError] = CapcalError,
                       quote: bool = True, catch: tuple[type[BaseException], ...] = (TypeError,)) -> Any:
    """``target(**options)``, or one line naming what is wrong and the names ``target`` accepts.

    The one helper behind graders' options, estimators' parameters and backends' ``--model_args``.
    ``target``'s signature decides: an option it does not take is reported with the close matches and
    every accepted name; a required parameter that is missing is named; an exception of a ``catch``
    class raised by ``target`` itself becomes one line. A target that takes ``**kwargs`` accepts any name.

    Args:
        target: a class or factory.
        options: keyword arguments.
        where: what the message starts with (``"--estimators 'consistency:mm=3'"``, ``"model 'hf'"``).
        noun: what an option is called (``"parameter"``, ``"--model_args"``).
        owner: words after the unknown names (``" of estimator 'consistency'"``).
        error: the :class:`CapcalError` subclass raised.
        quote: write the unknown names with quotes.
        catch: exceptions of ``target`` turned into ``error`` (others propagate).

    Example message: ``--estimators 'consistency:mm=3': unknown parameter 'mm' of estimator 'consistency'
    (did you mean 'm'?); expected one of: m, mode, reuse_samples``.
    """
    accepted = parameter_names(target)
    if accepted is not None:
        unknown = [k for k in options if k not in accepted]
        if unknown:
            close = [c for k in unknown for c in difflib.get_close_matches(k, accepted, n=2)]
            hint = f" (did you mean {' or '.join(repr(c) for c in dict.fromkeys(close))}?)" if close else ""
            names = ", ".join(repr(k) if quote else k for k in unknown)
            raise error(f"{where}: unknown {noun} {names}{owner}{hint}; "
                        f"expected one of: {', '.join(sorted(accepted)) or '(none)'}")
        missing = [name for name, p in _parameters(target).items()
                   if p.default is inspect.Parameter.empty and name not in options
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if missing:
            raise error(f"{where}: {noun} needs {', '.join(missing)}")
    try:
        return target(**options)
    except catch as exc:
        raise error(f"{where}: {exc}".splitlines()[0]) from None


def _parameters(target: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return {}
    return {k: p for k, p in sig.parameters.items() if k != "self"}


def parameter_names(target: Callable[..., Any]) -> list[str] | None:
    """The keyword parameters of a class or factory; ``None`` when it takes ``**kwargs`` or has no signature."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name != "self"
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
