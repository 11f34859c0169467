"""Text helpers shared by the graders: boxed answers, answer lines, numbers, TriviaQA normalisation.

Everything here is a pure function of strings; nothing raises on odd input (``None`` means "not found").
"""

from __future__ import annotations

import re
import string
from fractions import Fraction

_BOX_COMMANDS = ("\\boxed", "\\fbox")

# Markers that introduce a final answer, in several languages; each needs a colon after it.
ANSWER_MARKERS = (
    r"final\s+answer",
    r"answer",
    r"ответ",
    r"respuesta(?:\s+final)?",
    r"réponse(?:\s+finale)?",
    r"antwort",
    r"risposta",
    r"resposta",
    r"答案",
    r"答",
)

_ANSWER_LINE = re.compile(
    r"(?:(?:" + "|".join(ANSWER_MARKERS) + r")(?!\w)\s*(?:\*\*|__)?\s*[:：]"  # "Answer:", "**Answer:**"
    r"|(?<!\w)(?:the\s+)?(?:final\s+|correct\s+)?answer\s+is(?!\w)\s*[:：]?"  # "The answer is"
    r"|^[ \t#>*]*final\s+answer(?:\s*(?:\*\*|__))?[ \t]*(?=\n))"  # a "Final Answer" heading line
    r"\s*(?:\*\*|__)?[ \t]*(?P<rest>[^\n]*)",
    re.IGNORECASE | re.MULTILINE,
)
_MARKDOWN = re.compile(r"(\*\*|__|`)")


def _brace_group(text: str, start: int) -> tuple[str, int] | None:
    """Read a balanced ``{...}`` group opening at ``text[start]``; returns (inner, index after) or None."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "\\":  # skip escaped braces \{ \}
            continue
        if ch == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif ch == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1:i], i + 1
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` or ``\\fbox{...}`` in ``text`` (nested braces allowed).

    Also accepts the brace-less form ``\\boxed 5`` (content up to the next whitespace or ``$``). An unclosed
    box is ignored. Returns the inner text stripped, or ``None`` when there is no complete box.
    """
    if not text:
        return None
    best: tuple[int, str] | None = None
    for command in _BOX_COMMANDS:
        pos = text.rfind(command)
        while pos != -1:
            after = pos + len(command)
            j = after
            while j < len(text) and text[j] == " ":
                j += 1
            found = None
            if j < len(text) and text[j] == "{":
                group = _brace_group(text, j)
                if group is not None:
                    found = group[0]
            elif after < len(text) and text[after] == " ":
                m = re.match(r"\s+([^\s$]+)", text[after:])
                if m:
                    found = m.group(1)
            if found is not None:
                if best is None or pos > best[0]:
                    best = (pos, found.strip())
                break
            pos = text.rfind(command, 0, pos)
    return best[1] if best else None


_THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)


def final_part(response: str) -> str:
    """The part of a response after its reasoning block: the text after the last ``</think>``.

    A response without a closing tag is returned unchanged (an unclosed ``<think>`` tag is removed), so a
    truncated reasoning model's reply is still searched for an answer.
    """
    if not response:
        return ""
    parts = _THINK_CLOSE.split(response)
    if len(parts) > 1:
        return parts[-1]
    return re.sub(r"<think(?:ing)?>", "", response, flags=re.IGNORECASE)


def strip_markdown(text: str) -> str:
    """Remove bold/italic/code markers (``**``, ``__``, backticks)."""
    return _MARKDOWN.sub("", text)


def strip_math_delimiters(text: str) -> str:
    """Remove surrounding ``$``/``$$``, ``\\(...\\)``, ``\\[...\\]`` and a trailing period or comma."""
    s = text.strip()
    changed = True
    while changed and s:
        changed = False
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                s = s[len(left):len(s) - len(right)].strip()
                changed = True
        if s.endswith((".", ",", ";")):
            s = s[:-1].rstrip()
            changed = True
    return s


