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
    "letter": 'final ::= "Answer: " letter [).]?',
    "integer": 'final ::= "The answer is " "-"? [0-9] [0-9,]{0,14} "."?',
    "boxed_integer": 'final ::= "\\\\boxed{" "-"? [0-9]{1,6} "}" "."?',
    "probability": 'final ::= "\\\\boxed{" prob "}"\n'
                   'prob ::= "0" | "1" | "1.0" | "1.00" | "0." [0-9] [0-9]? [0-9]?',
}
#: The longest final line of each format, in characters (the letter format with a one-letter option).
FINAL_MAX_CHARS = {"letter": 10, "integer": 31, "boxed_integer": 16, "probability": 13}
#: Up to this many new tokens, a forced grammar bounds the free text so that the final line always fits
#: (see :func:`free_char_budget`); above it the reasoning is left unbounded (bounding it would cut it short).
BOUNDED_UP_TO_TOKENS = 64
FORMATS = tuple(_FINALS)


def _letter_rule(letters: Sequence[str]) -> str:
    if not letters or any(len(x) != 1 or not x.isalpha() or not x.isupper() for x in letters):
        raise CapcalError(f"forced format 'letter': expected upper-case single letters, got {list(letters)!r}")
    return "letter ::= [" + "".join(dict.fromkeys(letters)) + "]"


def free_char_budget(fmt: str, max_tokens: int | None) -> int | None:
    """How many characters of free text a forced completion may hold before its final line.

    Every token the grammar admits carries at least one character, so a completion of at most
    ``max_tokens - 1`` characters ends (with the end-of-generation token) within ``max_tokens``. For short
    replies (``max_tokens <=`` :data:`BOUNDED_UP_TO_TOKENS`) the free text is bounded to
    ``max_tokens - 2 - FINAL_MAX_CHARS[fmt]`` characters (at least 0), which guarantees a complete final
    line; for longer replies (reasoning) ``None``: unbounded, a sample may still run out of tokens.
    """
    if max_tokens is None or int(max_tokens) > BOUNDED_UP_TO_TOKENS:
        return None
    return max(0, int(max_tokens) - 2 - FINAL_MAX_CHARS[fmt])


def grammar(fmt: str, letters: Sequence[str] = "ABCD", free_lines: bool = True,
            max_free_chars: int | None = None) -> str:
    """The GBNF grammar of a forced format.

    Args:
        fmt: one of :data:`FORMATS`.
        letters: the option letters (``letter`` format only), e.g. ``"ABCD"``.
        free_lines: allow free text (reasoning) before the final line; ``False`` = the final line only.
        max_free_chars: bound the free text to this many characters (newlines included); ``None`` =
            unbounded free lines. See :func:`free_char_budget`.

    Returns:
        A GBNF grammar (rule ``root``) that the whole completion must match.

    Raises:
        capcal.errors.CapcalError: an unknown format or bad letters.
    """
    if fmt not in _FINALS:
        raise CapcalError(f"unknown forced format {fmt!r}; known: {', '.join(FORMATS)}")
    if not free_lines or max_free_chars == 0:
        rules = ["root ::= final"]
    elif max_free_chars is None:
        rules = ["root ::= free* final", _FREE]
    else:
        rules = ["root ::= (text \"\\n\")? final", f'text ::= ([^\\n] | "\\n"){{0,{int(max_free_chars)}}}']
    rules.append(_FINALS[fmt])
    if fmt == "letter":
        rules.append(_letter_rule(letters))
    return "\n".join(rules) + "\n"


def format_for_grader(grader_name: str | None) -> str | None:
    """The forced format of a task's answers given its grader's name, or ``None`` (no forced format)."""
    return GRADER_FORMATS.get(grader_name or "")


def answer_grammar(grader_name: str | None, n_choices: int = 4, max_tokens: int | None = None) -> str | None:
    """The grammar of a task's answers (``None`` when its grader has no forced format).

    Args:
        grader_name: the task's grader (``multiple_choice``, ``numeric``, ``integer``, ...).
        n_choices: the number of options of a multiple-choice task (letters A, B, ... in order).
        max_tokens: the samples' token limit (bounds the free text of short replies; see
            :func:`free_char_budget`).
    """
    fmt = format_for_grader(grader_name)
    if fmt is None:
        return None
    letters = "".join(chr(ord("A") + i) for i in range(max(1, min(int(n_choices), 26))))
    return grammar(fmt, letters=letters, max_free_chars=free_char_budget(fmt, max_tokens))


def confidence_grammar(max_tokens: int | None = None) -> str:
    """The grammar of a verbalized confidence reply of at most ``max_tokens`` tokens (``\\boxed{p}``)."""
    return grammar("probability", max_free_chars=free_char_budget("probability", max_tokens))


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
