"""Regrading stored model outputs with a task's current grader (the library behind ``capcal grade``).

Input: JSON Lines, one object per line, each with

* ``response``: the model's text (a string), or a list of texts (k samples of the same question);
* ``doc``: the raw document in the task's data schema (for math500: ``problem`` and ``answer``; the same
  columns the task spec's ``fields`` read), **or** ``index``: the row number in the task's evaluation split.
  With both, ``doc`` is graded and ``index`` is kept as the example's index.

Optional: ``finish_reason`` (a string, or a list aligned with a list of responses): why the sample stopped
(``stop``, ``length``, ``content_filter``, ``error``). A sample that stopped at the token limit (``length``)
is graded incorrect with reason ``truncated`` and nothing extracted, unless ``grade_truncated`` is set
(:func:`capcal.targets.grade_sample`, DESIGN.md "truncated / empty samples").

Other keys are copied through unchanged. Output: the same objects with ``extracted`` (the answer found;
``null`` when unparseable), ``correct`` (``true``/``false``) and ``reason`` (``null``, ``"truncated"``,
``"empty"``, ``"content_filter"`` or ``"error"``) added; for a list of responses these are lists aligned
with it. Blank lines are skipped. See ``docs/grading.md``.

>>> from capcal.grading import grade_file                              # doctest: +SKIP
>>> summary = grade_file("math500", "responses.jsonl", "graded.jsonl")  # doctest: +SKIP
>>> summary.line()                                                     # doctest: +SKIP
'rows=800 correct=728 unparseable=3'
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import CapcalError, DataError
from .jsonio import iter_jsonl, write_atomic
from .targets import (  # the grading rules live with the targets stage; re-exported for callers of grading
    EMPTY,
    FINISH_ALIASES,
    FINISH_REASONS,
    TRUNCATED,
    grade_responses,
    grade_sample,
    normalize_finish_reason,
    sample_flags,
)

__all__ = ["EMPTY", "FINISH_ALIASES", "FINISH_REASONS", "TRUNCATED", "GradeSummary", "grade_file", "grade_rows",
           "grade_sample", "normalize_finish_reason", "read_jsonl", "sample_flags"]

@dataclass
class GradeSummary:
    """Counts over every graded response (a line with a list of k responses counts k times).

    Attributes:
        rows: responses graded.
        correct: responses graded correct.
        unparseable: responses from which no answer could be extracted.
        lines: input lines read (non-blank).
        truncated: responses that stopped at the token limit (``finish_reason: "length"``).
        empty: blank responses.
    """

    rows: int = 0
    correct: int = 0
    unparseable: int = 0
    lines: int = 0
    truncated: int = 0
    empty: int = 0

    @property
    def accuracy(self) -> float:
        """correct / rows (NaN when nothing was graded)."""
        return self.correct / self.rows if self.rows else float("nan")

    def line(self) -> str:
        """The one-line summary ``rows=.. correct=.. unparseable=..`` (plus ``truncated=``/``empty=`` when any)."""
        text = f"rows={self.rows} correct={self.correct} unparseable={self.unparseable}"
        if self.truncated:
            text += f" truncated={self.truncated}"
        if self.empty:
            text += f" empty={self.empty}"
        return text


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSON Lines file.

    Raises:
        DataError: the file is missing, or a line is not a JSON object (the line number is named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"responses file not found: {path}")
    yield from iter_jsonl(path, DataError, objects=True)


def _example_for(task: Any, row: dict, where: str):
    doc = row.get("doc")
    index = row.get("index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise DataError(f"{where}: 'index' must be a non-negative integer, got {index!r}")
    if doc is not None:
        if not isinstance(doc, dict):
            raise DataError(f"{where}: 'doc' must be a JSON object, got {type(doc).__name__}")
        try:
            return task.example_from_doc(doc, index or 0)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
    if index is None:
        raise DataError(f"{where}: each line needs 'doc' (the task's document) or 'index' (row of the eval split)")
    examples = task.examples("eval")
    if index >= len(examples):
        raise DataError(f"{where}: index {index} is out of range: task {task.name!r} has {len(examples)} eval rows")
    return examples[index]


def grade_rows(task: Any, rows: Iterable[tuple[int, dict]], summary: GradeSummary | None = None,
               source: str = "input", grade_truncated: bool = False) -> Iterator[dict]:
    """Grade each row (see the module docstring for the format) and yield it with the verdicts added.

    Args:
        task: a :class:`capcal.tasks.Task`.
        rows: ``(line number, object)`` pairs, as :func:`read_jsonl` yields them.
        summary: a :class:`GradeSummary` updated in place (optional).
        source: the input's name for error messages.
        grade_truncated: grade samples with ``finish_reason: "length"`` anyway (see :func:`grade_sample`).

    Raises:
        DataError: a row lacks ``response`` or both ``doc`` and ``index``, or has them of the wrong type
            (``finish_reason`` included).
    """
    summary = summary if summary is not None else GradeSummary()
    for lineno, row in rows:
        where = f"{source}:{lineno}"
        if "response" not in row:
            raise DataError(f"{where}: missing 'response' (the model's text)")
        response = row["response"]
        many = isinstance(response, list)
        responses = response if many else [response]
        if not all(isinstance(r, str) or r is None for r in responses):
            raise DataError(f"{where}: 'response' must be a string or a list of strings")
        finish = _finish_reasons(row.get("finish_reason"), len(responses), many, where)
        example = _example_for(task, row, where)
        graded = grade_responses(task, example, responses, finish, grade_truncated)
        results = [g for g, _ in graded]
        summary.lines += 1
        summary.rows += len(results)
        summary.correct += sum(bool(r.correct) for r in results)
        summary.unparseable += sum(r.extracted is None or not str(r.extracted).strip() for r in results)
        truncated, empty = sample_flags(responses, finish)
        summary.truncated += truncated
        summary.empty += empty
        out = dict(row)
        extracted = [r.extracted for r in results]
        correct = [bool(r.correct) for r in results]
        reasons = [why for _, why in graded]
        out["extracted"] = extracted if many else extracted[0]
        out["correct"] = correct if many else correct[0]
        out["reason"] = reasons if many else reasons[0]
        yield out


def _finish_reasons(value: Any, count: int, many: bool, where: str) -> list[str | None]:
    """The per-response finish reasons of a row: absent -> ``None`` each; a string applies to a single
    response (or to every one of a list); a list must align with the responses."""
    if value is None:
        return [None] * count
    if isinstance(value, str):
        return [value] * count
    if isinstance(value, list) and many and len(value) == count and all(v is None or isinstance(v, str)
                                                                        for v in value):
        return list(value)
    raise DataError(f"{where}: 'finish_reason' must be a string, or a list of strings aligned with 'response'")


def grade_file(task: Any, responses: str | Path, output: str | Path | IO[str] | None = None,
               data_dir: str | Path | None = None, registry: Any = None,
               grade_truncated: bool = False) -> GradeSummary:
    """Regrade a JSON Lines file of stored responses with a task's current grader.

    Args:
        task: a task name (looked up in the registry) or a :class:`capcal.tasks.Task`.
        responses: path of the input JSON Lines file.
        output: where to write the graded lines: a path (written atomically: a temporary file renamed when
            complete), an open text stream, or ``None`` for standard output.
        data_dir: mirror directory for loading the task's data (rows given by ``index``).
        registry: the registry to look the task up in (default: the process-wide one).
        grade_truncated: grade responses with ``finish_reason: "length"`` anyway (default: incorrect).

    Returns:
        The :class:`GradeSummary` (rows, correct, unparseable).

    Raises:
        CapcalError: unknown task, unreadable input, malformed lines (file and line named), unwritable output.
    """
    if isinstance(task, str):
        if registry is None:
            from .registry import get_registry

            registry = get_registry()
        task = registry.task(task, data_dir=data_dir)
    summary = GradeSummary()
    graded = grade_rows(task, read_jsonl(responses), summary, source=str(responses),
                        grade_truncated=grade_truncated)

    def lines() -> Iterator[str]:
        for row in graded:
            yield json.dumps(row, ensure_ascii=False) + "\n"

    if output is None:
        sys.stdout.writelines(lines())
    elif hasattr(output, "write"):
        output.writelines(lines())  # type: ignore[union-attr]
    else:
        text = "".join(lines())  # every line graded before anything is written: no torn output file
        try:
            write_atomic(output, text)
        except OSError as exc:
            raise CapcalError(f"cannot write {output}: {exc.strerror or exc}") from None
    return summary
