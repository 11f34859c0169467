"""The ``multiple_choice`` grader (MMLU, GPQA): one option letter.

Extraction, first rule that finds a letter wins:
    1. the last ``\\boxed{}`` holding a letter (``\\boxed{B}``, ``\\boxed{(B)}``, ``\\boxed{\\text{B}}``);
    2. the last explicit statement: "the answer is (B)", "Answer: B", "Final answer: B", "correct option is
       B", "(B) is correct";
    3. lines that start with an option label ``B)`` / ``(B)``, when they all name the same letter;
    4. a line that is only the letter (``B``, ``(B)``, ``B.``, ``[B]``), the last such line;
    5. a closing sentence that ends in a bare option letter after a comma, a colon or a choosing word
       ("After considering each option, B.", "I would go with C.", "so it must be (D)"), unless that
       sentence names two letters ("B or C", "A, B");
    6. the answer text (after an ``Answer:`` marker, or the whole one-line reply) equal, after
       normalisation, to exactly one option's text.

A letter is only taken when it stands alone: upper-case, not part of a word, and, when bare (no
parentheses), followed by the end of the line, punctuation, or a connective ("because", "since", "is", ...).
So "A cat is an animal" or "I think" never yield ``A`` or ``I``.

Gold: ``fields["answer"]`` as a letter (``"B"``), an index (``1`` or ``"1"``, 0-based) or the text of the
correct option (looked up in ``fields["choices"]``).
"""

from __future__ import annotations

import re

from ._base import Grader, GradeResult, GraderOptionError, gold_text
from ._normalize import (
    answer_line,
    final_part,
    last_boxed,
    normalize_text,
    strip_markdown,
    strip_math_delimiters,
)

_CONNECTIVES = r"because|since|as|is|which|with|for|-|–|—"


