"""The ``short_answer`` grader (TriviaQA, SimpleQA): a short text answer matched against every alias.

Extraction: the content of the last ``\\boxed{}`` if any; else the text after the last explicit
"Answer:" / "Final answer:" / "The answer is" marker; else the first non-empty line of the response. Then a
leading ``A:`` and surrounding quotes, bold markers, math delimiters and a trailing period are removed.

Matching, after TriviaQA normalisation (lower-case, punctuation and articles removed, spaces squashed):
    * the prediction equals a normalised alias (``fields["aliases"]`` plus ``fields["answer"]``); or
    * a normalised alias of at least ``min_contained_chars`` characters appears as a whole-word sequence
      inside a prediction of at most ``max_prediction_words`` words ("Sunset Boulevard, the musical").
      So a one-letter alias never matches by being a substring, and a long ramble listing candidates does
      not match by containing one of them.
An alias that normalises to nothing (``+-*/``) is compared as raw lower-cased text. An empty prediction is
never correct.
"""

from __future__ import annotations

import re

from ._base import Grader, GraderOptionError, gold_text
from ._normalize import (
    answer_line,
    final_part,
    last_boxed,
    normalize_text,
    strip_markdown,
    strip_math_delimiters,
)

_LEAD = re.compile(r"^\s*(?:A|Answer|Final\s+answer)\s*[:：]\s*", re.IGNORECASE)
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm)\s*\{([^{}]*)\}")


def aliases_of(fields: dict) -> list[str]:
    """Every accepted answer: ``fields["aliases"]`` (a list, or one string) followed by ``fields["answer"]``."""
    out: list[str] = []
    raw = fields.get("aliases") if isinstance(fields, dict) else None
    if isinstance(raw, str):
        raw = [raw]
    for alias in raw or []:
        if alias is not None and str(alias).strip():
            out.append(str(alias))
    gold = gold_text(fields)
    if gold:
        out.append(gold)
    return out


class ShortAnswerGrader(Grader):
    """Grades a short free-text answer against aliases. See the module docstring for the rules.

    Args:
        min_contained_chars: shortest normalised alias that may match inside a longer prediction (default 2).
        max_prediction_words: longest prediction (in normalised words) for which containment counts
            (default 12); longer predictions need an exact normalised match.
    """

    name = "short_answer"

    def __init__(self, min_contained_chars: int = 2, max_prediction_words: int = 12):
        if int(min_contained_chars) < 1 or int(max_prediction_words) < 1:
            raise GraderOptionError("short_answer grader: min_contained_chars and max_prediction_words must be >= 1")
        self.min_contained_chars = int(min_contained_chars)
        self.max_prediction_words = int(max_prediction_words)

    def extract(self, response: str) -> str | None:
        """The short answer of ``response`` (see the module docstring), or ``None`` when it is blank."""
        text = strip_markdown(final_part(response))
        if not text.strip():
            return None
        candidate = last_boxed(text)
        if candidate is None:
            candidate = answer_line(text)
        if candidate is None:
            candidate = next((line for line in text.splitlines() if line.strip()), "")
        candidate = _LEAD.sub("", candidate.strip())
        candidate = _TEXT_WRAP.sub(r"\1", candidate)
        candidate = strip_math_delimiters(candidate).strip().strip("\"'“”‘’").strip()
        candidate = strip_math_delimiters(candidate)
        return candidate or None

    def normalize(self, extracted: str) -> str:
        """TriviaQA normalisation of the answer text."""
        return normalize_text(extracted)

    def check(self, extracted: str, fields: dict) -> bool:
        pred = self.normalize(extracted)
        raw = " ".join(str(extracted).lower().split())
        words = pred.split()
        padded = f" {pred} "
        for alias in aliases_of(fields):
            norm = normalize_text(alias)
            if not norm or not pred:  # all punctuation ("+-*/"): compare the raw texts instead
                if raw and raw == " ".join(alias.lower().split()):
                    return True
                continue
            if norm == pred:
                return True
            if (len(norm) >= self.min_contained_chars and len(words) <= self.max_prediction_words
                    and f" {norm} " in padded):
                return True
        return False
