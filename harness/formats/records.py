"""What every reader produces: imported questions with their samples, and what is known about the source."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError

#: Finish reasons a sample may carry (``Completion.finish_reason``); others are kept as given.
FINISH_REASONS = ("stop", "length", "content_filter", "error")


@dataclass
class ImportedSample:
    """One imported response.

    Attributes:
        text: the response text (the answer the grader reads).
        correct: the source's own verdict (``None`` when the source has none); capcal's grader still runs.
        finish_reason: ``"stop"``, ``"length"`` (hit the token limit: graded incorrect), ... or ``None``.
        reasoning: reasoning content kept apart from ``text``, when the source separates it.
        tokens: generated tokens, aligned with ``token_logprobs`` (optional).
        token_logprobs: natural-log probability of each generated token (optional).
        completion_tokens: number of generated tokens (optional; ``len(tokens)`` when only tokens are given).
        prompt_tokens: number of prompt tokens (optional).
        extracted: the source's extracted answer (kept for the record; capcal extracts its own).
    """

    text: str
    correct: bool | None = None
    finish_reason: str | None = None
    reasoning: str | None = None
    tokens: list[str] | None = None
    token_logprobs: list[float] | None = None
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    extracted: str | None = None

    def completion(self) -> dict[str, Any]:
        """The ``Completion`` dict stored in ``samples.sqlite`` (``seed`` unknown: ``None``)."""
        return {"text": self.text, "reasoning": self.reasoning, "finish_reason": self.finish_reason,
                "tokens": self.tokens, "token_logprobs": self.token_logprobs, "top_logprobs": None, "seed": None,
                "completion_tokens": self.completion_tokens}


@dataclass
class ImportedQuestion:
    """One question of the source with its samples, and the keys that can match it to a task document.

    Attributes:
        where: ``file:line`` (or similar) of its first record, for messages.
        id: the source's question id (``None`` when absent).
        index: the source's row number in the task's split (``None`` when absent).
        question: the question text as the source shows it (matched after normalisation).
        doc: the raw document in the task's data schema, when the source carries it.
        samples: the imported responses in sample order.
        prompt: the chat messages the source sent (kept for export), when known.
    """

    where: str
    id: str | None = None
    index: int | None = None
    question: str | None = None
    doc: dict | None = None
    samples: list[ImportedSample] = field(default_factory=list)
    prompt: list[dict] | None = None

    def label(self) -> str:
        """A short human-readable name (id, else index, else the start of the text)."""
        if self.id is not None:
            return f"id {self.id!r}"
        if self.index is not None:
            return f"index {self.index}"
        text = (self.question or "").strip().replace("\n", " ")
        return f"question {text[:60]!r}" if text else self.where


@dataclass
class SourceInfo:
    """What the reader learnt about the source as a whole.

    Attributes:
        format: the format name (``generic``, ``official``, ``lm_eval``, ``inspect``).
        path: the file or directory read.
        files: the files actually read.
        model_id: the model named by the source (``None`` when it names none).
        sampling: sampling settings the source records (temperature, top_p, max_tokens, ...), else ``{}``.
        task: the source's own task name (lm-eval, inspect), else ``None``.
        confidences: ``{name: path}`` of confidence files found next to the samples (official format).
        notes: remarks worth showing the user (duplicates dropped, settings not recorded, ...).
        extra: anything format-specific worth keeping in the import record.
    """

    format: str
    path: str
    files: list[str] = field(default_factory=list)
    model_id: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    confidences: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


# -- value checks shared by the readers ----------------------------------------------------------------
def as_bool(value: Any, where: str, name: str = "correct") -> bool | None:
    """A verdict given as true/false, 0/1 (int or float) or ``None``; anything else is a DataError."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    raise DataError(f"{where}: {name!r} must be true/false or 0/1, got {value!r}")


def as_index(value: Any, where: str, name: str = "index") -> int | None:
    """A non-negative integer (``None`` passes through); a float such as ``3.0`` is accepted."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(f"{where}: {name!r} must be a non-negative integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 0:
        raise DataError(f"{where}: {name!r} must be a non-negative integer, got {value!r}")
    return value


def as_text(value: Any, where: str, name: str) -> str:
    """A response text: a string (``None`` = an empty reply)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: {name!r} must be a string, got {type(value).__name__}")
    return value


def as_logprobs(value: Any, where: str) -> list[float] | None:
    """A list of finite-or-minus-infinity floats, or ``None``."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise DataError(f"{where}: 'token_logprobs' must be a list of numbers")
    out = [float(v) for v in value]
    if any(math.isnan(v) or v > 0 for v in out):
        raise DataError(f"{where}: 'token_logprobs' must be log-probabilities (<= 0)")
    return out


def as_tokens(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: 'tokens' must be a list of strings")
    return list(value)


def as_count(value: Any, where: str, name: str) -> int | None:
    return as_index(value, where, name)


def questions_with_samples(groups: Any) -> list[ImportedQuestion]:
    """The questions of ``groups`` (an iterable of ``(question, {sample number: ImportedSample})``), each with
    its samples set in order of their number (repeat, epoch, ...); the input order of questions is kept."""
    questions = []
    for q, by_number in groups:
        q.samples = [by_number[j] for j in sorted(by_number)]
        questions.append(q)
    return questions