class MultipleChoiceGrader(Grader):
    """Grades an option letter.

    Args:
        letters: the option labels in order (default ``"ABCD"``); 2 to 26 distinct upper-case letters.
    """

    name = "multiple_choice"

    def __init__(self, letters: str = "ABCD"):
        letters = "".join(letters) if not isinstance(letters, str) else letters
        if not (2 <= len(letters) <= 26) or not letters.isalpha() or not letters.isupper() \
                or len(set(letters)) != len(letters):
            raise GraderOptionError(
                f"multiple_choice grader: letters must be 2-26 distinct upper-case letters, got {letters!r}")
        self.letters = letters
        cls = f"[{re.escape(letters)}]"
        # a letter token: "(B)", "[B]", "B)" (anything may follow) or a bare "B" (strict follow-up)
        token = (rf"(?:[(\[]\s*(?P<p>{cls})\s*[)\]]|(?P<c>{cls})\)|(?P<b>{cls})"
                 rf"(?=[ \t]*$|[.:,;!?]|[ \t]+(?:{_CONNECTIVES})(?!\w)|[ \t]*\())")
        self._token = token
        flags = re.IGNORECASE
        # the patterns are case-insensitive for their words only: letters are checked upper-case below
        self._explicit = [
            re.compile(rf"(?<!\w)answer\s+is\s*[:：]?\s*(?:option\s+|choice\s+)?(?-i:{token})", flags | re.M),
            re.compile(rf"(?<!\w)answer\s*[:：]\s*(?:option\s+|choice\s+)?(?-i:{token})", flags | re.M),
            re.compile(rf"(?<!\w)(?:correct|right|best)\s+(?:option|choice|answer)\s*(?:is\s*)?[:：]?\s*"
                       rf"(?-i:{token})", flags | re.M),
            re.compile(rf"(?<!\w)(?:option\s+|choice\s+)?(?-i:{token})\s*is\s+(?:the\s+)?(?:correct|right)\b",
                       flags | re.M),
        ]
        self._line_label = re.compile(rf"^[ \t>*#-]*(?:\(\s*({cls})\s*\)|({cls})\))", re.M)
        letter = rf"(?:\(\s*{cls}\s*\)|\[\s*{cls}\s*\]|{cls})"
        self._closing = re.compile(
            rf"(?:[,:;—–]|\s-|(?<!\w)(?:is|be|choose|chose|pick|picked|select|selected|go\s+with|going\s+with|"
            rf"option|choice|letter))\s*(?-i:(?P<close>{letter}))\s*[.!]?\s*$", re.IGNORECASE)
        self._two_letters = re.compile(
            rf"(?<![\w'])(?-i:{letter})\s*(?:,|/|\bor\b|\band\b|\bvs\.?|\bversus\b|&)\s*(?-i:{letter})(?![\w'])",
            re.IGNORECASE)
        self._alone = re.compile(rf"^[ \t]*[(\[]?\s*({cls})\s*[)\]]?[ \t]*\.?[ \t]*$", re.M)

    @staticmethod
    def _letter(m: re.Match) -> str:
        return m.group("p") or m.group("c") or m.group("b")

    def _from_boxed(self, boxed: str) -> str | None:
        inner = re.sub(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}", r"\1", boxed)
        inner = strip_math_delimiters(inner).strip()
        m = re.fullmatch(rf"[(\[]?\s*([{self.letters}])\s*[)\]]?(?:[\s.:)].*)?", inner, re.S)
        return m.group(1) if m else None

    def extract(self, response: str, choices: list | None = None) -> str | None:
        """The option letter of ``response`` (upper-case), or ``None`` when it names none unambiguously.

        Args:
            response: the model's text.
            choices: the option texts in presented order; when given, a reply that is exactly one option's
                text counts as that option's letter (rule 5).
        """
        text = strip_markdown(final_part(response))
        if not text.strip():
            return None
        boxed = last_boxed(text)
        if boxed is not None:
            letter = self._from_boxed(boxed)
            if letter:
                return letter
        best: tuple[int, str] | None = None
        for pattern in self._explicit:
            for m in pattern.finditer(text):
                if best is None or m.start() >= best[0]:
                    best = (m.start(), self._letter(m))
        if best is not None:
            return best[1]
        labels = {a or b for a, b in self._line_label.findall(text)}
        if len(labels) == 1:
            return labels.pop()
        alone = self._alone.findall(text)
        if alone:
            return alone[-1]
        closing = self._closing_letter(text)
        if closing:
            return closing
        if choices:
            candidate = answer_line(text)
            if candidate is None and len(text.strip().splitlines()) == 1:
                candidate = text.strip()
            if candidate:
                target = normalize_text(strip_math_delimiters(candidate))
                hits = [i for i, c in enumerate(choices[:len(self.letters)]) if normalize_text(str(c)) == target]
                if target and len(hits) == 1:
                    return self.letters[hits[0]]
        return None

    def _closing_letter(self, text: str) -> str | None:
        """Rule 5: the bare letter that ends the reply's last sentence ("After considering each option, B.")."""
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        if not lines:
            return None
        sentences = [p for p in re.split(r"(?<=[.!?])\s+", lines[-1]) if p.strip()]
        last = sentences[-1] if sentences else lines[-1]
        if self._two_letters.search(last):
            return None
        m = self._closing.search(last)
        if not m:
            return None
        return re.sub(r"[()\[\]\s]", "", m.group("close"))

    def normalize(self, extracted: str) -> str:
        """The upper-case letter (other text: stripped and upper-cased)."""
        return str(extracted).strip().strip("()[]. ").upper()

    def gold_letter(self, fields: dict) -> str | None:
        """The correct letter from ``fields["answer"]`` (letter, 0-based index, or option text)."""
        raw = fields.get("answer") if isinstance(fields, dict) else None
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int):
            return self.letters[raw] if 0 <= raw < len(self.letters) else None
        text = gold_text(fields)
        if len(text) == 1 and text.upper() in self.letters:
            return text.upper()
        if text.isdigit():
            idx = int(text)
            return self.letters[idx] if idx < len(self.letters) else None
        choices = list(fields.get("choices") or [])
        hits = [i for i, c in enumerate(choices[:len(self.letters)]) if str(c).strip() == text]
        return self.letters[hits[0]] if len(hits) == 1 else None

    def check(self, extracted: str, fields: dict) -> bool:
        gold = self.gold_letter(fields)
        return gold is not None and self.normalize(extracted) == gold

    def grade(self, response: str, fields: dict) -> GradeResult:
        """Like :meth:`Grader.grade`, with the options in ``fields["choices"]`` available to rule 5."""
        extracted = self.extract(response if isinstance(response, str) else "", fields.get("choices"))
        if extracted is None or not extracted.strip():
            return GradeResult(extracted, False)
        return GradeResult(extracted, self.check(extracted, fields))
