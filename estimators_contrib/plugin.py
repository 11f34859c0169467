"""Registers the built-in estimators through the ``capcal`` entry-point group."""

from __future__ import annotations

from capcal.hookspecs import hookimpl


@hookimpl
def capcal_register_estimators():
    from . import BUILTIN_ESTIMATORS, DATA_DEPENDENT_ESTIMATORS

    return {**BUILTIN_ESTIMATORS, **DATA_DEPENDENT_ESTIMATORS}
