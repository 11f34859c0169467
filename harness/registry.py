"""The plugin manager and the registry of names (tasks, graders, estimators, models, template dirs).

capcal's own plugins (:data:`BUILTIN_PLUGINS`) are registered in-process, from that one list, the way
pytest registers its default plugins: a source checkout that was never installed has every built-in.
Third-party plugins are found through the ``capcal`` entry-point group. A plugin that fails to import is
recorded in :attr:`Registry.plugin_errors` with its distribution name and does not stop the others.

A registry is passed explicitly: :func:`capcal.run` takes one, hands it to every
:class:`capcal.estimators.EstimatorContext` (``ctx.registry``) and to graders whose factory takes a
``registry`` argument (the judge's fallback). :func:`get_registry` returns the registry active in the
current context (see :meth:`Registry.activate`), else a process-wide default built on first use.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.metadata as md
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import SpecError, UnknownNameError, build_from_options

ENTRY_POINT_GROUP = "capcal"

#: capcal's own plugins, registered in-process by every :class:`Registry` (the only list of built-ins):
#: tasks, templates, graders and model backends (``capcal.builtin``), and the estimators.
BUILTIN_PLUGINS: tuple[str, ...] = ("capcal.builtin", "capcal.estimators_contrib.plugin")
#: The distribution name built-in plugins are recorded under.
BUILTIN_DISTRIBUTION = "capcal"


@dataclass(frozen=True)
class PluginError:
    """A plugin that could not be loaded or whose hook raised."""

    plugin: str  # entry-point name
    distribution: str  # the installed distribution that declared it
    error: str  # one line

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} from distribution {self.distribution!r} failed: {self.error}"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


class Registry:
    """Answers which tasks, graders, estimators, models and template directories exist.

    Args:
        entry_points: load third-party plugins from the ``capcal`` entry-point group (default ``True``).
            The built-ins are registered in-process either way.
        plugins: extra plugin modules or objects to register directly (tests, notebooks).
        builtins: register capcal's own plugins (default ``True``; ``False`` gives a registry with only
            ``plugins`` and the entry points, for testing a plugin alone).

    Lookups (``task``, ``grader``, ``estimator``, ``model``) raise :class:`UnknownNameError`, whose message
    names the close matches.
    """

    def __init__(self, entry_points: bool = True, plugins: Iterable[Any] = (), builtins: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugin_errors: list[PluginError] = []
        self._plugin_dist: dict[str, str] = {}
        if builtins:
            for module in BUILTIN_PLUGINS:
                self._register(importlib.import_module(module))
        if entry_points:
            self._load_entry_points()
        for plugin in plugins:
            self._register(plugin)

    def _register(self, plugin: Any) -> None:
        """Register ``plugin`` once; a built-in module (also when passed in ``plugins``) counts as capcal's own."""
        if self.pm.is_registered(plugin):
            return
        module = getattr(plugin, "__name__", None)
        if module in BUILTIN_PLUGINS:
            name = f"{BUILTIN_DISTRIBUTION}:{module}"
            self.pm.register(plugin, name=name)
            self._plugin_dist[name] = BUILTIN_DISTRIBUTION
        else:
            self.pm.register(plugin)

    # -- plugin loading -------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        seen: set[tuple[str, str]] = set()
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "?"
            if (ep.name, ep.value) in seen:  # the same distribution visible twice on sys.path
                continue
            if ep.value in BUILTIN_PLUGINS:  # registered in-process (an older install still declares them)
                continue
            seen.add((ep.name, ep.value))
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=f"{dist}:{ep.name}")
                self._plugin_dist[f"{dist}:{ep.name}"] = dist
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
                self.plugin_errors.append(PluginError(ep.name, dist, _one_line(exc)))

    def _collect(self, hook_name: str) -> list[tuple[str, Any]]:
        """Call one hook on every plugin separately, so that one raising plugin is reported, not fatal."""
        out: list[tuple[str, Any]] = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                result = impl.function()
            except Exception as exc:  # noqa: BLE001
                dist = self._plugin_dist.get(impl.plugin_name, impl.plugin_name)
                self.plugin_errors.append(PluginError(impl.plugin_name, dist, f"{hook_name}: {_one_line(exc)}"))
                continue
            if result is not None:
                out.append((impl.plugin_name, result))
        return out

    def _collect_mapping(self, hook_name: str, kind: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for plugin_name, mapping in reversed(self._collect(hook_name)):  # registration order
            for name, value in dict(mapping).items():
                if name in merged:
                    self.plugin_errors.append(
                        PluginError(plugin_name, self._plugin_dist.get(plugin_name, plugin_name),
                                    f"{kind} {name!r} is already registered by another plugin"))
                    continue
                merged[name] = value
        return merged

    # -- what exists ----------------------------------------------------------------------------
    @cached_property
    def template_dirs(self) -> list[Path]:
        """Template directories: plugins' first (in registration order), capcal's own last."""
        own: list[Path] = []
        theirs: list[Path] = []
        for plugin_name, items in reversed(self._collect("capcal_register_template_dirs")):
            target = own if self._plugin_dist.get(plugin_name) == BUILTIN_DISTRIBUTION else theirs
            target.extend(Path(d) for d in items)
        return theirs + own

    @cached_property
    def graders(self) -> dict[str, Callable[..., Any]]:
        """``{name: factory}`` of every registered grader."""
        return self._collect_mapping("capcal_register_graders", "grader")

    @cached_property
    def estimators(self) -> dict[str, type]:
        """``{name: class}`` of every registered estimator."""
        return self._collect_mapping("capcal_register_estimators", "estimator")

    @cached_property
    def models(self) -> dict[str, Callable[..., Any]]:
        """``{name: factory}`` of every registered model backend."""
        return self._collect_mapping("capcal_register_models", "model")

    @cached_property
    def _task_table(self) -> tuple[dict[str, Any], list[SpecError]]:
        from .taskspec import TaskSpec, check_spec, find_spec_files, load_spec

        specs: dict[str, Any] = {}
        errors: list[SpecError] = []
        for _plugin_name, items in reversed(self._collect("capcal_register_tasks")):
            for item in items:
                if isinstance(item, TaskSpec):
                    candidates = [item]
                else:
                    candidates = []
                    for path in find_spec_files(Path(item)):
                        try:
                            candidates.append(load_spec(path))
                        except SpecError as exc:
                            errors.append(exc)
                for spec in candidates:
                    try:
                        check_spec(spec, self)  # grader registered, template found, no undefined variables
                    except SpecError as exc:
                        errors.append(exc)
                        continue
                    if spec.name in specs:
                        errors.append(SpecError(spec.source, "task",
                                                f"task {spec.name!r} is already registered by another plugin"))
                        continue
                    specs[spec.name] = spec
        return specs, errors

    @property
    def task_specs(self) -> dict[str, Any]:
        """``{name: TaskSpec}`` of every task spec that loaded; see :attr:`task_errors` for the rest."""
        return self._task_table[0]

    @property
    def task_errors(self) -> list[SpecError]:
        """Specs that failed to load, or failed :func:`capcal.taskspec.check_spec` against this registry
        (unknown grader, missing template, undefined template variable); each error names file and key."""
        return self._task_table[1]

    # -- lookups --------------------------------------------------------------------------------
    def task_spec(self, name: str):
        """The :class:`TaskSpec` called ``name``; a broken spec of that name raises its own SpecError."""
        if name in self.task_specs:
            return self.task_specs[name]
        for err in self.task_errors:
            if Path(err.path).stem == name or Path(err.path).parent.name == name:
                raise err
        raise UnknownNameError("task", name, self.task_specs)

    def task(self, name: str, data_dir: str | Path | None = None):
        """A ready :class:`capcal.tasks.Task` (spec checked against the registry, grader built)."""
        from .tasks import Task

        return Task(self.task_spec(name), registry=self, data_dir=data_dir)

    def grader(self, name: str, **options: Any):
        """Build the grader ``name`` with ``options``.

        A grader whose class (or factory) takes a ``registry`` parameter receives this registry, so that
        the names it resolves (the judge's fallback grader) come from the same plugins.
        """
        if name not in self.graders:
            raise UnknownNameError("grader", name, self.graders)
        factory = self.graders[name]
        if "registry" not in options and _takes_registry(getattr(factory, "grader_class", factory)):
            options = {**options, "registry": self}
        return factory(**options)

    def estimator_class(self, name: str) -> type:
        if name not in self.estimators:
            raise UnknownNameError("estimator", name, self.estimators)
        return self.estimators[name]

    def model(self, name: str, **model_args: Any):
        """Create the model backend ``name`` with ``model_args``."""
        if name not in self.models:
            raise UnknownNameError("model", name, self.models)
        return build_from_options(self.models[name], model_args, where=f"model {name!r}", noun="--model_args",
                                  quote=False)


    @contextlib.contextmanager
    def activate(self) -> Iterator[Registry]:
        """Make this the registry :func:`get_registry` returns inside the ``with`` block (this thread and
        context only); :func:`capcal.run` activates the registry it was given while it runs."""
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)


def _takes_registry(factory: Callable[..., Any]) -> bool:
    try:
        param = inspect.signature(factory).parameters.get("registry")
    except (TypeError, ValueError):
        return False
    return param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)


_default: Registry | None = None
_active: contextvars.ContextVar[Registry | None] = contextvars.ContextVar("capcal_registry", default=None)


def get_registry(refresh: bool = False) -> Registry:
    """The registry active in this context (:meth:`Registry.activate`), else the process-wide one built
    from the built-ins and the installed entry points (cached; ``refresh`` rebuilds it)."""
    global _default
    active = _active.get()
    if active is not None and not refresh:
        return active
    if _default is None or refresh:
        _default = Registry()
    return _default
