"""capcal: measure how well a language model's confidence predicts its capability.

The public API, for library users and plugin authors (every name below is importable from ``capcal``)::

    import capcal
    rd = capcal.run(capcal.RunConfig(output="runs/demo", tasks=["gsm8k"], limit=20))
    doc = capcal.load_results(rd.path)

Running: :func:`run`, :class:`RunConfig`, :class:`RunDir`. Results: :func:`analyze` (pure, on arrays),
:func:`analyze_run`, :func:`write_results`, :func:`load_results`, :func:`compare_runs`,
:func:`build_leaderboard`. Tasks and grading: :class:`Task`, :class:`Example`, :class:`TaskSpec`,
:class:`Grader`, :class:`GradeResult`, :class:`Targets`, :func:`grade_split`. Estimators:
:class:`Estimator`, :class:`EstimatorContext`, :class:`EstimatorOutput`, :func:`generate_many`,
:class:`CompletionCache`. Models: :class:`ModelBackend`, :class:`SamplingParams`, :class:`Completion`,
:class:`GenerationRequest`. Plugins: :data:`hookimpl`, :class:`Registry`, :func:`get_registry`; the
conformance checks for plugin authors are in :mod:`capcal.testing`. Errors: :class:`CapcalError`.

Names are imported on first use, so ``import capcal`` stays cheap (no numpy, scipy or jinja2 until needed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "run": "capcal.pipeline", "Pipeline": "capcal.pipeline",
    "RunConfig": "capcal.runconfig",
    "RunDir": "capcal.rundir",
    "Registry": "capcal.registry", "get_registry": "capcal.registry",
    "Task": "capcal.tasks", "Example": "capcal.tasks",
    "TaskSpec": "capcal.taskspec",
    "Grader": "capcal.graders", "GradeResult": "capcal.graders",
    "Targets": "capcal.targets", "grade_split": "capcal.targets",
    "Estimator": "capcal.estimators", "EstimatorContext": "capcal.estimators",
    "EstimatorOutput": "capcal.estimators",
    "generate_many": "capcal.generation", "CompletionCache": "capcal.generation",
    "ModelBackend": "capcal.models.base", "SamplingParams": "capcal.models.base",
    "Completion": "capcal.models.base", "GenerationRequest": "capcal.models.base",
    "analyze": "capcal.analysis",
    "analyze_run": "capcal.results", "write_results": "capcal.results", "load_results": "capcal.results",
    "compare_runs": "capcal.compare",
    "build_leaderboard": "capcal.report",
    "CapcalError": "capcal.errors",
}

#: the public names (a test checks that it matches _EXPORTS)
__all__ = ["CapcalError", "Completion", "CompletionCache", "Estimator", "EstimatorContext",
           "EstimatorOutput", "Example", "GenerationRequest", "GradeResult", "Grader", "ModelBackend",
           "Pipeline", "Registry", "RunConfig", "RunDir", "SamplingParams", "Targets", "Task", "TaskSpec",
           "__version__", "analyze", "analyze_run", "build_leaderboard", "compare_runs", "generate_many",
           "get_registry", "grade_split", "hookimpl", "load_results", "run", "write_results"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .analysis import analyze
    from .compare import compare_runs
    from .errors import CapcalError
    from .estimators import Estimator, EstimatorContext, EstimatorOutput
    from .generation import CompletionCache, generate_many
    from .graders import Grader, GradeResult
    from .models.base import Completion, GenerationRequest, ModelBackend, SamplingParams
    from .pipeline import Pipeline, run
    from .registry import Registry, get_registry
    from .report import build_leaderboard
    from .results import analyze_run, load_results, write_results
    from .runconfig import RunConfig
    from .rundir import RunDir
    from .targets import Targets, grade_split
    from .tasks import Example, Task
    from .taskspec import TaskSpec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'capcal' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
