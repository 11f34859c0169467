"""The numeric (GSM8K) and integer (AIME) graders: extraction order, number formats, exact comparison."""

from __future__ import annotations

from fractions import Fraction

import pytest
from capcal.graders import BUILTIN_GRADERS, GraderOptionError


@pytest.fixture(scope="module")
def numeric():
    return BUILTIN_GRADERS["numeric"]()


@pytest.fixture(scope="module")
def integer():
    return BUILTIN_GRADERS["integer"]()


@pytest.mark.parametrize("response, expected", [
    ("She makes 9 * 2 = $18 every day.\nThe answer is 18.", "18"),
    ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
    ("Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nA: 18", "18"),   # GPT-3 style final line
    ("Answer: $1,234.50", "1234.5"),
    ("so the total is \\boxed{\\$1{,}000}.", "1000"),
    ("The answer is \\text{ 42 dollars}.", "42"),
    ("The answer is -5 degrees.", "-5"),
    ("The answer is 3/4", "0.75"),
    ("The answer is \\frac{1}{3}", "1/3"),
    ("She has 5 apples, gives 2 away, and keeps 3 apples.", "3"),   # last number
    ("The final answer is 0.50.", "0.5"),
    ("Answer: 50%", "50"),
    ("The answer is 7.\nWait, 3 + 4 = 7 and 10 more", "7"),   # explicit statement beats a later number
    ("I do not know.", None),
    ("", None),
])
def test_numeric_extract(numeric, response, expected):
    assert numeric.extract(response) == expected


@pytest.mark.parametrize("gold, response, correct", [
    ("Janet sells 16 - 3 - 4 = 9.\n#### 18", "The answer is 18", True),
    ("#### 18", "The answer is 18.00", True),
    ("18", "The answer is 36/2", True),
    ("1,000", "The answer is 1000", True),
    ("#### 1000", "The answer is 10{,}00", False),
    ("#### 18", "The answer is 19", False),
    ("#### 18", "The answer is 18.0001", False),
    ("#### -3", "The answer is 3", False),
    ("#### 0.1", "The answer is 1/10", True),
])
def test_numeric_grade(numeric, gold, response, correct):
    assert numeric.grade(response, {"answer": gold}).correct is correct


def test_numeric_compares_exactly_not_as_floats(numeric):
    # 0.1 + 0.2 style: 0.3 is exactly 3/10; a float-string comparison of 0.30000000000000004 would fail
    assert numeric.normalize("0.30") == Fraction(3, 10) == numeric.normalize("3/10")
    big = "12345678901234567891"
    assert numeric.grade(f"The answer is {big}", {"answer": f"#### {big}"}).correct
    assert not numeric.grade(f"The answer is {big}", {"answer": "#### 12345678901234567890"}).correct


def test_numeric_equivalent_and_normalize(numeric):
    assert numeric.equivalent("18", "18.0") and not numeric.equivalent("18", "19")
    assert not numeric.equivalent("", "18")


@pytest.mark.parametrize("response, expected", [
    ("... so the answer is \\boxed{70}.", "70"),
    ("\\boxed{070}", "70"),
    ("\\boxed{70.0}", "70"),
    ("We find 17_b divides 97_b for b = 21 and 49.\nThe answer is 70.", "70"),
    ("After all that, m + n = 113", "113"),
    ("The sum is 12.5 and then 7", "7"),
    ("It equals 7 or 12.5", "7"),     # a number with a fractional part is never the integer answer
    ("\\boxed{\\frac{1}{2}}", "0.5"),   # a non-integer is extracted (visible) but never correct
    ("No numbers here", None),
])
def test_integer_extract(integer, response, expected):
    assert integer.extract(response) == expected


@pytest.mark.parametrize("gold, response, correct", [
    (70, "\\boxed{70}", True),
    ("70", "The answer is 070", True),
    (70, "\\boxed{71}", False),
    (0, "\\boxed{0}", True),
    (999, "\\boxed{999}", True),
    (5, "\\boxed{1005}", False),
    (5, "\\boxed{\\frac{10}{2}}", True),   # an integer written as a fraction is still the integer 5
    (5, "\\boxed{2.5}", False),
])
def test_integer_grade(integer, gold, response, correct):
    assert integer.grade(response, {"answer": gold}).correct is correct


def test_integer_range_is_enforced():
    wide = BUILTIN_GRADERS["integer"](low=0, high=99999)
    assert wide.grade("\\boxed{1005}", {"answer": 1005}).correct
    assert not BUILTIN_GRADERS["integer"]().grade("\\boxed{1005}", {"answer": 1005}).correct
    with pytest.raises(GraderOptionError):
        BUILTIN_GRADERS["integer"](low=10, high=1)
