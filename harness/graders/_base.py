"""The grader interface shared by every answer format: :class:`GradeResult` and :class:`Grader`."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from ..errors import CapcalError


class GraderOptionError(CapcalError):
    """A grader was built with an option it does not take, or with a bad value."""


@dataclass(frozen=True)
class GradeResult:
    """The verdict on one response.

    Attributes:
        extracted: the answer found in the response, as text; ``None`` when none could be found
            (the response is *unparseable*).
        correct: whether the extracted answer matches the gold answer. Never ``True`` when ``extracted``
            is ``None`` or empty.
    """

    extracted: str | None
    correct: bool

    def to_dict(self) -> dict[str, Any]:
        """``{"extracted": ..., "correct": ...}`` (JSON-ready)."""
        return {"extracted": self.extracted, "correct": bool(self.correct)}


class Grader:
    """Base class of the answer graders (one subclass per answer format).

    A grader does four things, each usable on its own:

    * :meth:`extract` finds the final answer in a model response (``None`` when there is none);
    * :meth:`grade` extracts and compares with the gold answer held in ``fields`` (``Example.fields``:
      ``answer`` is the gold text, ``aliases`` the accepted variants of short answers, ``choices`` the
      options of multiple-choice questions in presented order);
    * :meth:`normalize` maps an extracted answer to a canonical hashable form (answer clustering);
    * :meth:`equivalent` says whether two extracted answers mean the same.

    Subclasses implement :meth:`extract`, :meth:`check` and :meth:`normalize`; :meth:`equivalent` compares
    normalised forms unless a subclass knows better (the math grader uses symbolic equivalence).
    """

    name: str = "grader"

    def extract(self, response: str) -> str | None:
        """The final answer in ``response`` as text, or ``None`` when the response holds none."""
        raise NotImplementedError

    def check(self, extracted: str, fields: dict) -> bool:
        """Whether the (non-empty) extracted answer matches the gold answer in ``fields``."""
        raise NotImplementedError

    def normalize(self, extracted: str) -> Hashable:
        """A canonical, hashable form of an extracted answer (equal forms = same answer)."""
        raise NotImplementedError

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two extracted answers mean the same (``False`` if either is ``None`` or blank)."""
        if a is None or b is None or not str(a).strip() or not str(b).strip():
            return False
        return self.normalize(a) == self.normalize(b)

    def grade(self, response: str, fields: dict) -> GradeResult:
        """Extract the answer from ``response`` and compare it with the gold answer in ``fields``.

        Args:
            response: the model's text (``None`` is treated as an empty response).
            fields: ``Example.fields`` of the question (``answer``, and ``aliases`` / ``choices`` where the
                format uses them).

        Returns:
            A :class:`GradeResult`; ``correct`` is ``False`` whenever nothing (or only blanks) was extracted.
        """
        extracted = self.extract(response if isinstance(response, str) else "")
        if extracted is None or not extracted.strip():
            return GradeResult(extracted, False)
        return GradeResult(extracted, bool(self.check(extracted, fields)))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def gold_text(fields: dict, key: str = "answer") -> str:
    """The gold answer of ``fields`` as stripped text (ints and floats converted; missing -> ``""``)."""
    value = fields.get(key) if isinstance(fields, dict) else None
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()
