"""The short_answer grader: TriviaQA normalisation, every alias, no credit for empty or one-letter hits."""

from __future__ import annotations

import pytest
from capcal.graders import BUILTIN_GRADERS
from capcal.graders._normalize import normalize_text

FIELDS = {"answer": "Sunset Blvd", "aliases": ["Sunset Blvd", "West Sunset Boulevard", "Sunset Boulevard"]}


@pytest.fixture(scope="module")
def grader():
    return BUILTIN_GRADERS["short_answer"]()


@pytest.mark.parametrize("text, expected", [
    ("The Beatles!", "beatles"),
    ("  An   Apple a day ", "apple day"),
    ("Rock_and_roll", "rock and roll"),
    ("O'Neill", "o neill"),
    ("Modern–era Japan", "modern era japan"),
    ("", ""),
])
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.parametrize("response, expected", [
    ("Answer: Sunset Boulevard", "Sunset Boulevard"),
    ("A: Sunset Boulevard.", "Sunset Boulevard"),
    ("Sunset Boulevard\nIt premiered in 1993.", "Sunset Boulevard"),
    ("I think it is this.\nFinal answer: **Sunset Boulevard**", "Sunset Boulevard"),
    ("\\boxed{\\text{Sunset Boulevard}}", "Sunset Boulevard"),
    ('Answer: "Sunset Boulevard".', "Sunset Boulevard"),
    ("   \n  ", None),
    ("", None),
])
def test_extract(grader, response, expected):
    assert grader.extract(response) == expected


@pytest.mark.parametrize("response, correct", [
    ("Answer: Sunset Boulevard", True),
    ("Answer: sunset blvd.", True),
    ("Answer: West Sunset Boulevard", True),           # any alias
    ("Answer: The Sunset Boulevard", True),            # articles dropped
    ("Answer: Sunset Boulevard (musical)", True),      # alias inside a short answer
    ("Answer: Cats", False),
    ("Answer: Sunset", False),                         # part of an alias is not an alias
    ("Answer:", False),                                # empty prediction
    ("", False),
])
def test_grade(grader, response, correct):
    assert grader.grade(response, FIELDS).correct is correct


def test_one_letter_alias_is_not_matched_as_a_substring(grader):
    fields = {"answer": "A", "aliases": ["A"]}
    assert grader.grade("Answer: A", fields).correct
    assert not grader.grade("Answer: Vitamin C and a bit of A", fields).correct
    assert not grader.grade("Answer: Alpha", fields).correct


def test_long_ramble_is_not_credited_by_containment(grader):
    ramble = "Answer: it could be Cats or Evita or Sunset Boulevard or Starlight Express or Phantom of the Opera"
    assert not grader.grade(ramble, FIELDS).correct
    assert BUILTIN_GRADERS["short_answer"](max_prediction_words=40).grade(ramble, FIELDS).correct


def test_simpleqa_answer_without_aliases(grader):
    fields = {"answer": "Michio Sugeno", "aliases": ["Michio Sugeno"]}
    assert grader.grade("Answer: Michio Sugeno", fields).correct
    assert grader.grade("Answer: michio sugeno.", {"answer": "Michio Sugeno"}).correct   # no aliases key
    assert not grader.grade("Answer: Lotfi Zadeh", fields).correct


def test_punctuation_only_alias(grader):
    fields = {"answer": "+-*/", "aliases": ["+-*/", "Arithmetic"]}
    assert grader.grade("Answer: +-*/", fields).correct
    assert not grader.grade("Answer: ?!", fields).correct


def test_equivalent_and_normalize(grader):
    assert grader.equivalent("The Beatles", "beatles") and not grader.equivalent("Beatles", "Stones")
    assert grader.normalize("Sunset Blvd.") == "sunset blvd"
