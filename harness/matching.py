"""Matching imported questions to a task's documents: by id, then index, then normalised question text.

Nothing is guessed. A question that no rule matches uniquely is reported with the reason; two imported
questions that land on the same document keep the first and report the second. An index whose document
has another question text than the imported one is not taken (the text decides, or the question stays
unmatched).

>>> from capcal.matching import normalize_question
>>> normalize_question("  What  is\\n2 + 2?  ")
'what is 2 + 2?'
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import CapcalError

_SPACE = re.compile(r"\s+")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

__all__ = ["Match", "MatchReport", "match_questions", "normalize_question", "question_texts"]


def normalize_question(text: str) -> str:
    """Unicode NFKC, case-folded, every run of whitespace one space, surrounding whitespace removed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", str(text)).casefold()).strip()


def question_texts(example: Any) -> list[str]:
    """The normalised texts an example's question may be written as.

    The question field alone, and for multiple choice also followed by its options as ``A. option`` lines
    in the presented order (how several tools write a multiple-choice question).
    """
    fields = getattr(example, "fields", {}) or {}
    question = str(fields.get("question", ""))
    out = [normalize_question(question)] if question.strip() else []
    choices = fields.get("choices") or []
    if choices:
        lines = "\n".join(f"{_LETTERS[i]}. {c}" for i, c in enumerate(choices))
        out.append(normalize_question(f"{question}\n{lines}"))
    return out


@dataclass
class Match:
    """Where one imported question went: ``position`` in the task's example list, ``how`` it matched."""

    position: int
    how: str  # "id", "doc" (the id derived from the imported document), "index", "text"


@dataclass
class MatchReport:
    """The outcome of matching (aligned with the imported questions).

    Attributes:
        matches: per imported question, a :class:`Match` or ``None``.
        unmatched: ``(label, reason)`` of every imported question left out, in input order.
        by: how many matched by each rule.
    """

    matches: list[Match | None]
    unmatched: list[tuple[str, str]] = field(default_factory=list)
    by: dict[str, int] = field(default_factory=dict)

    @property
    def n_matched(self) -> int:
        return sum(m is not None for m in self.matches)


def match_questions(imported: Sequence[Any], examples: Sequence[Any], task: Any = None) -> MatchReport:
    """Match each imported question to at most one example.

    Args:
        imported: (M,) objects with ``id``, ``index``, ``question``, ``doc`` and ``label()``
            (:class:`capcal.formats.ImportedQuestion`).
        examples: (Q,) the task's examples of the split (``capcal.tasks.Example``).
        task: the task, to derive the id of an imported document (``task.example_from_doc``); optional.

    Rules, first that applies wins:
      1. ``id`` equals an example's id;
      2. ``doc`` given and the id capcal derives from it equals an example's id;
      3. ``index`` in range, unless the imported text differs from that example's question;
      4. the normalised text equals exactly one example's normalised question (or question with options).
    A text shared by several examples is ambiguous and left unmatched.
    """
    by_id = {str(ex.id): i for i, ex in enumerate(examples)}
    texts: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        for t in dict.fromkeys(question_texts(ex)):
            texts.setdefault(t, []).append(i)
    matches: list[Match | None] = []
    unmatched: list[tuple[str, str]] = []
    taken: dict[int, str] = {}
    for q in imported:
        match, reason = _match_one(q, examples, by_id, texts, task)
        if match is not None and match.position in taken:
            reason = f"matches the same document as {taken[match.position]} (kept the first)"
            match = None
        if match is None:
            unmatched.append((q.label(), reason))
        else:
            taken[match.position] = q.label()
        matches.append(match)
    by = Counter(m.how for m in matches if m is not None)
    return MatchReport(matches=matches, unmatched=unmatched, by=dict(sorted(by.items())))


def _match_one(q: Any, examples: Sequence[Any], by_id: dict[str, int], texts: dict[str, list[int]],
               task: Any) -> tuple[Match | None, str]:
    if q.id is not None and str(q.id) in by_id:
        return Match(by_id[str(q.id)], "id"), ""
    text = normalize_question(q.question) if q.question else None
    if q.doc is not None and task is not None:
        try:
            derived = task.example_from_doc(q.doc, q.index or 0)
        except CapcalError:
            derived = None
        if derived is not None:
            if str(derived.id) in by_id:
                return Match(by_id[str(derived.id)], "doc"), ""
            if text is None:
                text = normalize_question(derived.fields.get("question", ""))
    reasons = []
    if q.id is not None:
        reasons.append("no document has this id")
    if q.index is not None:
        if 0 <= q.index < len(examples):
            if text is None or text in question_texts(examples[q.index]):
                return Match(q.index, "index"), ""
            reasons.append(f"document {q.index} has another question")
        else:
            reasons.append(f"index {q.index} is outside the split ({len(examples)} documents)")
    if text:
        hits = texts.get(text, [])
        if len(hits) == 1:
            return Match(hits[0], "text"), ""
        reasons.append(f"its text matches {len(hits)} documents" if hits else "no document has this question text")
    if not reasons:
        reasons.append("no id, index, document or question text to match")
    return None, "; ".join(reasons)
