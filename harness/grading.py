"""Regrading stored model outputs with a task's current grader (the library behind ``capcal grade``).

Input: JSON Lines, one object per line, each with

* ``response``: the model's text (a string), or a list of texts (k samples of the same question);
* ``doc``: the raw document in the task's data schema (for math500: ``problem`` and ``answer``; the same
  columns the task spec's ``fields`` read), **or** ``index``: the row number in the task's evaluation split.
  With both, ``doc`` is graded and ``index`` is kept as the example's index.

Other keys are copied through unchanged. Output: the same objects with ``extracted`` (the answer found;
``null`` when unparseable) and ``correct`` (``true``/``false``) added; for a list of responses these are
lists aligned with it. Blank lines are skipped. See ``docs/grading.md``.

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


@dataclass
class GradeSummary:
    """Counts over every graded response (a line with a list of k responses counts k times).

    Attributes:
        rows: responses graded.
        correct: responses graded correct.
        unparseable: responses from which no answer could be extracted.
        lines: input lines read (non-blank).
    """

    rows: int = 0
    correct: int = 0
    unparseable: int = 0
    lines: int = 0

    @property
    def accuracy(self) -> float:
        """correct / rows (NaN when nothing was graded)."""
        return self.correct / self.rows if self.rows else float("nan")

    def line(self) -> str:
        """The one-line summary ``rows=.. correct=.. unparseable=..``."""
        return f"rows={self.rows} correct={self.correct} unparseable={self.unparseable}"


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSON Lines file.

    Raises:
        DataError: the file is missing, or a line is not a JSON object (the line number is named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"responses file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: each line must be a JSON object, got {type(obj).__name__}")
            yield lineno, obj


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
               source: str = "input") -> Iterator[dict]:
    """Grade each row (see the module docstring for the format) and yield it with the verdicts added.

    Args:
        task: a :class:`capcal.tasks.Task`.
        rows: ``(line number, object)`` pairs, as :func:`read_jsonl` yields them.
        summary: a :class:`GradeSummary` updated in place (optional).
        source: the input's name for error messages.

    Raises:
        DataError: a row lacks ``response`` or both ``doc`` and ``index``, or has them of the wrong type.
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
        example = _example_for(task, row, where)
        results = [task.grade(r or "", example) for r in responses]
        summary.lines += 1
        summary.rows += len(results)
        summary.correct += sum(bool(r.correct) for r in results)
        summary.unparseable += sum(r.extracted is None or not str(r.extracted).strip() for r in results)
        out = dict(row)
        extracted = [r.extracted for r in results]
        correct = [bool(r.correct) for r in results]
        out["extracted"] = extracted if many else extracted[0]
        out["correct"] = correct if many else correct[0]
        yield out


def grade_file(task: Any, responses: str | Path, output: str | Path | IO[str] | None = None,
               data_dir: str | Path | None = None, registry: Any = None) -> GradeSummary:
    """Regrade a JSON Lines file of stored responses with a task's current grader.

    Args:
        task: a task name (looked up in the registry) or a :class:`capcal.tasks.Task`.
        responses: path of the input JSON Lines file.
        output: where to write the graded lines: a path (written atomically: a temporary file renamed when
            complete), an open text stream, or ``None`` for standard output.
        data_dir: mirror directory for loading the task's data (rows given by ``index``).
        registry: the registry to look the task up in (default: the process-wide one).

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
    graded = grade_rows(task, read_jsonl(responses), summary, source=str(responses))

    def write_all(stream: IO[str]) -> None:
        for row in graded:
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")

    if output is None:
        write_all(sys.stdout)
    elif hasattr(output, "write"):
        write_all(output)  # type: ignore[arg-type]
    else:
        out_path = Path(output)
        tmp = out_path.with_name(out_path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                write_all(handle)
            tmp.replace(out_path)
        except OSError as exc:
            raise CapcalError(f"cannot write {out_path}: {exc.strerror or exc}") from None
        finally:
            if tmp.exists():
                tmp.unlink()
    return summary
