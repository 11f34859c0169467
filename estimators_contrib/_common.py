"""Helpers shared by the built-in estimators: prompt rendering, question text, other splits, NaN outputs."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from capcal.errors import CapcalError, UnknownNameError
from capcal.estimators import EstimatorContext
from capcal.models.base import Messages
from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _template_dirs() -> tuple[str, ...]:
    """Template folders registered by plugins, then capcal's own (works before the registry has any)."""
    from capcal.registry import get_registry
    from capcal.resources import resource_path

    dirs: list[str] = []
    try:
        dirs = [str(d) for d in get_registry().template_dirs]
    except Exception:  # noqa: BLE001 - a broken plugin set must not hide capcal's own templates
        dirs = []
    own = str(resource_path("templates"))
    if own not in dirs:
        dirs.append(own)
    return tuple(dirs)


@lru_cache(maxsize=8)
def _environment(dirs: tuple[str, ...]) -> SandboxedEnvironment:
    return SandboxedEnvironment(loader=FileSystemLoader(list(dirs)), undefined=StrictUndefined,
                                keep_trailing_newline=False, autoescape=False)


def render_user_prompt(template: str, **variables: Any) -> Messages:
    """Render an estimator's Jinja template (sandboxed, undefined variables are errors) to one user message.

    Args:
        template: template file name relative to a registered template folder
            (``"estimators/verbalized.jinja"``).
        **variables: the template's variables.

    Returns:
        ``[{"role": "user", "content": text}]`` with surrounding whitespace stripped.

    Raises:
        UnknownNameError: no registered template folder holds ``template``.
        CapcalError: the template uses a variable that was not given.
    """
    dirs = _template_dirs()
    try:
        text = _environment(dirs).get_template(template).render(**variables)
    except TemplateNotFound:
        known = sorted(str(p.relative_to(d)) for d in map(Path, dirs) for p in d.rglob("*.jinja"))
        raise UnknownNameError("template", template, known) from None
    except UndefinedError as exc:
        raise CapcalError(f"template {template!r}: {exc.message}") from None
    return [{"role": "user", "content": text.strip()}]


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
    """``ctx.split_context(split)``, or ``None`` when the context has no such split (no error raised)."""
    if ctx is None or ctx.split_context is None:
        return None
    try:
        return ctx.split_context(split)
    except CapcalError:
        return None


def usable_targets(ctx: EstimatorContext) -> tuple[np.ndarray, np.ndarray]:
    """Capability and response targets of a context, NaN where a question has no graded sample.

    Returns:
        ``(mu, r)``, two (Q,) float arrays.
    """
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


def check_same_ids(ctx: EstimatorContext) -> None:
    """Raise CapcalError when the targets are not aligned with the context's question ids."""
    if len(ctx.targets.ids) != len(ctx.ids) or not np.array_equal(
            np.asarray(ctx.targets.ids, dtype=str), np.asarray(ctx.ids, dtype=str)):
        raise CapcalError("estimator context: targets are not aligned with the question ids")


def subset_context(ctx: EstimatorContext, keep: np.ndarray) -> EstimatorContext:
    """``ctx`` restricted to the questions at positions ``keep`` (examples, messages, samples, targets)."""
    return ctx.subset(keep)
