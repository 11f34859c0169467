"""Answer graders: extraction and equivalence, one module per answer format, and the optional LLM judge.

Built-in graders (registered through capcal's own plugin under these names)::

    short_answer     TriviaQA / SimpleQA: normalised match against every alias
    numeric          GSM8K: the final number, compared exactly
    math             MATH-500: the last \\boxed{} (or answer line), equivalence via math-verify
    integer          AIME: an integer in 0-999
    multiple_choice  MMLU / GPQA: an option letter, never pulled out of a word
    llm_judge        optional: an OpenAI-compatible judge model (needs base_url and model options)

``BUILTIN_GRADERS[name](**options)`` builds a grader; ``options`` are a task spec's ``grader.options``.
An unknown option raises :class:`GraderOptionError` (a :class:`capcal.errors.CapcalError`) naming the
options the grader takes. ``docs/grading.md`` states every grader's rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import build_from_options
from ._base import Grader, GradeResult, GraderOptionError
from .choice import MultipleChoiceGrader
from .integer import IntegerGrader
from .judge import LLMJudgeGrader
from .math import MathGrader
from .numeric import NumericGrader
from .short_answer import ShortAnswerGrader


def _factory(name: str, cls: type[Grader]) -> Callable[..., Grader]:
    """A factory for ``cls`` that turns unknown or missing options into one-line GraderOptionErrors."""

    def build(**options: Any) -> Grader:
        return build_from_options(cls, options, where=f"grader {name!r}", error=GraderOptionError)

    build.__name__ = f"build_{name}"
    build.__doc__ = f"Build the {name!r} grader ({cls.__name__}) from its options.\n\n{cls.__doc__ or ''}"
    build.grader_class = cls  # type: ignore[attr-defined]
    return build


BUILTIN_GRADERS: dict[str, Callable[..., Grader]] = {
    "short_answer": _factory("short_answer", ShortAnswerGrader),
    "numeric": _factory("numeric", NumericGrader),
    "math": _factory("math", MathGrader),
    "integer": _factory("integer", IntegerGrader),
    "multiple_choice": _factory("multiple_choice", MultipleChoiceGrader),
    "llm_judge": _factory("llm_judge", LLMJudgeGrader),
}

__all__ = [
    "BUILTIN_GRADERS",
    "GradeResult",
    "Grader",
    "GraderOptionError",
    "IntegerGrader",
    "LLMJudgeGrader",
    "MathGrader",
    "MultipleChoiceGrader",
    "NumericGrader",
    "ShortAnswerGrader",
]
