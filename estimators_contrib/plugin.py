"""The built-in estimators as a plugin (registered in-process: :data:`capcal.registry.BUILTIN_PLUGINS`)."""

from __future__ import annotations

from capcal.hookspecs import hookimpl


@hookimpl
def capcal_register_estimators():
    from . import BUILTIN_ESTIMATORS, DATA_DEPENDENT_ESTIMATORS

    return {**BUILTIN_ESTIMATORS, **DATA_DEPENDENT_ESTIMATORS}
