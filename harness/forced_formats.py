"""Forced answer formats: GBNF grammars under which a reply's final line must take a parseable form.

A forced format leaves the reasoning free and constrains only the end: the completion is any number of
free lines followed by one final line of a fixed form, and generation can only stop (end-of-generation
token) once that final line is complete. The backends take the grammar in
:attr:`capcal.models.base.SamplingParams.grammar` (GBNF, for the WHOLE completion): the llama.cpp backend
applies it while sampling; OpenAI-compatible servers receive it in their structured-output field (see
``docs/forced-formats.md``). A sample that hits the token limit can still end unparsed (finish reason
``length``), so the parse rate under a forced format is high but not by construction 1.

| format | final line | used for |
|---|---|---|
| ``letter`` | ``Answer: X`` (X one of the options' letters), optionally followed by ``)``/``.`` and text | multiple choice (mmlu, gpqa) |
| ``integer`` | ``The answer is N`` (optional sign, digits with thousands commas, optional final period) | gsm8k |
| ``boxed_integer`` | ``\\boxed{N}`` | aime25 |
| ``probability`` | ``\\boxed{p}``, p in [0, 1] written as ``0``, ``1``, ``1.0`` or ``0.ddd`` | verbalized confidence |

Each final line is what the task's own template asks for, so the task's grader parses it unchanged.
This module is pure text: no model, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import CapcalError

#: The values of ``--forced-format``: off (default), on (every sample and the verbalized confidence are
#: decoded under their format), both (the samples that define mu stay free; a forced copy with the same
#: seeds is drawn beside them and the two parse rates are reported side by side).
FORCED_FORMAT_MODES = ("off", "on", "both")

#: Which format a grader's answers take (graders absent here have no forced format: their answers are
#: free text, such as short answers or LaTeX).
GRADER_FORMATS = {"multiple_choice": "letter", "numeric": "integer", "integer": "boxed_integer"}

_FREE = 'free ::= [^\\n]* "\\n"'
_FINALS = {
    "letter": 'final ::= "Answer: " letter tail?\ntail ::= [).:] [^\\n]*',
    "integer": 'final ::= "The answer is " "-"? [0-9] [0-9,]* "."?',
    "boxed_integer": 'final ::= "\\\\boxed{" "-"? [0-9]+ "}" "."?',
    "probability": 'final ::= "\\\\boxed{" prob "}"\n'
                   'prob ::= "0" | "1" | "1.0" | "1.00" | "0." [0-9] [0-9]? [0-9]?',
}
FORMATS = tuple(_FINALS)


def _letter_rule(letters: Sequence[str]) -> str:
    if not letters or any(len(x) != 1 or not x.isalpha() or not x.isupper() for x in letters):
        raise CapcalError(f"forced format 'letter': expected upper-case single letters, got {list(letters)!r}")
    return "letter ::= [" + "".join(dict.fromkeys(letters)) + "]"


def grammar(fmt: str, letters: Sequence[str] = "ABCD", free_lines: bool = True) -> str:
    """The GBNF grammar of a forced format.

    Args:
        fmt: one of :data:`FORMATS`.
        letters: the option letters (``letter`` format only), e.g. ``"ABCD"``.
        free_lines: allow free lines (reasoning) before the final line; ``False`` = the final line only.

    Returns:
        A GBNF grammar (rule ``root``) that the whole completion must match.

    Raises:
        capcal.errors.CapcalError: an unknown format or bad letters.
    """
    if fmt not in _FINALS:
        raise CapcalError(f"unknown forced format {fmt!r}; known: {', '.join(FORMATS)}")
    rules = ["root ::= free* final" if free_lines else "root ::= final", _FREE, _FINALS[fmt]]
    if fmt == "letter":
        rules.append(_letter_rule(letters))
    return "\n".join(rules) + "\n"


def format_for_grader(grader_name: str | None) -> str | None:
    """The forced format of a task's answers given its grader's name, or ``None`` (no forced format)."""
    return GRADER_FORMATS.get(grader_name or "")


def answer_grammar(grader_name: str | None, n_choices: int = 4) -> str | None:
    """The grammar of a task's answers (``None`` when its grader has no forced format).

    Args:
        grader_name: the task's grader (``multiple_choice``, ``numeric``, ``integer``, ...).
        n_choices: the number of options of a multiple-choice task (letters A, B, ... in order).
    """
    fmt = format_for_grader(grader_name)
    if fmt is None:
        return None
    letters = "".join(chr(ord("A") + i) for i in range(max(1, min(int(n_choices), 26))))
    return grammar(fmt, letters=letters)


def check_mode(mode: str) -> str:
    """Validate a ``--forced-format`` value (returned lower-cased).

    Raises:
        capcal.errors.CapcalError: a value outside :data:`FORCED_FORMAT_MODES`.
    """
    value = str(mode).strip().lower()
    if value not in FORCED_FORMAT_MODES:
        raise CapcalError(f"--forced-format {mode!r}: expected one of {', '.join(FORCED_FORMAT_MODES)}")
    return value


def _side(rows: list[dict]) -> dict:
    extracted = [e for row in rows for e in row.get("extracted", [])]
    n = len(extracted)
    correct = [c for row in rows for c in row.get("correct", [])]
    return {"n_samples": n, "n_questions": len(rows),
            "answer_parse_rate": (sum(e is not None for e in extracted) / n) if n else None,
            "accuracy": (sum(correct) / len(correct)) if correct else None}


def parse_rate_record(free_rows: list[dict], forced_rows: list[dict]) -> dict:
    """Free and forced answer parse rates (share of samples whose answer the grader extracted) and
    accuracies, from two sets of target rows (``targets.jsonl`` rows: ``extracted``, ``correct``)."""
    return {"free": _side(free_rows), "forced": _side(forced_rows)}
