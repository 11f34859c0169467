"""Answer formats the graders used to miss (issue 11), each with realistic cases and negative cases beside them.

Classes: a closing sentence ending in a bare option letter; the answer on the line after a marker, in
display math; a marker inside ``\\text{Answer: }``; units or remarks after the answer; a reply that repeats its
answer line until it is cut off; plain-prose endings with no marker at all.
"""

from __future__ import annotations

import pytest
from capcal.graders import BUILTIN_GRADERS

CHOICES = ["London", "Paris", "Rome", "Oslo"]


@pytest.fixture(scope="module")
def mc():
    return BUILTIN_GRADERS["multiple_choice"]()


@pytest.fixture(scope="module")
def math():
    return BUILTIN_GRADERS["math"]()


@pytest.fixture(scope="module")
def numeric():
    return BUILTIN_GRADERS["numeric"]()


# -- multiple choice: a closing sentence ending in a bare option letter ---------------------------------------
@pytest.mark.parametrize("response, expected", [
    ("London is in England and Rome in Italy. After considering each option, B.", "B"),
    ("Oslo is the capital of Norway, so that one is out.\nI would go with C.", "C"),
    ("Options A and D can be ruled out immediately. So it must be (D).", "D"),
    ("The other three are capitals of other countries. Hence, B", "B"),
    ("Weighing the evidence for each choice, the best fit: A.", "A"),
    ("Eliminating the rest, I pick B!", "B"),
])
def test_closing_sentence_letter(mc, response, expected):
    assert mc.extract(response, CHOICES) == expected
    assert mc.grade(response, {"answer": expected, "choices": CHOICES}).correct


@pytest.mark.parametrize("response", [
    "After considering each option, B or C.",                 # two letters: undecided
    "It is either A, B.",
    "This is plan B.",                                        # a letter after an ordinary word
    "Oranges are rich in vitamin C.",
    "After considering each option, Bananas.",                # a letter inside a word
    "Which one is A?",                                        # a question, not a choice
    "B is wrong because Paris is in France, and then we continue to check the others",
])
def test_closing_sentence_negatives(mc, response):
    assert mc.extract(response, CHOICES) is None


# -- math: the answer on the line after a marker, in display math --------------------------------------------
@pytest.mark.parametrize("response, expected, gold", [
    ("The side is $2\\sqrt2$, so the area is 8.\n\n**Answer:**\n\\[ 8 \\]", "8", "8"),
    ("Summing the series gives three.\nFinal Answer:\n$$ 3 $$", "3", "3"),
    ("Work done above.\nFinal Answer:\n$$\n\\frac{3}{4}\n$$", "\\frac{3}{4}", "\\frac34"),
    ("**Final Answer**\n\n$$\n\\boxed{12}\n$$", "12", "12"),
    ("Solving the system:\nAnswer:\n\\[\nx = 2\n\\]", "x = 2", "2"),
    ("We find the roots.\n**Answer:**\n\n\\[ (-1, 6) \\]", "(-1, 6)", "(-1,6)"),
])
def test_display_math_after_marker(math, response, expected, gold):
    assert math.extract(response) == expected
    assert math.grade(response, {"answer": gold}).correct


def test_display_math_negatives(math):
    # an opened display block that the token limit cut off is not an answer
    assert math.extract("Computing.\nAnswer:\n\\[\n8") is None
    # a display formula in the middle is not taken when the marker's line has its own answer
    assert math.extract("\\[ x + 1 = 9 \\]\nAnswer: 7") == "7"
    assert not math.grade("Computing.\nFinal Answer:\n$$ 3 $$", {"answer": "4"}).correct


# -- math: a marker inside \text{Answer: } ---------------------------------------------------------------------
@pytest.mark.parametrize("response, expected", [
    ("So we get $\\text{Answer: } 5$", "5"),
    ("Therefore \\(\\text{Final Answer: } \\frac{1}{2}\\)", "\\frac{1}{2}"),
    ("$$\\text{Answer: } x = -3$$", "x = -3"),
    ("$\\textbf{Answer:} 42$", "42"),
    ("Thus, $\\text{Answer: }\\sqrt{7}$.", "\\sqrt{7}"),
])
def test_marker_inside_text(math, response, expected):
    assert math.extract(response) == expected


def test_marker_inside_text_negatives(math):
    # \text{} holding other words is not a marker
    assert math.extract("We use $\\text{area} = 5$ and more prose\nthat ends without an answer.") is None
    assert not math.grade("So we get $\\text{Answer: } 5$", {"answer": "6"}).correct


