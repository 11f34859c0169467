"""Named, versioned leaderboard suites, read from ``registry.yaml``.

A suite fixes what a leaderboard compares: the tasks (the split scored and k samples per question), the
estimators and the headline metrics. Results record the suite's name and version, so that two leaderboards
of the same suite are comparable (``capcal leaderboard`` warns when one table mixes suites).

Example:
    >>> suite = load_suite("capcal-v1")
    >>> suite.tasks["gsm8k"].k
    16
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import CapcalError, SpecError, UnknownNameError
from .metric_catalogue import is_known_metric
from .resources import resource_path

_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")
_SUITE_KEYS = {"version", "description", "tasks", "estimators", "headline_metrics"}
_TASK_KEYS = {"split", "k", "limit"}


@dataclass(frozen=True)
class SuiteTask:
    """One task of a suite.

    Attributes:
        name: the registered task name.
        split: the split role scored (``"eval"``, ``"validation"``, ``"train"``).
        k: samples per question (>= 1); mu is c / k.
        limit: number of questions from the start of the split, or ``None`` for all of them.
    """

    name: str
    split: str = "eval"
    k: int = 16
    limit: int | None = None


@dataclass(frozen=True)
class Suite:
    """A named, versioned leaderboard suite (see ``registry.yaml``)."""

    name: str
    version: str
    description: str
    tasks: dict[str, SuiteTask]
    estimators: list[str]
    headline_metrics: list[str]
    source: str = field(default="", compare=False)

    def to_record(self) -> dict[str, str]:
        """The ``{"name", "version"}`` pair that a results document records."""
        return {"name": self.name, "version": self.version}

    def check_registered(self, registry: Any) -> None:
        """Check that every task and estimator of the suite is registered.

        Args:
            registry: a :class:`capcal.registry.Registry`; its ``task_spec(name)`` and
                ``estimator_class(name)`` raise :class:`UnknownNameError` for a name that is not registered.

        Estimators may carry parameters as on ``--estimators`` (``consistency:m=4``); the name must be
        registered and every parameter must be one its constructor takes.

        Raises:
            UnknownNameError: naming the first unknown task or estimator.
            CapcalError: an estimator parameter its constructor does not take (the accepted ones listed).
        """
        import inspect

        from .errors import CapcalError
        from .runconfig import parse_estimator_spec

        for task in self.tasks:
            registry.task_spec(task)
        for est in self.estimators:
            name, params = parse_estimator_spec(est)
            cls = registry.estimator_class(name)
            accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
            unknown = sorted(set(params) - set(accepted))
            if unknown:
                raise CapcalError(f"suite {self.name!r}: estimator {est!r}: unknown parameter "
                                  f"{unknown[0]!r}; {name} takes {', '.join(accepted) or 'none'}")


def _registry_file(path: str | Path | None) -> Path:
    return Path(path) if path is not None else resource_path("registry.yaml")


def _read_registry(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CapcalError(f"{path}: suite registry not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(str(path), None, f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("suites", {}), dict):
        raise SpecError(str(path), "suites", "expected a mapping of suite names to suites")
    return doc.get("suites") or {}


def list_suites(path: str | Path | None = None) -> list[str]:
    """Names of the suites in ``registry.yaml`` (or in ``path``), sorted."""
    return sorted(_read_registry(_registry_file(path)))


def _parse_task(path: str, key: str, name: str, raw: Any) -> SuiteTask:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(path, key, f"expected a mapping with keys {sorted(_TASK_KEYS)}, got {type(raw).__name__}")
    extra = set(raw) - _TASK_KEYS
    if extra:
        raise SpecError(path, f"{key}.{sorted(extra)[0]}", f"unknown key; expected one of {sorted(_TASK_KEYS)}")
    split = raw.get("split", "eval")
    if not isinstance(split, str) or not split:
        raise SpecError(path, f"{key}.split", "expected a non-empty string")
    k = raw.get("k", 16)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SpecError(path, f"{key}.k", f"expected an integer >= 1, got {k!r}")
    limit = raw.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SpecError(path, f"{key}.limit", f"expected an integer >= 1 or null, got {limit!r}")
    return SuiteTask(name=name, split=split, k=k, limit=limit)


def _str_list(path: str, key: str, raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and x for x in raw):
        raise SpecError(path, key, "expected a non-empty list of names")
    if len(set(raw)) != len(raw):
        raise SpecError(path, key, "names must not repeat")
    return list(raw)


def parse_suite(name: str, raw: Any, path: str = "registry.yaml") -> Suite:
    """Validate one suite entry of ``registry.yaml`` and build a :class:`Suite`.

    Raises:
        SpecError: naming the file, the dotted key and what was expected.
    """
    base = f"suites.{name}"
    if not isinstance(raw, dict):
        raise SpecError(path, base, "expected a mapping")
    extra = set(raw) - _SUITE_KEYS
    if extra:
        raise SpecError(path, f"{base}.{sorted(extra)[0]}", f"unknown key; expected one of {sorted(_SUITE_KEYS)}")
    version = raw.get("version")
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise SpecError(path, f"{base}.version", f"expected a version string such as \"1.0\", got {version!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SpecError(path, f"{base}.description", "expected a string")
    tasks_raw = raw.get("tasks")
    if not isinstance(tasks_raw, dict) or not tasks_raw:
        raise SpecError(path, f"{base}.tasks", "expected a non-empty mapping of task names to {split, k, limit}")
    tasks = {str(t): _parse_task(path, f"{base}.tasks.{t}", str(t), v) for t, v in tasks_raw.items()}
    estimators = _str_list(path, f"{base}.estimators", raw.get("estimators"))
    metrics = _str_list(path, f"{base}.headline_metrics", raw.get("headline_metrics"))
    for m in metrics:
        if not is_known_metric(m):
            raise SpecError(path, f"{base}.headline_metrics", f"unknown metric {m!r}")
    return Suite(name=name, version=version, description=description.strip(), tasks=tasks,
                 estimators=estimators, headline_metrics=metrics, source=path)


def load_suite(name: str, path: str | Path | None = None) -> Suite:
    """Load and validate the suite ``name`` from ``registry.yaml`` (or from the file ``path``).

    Raises:
        UnknownNameError: when no suite has that name (the message names close matches).
        SpecError: when the suite entry is malformed.
    """
    file = _registry_file(path)
    suites = _read_registry(file)
    if name not in suites:
        raise UnknownNameError("suite", name, suites)
    return parse_suite(name, suites[name], str(file))
