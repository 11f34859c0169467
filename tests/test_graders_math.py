"""The math grader on the failure modes listed in BASELINES.md section 2, extraction and equivalence."""

from __future__ import annotations

import threading

import pytest
from capcal.graders import BUILTIN_GRADERS, MathGrader
from math_verify import parse, verify


@pytest.fixture(scope="module")
def grader() -> MathGrader:
    return BUILTIN_GRADERS["math"]()


@pytest.mark.parametrize("gold, pred", [
    ("10{,}000", "10000"),
    ("10000", "10,000"),
    ("-2,1", "1,-2"),                    # unordered answer sets
    ("\\{1,2,3\\}", "\\{3,1,2\\}"),
    ("25\\%", "25"),
    ("25", "25\\%"),
    ("30^\\circ", "30"),
    ("30", "30^{\\circ}"),
    ("2516_8", "2516"),                  # base subscripts
    ("2516_{8}", "2516"),
    ("\\frac{5}{13}", "\\frac{65}{169}"),  # unreduced but equal fractions
    ("\\frac{5}{13}", "65/169"),
    ("3 \\pm 2\\sqrt{2}", "3+2\\sqrt{2}, 3-2\\sqrt{2}"),
    ("2\\pi", "2π"),                     # Unicode pi
    ("\\frac{\\pi}{3}", "π/3"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)"),
    ("4:30 \\text{ p.m.}", "4:30 p.m."),
    ("\\text{Evelyn}", "Evelyn"),
    ("\\text{(C)}", "C"),
    ("\\frac{1}{2}", "0.5"),
    ("\\dfrac{1}{2}", "\\tfrac12"),
    ("\\$18.90", "18.90"),
    ("[-2, 7]", "[-2,7]"),
    ("11\\sqrt2", "11\\sqrt{2}"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
    ("x^2+2x+1", "(x+1)^2"),
])
def test_equivalent(grader, gold, pred):
    assert grader.equivalent(gold, pred)
    assert grader.grade(f"Thus the answer is $\\boxed{{{pred}}}$.", {"answer": gold}).correct


@pytest.mark.parametrize("gold, pred", [
    ("4:30 \\text{ p.m.}", "4/30"),      # a clock time is not the ratio 4/30
    ("4:30 \\text{ p.m.}", "\\frac{2}{15}"),
    ("-2,1", "-2.1"),                    # a set is not a decimal
    ("2x - y + z = 0", "x + y - z = 0"),  # not "the text after the last ="
    ("2517_8", "2516"),
    ("\\frac{5}{13}", "\\frac{5}{14}"),
    ("3 \\pm 2\\sqrt{2}", "3+2\\sqrt{2}"),
    ("\\text{Evelyn}", "Claire"),
    ("(-1, 6)", "6"),
    ("10{,}000", "1000"),
])
def test_not_equivalent(grader, gold, pred):
    assert not grader.equivalent(gold, pred)
    assert not grader.grade(f"$\\boxed{{{pred}}}$", {"answer": gold}).correct


@pytest.mark.parametrize("response, expected", [
    ("We get $x=2$ first, then \\boxed{\\frac{\\sqrt{3}}{2}}.", "\\frac{\\sqrt{3}}{2}"),
    ("First \\boxed{1} then revised: \\boxed{\\left\\{ 1, 2 \\right\\}}", "\\left\\{ 1, 2 \\right\\}"),
    ("so it is \\fbox{7}.", "7"),
    ("The area is 12.\nAnswer: (-1, 6)", "(-1, 6)"),   # an answer line, not an earlier number
    ("From x = 3 we see y.\nAnswer: E", "E"),
    ("**Final Answer:** $\\frac{1}{2}$", "\\frac{1}{2}"),
    ("Final answer: $y = 2x + 3$.", "y = 2x + 3"),
    ("Итак.\nОтвет: $\\frac{3}{4}$", "\\frac{3}{4}"),
    ("Thus, the answer is $\\frac{\\pi}{4}$.", "\\frac{\\pi}{4}"),
    ("Answer: $\\boxed{5}$", "5"),
    ("42", "42"),
    ("A long derivation.\nSo we conclude that the value is $\\sqrt{5}$.", "\\sqrt{5}"),
    ("Answer: The value of $x$ is $5$.", "5"),            # prose around the formula on the answer line
    ("<think>maybe \\boxed{3}</think>The answer is $\\boxed{4}$", "4"),   # only after the reasoning
    ("<think>unfinished reasoning, \\boxed{3}", "3"),
    ("", None),
    ("Long reasoning with no final answer\nand a second line of prose.", None),
    ("unclosed \\boxed{12", None),
])
def test_extract(grader, response, expected):
    assert grader.extract(response) == expected


def test_answer_line_beats_earlier_numbers(grader):
    raw = "Let the roots be r and s. Then r + s = 5 and rs = 6.\nAnswer: (-1, 6)"
    assert grader.grade(raw, {"answer": "(-1,6)"}).correct
    assert not grader.grade(raw, {"answer": "6"}).correct


def test_empty_or_missing_answer_is_never_correct(grader):
    assert grader.grade("\\boxed{}", {"answer": ""}) .correct is False
    result = grader.grade("nothing here\nat all", {"answer": "5"})
    assert result.extracted is None and result.correct is False
    assert grader.grade(None, {"answer": "5"}).correct is False


def test_agrees_with_plain_math_verify_on_ordinary_cases(grader):
    """On clean inputs the grader gives math-verify's own verdict (wrapped in $...$)."""
    pairs = [("\\frac{1}{3}", "0.3333"), ("\\sqrt{8}", "2\\sqrt{2}"), ("\\frac{7}{2}", "3.5"), ("2^{10}", "1024"),
             ("\\infty", "\\infty"), ("x+1", "1+x"), ("5", "6")]
    for gold, pred in pairs:
        expected = verify(parse(f"${gold}$"), parse(f"${pred}$"))
        assert grader.equivalent(gold, pred) == expected, (gold, pred)


def test_normalize_clusters_equal_answers(grader):
    assert grader.normalize("\\frac{65}{169}") == grader.normalize("\\frac{5}{13}") == grader.normalize("5/13")
    assert grader.normalize("10{,}000") == grader.normalize("10000")
    assert grader.normalize("3") != grader.normalize("4")


def test_works_outside_the_main_thread(grader):
    """math-verify's alarm-based timeout needs the main thread; the grader must still work in a worker."""
    out = {}

    def work():
        fresh = MathGrader()
        out["eq"] = fresh.equivalent("\\frac{65}{169}", "\\frac{5}{13}")
        out["neq"] = fresh.equivalent("2x - y + z = 0", "x + y - z = 0")
        out["long"] = fresh.equivalent("x+" * 300 + "1", "y")   # over max_parse_chars: string comparison only

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert out == {"eq": True, "neq": False, "long": False}


def test_string_only_mode():
    strict = MathGrader(use_math_verify=False)
    assert strict.equivalent("10{,}000", "10000") and strict.equivalent("\\dfrac{1}{2}", "\\frac{1}{2}")
    assert not strict.equivalent("\\frac{65}{169}", "\\frac{5}{13}")
