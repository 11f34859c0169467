"""The targets stage: graded samples -> the capability and response targets of every question.

:class:`Targets` holds one task split's targets as arrays; :func:`grade_split` grades the stored samples of
a split with the task's grader and returns the rows of ``targets.jsonl`` (one per question); the pipeline
(``capcal.pipeline``) and the regrader (``capcal grade``, :mod:`capcal.grading`) both grade through
:func:`grade_responses`, so a sample is judged the same way everywhere.

A row of ``targets.jsonl``::

    {"id": "...", "index": 0, "n": 8, "c": 3, "mu": 0.375, "designated": 0, "r": 1,
     "correct": [1, 0, 0, 1, 0, 0, 1, 0], "extracted": ["18", null, ...], "reasons": [null, "truncated", ...],
     "finish_reasons": ["stop", "length", ...], "n_truncated": 1, "n_empty": 0, "sample_keys": ["<sha256>", ...],
     "completion_tokens": [212, 512, ...]}

Grading reads why a sample stopped first (:func:`grade_sample`, DESIGN.md "truncated / empty samples"):
a sample cut at the token limit is incorrect with reason ``"truncated"``, an empty reply incorrect with
reason ``"empty"``.

This module reads and writes no files: :mod:`capcal.rundir` stores the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    import numpy as np



__all__ = ["EMPTY", "FINISH_ALIASES", "FINISH_REASONS", "TRUNCATED", "Targets", "grade_responses", "grade_sample",
           "completion_token_count", "grade_split", "normalize_finish_reason", "sample_flags", "target_row"]


#: Finish reasons a backend records (``Completion.finish_reason``); ``None`` = not reported.
FINISH_REASONS = ("stop", "length", "content_filter", "error")
#: Reasons a sample is graded incorrect without being parsed (see :func:`grade_sample`).
TRUNCATED, EMPTY = "truncated", "empty"


#: Finish reasons some servers report under other names, mapped to the four above.
FINISH_ALIASES = {"max_tokens": "length", "max_length": "length", "max_new_tokens": "length",
                  "model_length": "length", "eos": "stop", "eos_token": "stop", "stop_sequence": "stop",
                  "end_turn": "stop", "tool_calls": "stop", "function_call": "stop"}


def normalize_finish_reason(reason: str | None) -> str | None:
    """The finish reason in capcal's vocabulary (``"max_tokens"`` -> ``"length"``, ``"eos_token"`` -> ``"stop"``);
    ``None`` and unknown reasons pass through unchanged."""
    if reason is None:
        return None
    key = str(reason).strip().lower()
    return FINISH_ALIASES.get(key, key)


def grade_sample(task: Any, text: str | None, finish_reason: str | None, example: Any,
                 grade_truncated: bool = False) -> tuple[Any, str | None]:
    """Grade one sample, reading why it stopped first (DESIGN.md "truncated / empty samples").

    Rules, in order:

    * ``finish_reason == "length"`` (the token limit cut it; server synonyms such as ``max_tokens`` are
      mapped first, :func:`normalize_finish_reason`): incorrect, nothing extracted, reason
      ``"truncated"``; the model did not answer within the budget it was given. With ``grade_truncated``
      the text is graded like a finished one, and the reason stays ``"truncated"`` as a flag.
    * ``"content_filter"`` or ``"error"``: incorrect, nothing extracted, the finish reason as the reason
      (the text is not the model's answer).
    * an empty or blank reply (``""``, ``content: null``): incorrect, reason ``"empty"``.
    * otherwise the task's grader decides; reason ``None``.

    Args:
        task: a :class:`capcal.tasks.Task` (its ``grade(response, example)`` is used).
        text: the reply text (``None`` for ``content: null``).
        finish_reason: the backend's finish reason, or ``None`` when it reported none.
        example: the :class:`capcal.tasks.Example`.
        grade_truncated: grade truncated samples anyway.

    Returns:
        ``(GradeResult, reason)``.
    """
    from .graders import GradeResult

    text = text if isinstance(text, str) else ""
    finish_reason = normalize_finish_reason(finish_reason)
    if finish_reason == "length":
        if not grade_truncated:
            return GradeResult(None, False), TRUNCATED
        if not text.strip():
            return GradeResult(None, False), TRUNCATED
        return task.grade(text, example), TRUNCATED
    if finish_reason in ("content_filter", "error"):
        return GradeResult(None, False), finish_reason
    if not text.strip():
        return GradeResult(None, False), EMPTY
    return task.grade(text, example), None


def sample_flags(texts: list[str | None], finish_reasons: list[str | None]) -> tuple[int, int]:
    """``(truncated, empty)``: how many samples stopped at the token limit, and how many replies are blank."""
    truncated = sum(normalize_finish_reason(f) == "length" for f in finish_reasons)
    empty = sum(not (t or "").strip() for t in texts)
    return truncated, empty


def completion_token_count(record: Any) -> int | None:
    """Generated tokens of one sample (a ``Completion``, or one as a stored dict), ``None`` when unknown.

    The backend's own count (``completion_tokens``) when it gave one, else the number of returned tokens
    (present when logprobs were asked for), else ``None``.
    """
    get = record.get if isinstance(record, dict) else (lambda key: getattr(record, key, None))
    count = get("completion_tokens")
    if isinstance(count, (int, float)) and not isinstance(count, bool):
        return int(count)
    tokens = get("tokens")
    return len(tokens) if isinstance(tokens, list) else None


@dataclass
class Targets:
    """Per-question targets of one task, as arrays aligned on ``ids``.

    Attributes:
        ids: (Q,) question ids (str).
        n: (Q,) number of graded samples per question.
        c: (Q,) number of correct samples.
        designated: (Q,) index of the designated sample whose correctness is the response target.
        labels: (Q, n_max) per-sample correctness as float 0/1, NaN where a question has fewer samples.
        extracted: per question, the list of extracted answers (``None`` where extraction failed).
        n_truncated: (Q,) samples that stopped at the token limit (finish reason ``length``); zeros when the
            rows predate finish reasons.
        n_empty: (Q,) samples whose reply was empty or blank.
        reasons: per question, per sample, why it was graded without parsing (``"truncated"``, ``"empty"``,
            ``"content_filter"``, ``"error"``) or ``None``.
    """

    ids: np.ndarray
    n: np.ndarray
    c: np.ndarray
    designated: np.ndarray
    labels: np.ndarray
    extracted: list[list[str | None]] = field(default_factory=list)
    n_truncated: np.ndarray | None = None
    n_empty: np.ndarray | None = None
    reasons: list[list[str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        import numpy as np

        q = len(self.ids)
        if self.n_truncated is None:
            self.n_truncated = np.zeros(q, np.int64)
        if self.n_empty is None:
            self.n_empty = np.zeros(q, np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, idx) -> Targets:
        """The targets of the questions at positions ``idx`` (in that order)."""
        import numpy as np

        idx = np.asarray(idx, dtype=np.int64)
        return Targets(ids=np.asarray(self.ids)[idx], n=np.asarray(self.n)[idx], c=np.asarray(self.c)[idx],
                       designated=np.asarray(self.designated)[idx], labels=np.asarray(self.labels)[idx],
                       extracted=[self.extracted[i] for i in idx] if self.extracted else [],
                       n_truncated=np.asarray(self.n_truncated)[idx], n_empty=np.asarray(self.n_empty)[idx],
                       reasons=[self.reasons[i] for i in idx] if self.reasons else [])

    @property
    def truncation_rate(self) -> float:
        """Share of all graded samples that stopped at the token limit (NaN without samples)."""
        import numpy as np

        total = int(np.sum(self.n))
        return float(np.sum(self.n_truncated)) / total if total else float("nan")

    @property
    def empty_rate(self) -> float:
        """Share of all graded samples whose reply was empty or blank (NaN without samples)."""
        import numpy as np

        total = int(np.sum(self.n))
        return float(np.sum(self.n_empty)) / total if total else float("nan")

    @property
    def mu(self) -> np.ndarray:
        """(Q,) capability target c / n."""
        return self.c / self.n

    @property
    def r(self) -> np.ndarray:
        """(Q,) response target: correctness of the designated sample."""
        import numpy as np

        return self.labels[np.arange(len(self.ids)), self.designated]

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> Targets:
        """Build from ``targets.jsonl`` rows (``id``, ``correct`` list, ``designated``, ``extracted``)."""
        import numpy as np

        q = len(rows)
        n_max = max((len(r["correct"]) for r in rows), default=0)
        labels = np.full((q, n_max), np.nan)
        for i, row in enumerate(rows):
            labels[i, : len(row["correct"])] = row["correct"]
        n = np.array([len(r["correct"]) for r in rows], dtype=np.int64)
        return cls(
            ids=np.array([str(r["id"]) for r in rows], dtype=object),
            n=n,
            c=np.nansum(labels, axis=1).astype(np.int64) if q else np.zeros(0, np.int64),
            designated=np.array([int(r.get("designated", 0)) for r in rows], dtype=np.int64),
            labels=labels,
            extracted=[list(r.get("extracted", [])) for r in rows],
            n_truncated=np.array([int(r.get("n_truncated", 0)) for r in rows], dtype=np.int64),
            n_empty=np.array([int(r.get("n_empty", 0)) for r in rows], dtype=np.int64),
            reasons=[list(r.get("reasons") or [None] * len(r["correct"])) for r in rows],
        )


def grade_responses(task: Any, example: Any, responses: Sequence[Any],
                    finish_reasons: Sequence[str | None] | None = None,
                    grade_truncated: bool = False) -> list[tuple[Any, str | None]]:
    """Grade the k responses of one question (:func:`grade_sample` each).

    Args:
        task: a :class:`capcal.tasks.Task` (anything with ``grade(response, example)``).
        example: the question (:class:`capcal.tasks.Example`).
        responses: (k,) the samples: strings, ``None`` (``content: null``) or
            :class:`capcal.models.Completion` (whose own ``finish_reason`` is used).
        finish_reasons: (k,) why each string response stopped (default: not reported).
        grade_truncated: grade samples that stopped at the token limit anyway.

    Returns:
        (k,) ``(GradeResult, reason)`` pairs, in order.
    """
    texts, finish = _texts_and_finish(responses, finish_reasons)
    memo: dict[tuple[Any, Any], tuple[Any, str | None]] = {}  # equal replies of one question are graded once
    out = []
    for text, why in zip(texts, finish, strict=True):
        if (text, why) not in memo:
            memo[(text, why)] = grade_sample(task, text, why, example, grade_truncated)
        out.append(memo[(text, why)])
    return out


def _texts_and_finish(responses: Sequence[Any], finish_reasons: Sequence[str | None] | None
                      ) -> tuple[list[str | None], list[str | None]]:
    texts = [r if r is None or isinstance(r, str) else getattr(r, "text", None) for r in responses]
    if finish_reasons is None:
        finish_reasons = [None if r is None or isinstance(r, str) else getattr(r, "finish_reason", None)
                          for r in responses]
    if len(finish_reasons) != len(texts):
        raise ValueError(f"{len(finish_reasons)} finish reasons for {len(texts)} responses")
    return texts, list(finish_reasons)


def target_row(qid: str, index: int, responses: Sequence[Any], graded: Sequence[tuple[Any, str | None]],
               designated: int, finish_reasons: Sequence[str | None] | None = None,
               sample_keys: Sequence[str] | None = None) -> dict[str, Any]:
    """One ``targets.jsonl`` row from one question's samples and their grades.

    Args:
        qid: the question id.
        index: the question's row number in its split.
        responses: (n,) the samples (as for :func:`grade_responses`), n >= 1.
        graded: (n,) what :func:`grade_responses` returned for them.
        designated: the index of the response-target sample, ``0 <= designated < n``.
        finish_reasons: (n,) finish reasons of string responses (default: those of the completions).
        sample_keys: the store keys of the samples (recorded when given).

    Raises:
        ValueError: no samples, or ``designated`` outside them.
    """
    n = len(graded)
    if not 0 <= designated < n:
        raise ValueError(f"question {qid!r}: designated sample {designated} is outside its {n} samples")
    texts, finish = _texts_and_finish(responses, finish_reasons)
    correct = [int(bool(g.correct)) for g, _ in graded]
    n_truncated, n_empty = sample_flags(texts, finish)
    c = sum(correct)
    row = {"id": str(qid), "index": int(index), "n": n, "c": c, "mu": c / n, "designated": int(designated),
           "r": correct[designated], "correct": correct, "extracted": [g.extracted for g, _ in graded],
           "reasons": [why for _, why in graded], "finish_reasons": finish, "n_truncated": n_truncated,
           "n_empty": n_empty}
    if sample_keys is not None:
        row["sample_keys"] = list(sample_keys)
    row["completion_tokens"] = [None if r is None or isinstance(r, str) else completion_token_count(r)
                                for r in responses]
    return row


def grade_split(task: Any, examples: Sequence[Any], responses: Sequence[Sequence[Any]], designated: int,
                sample_keys: Sequence[Sequence[str]] | None = None,
                grade_truncated: bool = False) -> list[dict[str, Any]]:
    """Grade every stored sample of one task split into its ``targets.jsonl`` rows.

    Args:
        task: the :class:`capcal.tasks.Task` whose grader judges the samples.
        examples: (Q,) the split's examples, in order.
        responses: (Q,) per question its k samples (``Completion`` objects, or strings), in sample order.
        designated: index of the response-target sample (the same for every question).
        sample_keys: (Q, k) the samples' store keys, recorded in the rows (optional).
        grade_truncated: grade samples that stopped at the token limit anyway (they keep the reason
            ``"truncated"``).

    Returns:
        (Q,) rows as documented in the module docstring.
    """
    if len(responses) != len(examples):
        raise ValueError(f"{len(responses)} lists of responses for {len(examples)} questions")
    rows = []
    for q, ex in enumerate(examples):
        graded = grade_responses(task, ex, responses[q], grade_truncated=grade_truncated)
        rows.append(target_row(str(ex.id), int(ex.index), responses[q], graded, designated,
                               sample_keys=None if sample_keys is None else sample_keys[q]))
    return rows
