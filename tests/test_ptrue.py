"""P(True) on hand-built logprob lists: variants summed, missing tokens NaN, reasoning skipped."""

from __future__ import annotations

import math

import pytest
from capcal.estimators_contrib.ptrue import (
    first_answer_position,
    ptrue_from_top_logprobs,
    token_vote,
    yes_no_mass,
)

L = math.log


def test_variants_are_summed():
    dist = {"Yes": L(0.2), " Yes": L(0.1), "yes": L(0.05), "YES": L(0.05), "No": L(0.3), " no": L(0.1),
            "The": L(0.15)}
    yes, no = yes_no_mass(dist)
    assert yes == pytest.approx(0.4, abs=1e-12)
    assert no == pytest.approx(0.4, abs=1e-12)
    p, why = ptrue_from_top_logprobs([dist])
    assert why is None and p == pytest.approx(0.5, abs=1e-12)


def test_only_canonical_yes_would_be_wrong():
    # the defect of the official code: reading only "Yes"/"No" gives 0.2 / 0.5 = 0.4 here, not 0.6
    dist = {"Yes": L(0.2), " yes": L(0.4), "No": L(0.3), " No": L(0.1)}
    p, _ = ptrue_from_top_logprobs([dist])
    assert p == pytest.approx(0.6 / 1.0, abs=1e-12)


def test_tokenizer_space_markers_and_punctuation():
    assert token_vote("\u0120Yes") == "yes"  # GPT-2 style BPE space
    assert token_vote("\u2581no") == "no"  # SentencePiece space
    assert token_vote("Yes.") == "yes"
    assert token_vote("\nNO") == "no"
    for other in ("Yesterday", "Y", "Nope", "Not", "None", "The", "", "yess"):
        assert token_vote(other) is None


def test_missing_tokens_give_nan():
    p, why = ptrue_from_top_logprobs([{"The": L(0.5), "Maybe": L(0.3)}])
    assert math.isnan(p) and "neither" in why
    p, why = ptrue_from_top_logprobs([])
    assert math.isnan(p) and "no logprobs" in why
    p, why = ptrue_from_top_logprobs(None)
    assert math.isnan(p)


def test_only_yes_gives_one_and_only_no_gives_zero():
    assert ptrue_from_top_logprobs([{" Yes": L(0.3), "Sure": L(0.6)}])[0] == 1.0
    assert ptrue_from_top_logprobs([{"no": L(0.01), "Sure": L(0.6)}])[0] == 0.0


def test_reasoning_part_is_skipped():
    tokens = ["<think>", "Yes", " it", " is", "</think>", "\n\n", "No"]
    top = [{"<think>": 0.0}, {"Yes": L(0.9), "No": L(0.1)}, {" it": 0.0}, {" is": 0.0}, {"</think>": 0.0},
           {"\n\n": L(0.99)}, {"No": L(0.6), "Yes": L(0.2), " yes": L(0.1)}]
    p, why = ptrue_from_top_logprobs(top, tokens)
    assert why is None
    assert p == pytest.approx(0.3 / 0.9, abs=1e-12)
    assert first_answer_position(tokens, len(top)) == (6, None)


def test_close_tag_split_over_tokens():
    tokens = ["<", "think", ">", "hm", "</", "think", ">", " Yes"]
    top = [{t: 0.0} for t in tokens[:-1]] + [{" Yes": L(0.7), " No": L(0.1)}]
    p, _ = ptrue_from_top_logprobs(top, tokens)
    assert p == pytest.approx(0.875, abs=1e-12)


def test_unfinished_reasoning_is_nan():
    tokens = ["<think>", "Yes", " because"]
    top = [{"<think>": 0.0}, {"Yes": L(0.9)}, {" because": 0.0}]
    p, why = ptrue_from_top_logprobs(top, tokens)
    assert math.isnan(p) and "reasoning did not finish" in why


def test_no_answer_after_reasoning_is_nan():
    tokens = ["<think>", "x", "</think>", " "]
    top = [{t: 0.0} for t in tokens]
    p, why = ptrue_from_top_logprobs(top, tokens)
    assert math.isnan(p) and "no answer token" in why


def test_leading_whitespace_tokens_skipped_without_reasoning():
    tokens = ["\n", " ", "Yes"]
    top = [{"\n": L(0.5), "Yes": L(0.5)}, {" ": 0.0}, {"Yes": L(0.25), "no": L(0.75)}]
    assert ptrue_from_top_logprobs(top, tokens)[0] == pytest.approx(0.25, abs=1e-12)
