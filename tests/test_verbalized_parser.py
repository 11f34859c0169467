"""The verbalized-confidence parser on a corpus of real-looking replies, each with its expected value."""

from __future__ import annotations

import math

import pytest
from capcal.estimators_contrib._verbalized_parse import boxed_contents, parse_confidence, strip_reasoning

# (reply, expected confidence or None)
CORPUS: list[tuple[str, float | None]] = [
    # plain values
    ("0.85", 0.85),
    (".85", 0.85),
    ("0.9\n", 0.9),
    ("1.0", 1.0),
    ("1", 1.0),
    ("0", 0.0),
    ("0.7.", 0.7),
    # percentages
    ("85%", 0.85),
    ("I am about 60 % sure.", 0.6),
    ("Confidence level: 90 percent", 0.9),
    ("100%", 1.0),
    # boxed
    ("\\boxed{0.8}", 0.8),
    ("\\boxed{ 0.8 }", 0.8),
    ("\\boxed{85\\%}", 0.85),
    ("$\\boxed{0.3}$", 0.3),
    ("\\boxed{\\frac{3}{4}}", 0.75),
    ("\\boxed{\\text{0.6}}", 0.6),
    ("The probability that I answer correctly is \\boxed{0.6}.", 0.6),
    ("First guess \\boxed{0.3}, on reflection \\boxed{0.5}", 0.5),
    ("\\boxed{0.4} ... wait, 0.9 is more like it", 0.4),  # a boxed answer outranks bare numbers
    # labelled
    ("P = 0.7", 0.7),
    ("P(correct) = 0.65.", 0.65),
    ("confidence: 7/10", 0.7),
    ("Confidence: 0.4", 0.4),
    ("Confidence: **0.8**", 0.8),
    ("Probability: 0.2\nThis is a hard question about organic chemistry with 3 steps.", 0.2),
    ("The probability is 60%.", 0.6),
    ("Likelihood of being correct: 0.55", 0.55),
    ("8 out of 10", 0.8),
    ("Confidence: 0.9 (I computed 12 + 30 = 42 twice)", 0.9),
    # after reasoning
    ("<think>The question has 2 parts; 0.2 seems low.</think>\n\\boxed{0.9}", 0.9),
    ("<think>hmm, maybe 0.3?</think> I'd say 0.7", 0.7),
    ("<think>\nLet me think. 25 + 17 = 42.\n</think>\n\nConfidence: 0.8", 0.8),
    ("Step 1: the question is arithmetic. Step 2: I am decent at it. I estimate 0.9.", 0.9),
    # unclosed think: the reasoning never finished; only an explicit box counts
    ("<think>I'm fairly sure, maybe 0.8", None),
    ("<think>reasoning ... \\boxed{0.6}", 0.6),
    ("<think>", None),
    # two numbers: the last valid one counts
    ("between 0.6 and 0.8", 0.8),
    ("0.2 or maybe 0.3", 0.3),
    ("Either 0.4 or 1.7", 0.4),
    # out of range
    ("1.5", None),
    ("150%", None),
    ("\\boxed{1.2}", None),
    ("\\boxed{8}", None),
    ("-0.5", None),
    ("Confidence: 8", None),
    ("11/10", None),
    # garbage and empty
    ("", None),
    ("   \n", None),
    ("I don't know.", None),
    ("High confidence!", None),
    ("Step 1: read. Step 2: answer.", None),
    ("The answer is 42.", None),
    ("version 1.2.3", None),
    ("\\boxed{}", None),
    ("\\boxed{0.5", 0.5),  # an unterminated box is skipped, the bare value still reads
]


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 40
    assert sum(v is None for _, v in CORPUS) >= 10


@pytest.mark.parametrize(("reply", "expected"), CORPUS, ids=[repr(r)[:40] for r, _ in CORPUS])
def test_parse_confidence(reply, expected):
    got = parse_confidence(reply)
    if expected is None:
        assert got is None
    else:
        assert got is not None and math.isclose(got, expected, abs_tol=1e-12)


def test_none_input():
    assert parse_confidence(None) is None


def test_boxed_contents_balances_braces():
    assert boxed_contents("a \\boxed{\\frac{1}{2}} b \\boxed{x} \\boxed{open") == ["\\frac{1}{2}", "x"]


def test_strip_reasoning():
    assert strip_reasoning("<think>a</think>b<think>c</think> d") == (" d", True)
    assert strip_reasoning("<think>never closed") == ("<think>never closed", False)
    assert strip_reasoning("plain") == ("plain", True)