# -- math: units or remarks after the answer -------------------------------------------------------------------
@pytest.mark.parametrize("response, expected, gold", [
    ("The rectangle is 3 by 7.\nAnswer: 21 square centimeters", "21", "21"),
    ("Answer: -\\frac{\\pi}{6} (without quotes)", "-\\frac{\\pi}{6}", "-\\frac{\\pi}{6}"),
    ("Answer: 12 inches.", "12", "12"),
    ("Answer: \\frac{\\pi}{3} radians", "\\frac{\\pi}{3}", "\\frac{\\pi}{3}"),
    ("Final answer: 5 (in simplest form)", "5", "5"),
    ("Answer: (3, 4) is the point", "(3, 4)", "(3,4)"),
])
def test_units_and_remarks(math, response, expected, gold):
    assert math.extract(response) == expected
    assert math.grade(response, {"answer": gold}).correct


@pytest.mark.parametrize("response, expected", [
    ("Answer: Evelyn", "Evelyn"),                        # a word answer keeps its words
    ("Answer: all real numbers", "all real numbers"),
    ("Answer: 4:30 \\text{ p.m.}", "4:30 \\text{ p.m.}"),  # LaTeX in the tail is kept
    ("Answer: 2 and 3", "2 and 3"),                      # a number in the tail is kept
    ("Answer: \\log ab", "\\log ab"),
])
def test_units_and_remarks_negatives(math, response, expected):
    assert math.extract(response) == expected


# -- math: a reply repeating its answer line until cut off --------------------------------------------------
@pytest.mark.parametrize("response, expected", [
    ("Answer: \\frac{3}{4}\nAnswer: \\frac{3}{4}\nAnswer: \\frac{3}{4}\nAnswer: \\frac{3", "\\frac{3}{4}"),
    ("Answer: 144\nAnswer: 144\nAnswer: 1", "144"),
    ("Final answer: (2, 5)\nFinal answer: (2, 5)\nFinal answer: (2,", "(2, 5)"),
    ("Answer: x^2 + 1\nAnswer: x^2 + 1\nAnswer: x^2 + 1\nAnswer: x^", "x^2 + 1"),
    ("So.\nAnswer: 9\nAnswer: 9\nAnswer: 9\nAnswer: 9\nAnswer: ", "9"),
])
def test_repeated_answer_line_cut_off(math, response, expected):
    assert math.extract(response) == expected


@pytest.mark.parametrize("response, expected", [
    ("Answer: 12\nWait, let me recheck the sum.\nAnswer: 1", "1"),      # a revision, not a repetition
    ("Answer: 144\nAnswer: 14", "14"),                                   # said once only before: not a loop
    ("Answer: 144\nAnswer: 144\nAnswer: 1\nso that is it.", "1"),        # the reply went on: not cut off
])
def test_repeated_answer_line_negatives(math, response, expected):
    assert math.extract(response) == expected


# -- plain-prose endings without a marker ----------------------------------------------------------------------
@pytest.mark.parametrize("response, expected", [
    ("The largest is 9 and the smallest is 5.\nTherefore, the difference between them is 4.", "4"),
    ("Each box holds 6, and there are 2 boxes. So the total number of apples is 12 apples.", "12"),
    ("Adding the two parts gives the whole.\nThus the sum equals 150.", "150"),
    ("We subtract the discount. In conclusion, the final price is \\$18.90.", "\\$18.90"),
    ("Both conditions hold only once.\nHence the number of solutions is 1.", "1"),
])
def test_prose_endings(math, numeric, response, expected):
    assert math.extract(response) == expected
    gold = expected.replace("\\$", "")
    assert math.grade(response, {"answer": gold}).correct
    assert numeric.grade(response, {"answer": f"#### {gold}"}).correct


@pytest.mark.parametrize("response", [
    "Therefore, the difference is 4 more than before, so we continue with the next step.",   # mid-sentence
    "The largest is 9 and the smallest is 5.\nWe still need to check the remaining cases carefully.",
    "First 12 + 6 = 18, so the",                                           # a truncated half sentence
    "There are 3 cases.\nThe first case is when x is positive.",
])
def test_prose_endings_negatives(math, response):
    assert math.grade(response, {"answer": "4"}).extracted != "4"
    assert not math.grade(response, {"answer": "4"}).correct
