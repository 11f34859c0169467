"""capcal's built-in plugin: its own tasks, graders, model backends and templates.

It implements the same hooks as a third-party plugin; :class:`capcal.registry.Registry` registers it
in-process (see :data:`capcal.registry.BUILTIN_PLUGINS`), so it needs no installed entry point.
"""

from __future__ import annotations

from .hookspecs import hookimpl
from .resources import resource_path


@hookimpl
def capcal_register_tasks():
    return [resource_path("tasks")]


@hookimpl
def capcal_register_template_dirs():
    return [resource_path("templates")]


@hookimpl
def capcal_register_graders():
    from .graders import BUILTIN_GRADERS

    return BUILTIN_GRADERS


@hookimpl
def capcal_register_models():
    from .models.factories import BUILTIN_MODELS

    return BUILTIN_MODELS
