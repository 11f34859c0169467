"""The multiple_choice grader: explicit patterns, never a letter pulled out of an ordinary word."""

from __future__ import annotations

import pytest
from capcal.graders import BUILTIN_GRADERS, GraderOptionError

CHOICES = ["London", "Paris", "Rome", "Oslo"]


@pytest.fixture(scope="module")
def grader():
    return BUILTIN_GRADERS["multiple_choice"](letters="ABCD")


@pytest.mark.parametrize("response, expected", [
    ("\\boxed{C}", "C"),
    ("The answer is $\\boxed{\\text{(B)}}$", "B"),
    ("Answer: \\boxed{D) Oslo}", "D"),
    ("Let me think. The answer is (B).", "B"),
    ("The answer is B because Paris is the capital.", "B"),
    ("Answer: C", "C"),
    ("**Answer:** D", "D"),
    ("Final answer: (A)", "A"),
    ("The correct option is C.", "C"),
    ("So (A) is correct.", "A"),
    ("Option B is the right one.\nAnswer: D", "D"),       # the last explicit statement wins
    ("B) Paris", "B"),
    ("(D)", "D"),
    ("B", "B"),
    ("B.", "B"),
    ("I considered several.\n\nC\n", "C"),
    ("<think>A or B? Answer: A</think>\nAnswer: B", "B"),   # the reasoning block is skipped
    ("Paris", "B"),                                        # the option text itself
    ("Answer: Rome", "C"),
    # never a letter out of an ordinary word or a sentence
    ("A cat is an animal.", None),
    ("I think the capital is nice.", None),
    ("Answer: A cat", None),
    ("A) London\nB) Paris\nC) Rome\nD) Oslo", None),       # restating all options picks nothing
    ("The answer is a bit unclear.", None),
    ("Is it Paris or Rome?", None),
    ("", None),
])
def test_extract(grader, response, expected):
    assert grader.extract(response, CHOICES) == expected


def test_option_text_must_match_exactly_one_choice(grader):
    assert grader.extract("Paris", ["Paris", "Paris", "Rome", "Oslo"]) is None
    assert grader.extract("Paris", None) is None


@pytest.mark.parametrize("answer", ["B", "b", 1, "1", "Paris"])
def test_gold_forms(grader, answer):
    fields = {"answer": answer, "choices": CHOICES}
    assert grader.grade("Answer: B", fields).correct
    assert not grader.grade("Answer: C", fields).correct


def test_grade_uses_choices_for_option_text(grader):
    assert grader.grade("Paris.", {"answer": "B", "choices": CHOICES}).correct
    assert not grader.grade("Rome", {"answer": "B", "choices": CHOICES}).correct


def test_more_letters_and_bad_options():
    ten = BUILTIN_GRADERS["multiple_choice"](letters="ABCDEFGHIJ")
    assert ten.grade("The answer is (J)", {"answer": "J"}).correct
    assert BUILTIN_GRADERS["multiple_choice"]().extract("Answer: E") is None   # not an option of ABCD
    for bad in ("A", "abcd", "AAB", "AB1"):
        with pytest.raises(GraderOptionError):
            BUILTIN_GRADERS["multiple_choice"](letters=bad)


def test_normalize_and_equivalent(grader):
    assert grader.normalize(" (b). ") == "B"
    assert grader.equivalent("B", "(B)") and not grader.equivalent("B", "C")
