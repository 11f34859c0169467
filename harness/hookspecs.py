"""Hook specifications of capcal's plugin system.

A plugin is any module (or object) with functions decorated by ``capcal.hookimpl`` whose names match
the hooks below; it is found through the ``capcal`` entry-point group::

    # pyproject.toml of a third-party package
    [project.entry-points.capcal]
    my_plugin = "my_package.capcal_plugin"

Every hook returns a list (or ``None``); capcal collects the results of all plugins. capcal's own
built-in tasks, graders, estimators, model backends and templates register through these same hooks.
"""

from __future__ import annotations

import pluggy

PROJECT = "capcal"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def capcal_register_tasks():
    """Return task specs to register.

    Returns:
        A list whose items are either directories (``str`` or ``pathlib.Path``) to search recursively for
        ``*.yaml`` task specs, single spec files, or already-built :class:`capcal.taskspec.TaskSpec` objects.
        A task's name is the spec's ``task`` key; two plugins registering the same name is an error.

    Example::

        @hookimpl
        def capcal_register_tasks():
            return [Path(__file__).parent / "tasks"]
    """


@hookspec
def capcal_register_graders():
    """Return graders to register, as a mapping ``{name: factory}``.

    A factory is called with the spec's ``grader.options`` as keyword arguments and returns an object with
    ``extract(response: str) -> str | None`` and ``grade(response: str, fields: dict) -> GradeResult`` (``fields`` = the example's canonical fields)
    (see :class:`capcal.graders.Grader`). Names are what task specs write under ``grader.name``.
    """


@hookspec
def capcal_register_estimators():
    """Return confidence estimators to register, as a mapping ``{name: class}``.

    Each class follows :class:`capcal.estimators.Estimator` (constructor parameters, ``fit`` where it learns,
    ``predict`` returning one confidence per question with NaN and a reason where it failed). The name is
    what ``capcal run --estimators`` takes.
    """


@hookspec
def capcal_register_models():
    """Return model backends to register, as a mapping ``{name: factory}``.

    ``capcal run --model NAME --model_args k=v,...`` calls ``factory(**model_args)``; the factory returns a
    :class:`capcal.models.ModelBackend`. Values in ``model_args`` arrive as strings, already converted to
    int / float / bool where they look like one.
    """


@hookspec
def capcal_register_template_dirs():
    """Return directories (``str`` or ``pathlib.Path``) that hold Jinja prompt templates.

    Templates are looked up by file name relative to any registered directory (plugins first, then capcal's
    own ``templates/``), so a plugin can ship new templates and task specs that use them.
    """
