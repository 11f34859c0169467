"""Parse a verbalized confidence (a probability in [0, 1]) out of a model's free-text reply.

Accepted forms of one value: ``0.85``, ``.85``, ``1``, ``85%``, ``85 \\%``, ``7/10``, ``8 out of 10``,
``\\frac{3}{4}``. Values outside [0, 1] (``1.5``, ``150%``, ``-0.2``, ``11/10``) are invalid.

Where the value is looked for, in order (the first tier that holds a valid value wins; within a tier the
LAST valid value counts, since models revise themselves):

1. the text after the last ``</think>`` (a reasoning block is skipped). An unclosed ``<think>`` means the
   reasoning never finished: only an explicit ``\\boxed{}`` in it counts, never a bare number;
2. ``\\boxed{...}`` (balanced braces); when a reply boxes something, only boxed values count;
3. labelled values: ``confidence: 0.7``, ``Confidence = 7/10``, ``P = 0.7``, ``P(correct) = 0.7``,
   ``probability: 85%``, ``likelihood is 0.6``, ``chance of 60%``;
4. any other value written as a decimal with a point, a percentage or a fraction (a bare integer counts
   only when it is the whole reply: ``1`` or ``0``; ``Step 1`` is never a confidence).

Anything else (empty, words only, only out-of-range numbers) gives ``None``.
"""

from __future__ import annotations

import re

_NUM = r"(?:\d+(?:\.\d+)?|\.\d+)"
# one value: a number, optionally followed by a percent sign, or by "/ b" or "out of b"
_VALUE = re.compile(
    rf"(?P<a>{_NUM})(?:\s*(?P<pct>\\?%|percent\b)|\s*(?:/|out\s+of)\s*(?P<b>{_NUM}))?", re.IGNORECASE)
_FRAC = re.compile(rf"\\[dt]?frac\s*\{{\s*(?P<a>{_NUM})\s*\}}\s*\{{\s*(?P<b>{_NUM})\s*\}}")
_LABEL = re.compile(
    r"(?:\bconfidence(?:\s+(?:level|score))?|\bprobability|\blikelihood|\bchance|\bP\s*\([^()\n]{0,40}\)|\bP\b)"
    r"[^\S\n]*(?:\bis\b|\bof\b|=|:|≈|~|\\approx)?[^\S\n]*(?:about|around|roughly|approximately)?[^\S\n]*"
    r"(?:\\boxed\{|\*\*|\$)?[^\S\n]*",
    re.IGNORECASE)


def _glued_after(text: str, end: int) -> bool:
    """True when the value ending at ``end`` continues into a word or a longer number (``1.2.3``, ``3rd``)."""
    nxt = text[end: end + 1]
    return bool(nxt) and (nxt.isalnum() or nxt in "_/" or (nxt == "." and text[end + 1: end + 2].isdigit()))


def _valid(value: float) -> float | None:
    return value if 0.0 <= value <= 1.0 else None


def _value_of(match: re.Match, text: str, bare_int_ok: bool) -> float | None:
    """Convert one matched value; None when invalid, negative or an integer where none is allowed."""
    start = match.start()
    if start > 0 and text[start - 1] == "-" and (start == 1 or not text[start - 2].isdigit()):
        return None  # a negative number
    a = float(match.group("a"))
    if match.groupdict().get("pct"):
        return _valid(a / 100.0)
    b = match.groupdict().get("b")
    if b is not None:
        b = float(b)
        return _valid(a / b) if b > 0 else None
    if "." not in match.group("a") and not bare_int_ok:
        return None
    return _valid(a)


def _values(text: str, bare_int_ok: bool) -> list[float | None]:
    """Every value-looking token of ``text`` (not inside a word or a longer number), in order."""
    out: list[tuple[int, float | None]] = []
    for m in _FRAC.finditer(text):
        out.append((m.start(), _value_of(m, text, True)))
    masked = _FRAC.sub(lambda m: " " * len(m.group(0)), text)
    for m in _VALUE.finditer(masked):
        s, e = m.start(), m.end()
        if s > 0 and (masked[s - 1].isalnum() or masked[s - 1] in "._/"):
            continue
        if _glued_after(masked, e):
            continue
        out.append((s, _value_of(m, masked, bare_int_ok)))
    out.sort(key=lambda t: t[0])
    return [v for _, v in out]


def _single_value(content: str) -> float | None:
    """The value of a boxed or labelled snippet: its one value token (integers allowed), else None."""
    content = content.replace("\\%", "%").replace("$", " ")
    content = re.sub(r"\\(?:text|mathrm|textbf)\s*\{([^{}]*)\}", r"\1", content)
    vals = _values(content, bare_int_ok=True)
    return vals[0] if len(vals) == 1 else None


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` (and ``\\fbox{...}``) in order, with nested braces balanced.

    An unterminated box (the reply was cut off) is skipped.
    """
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append(text[m.end(): i - 1])
    return out


def strip_reasoning(text: str) -> tuple[str, bool]:
    """Split off a reasoning block.

    Returns:
        ``(answer_text, finished)``: the text after the last ``</think>``; for an unclosed ``<think>`` the
        whole text and ``False`` (the reasoning never finished); otherwise the text unchanged and ``True``.
    """
    close = text.lower().rfind("</think>")
    if close >= 0:
        return text[close + len("</think>"):], True
    if "<think>" in text.lower():
        return text, False
    return text, True


def parse_confidence(text: str | None) -> float | None:
    """The verbalized confidence in ``text`` as a float in [0, 1], or ``None`` when there is none.

    See the module docstring for the accepted forms and the order in which places are searched.
    """
    if not text or not text.strip():
        return None
    answer, finished = strip_reasoning(text)
    boxes = boxed_contents(answer)
    if boxes:
        valid = [v for v in (_single_value(b) for b in boxes) if v is not None]
        return valid[-1] if valid else None
    if not finished:
        return None
    answer = answer.replace("\\%", "%")
    labelled = []
    for m in _LABEL.finditer(answer):
        vm = _VALUE.match(answer, m.end()) or _FRAC.match(answer, m.end())
        if vm is None:
            continue
        if _glued_after(answer, vm.end()):
            continue
        labelled.append(_value_of(vm, answer, bare_int_ok="." in vm.group(0) or bool(vm.groupdict().get("b"))
                                  or bool(vm.groupdict().get("pct")) or vm.group("a") in ("0", "1")))
    valid = [v for v in labelled if v is not None]
    if valid:
        return valid[-1]
    stripped = answer.strip().strip("*$`\"' ").rstrip(".")
    if re.fullmatch(r"[01]", stripped):
        return float(stripped)
    valid = [v for v in _values(answer, bare_int_ok=False) if v is not None]
    return valid[-1] if valid else None
