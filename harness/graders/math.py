"""The ``math`` grader (MATH-500): LaTeX answers compared by symbolic equivalence (math-verify).

Extraction, first rule that finds something wins:
    1. the last ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces handled);
    2. the text after the last final-answer marker: ``Final answer:``, ``The answer is``, ``Answer:``,
       and translated markers (``Ответ:``, ``Respuesta:``, ``答案：``, ...); when prose surrounds formulas
       on that line, its last inline formula;
    3. the last inline formula (``$...$``, ``\\(...\\)``, ``\\[...\\]``) of the last non-empty line;
    4. a plain-prose ending with no marker: the last sentence ends in "is N" / "equals N" / "are N" / "of N"
       with a number N (``Therefore, the difference between them is 4.``);
    5. a reply that is a single short line (at most 80 characters) is the answer itself.
Math delimiters, a trailing period and bold markers are removed from what is extracted. From an answer line
(rule 2) a remark in parentheses (``(without quotes)``) and unit words after a formula (``21 square
centimeters``) are dropped; an answer on the line after a bare marker, or in a display block there, is found. A reply with an
opened but unclosed box (truncated) and no answer line is unparseable. Every grader reads only the text
after the last ``</think>`` of a reasoning model's reply.

Equivalence (:meth:`MathGrader.equivalent`), after a clean-up shared by both sides (Unicode ``π``, ``√``,
``×``, ``−``; ``10{,}000`` -> ``10000``; ``^\\circ``, ``°``, ``\\%``, ``\\$`` dropped; base subscripts
``2516_8`` -> ``2516``; ``\\dfrac``/``\\tfrac`` -> ``\\frac``):
    * equal normalised strings (spaces, ``\\left``/``\\right``, ``\\text{}`` wrappers removed) match;
    * clock times (``4:30 \\text{ p.m.}``) are compared as text only, never as the ratio 4/30;
    * otherwise both sides go to ``math_verify.parse`` wrapped in ``$...$`` and ``math_verify.verify``
      decides (unordered sets, intervals, unreduced fractions, ``\\pm`` against the two roots written out,
      matrices). An equation is never reduced to the text after its last ``=``: ``2x-y+z=0`` and
      ``x+y-z=0`` differ.
Parsed answers are cached (gold answers repeat across the k samples of a question). math-verify's own
timeouts use ``SIGALRM``, which exists only in the main thread; elsewhere the grader skips the alarm and
instead refuses to parse inputs longer than ``max_parse_chars`` (falling back to string comparison).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from ._base import Grader, GraderOptionError, gold_text
from ._normalize import answer_line, final_part, last_boxed, strip_markdown, strip_math_delimiters

_UNICODE = {
    "π": "\\pi ", "√": "\\sqrt ", "×": "\\times ", "·": "\\cdot ", "−": "-", "–": "-", "∞": "\\infty ",
    "≤": "\\le ", "≥": "\\ge ", "≠": "\\ne ", "°": "^\\circ", "\u2009": " ", "\xa0": " ", "∪": "\\cup ",
}
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree")
_BASE_SUB = re.compile(r"(?<=\d)_\{?\s*\d+\s*\}?")
_GROUP_COMMA = re.compile(r"(?<=\d)\{,\}(?=\d)")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|mathbf|textit)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad|\\displaystyle|\\left|\\right|\s+")
_CLOCK = re.compile(r"\d{1,2}\s*:\s*\d{2}")
_INLINE_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)


def clean_math(answer: str) -> str:
    """The shared clean-up of an extracted answer before comparison (see the module docstring)."""
    s = strip_math_delimiters(strip_markdown(str(answer)))
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group(0)], s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _GROUP_COMMA.sub("", s)
    s = _DEGREE.sub("", s)
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "")
    s = re.sub(r"\s*\\text\{\s*\}", "", s)
    s = _BASE_SUB.sub("", s)
    s = s.strip()
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    return strip_math_delimiters(s)


def string_key(cleaned: str) -> str:
    """A whitespace- and wrapper-free form of a cleaned answer, for exact string comparison."""
    s = _TEXT_WRAP.sub(r"\1", cleaned)
    s = _SPACING.sub("", s)
    s = s.replace("{}", "")
    return s


def _plain_words(key: str) -> bool:
    return len(key) > 1 and bool(re.fullmatch(r"[A-Za-z][A-Za-z'\-]*", key))


_REMARK = re.compile(r"\s*\((?:[A-Za-z][A-Za-z' ,;\-]*)\)\s*\.?$")
_WORD_TAIL = re.compile(r"^(?P<head>.*?\S)\s+(?P<tail>[A-Za-z]{2,}(?:[\s\-]+[A-Za-z]{2,})*)\s*[.!]?$")
_PROSE_END = re.compile(
    r"(?:^|[\s,])(?:is|are|equals|equal\s+to|was|be|of|makes|gives)\s+"
    r"(?P<ans>-?\\?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?\s?\\?%?)"
    r"(?:\s+[A-Za-z]{2,}(?:\s+[A-Za-z]{2,}){0,3})?\s*[.!]?\s*$")


def drop_remarks(answer: str) -> str:
    """An answer line without what follows the answer itself: a trailing remark in parentheses made of
    words only (``-\\frac{\\pi}{6} (without quotes)``) and unit or prose words after a formula that holds
    a digit or a LaTeX command (``21 square centimeters`` -> ``21``). Answers that are words (``Evelyn``,
    ``all real numbers``) and tails with digits or LaTeX (``4:30 \\text{ p.m.}``, ``2 and 3``) are kept."""
    s = _REMARK.sub("", answer).strip()
    m = _WORD_TAIL.match(s)
    if m and re.search(r"[\d\\]", m.group("head")) and not re.search(r"[A-Za-z]{2,}\s*$", m.group("head")):
        return m.group("head").strip()
    return s or answer


def prose_ending(line: str) -> str | None:
    """The number that ends a plain-prose conclusion ("Therefore, the difference is 4."), or ``None``.

    Only the last sentence of the line counts, and only when it ends with "is / are / equals / of N"
    (optionally followed by up to four unit words): a number in the middle of a sentence is never taken.
    """
    sentences = [p for p in re.split(r"(?<=[.!?])\s+(?=[A-Z])", line.strip()) if p.strip()]
    if not sentences:
        return None
    m = _PROSE_END.search(sentences[-1])
    return m.group("ans").strip() if m else None


def _formula_of(line: str) -> str:
    """An answer line's formula: the line itself, or its last inline formula when prose surrounds it
    ("The value of $x$ is $5$." -> ``5``)."""
    found = _INLINE_MATH.findall(line)
    if not found:
        return line
    outside = _INLINE_MATH.sub(" ", line)
    if re.search(r"[A-Za-zА-Яа-я]{2,}", outside):
        return next(g for g in found[-1] if g)
    return line


class MathGrader(Grader):
    """Grades LaTeX answers by equivalence. See the module docstring for the rules.

    Args:
        timeout_seconds: math-verify's per-call timeout in whole seconds (main thread only; default 5).
        max_parse_chars: answers longer than this are compared as strings only (default 400).
        use_math_verify: ``False`` compares cleaned strings only (fast, strict).
    """

    name = "math"

    def __init__(self, timeout_seconds: int = 5, max_parse_chars: int = 400, use_math_verify: bool = True):
        if int(timeout_seconds) < 1 or int(max_parse_chars) < 1:
            raise GraderOptionError("math grader: timeout_seconds and max_parse_chars must be >= 1")
        self.timeout_seconds = int(timeout_seconds)
        self.max_parse_chars = int(max_parse_chars)
        self.use_math_verify = bool(use_math_verify)
        self._parse = lru_cache(maxsize=65536)(self._parse_uncached)
        self._verify_cache: dict[tuple[str, str], bool] = {}

    # -- extraction -----------------------------------------------------------------------------------
    def extract(self, response: str) -> str | None:
        """The final answer of ``response`` as LaTeX text (delimiters removed), or ``None``."""
        text = final_part(response)
        if not text.strip():
            return None
        candidate = last_boxed(text)
        if candidate is None:
            candidate = answer_line(text)
            if candidate is not None:
                candidate = drop_remarks(_formula_of(drop_remarks(candidate)))
        if candidate is None and ("\\boxed" in text or "\\fbox" in text):
            return None  # a box was opened but never closed (a truncated reply)
        if candidate is None:
            lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
            found = _INLINE_MATH.findall(lines[-1]) if lines else []
            if found:
                candidate = next(g for g in found[-1] if g)
            elif lines and (prose := prose_ending(strip_markdown(lines[-1]))) is not None:
                candidate = prose
            elif len(lines) == 1 and len(lines[0]) <= 80:
                candidate = lines[0]
        if candidate is None:
            return None
        candidate = strip_math_delimiters(strip_markdown(candidate))
        boxed = last_boxed(candidate)  # "Answer: $\boxed{5}$" after a marker
        return strip_math_delimiters(boxed) if boxed is not None else candidate

    # -- comparison -----------------------------------------------------------------------------------
    def _in_main_thread(self) -> bool:
        return threading.current_thread() is threading.main_thread()

    def _parse_uncached(self, cleaned: str, with_alarm: bool):
        from math_verify import parse

        if not cleaned or (not with_alarm and len(cleaned) > self.max_parse_chars):
            return None
        try:
            parsed = parse(f"${cleaned}$", parsing_timeout=self.timeout_seconds if with_alarm else None)
        except Exception:  # noqa: BLE001 - an unparseable answer is compared as a string instead
            return None
        return parsed or None

    def _verify(self, gold: str, pred: str) -> bool:
        key = (gold, pred)
        if key in self._verify_cache:
            return self._verify_cache[key]
        from math_verify import verify

        with_alarm = self._in_main_thread()
        pg, pp = self._parse(gold, with_alarm), self._parse(pred, with_alarm)
        result = False
        if pg is not None and pp is not None:
            try:
                result = bool(verify(pg, pp, timeout_seconds=self.timeout_seconds if with_alarm else None))
            except Exception:  # noqa: BLE001 - math-verify failures count as "not shown equal"
                result = False
        if len(self._verify_cache) > 200_000:
            self._verify_cache.clear()
        self._verify_cache[key] = result
        return result

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two answers are equal (``a`` is treated as the reference when the check is asymmetric)."""
        if a is None or b is None:
            return False
        ca, cb = clean_math(a), clean_math(b)
        ka, kb = string_key(ca), string_key(cb)
        if not ka or not kb:
            return False
        if ka == kb:
            return True
        if _plain_words(ka) and _plain_words(kb):
            return ka.lower() == kb.lower()
        if _CLOCK.search(ka) or _CLOCK.search(kb):
            strip = re.compile(r"[.\s]")
            return strip.sub("", ka).lower() == strip.sub("", kb).lower()
        if not self.use_math_verify:
            return False
        return self._verify(ca, cb)

    def normalize(self, extracted: str) -> str:
        """A canonical text for clustering: the cleaned string key, or the parsed value when it is a number."""
        cleaned = clean_math(extracted)
        if self.use_math_verify:
            parsed = self._parse(cleaned, self._in_main_thread())
            if parsed:
                value = parsed[0]
                if getattr(value, "is_number", False) and getattr(value, "is_Rational", False):
                    return str(value)
        return string_key(cleaned)

    def check(self, extracted: str, fields: dict) -> bool:
        gold = gold_text(fields)
        return bool(gold) and self.equivalent(gold, extracted)
