"""The module named by this package's ``capcal`` entry point: plain functions marked with ``hookimpl``."""

from __future__ import annotations

from pathlib import Path

from capcal import hookimpl

HERE = Path(__file__).resolve().parent


@hookimpl
def capcal_register_tasks():
    return [HERE / "tasks"]


@hookimpl
def capcal_register_template_dirs():
    return [HERE / "templates"]


@hookimpl
def capcal_register_estimators():
    from .estimator import QuestionLengthEstimator

    return {QuestionLengthEstimator.name: QuestionLengthEstimator}