_MARKER_IN_TEXT = re.compile(  # "\text{Answer: }" inside math: the marker as plain text
    r"\\(?:text|textbf|mathrm|mbox|textrm)\s*\{\s*((?:" + "|".join(ANSWER_MARKERS) + r")\s*[:：]?)\s*\}",
    re.IGNORECASE)
_DISPLAY_OPEN = {"\\[": "\\]", "$$": "$$"}


def _unbalanced_tail(rest: str) -> str:
    """Drop a closing math delimiter left over when the marker stood inside the formula
    (``$\\text{Answer: } 5$`` -> ``5``)."""
    s = rest.strip()
    core = s.rstrip(".,; ")
    if core.endswith("$$") and core.count("$$") == 1:
        s = core[:-2].rstrip()
    elif core.endswith("$") and (core.count("$") % 2 == 1) and not core.startswith("$"):
        s = core[:-1].rstrip()
    for left, right in (("\\[", "\\]"), ("\\(", "\\)")):
        if s.endswith(right) and left not in s:
            s = s[:-len(right)].rstrip()
    return s


def _next_lines_answer(tail: str) -> str | None:
    """The answer on the lines after a bare marker: the next non-empty line, or a whole display-math block
    (``\\[`` / ``$$`` alone on a line, up to its closing delimiter) joined into one line."""
    lines = tail.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        close = _DISPLAY_OPEN.get(stripped)
        if close is None:
            return stripped
        body = []
        for later in lines[i + 1:]:
            if later.strip() == close:
                return f"{stripped} {' '.join(body)} {close}" if body else None
            body.append(later.strip())
        return None  # an unclosed display block (truncated)
    return None


def answer_line(text: str) -> str | None:
    """The text after the last explicit final-answer marker, to the end of its line.

    Markers: ``Final answer``, ``The answer is``, ``Answer:`` and its translations (``Ответ:``, ``答案：``,
    ...), optionally in bold, and also inside ``\\text{...}`` within a formula (``$\\text{Answer: } 5$``).
    When nothing follows the marker on its line, the next non-empty line is the answer, or the whole
    display-math block that starts there (``\\[`` ... ``\\]``, ``$$`` ... ``$$``). When a reply repeats its
    answer line (at least twice) and its last line is a cut-off prefix of that line (a reply truncated while
    repeating itself), the complete one is used. Returns the stripped remainder, or ``None`` when no
    marker exists.
    """
    if not text:
        return None
    if "\\" in text and _MARKER_IN_TEXT.search(text):
        text = _MARKER_IN_TEXT.sub(lambda m: " " + m.group(1) + " ", text)
    matches = list(_ANSWER_LINE.finditer(text))
    if not matches:
        return None

    def rest_of(m: re.Match) -> str | None:
        rest = m.group("rest").strip()
        if not strip_markdown(rest).strip(" :*"):
            rest = _next_lines_answer(text[m.end():].lstrip("\n")) or ""
        elif rest in _DISPLAY_OPEN:  # the marker's own whitespace reached a display block's opening line
            rest = _next_lines_answer(text[m.start("rest"):]) or ""
        rest = _unbalanced_tail(strip_markdown(rest).strip().lstrip(":：").strip())
        return rest or None

    last = rest_of(matches[-1])
    if len(matches) > 2 and not text[matches[-1].end():].strip():
        # a reply that repeated its answer line until the token limit cut the last repetition short
        # (possibly right after the marker)
        rests = [rest_of(m) for m in matches[:-1]]
        for earlier in reversed(rests):
            if earlier and earlier != last and earlier.startswith(last or "") and rests.count(earlier) >= 2:
                return earlier
    return last


# --- numbers -------------------------------------------------------------------------------------------

_UNICODE_MINUS = str.maketrans({"−": "-", "–": "-", "—": "-", "\u2009": "", "\u202f": "", "\xa0": " "})

NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<sign>-)?\s?\\?\$?\s?(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:\s?/\s?(?P<den>\d+)(?![\d.]))?(?![\d])"
)
_FRAC_RE = re.compile(r"(?P<sign>-)?\s*\\[dt]?frac\s*\{\s*(?P<a>-?\d+(?:\.\d+)?)\s*\}\s*\{\s*(?P<b>\d+(?:\.\d+)?)\s*\}")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mbox|textrm)\s*\{([^{}]*)\}")


