"""Helpers shared by the built-in estimators: question text and usable targets.

Rendering a prompt, another split and a subset of a context are public on
:class:`capcal.estimators.EstimatorContext` (``render_prompt``, ``other_split``, ``subset``); the names
below that wrap them are kept for plugins written against earlier versions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from capcal.estimators import EstimatorContext
from capcal.models.base import Messages
from capcal.prompts import render_user_prompt as _render
from capcal.tasks import LETTERS

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    import numpy as np

__all__ = ["LETTERS", "other_split", "question_of", "render_user_prompt", "subset_context", "usable_targets"]


def render_user_prompt(template: str, **variables: Any) -> Messages:
    """:func:`capcal.prompts.render_user_prompt` with the active registry's template folders; estimators
    use :meth:`capcal.estimators.EstimatorContext.render_prompt` (the run's own registry)."""
    from capcal.registry import get_registry

    return _render(template, template_dirs=get_registry().template_dirs, **variables)


def question_of(example: Any, messages: Messages | None = None) -> tuple[str, list[str]]:
    """The question text and the presented choices of one example.

    Uses ``example.fields["question"]`` (and ``["choices"]`` for multiple choice, already in presented
    order); falls back to the last user message of the rendered answer prompt when the task has no
    ``question`` field.

    Returns:
        ``(question, choices)``; ``choices`` is ``[]`` for tasks without options.
    """
    fields = getattr(example, "fields", None) or {}
    question = fields.get("question")
    if question is None and messages:
        users = [m["content"] for m in messages if m.get("role") == "user"]
        question = users[-1] if users else messages[-1]["content"]
    choices = [str(c) for c in (fields.get("choices") or [])]
    return str(question or ""), choices


def other_split(ctx: EstimatorContext | None, split: str) -> EstimatorContext | None:
    """``ctx.other_split(split)``; ``None`` for no context."""
    return None if ctx is None else ctx.other_split(split)


def usable_targets(ctx: EstimatorContext) -> tuple[np.ndarray, np.ndarray]:
    """Capability and response targets of a context, NaN where a question has no graded sample.

    Returns:
        ``(mu, r)``, two (Q,) float arrays.
    """
    import numpy as np

    t = ctx.targets
    n = np.asarray(t.n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(n > 0, np.asarray(t.c, dtype=float) / np.where(n > 0, n, 1), np.nan)
    q = len(t.ids)
    r = np.full(q, np.nan)
    if q and t.labels.size:
        d = np.asarray(t.designated, dtype=np.int64)
        ok = (d >= 0) & (d < t.labels.shape[1])
        r[ok] = t.labels[np.arange(q)[ok], d[ok]]
    return mu, r


def subset_context(ctx: EstimatorContext, keep: np.ndarray) -> EstimatorContext:
    """``ctx.subset(keep)``: the context restricted to the questions at positions ``keep``."""
    return ctx.subset(keep)
