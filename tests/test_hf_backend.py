"""The local transformers backend on the real embedded model (tiny prompts, <= 16 new tokens)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from capcal.models import GenerationRequest, SamplingParams
from capcal.models.hf_backend import SeededSampler, split_reasoning
from model_fixtures import embedded_backend_fixture  # noqa: F401 - session fixture "embedded_backend"
from scipy import stats

pytestmark = pytest.mark.model

CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer in one short line."}]
PLANET = [{"role": "user", "content": "Name the largest planet of the solar system."}]
MATH = [{"role": "system", "content": "You are a careful tutor."},
        {"role": "user", "content": "Natalia sold clips to 48 of her friends in April, and then she sold half as "
                                    "many clips in May. How many clips did Natalia sell altogether?"}]


def collect(backend, requests):
    got: list[tuple[str, object]] = []
    calls: list[int] = []
    progressed: list[int] = []

    def on_result(pairs):
        calls.append(len(pairs))
        got.extend(pairs)

    backend.generate(requests, on_result, progressed.append)
    return dict(got), calls, progressed


# -- pure parts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("plain answer", (None, "plain answer")),
    ("<think>step 1\nstep 2</think>\nThe answer is 4", ("step 1\nstep 2", "The answer is 4")),
    ("<think>never closed, still thinking", ("never closed, still thinking", "")),
    ("reasoning opened by the template</think> 42", ("reasoning opened by the template", "42")),
])
def test_split_reasoning(text, expected):
    assert split_reasoning(text) == expected


def _numpy_warp(logits, temperature, top_k, top_p, min_p):
    """Independent reference: the kept set and renormalised probabilities, per row, in numpy."""
    x = logits / temperature
    out = np.zeros_like(x)
    for r, row in enumerate(x):
        keep = np.ones(row.size, bool)
        if top_k:
            keep &= row >= np.sort(row)[::-1][top_k - 1]
        p = np.exp(row - row.max()) * keep
        p /= p.sum()
        if top_p < 1:
            order = np.argsort(-p, kind="stable")
            before = np.concatenate([[0.0], np.cumsum(p[order])[:-1]])
            kept = np.zeros(row.size, bool)
            kept[order[before < top_p]] = True
            keep &= kept
            p = p * keep
            p /= p.sum()
        if min_p > 0:
            keep &= p >= min_p * p.max()
            p = p * keep
            p /= p.sum()
        out[r] = p
    return out


@pytest.mark.parametrize("temperature,top_k,top_p,min_p", [
    (1.0, 0, 1.0, 0.0), (0.7, 0, 1.0, 0.0), (1.0, 3, 1.0, 0.0), (1.0, 0, 0.8, 0.0), (1.3, 0, 1.0, 0.1),
    (0.9, 5, 0.9, 0.05)])
def test_warp_matches_numpy_reference(temperature, top_k, top_p, min_p):
    import torch

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 12)).astype(np.float64) * 2
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    sampler = SeededSampler(params, [0, 1, 2, 3], record=False)
    got = torch.softmax(sampler.warp(torch.tensor(logits, dtype=torch.float32)), dim=-1).numpy()
    np.testing.assert_allclose(got, _numpy_warp(logits, temperature, top_k, top_p, min_p), atol=1e-6)


def test_seeded_sampler_draws_from_the_untruncated_distribution():
    """20,000 rows with their own seeds sampled from one 6-token distribution: chi-square goodness of fit."""
    import torch

    probs = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    n = 20_000
    scores = torch.tensor(np.log(probs), dtype=torch.float32).repeat(n, 1)
    sampler = SeededSampler(SamplingParams(temperature=1.0), list(range(n)), record=False)
    out = sampler(None, scores)
    chosen = out.argmax(dim=-1).numpy()
    assert torch.isinf(out).sum().item() == n * 5  # one-hot: greedy argmax picks the drawn token
    counts = np.bincount(chosen, minlength=6)
    assert stats.chisquare(counts, probs * n).pvalue > 1e-3
    # the rarest token (p = 0.04) is drawn: no truncation
    assert counts[-1] > 0.03 * n
    again = SeededSampler(SamplingParams(temperature=1.0), list(range(n)), record=False)(None, scores)
    assert torch.equal(again, out)  # same seeds, same draws


# -- the real model --------------------------------------------------------------------------------
def test_k_samples_arrive_under_their_ids(embedded_backend):
    params = SamplingParams(temperature=1.0, max_tokens=8)
    reqs = [GenerationRequest(CAPITAL, params, ["cap-0", "cap-1", "cap-2"], [11, 12, 13]),
            GenerationRequest(PLANET, params, ["pla-0", "pla-1", "pla-2"], [21, 22, 23])]
    got, calls, progressed = collect(embedded_backend, reqs)
    assert sorted(got) == ["cap-0", "cap-1", "cap-2", "pla-0", "pla-1", "pla-2"]
    assert sum(calls) == 6 and sum(progressed) == 6
    assert [got[f"cap-{i}"].seed for i in range(3)] == [11, 12, 13]
    # each id got a sample of ITS prompt: the same seed alone on that prompt gives the same text
    alone = embedded_backend.generate_batch([embedded_backend.render(PLANET)], [22], params)[0]
    assert alone.text == got["pla-1"].text
    assert all(c.finish_reason in ("stop", "length") for c in got.values())


def test_on_result_is_called_per_batch(embedded_backend):
    params = SamplingParams(temperature=1.0, max_tokens=4)
    old = embedded_backend.batch_size
    embedded_backend.batch_size = 4
    try:
        got, calls, progressed = collect(
            embedded_backend, [GenerationRequest(CAPITAL, params, [f"s{i}" for i in range(6)])])
    finally:
        embedded_backend.batch_size = old
    assert calls == [4, 2] and progressed == [4, 2] and len(got) == 6


def test_same_seeds_reproduce_and_other_seeds_differ(embedded_backend):
    params = SamplingParams(temperature=1.0, max_tokens=12)
    ids = [f"x{i}" for i in range(4)]
    first, _, _ = collect(embedded_backend, [GenerationRequest(MATH, params, ids, [5, 6, 7, 8])])
    second, _, _ = collect(embedded_backend, [GenerationRequest(MATH, params, ids, [5, 6, 7, 8])])
    assert [first[i].text for i in ids] == [second[i].text for i in ids]
    other, _, _ = collect(embedded_backend, [GenerationRequest(MATH, params, ids, [105, 106, 107, 108])])
    assert [first[i].text for i in ids] != [other[i].text for i in ids]
    assert len({first[i].text for i in ids}) > 1  # the k samples of one prompt are not copies


def test_no_library_truncation_sneaks_in(embedded_backend, monkeypatch):
    """generate builds no warper of its own (transformers' default top_k=50 must not appear)."""
    seen = []
    original = embedded_backend.lm._get_logits_processor

    def spy(*args, **kwargs):
        processors = original(*args, **kwargs)
        seen.append([type(p).__name__ for p in processors])
        return processors

    monkeypatch.setattr(embedded_backend.lm, "_get_logits_processor", spy)
    params = SamplingParams(temperature=0.8, top_p=1.0, top_k=0, min_p=0.0, max_tokens=3)
    embedded_backend.generate_batch([embedded_backend.render(CAPITAL)], [1], params)
    assert seen == [["SeededSampler"]]
    config = embedded_backend._generation_config(params)
    assert config.do_sample is False and config.top_k is None and config.max_new_tokens == 3


def test_greedy_is_deterministic_and_follows_the_argmax(embedded_backend):
    params = SamplingParams(temperature=0.0, max_tokens=12, logprobs=True, top_logprobs=5)
    a, _, _ = collect(embedded_backend, [GenerationRequest(CAPITAL, params, ["g0", "g1"], [1, 2])])
    b = embedded_backend.generate_batch([embedded_backend.render(CAPITAL)], [99], params)[0]
    assert a["g0"].text == a["g1"].text == b.text
    assert "Paris" in b.text
    for tok, lp, top in zip(b.tokens, b.token_logprobs, b.top_logprobs, strict=True):
        assert max(top.values()) == pytest.approx(lp, abs=1e-5)  # greedy picks the most likely token
        assert top[tok] == pytest.approx(lp, abs=1e-5)


def test_logprobs_are_finite_and_match_a_teacher_forced_pass(embedded_backend):
    import torch

    params = SamplingParams(temperature=1.0, max_tokens=10, logprobs=True, top_logprobs=5)
    got, _, _ = collect(embedded_backend, [GenerationRequest(PLANET, params, ["a", "b", "c"], [3, 4, 5])])
    for c in got.values():
        assert len(c.tokens) == len(c.token_logprobs) == len(c.top_logprobs) > 0
        assert all(math.isfinite(x) and x <= 0 for x in c.token_logprobs)
        for tok, lp, top in zip(c.tokens, c.token_logprobs, c.top_logprobs, strict=True):
            assert tok in top and top[tok] == pytest.approx(lp, abs=1e-5)
            assert sum(math.exp(v) for v in top.values()) <= 1 + 1e-5
    # teacher forcing on the greedy answer reproduces the recorded log-probabilities
    greedy = SamplingParams(temperature=0.0, max_tokens=10, logprobs=True)
    c = embedded_backend.generate_batch([embedded_backend.render(CAPITAL)], [0], greedy)[0]
    tok = embedded_backend.tokenizer
    prompt_ids = tok(embedded_backend.render(CAPITAL), add_special_tokens=False)["input_ids"]
    answer_ids = tok(c.text, add_special_tokens=False)["input_ids"][:len(c.tokens)]
    assert [tok.decode([i]) for i in answer_ids] == c.tokens
    with torch.no_grad():
        logits = embedded_backend.lm(torch.tensor([prompt_ids + answer_ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    expected = [logp[len(prompt_ids) - 1 + j, t].item() for j, t in enumerate(answer_ids)]
    np.testing.assert_allclose(c.token_logprobs, expected, atol=1e-4)


def test_stop_strings_cut_the_text(embedded_backend):
    params = SamplingParams(temperature=0.0, max_tokens=16, stop=("Paris",), logprobs=True)
    c = embedded_backend.generate_batch([embedded_backend.render(CAPITAL)], [0], params)[0]
    assert "Paris" not in c.text and c.finish_reason == "stop"
    assert c.text.startswith("The capital of France is")
    assert "".join(c.tokens).startswith(c.text)


def test_hidden_states_shapes_and_padding(embedded_backend):
    import torch

    prompts = [CAPITAL, MATH, PLANET]  # different lengths: two of the three are left-padded
    hs = embedded_backend.hidden_states(prompts, batch_size=3)
    assert hs["last"].shape == (3, 31, 576) and hs["mean"].shape == (3, 31, 576)
    assert hs["last"].dtype == np.float32 and np.isfinite(hs["last"]).all()
    for i, m in enumerate(prompts):
        alone = embedded_backend.hidden_states([m], batch_size=1)
        np.testing.assert_allclose(hs["last"][i], alone["last"][0], atol=2e-4, rtol=1e-4)
        np.testing.assert_allclose(hs["mean"][i], alone["mean"][0], atol=2e-4, rtol=1e-4)
    # mean over real tokens only, computed by hand from an unpadded forward pass
    ids = embedded_backend.tokenizer(embedded_backend.render(CAPITAL), add_special_tokens=False,
                                     return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = embedded_backend.lm(ids, output_hidden_states=True)
    manual = torch.stack(out.hidden_states, dim=1)[0].float()  # (31, T, 576)
    np.testing.assert_allclose(hs["mean"][0], manual.mean(dim=1).numpy(), atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(hs["last"][0], manual[:, -1].numpy(), atol=2e-4, rtol=1e-4)


def test_next_token_logprobs_match_a_manual_forward_pass(embedded_backend):
    import torch

    got = embedded_backend.next_token_logprobs([CAPITAL, MATH], top_k=20, batch_size=2)
    assert len(got) == 2
    for d in got:
        assert 0 < sum(math.exp(v) for v in d.values()) <= 1 + 1e-6
    tok = embedded_backend.tokenizer
    ids = tok(embedded_backend.render(MATH), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(embedded_backend.lm(ids).logits[0, -1].float(), dim=-1)
    top = torch.topk(logp, 20)
    manual: dict[str, float] = {}
    for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        key = tok.decode([i])
        manual[key] = float(np.logaddexp(manual[key], v)) if key in manual else v
    assert set(got[1]) == set(manual)
    for key, v in manual.items():
        assert got[1][key] == pytest.approx(v, abs=1e-4)
    assert max(got[0], key=got[0].get) == "The"  # "The capital of France is Paris."


def test_describe_records_how_it_was_loaded(embedded_backend):
    d = embedded_backend.describe()
    assert d["backend"] == "embedded" and d["model"] == "SmolLM2-135M-Instruct-Q4_1"
    assert d["dtype"] == "float32" and d["device"] == "cpu" and len(d["gguf_sha256"]) == 64
