"""The ``numeric`` grader (GSM8K): a final number compared exactly as a number.

Rules:
    * gold: the text after the last ``####`` of ``fields["answer"]`` (the whole text when there is no
      ``####``), read as a number (``1,000`` and ``$5`` accepted);
    * prediction, first rule that finds a number wins: the last ``\\boxed{}``; the last "The answer is N";
      the last ``#### N``; the last line starting ``A: N`` / ``Answer: N`` / ``Final answer: N``; otherwise
      the last number anywhere in the response;
    * numbers tolerate ``$``, thousands separators (``1,000``, ``10{,}000``), units and words after them,
      ``\\text{}``, a trailing period, ``\\frac{a}{b}`` and ``a/b``;
    * values are compared exactly as :class:`fractions.Fraction` (``18`` = ``18.00`` = ``36/2``), never as
      float strings.
"""

from __future__ import annotations

import re
from fractions import Fraction

from ._base import Grader, gold_text
from ._normalize import answer_line, final_part, first_number, last_boxed, last_number, numbers_in

_HASHES = re.compile(r"####\s*(?P<rest>[^\n]*)")
_ANSWER_IS = re.compile(r"(?<!\w)(?:the\s+)?(?:final\s+)?answer\s+is\s*[:：]?\s*(?P<rest>[^\n]*)", re.IGNORECASE)
_A_LINE = re.compile(r"^[ \t>*#]*(?:A|Answer|Final\s+answer)\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?(?P<rest>[^\n]*)",
                     re.IGNORECASE | re.MULTILINE)


def marked_number(response: str) -> tuple[Fraction, str] | None:
    """The first number of the last explicitly marked answer: the last ``\\boxed{}`` holding a number, else
    the last "The answer is N", ``#### N`` or ``A:``/``Answer:`` line holding one; ``None`` when no marked
    span holds a number. ``response`` is the final part (reasoning already removed)."""
    boxed = last_boxed(response)
    if boxed is not None:
        found = first_number(boxed)
        if found is not None:
            return found
    for pattern in (_ANSWER_IS, _HASHES, _A_LINE):
        for m in reversed(list(pattern.finditer(response))):
            found = first_number(m.group("rest"))
            if found is not None:
                return found
    return None


def find_final_number(response: str) -> tuple[Fraction, str] | None:
    """The final numeric answer of a response as ``(value, canonical text)``, or ``None``.

    Order: last ``\\boxed{}`` with a number in it, "The answer is N", ``#### N``, an ``A:``/``Answer:`` line,
    then the last number of the whole response. Within a marked span the first number is taken.
    """
    response = final_part(response)
    if not response.strip():
        return None
    found = marked_number(response)
    if found is not None:
        return found
    line = answer_line(response)
    if line:
        found = first_number(line)
        if found is not None:
            return found
    return last_number(response)


def parse_gold_number(answer: str) -> Fraction | None:
    """The gold number of a GSM8K-style answer (text after the last ``####``, else the whole text)."""
    text = answer.rsplit("####", 1)[-1] if "####" in answer else answer
    nums = numbers_in(text)
    return nums[0][0] if nums else None


class NumericGrader(Grader):
    """Grades a final number against the gold number (GSM8K). See the module docstring for the rules."""

    name = "numeric"

    def extract(self, response: str) -> str | None:
        """The canonical text of the final number (``"18"``, ``"-2.5"``, ``"1/3"``), or ``None``."""
        found = find_final_number(response)
        return found[1] if found else None

    def normalize(self, extracted: str) -> Fraction | str:
        """The exact value as a Fraction (text that holds no number is returned stripped)."""
        nums = numbers_in(str(extracted))
        return nums[0][0] if nums else str(extracted).strip()

    def check(self, extracted: str, fields: dict) -> bool:
        gold = parse_gold_number(gold_text(fields))
        if gold is None:
            return False
        return self.normalize(extracted) == gold
