"""The ``integer`` grader (AIME): an integer answer in a fixed range, 0-999 by default.

Rules:
    * prediction: the last ``\\boxed{}`` (its first number); else "The answer is N", ``#### N``, an
      ``Answer: N`` line; else the last integer of the response. A number with a fractional part is not
      an integer answer (``70.5`` gives nothing from that number); ``070`` reads as 70; ``70.0`` as 70;
    * the extracted text is the integer (``"70"``); an integer outside ``[low, high]`` is extracted (so the
      answer is visible) but never correct;
    * gold: ``fields["answer"]`` as an integer (``70``, ``"70"``, ``"070"``).
"""

from __future__ import annotations

from fractions import Fraction

from ._base import Grader, GraderOptionError, gold_text
from ._normalize import final_part, numbers_in
from .numeric import marked_number


def _as_int(value: Fraction) -> int | None:
    return int(value) if value.denominator == 1 else None


class IntegerGrader(Grader):
    """Grades an integer answer (AIME: 0-999).

    Args:
        low: smallest valid answer (default 0).
        high: largest valid answer (default 999).
    """

    name = "integer"

    def __init__(self, low: int = 0, high: int = 999):
        if int(low) > int(high):
            raise GraderOptionError(f"integer grader: low={low} is greater than high={high}")
        self.low, self.high = int(low), int(high)

    def extract(self, response: str) -> str | None:
        """The integer answer as text (``"70"``), or ``None`` when the response holds no integer."""
        response = final_part(response)
        if not response.strip():
            return None
        found = marked_number(response)
        if found is not None:
            value = _as_int(found[0])
            return str(value) if value is not None else found[1]
        for value, _text in reversed(numbers_in(response)):
            as_int = _as_int(value)
            if as_int is not None:
                return str(as_int)
        return None

    def normalize(self, extracted: str) -> int | str:
        """The integer value (non-integers are returned as stripped text)."""
        nums = numbers_in(str(extracted))
        if nums:
            as_int = _as_int(nums[0][0])
            if as_int is not None:
                return as_int
        return str(extracted).strip()

    def check(self, extracted: str, fields: dict) -> bool:
        value = self.normalize(extracted)
        if not isinstance(value, int) or not (self.low <= value <= self.high):
            return False
        gold = self.normalize(gold_text(fields))
        return isinstance(gold, int) and value == gold