def clean_number_text(text: str) -> str:
    """Prepare text for number search: unwrap ``\\text{}``, drop ``{,}``/``\\,`` separators and ``\\!``."""
    s = text.translate(_UNICODE_MINUS)
    s = _TEXT_WRAP.sub(r" \1 ", s)
    s = s.replace("{,}", ",").replace("\\,", "").replace("\\!", "").replace("\\%", "%").replace("\\$", "$")
    s = s.replace("\\left", "").replace("\\right", "")
    return s


def _to_fraction(sign: str | None, num: str, den: str | None) -> Fraction | None:
    try:
        value = Fraction(num.replace(",", ""))
        if den is not None:
            if int(den) == 0:
                return None
            value /= int(den)
    except (ValueError, ZeroDivisionError):
        return None
    return -value if sign else value


def numbers_in(text: str) -> list[tuple[Fraction, str]]:
    """All numbers in ``text`` in order, as ``(value, canonical text)`` pairs.

    Understands ``1,234`` (thousands separators only in groups of three), ``-5``, ``$5``, ``0.5``, ``.5``,
    ``3/4``, ``\\frac{3}{4}``; a number glued to letters (``x2``, ``3rd``... the digits before letters are
    still read) is read from its digits. Values are exact :class:`fractions.Fraction`.
    """
    if not text:
        return []
    s = clean_number_text(text)
    found: list[tuple[int, Fraction, str]] = []
    spans: list[tuple[int, int]] = []
    for m in _FRAC_RE.finditer(s):
        value = _to_fraction(m.group("sign"), m.group("a"), m.group("b"))
        if value is not None:
            found.append((m.start(), value, format_number(value)))
            spans.append((m.start(), m.end()))
    for m in NUMBER_RE.finditer(s):
        if any(a <= m.start() < b for a, b in spans):
            continue
        value = _to_fraction(m.group("sign"), m.group("num"), m.group("den"))
        if value is not None:
            found.append((m.start(), value, format_number(value)))
    found.sort(key=lambda t: t[0])
    return [(v, t) for _, v, t in found]


def first_number(text: str) -> tuple[Fraction, str] | None:
    """The first number of ``text`` (see :func:`numbers_in`), or ``None``."""
    nums = numbers_in(text)
    return nums[0] if nums else None


def last_number(text: str) -> tuple[Fraction, str] | None:
    """The last number of ``text`` (see :func:`numbers_in`), or ``None``."""
    nums = numbers_in(text)
    return nums[-1] if nums else None


def format_number(value: Fraction) -> str:
    """Canonical text of an exact number: ``18``, ``-2.5``, ``1/3`` (non-terminating decimals as a fraction)."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den == 1:  # terminating decimal
        text = f"{value.numerator / value.denominator!r}"
        if Fraction(text) == value:
            return text
    return f"{value.numerator}/{value.denominator}"


# --- short answers (TriviaQA / SQuAD style) ------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_OFFICIAL_PUNCT = frozenset(string.punctuation) | {"‘", "’", "´", "`"}
_EXTRA_PUNCT = _OFFICIAL_PUNCT | {"“", "”", "«", "»", "–", "—", "‐", "‑", "−", "…"}


def normalize_text(text: str, official: bool = False) -> str:
    """TriviaQA normalisation: lower-case, punctuation to spaces, drop articles (a, an, the), squash spaces.

    Args:
        text: any text (``None`` -> ``""``).
        official: use exactly TriviaQA's punctuation set (ASCII punctuation, three quote marks and the
            backtick); the default also treats Unicode dashes, curly double quotes, guillemets and the ellipsis as punctuation, so
            that ``Modern–era`` and ``Modern-era`` normalise alike.
    """
    if not text:
        return ""
    punct = _OFFICIAL_PUNCT if official else _EXTRA_PUNCT
    s = str(text).lower().replace("_", " ")
    s = "".join(" " if ch in punct else ch for ch in s)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())
