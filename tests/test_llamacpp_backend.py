"""The llamacpp backend on the real SmolLM2 GGUF: exact sampling, batching, stop strings, grammars.

Exactness is checked where it is cheap: the first token of many samples comes from one prompt's logits
(decoded once), so 2,000 seeds cost about a second. The reference distributions are computed here, by
sorting, independently of :mod:`capcal.models.token_sampling`.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from capcal.errors import ModelError
from capcal.models import GenerationRequest, SamplingParams
from capcal.models import token_sampling as ts
from model_fixtures import embedded_backend_fixture  # noqa: F401 - session fixture "embedded_backend"
from scipy import stats

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is installed by scripts/setup.sh")

pytestmark = pytest.mark.model

QUESTION = [{"role": "user", "content": "Name a colour."}]
MATH = [{"role": "system", "content": "You are a careful tutor."},
        {"role": "user", "content": "Natalia sold clips to 48 of her friends in April, and then she sold half as "
                                    "many clips in May. How many clips did Natalia sell altogether?"}]
CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer in one short line."}]
MCQ = [{"role": "user", "content": "Which planet is the largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Mercury\n"
                                   "Answer with only the letter."}]
SEEDS = 2000
P_MIN = 1e-3  # chi-square goodness of fit: the test fails when the p-value is below this


@pytest.fixture(scope="module")
def backend():
    from capcal.models.llamacpp_backend import LlamaCppBackend

    b = LlamaCppBackend(model="smollm2-135m", n_ctx=4096, n_parallel=8, n_threads=1)
    yield b
    b.close()


def collect(backend, requests):
    got, calls = [], []

    def on_result(pairs):
        calls.append([sid for sid, _ in pairs])
        got.extend(pairs)

    backend.generate(requests, on_result)
    return dict(got), calls


def reference(logits, temperature, top_k=0, top_p=1.0, min_p=0.0):
    """Truncated softmax(logits / T) by full sorting (the definition in the token_sampling docstring)."""
    x = logits.astype(np.float64) / temperature
    keep = np.ones(x.size, bool)
    if top_k:
        keep &= x >= np.sort(x)[::-1][top_k - 1]

    def probs():
        p = np.where(keep, np.exp(x - x[keep].max()), 0.0)
        return p / p.sum()

    if top_p < 1:
        p = probs()
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]
        kept = np.zeros(x.size, bool)
        kept[order[before < top_p]] = True
        keep &= kept
    if min_p > 0:
        p = probs()
        keep &= p >= min_p * p.max()
    return probs()


def first_token_texts(backend, messages, params, n=SEEDS):
    """The first token (as text, "" for end of generation) of n samples with seeds 0..n-1, one request."""
    req = GenerationRequest(messages, params, [f"s{i}" for i in range(n)], list(range(n)))
    got, _ = collect(backend, [req])
    return [got[f"s{i}"].text for i in range(n)], got


def by_text(backend, p):
    """Token probabilities summed per token text (several ids may share one; end of generation is "")."""
    out: dict[str, float] = {}
    for tok in np.flatnonzero(p > 0):
        key = "" if backend.is_eog(int(tok)) else backend.piece(int(tok))
        out[key] = out.get(key, 0.0) + float(p[tok])
    return out


def chi_square(observed_texts, expected: dict[str, float]):
    """Goodness of fit of the observed texts to ``expected``; cells under 5 expected draws are pooled."""
    n = len(observed_texts)
    counts: dict[str, int] = {}
    for t in observed_texts:
        counts[t] = counts.get(t, 0) + 1
    outside = [t for t in counts if expected.get(t, 0.0) <= 0]
    assert not outside, f"drawn tokens outside the truncated support: {outside[:5]}"
    big = [t for t, p in expected.items() if p * n >= 5]
    obs = [counts.get(t, 0) for t in big]
    exp = [expected[t] * n for t in big]
    rest_p = 1.0 - sum(expected[t] for t in big)
    if rest_p * n >= 5:
        obs.append(n - sum(obs))
        exp.append(rest_p * n)
    else:  # too little mass left for a cell of its own: fold it into the last cell
        obs[-1] += n - sum(obs)
        exp[-1] += rest_p * n
    assert len(obs) >= 2, "the distribution is too concentrated for a goodness-of-fit test"
    return stats.chisquare(obs, exp).pvalue


@pytest.fixture(scope="module")
def question_logits(backend):
    return backend.prompt_logits([QUESTION])[0]


@pytest.mark.parametrize("temperature,top_k,top_p,min_p", [
    (1.0, 0, 1.0, 0.0), (0.7, 0, 1.0, 0.0), (1.0, 0, 0.9, 0.0), (1.0, 20, 1.0, 0.0), (1.0, 0, 1.0, 0.05),
    (0.8, 30, 0.95, 0.02)])
def test_first_token_distribution_is_the_truncated_softmax(backend, question_logits, temperature, top_k, top_p,
                                                           min_p):
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, max_tokens=1)
    texts, got = first_token_texts(backend, QUESTION, params)
    expected = by_text(backend, reference(question_logits, temperature, top_k, top_p, min_p))
    assert chi_square(texts, expected) > P_MIN
    # an untruncated draw reaches tokens a truncated one may not: the support is exact, not approximate
    if top_k or top_p < 1 or min_p > 0:
        full = by_text(backend, reference(question_logits, temperature))
        assert len(expected) < len(full)
    assert all(c.finish_reason in ("length", "stop") for c in got.values())


def test_the_goodness_of_fit_test_has_power(backend, question_logits):
    """Draws at T=0.7 are rejected against the T=1 distribution (so the tests above can fail)."""
    texts, _ = first_token_texts(backend, QUESTION, SamplingParams(temperature=0.7, max_tokens=1))
    assert chi_square(texts, by_text(backend, reference(question_logits, 1.0))) < P_MIN


def test_prompt_logits_match_transformers_float32(backend, question_logits, embedded_backend):
    """An independent path: transformers on the same GGUF, dequantized to float32, on the same tokens.

    llama.cpp computes with 8-bit activations and float16 attention, so the two agree only approximately:
    measured total variation 0.025 on this prompt; the test allows 0.06 and asks for the same top token."""
    import torch

    enc = embedded_backend._encode([embedded_backend.render(QUESTION)])
    assert enc["input_ids"][0].tolist() == backend.prompt_tokens(QUESTION)
    with torch.inference_mode():
        ref = embedded_backend.lm(**enc).logits[0, -1].float().numpy()
    p, q = ts.softmax(question_logits), ts.softmax(ref)
    assert 0.5 * np.abs(p - q).sum() < 0.06 and np.argmax(p) == np.argmax(q)
    # a prompt's logits do not depend on the prompts scored with it
    both = backend.prompt_logits([CAPITAL, QUESTION, MATH])
    assert np.array_equal(both[1], question_logits)
    assert np.array_equal(both[0], backend.prompt_logits([CAPITAL])[0])


def test_next_token_logprobs_is_the_log_softmax_of_the_prompt_logits(backend, question_logits):
    got = backend.next_token_logprobs([QUESTION], top_k=5)[0]
    logp = question_logits.astype(np.float64) - np.log(np.exp(question_logits.astype(np.float64)
                                                              - question_logits.max()).sum()) - question_logits.max()
    best = np.argsort(-logp)[:5]
    assert len(got) <= 5 and backend.piece(int(best[0])) in got
    for tok in best:
        key = backend.piece(int(tok))
        assert got[key] >= logp[tok] - 1e-9
    total = sum(np.exp(v) for v in got.values())
    assert abs(total - np.exp(logp[best]).sum()) < 1e-6


def test_same_seed_same_text_and_other_seeds_differ(backend):
    params = SamplingParams(temperature=1.0, max_tokens=24)
    ids = ["a", "b", "c", "d"]
    first, _ = collect(backend, [GenerationRequest(MATH, params, ids, [5, 6, 7, 8])])
    second, _ = collect(backend, [GenerationRequest(MATH, params, ids, [5, 6, 7, 8])])
    assert [first[i].text for i in ids] == [second[i].text for i in ids]
    other, _ = collect(backend, [GenerationRequest(MATH, params, ids, [105, 106, 107, 108])])
    assert [first[i].text for i in ids] != [other[i].text for i in ids]
    assert [first[i].seed for i in ids] == [5, 6, 7, 8]


def test_k_samples_in_one_context_equal_the_samples_drawn_one_by_one(backend):
    from capcal.models.llamacpp_backend import LlamaCppBackend

    params = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=20, logprobs=True, top_logprobs=3)
    requests = [GenerationRequest(MATH, params, [f"m{j}" for j in range(4)], [11, 12, 13, 14]),
                GenerationRequest(CAPITAL, params, [f"c{j}" for j in range(3)], [21, 22, 23])]
    decoded_together = []
    original = backend._decode

    def spy(tokens, positions, seqs, outputs):
        decoded_together.append(len(set(seqs)))
        return original(tokens, positions, seqs, outputs)

    backend._decode = spy
    try:
        together, calls = collect(backend, requests)
    finally:
        del backend._decode
    assert max(decoded_together) == 7  # the two questions' seven samples shared decode steps
    assert sorted(map(sorted, calls)) == [["c0", "c1", "c2"], ["m0", "m1", "m2", "m3"]]  # one report per question
    alone_backend = LlamaCppBackend(model=str(backend.path), n_ctx=512, n_parallel=1, n_threads=1)
    try:
        for req in requests:
            for sid, seed in zip(req.sample_ids, req.seeds, strict=True):
                alone, _ = collect(alone_backend, [GenerationRequest(req.messages, params, [sid], [seed])])
                a, b = together[sid], alone[sid]
                assert a.text == b.text and a.finish_reason == b.finish_reason and a.tokens == b.tokens
                # the logits are bit-identical: sequences never share or reuse KV cells out of order
                assert a.token_logprobs == b.token_logprobs and a.top_logprobs == b.top_logprobs
    finally:
        alone_backend.close()


def test_a_small_context_runs_the_questions_one_after_another(backend):
    """With room for one question only, the samples still come out the same (only the batching changes)."""
    from capcal.models.llamacpp_backend import LlamaCppBackend

    params = SamplingParams(temperature=1.0, max_tokens=16)
    requests = [GenerationRequest(CAPITAL, params, ["x0", "x1"], [1, 2]),
                GenerationRequest(QUESTION, params, ["y0", "y1"], [3, 4])]
    small = LlamaCppBackend(model=str(backend.path), n_ctx=256, n_parallel=8, n_threads=1)
    try:
        got_small, _ = collect(small, requests)
    finally:
        small.close()
    got, _ = collect(backend, requests)
    assert {k: c.text for k, c in got_small.items()} == {k: c.text for k, c in got.items()}


def test_stop_strings_cut_the_text_where_the_free_sample_has_them(backend):
    free_params = SamplingParams(temperature=1.0, max_tokens=40, logprobs=True)
    free = collect(backend, [GenerationRequest(MATH, free_params, ["f"], [3])])[0]["f"]
    assert len(free.text) > 20
    stop = free.text[len(free.text) // 2:len(free.text) // 2 + 4]
    cut = free.text.find(stop)
    stopped = collect(backend, [GenerationRequest(MATH, SamplingParams(
        temperature=1.0, max_tokens=40, logprobs=True, stop=("never-there", stop)), ["s"], [3])])[0]["s"]
    assert stopped.text == free.text[:cut] and stopped.finish_reason == "stop"
    # the tokens kept are those that start before the stop string
    assert "".join(stopped.tokens) == "".join(free.tokens[:len(stopped.tokens)])
    assert len("".join(stopped.tokens)) >= cut and len("".join(stopped.tokens[:-1])) < max(cut, 1)
    assert stopped.token_logprobs == free.token_logprobs[:len(stopped.tokens)]


def test_finish_reasons_and_token_counts(backend):
    long = collect(backend, [GenerationRequest(MATH, SamplingParams(temperature=1.0, max_tokens=3, logprobs=True),
                                               ["l"], [0])])[0]["l"]
    assert long.finish_reason == "length" and len(long.tokens) == 3 and len(long.token_logprobs) == 3
    assert all(lp <= 0 for lp in long.token_logprobs)
    greedy = SamplingParams(temperature=0.0, max_tokens=64, logprobs=True)
    short = collect(backend, [GenerationRequest(CAPITAL, greedy, ["g"], [0])])[0]["g"]
    assert short.finish_reason == "stop" and 0 < len(short.tokens) < 64  # ended on <|im_end|>
    assert "<|im_end|>" not in short.text and "".join(short.tokens) == short.text
    # greedy follows the argmax of the prompt's logits
    logits = backend.prompt_logits([CAPITAL])[0]
    assert short.tokens[0] == backend.piece(int(np.argmax(logits)))


def test_a_grammar_constrains_every_sample(backend):
    letters = SamplingParams(temperature=1.0, max_tokens=4, grammar="root ::= [A-D]")
    texts, got = first_token_texts(backend, MCQ, letters, n=400)
    assert set(texts) <= {"A", "B", "C", "D"} and all(c.finish_reason == "stop" for c in got.values())
    # exact: the letters are drawn from the model's distribution restricted to the grammar's tokens
    logits = backend.prompt_logits([MCQ])[0]
    allowed = np.array([not backend.is_eog(t) and backend.piece(t) in {"A", "B", "C", "D"}
                        for t in range(backend.n_vocab)])
    p = np.where(allowed, np.exp(logits.astype(np.float64) - logits[allowed].max()), 0.0)
    assert chi_square(texts, by_text(backend, p / p.sum())) > P_MIN
    sentence = SamplingParams(temperature=1.0, max_tokens=24, grammar='root ::= "The answer is " [0-9]+ "."')
    out, _ = collect(backend, [GenerationRequest(MATH, sentence, [f"g{i}" for i in range(6)], list(range(6)))])
    stopped = [c for c in out.values() if c.finish_reason == "stop"]
    assert len(stopped) >= 4
    assert all(re.fullmatch(r"The answer is [0-9]+\.", c.text) for c in stopped)
    assert all(re.fullmatch(r"The answer is [0-9]*", c.text) for c in out.values() if c.finish_reason == "length")


def test_lazy_grammar_draws_are_the_masked_distribution(backend):
    """After the first token a grammar is checked lazily (the drawn token only, the whole vocabulary when it
    is refused); the draws must still follow softmax(logits / T) restricted to the grammar's tokens."""
    from types import SimpleNamespace

    base = backend._grammar_base('root ::= "Answer: " [A-D]')
    mask = backend._grammar_mask(base)
    allowed = np.flatnonzero(mask)
    assert 2 <= allowed.size < 200
    gen = np.random.default_rng(7)
    logits = np.full(backend.n_vocab, -30.0, dtype=np.float32)
    logits[allowed] = gen.normal(0.0, 1.0, allowed.size)
    refused = gen.choice(np.flatnonzero(~mask), 6, replace=False)
    logits[refused] = gen.normal(0.0, 1.0, refused.size)
    for temperature in (1.0, 0.7):
        w = np.exp(logits.astype(np.float64) / temperature - logits.max() / temperature)
        share = w[allowed].sum() / w.sum()
        assert 0.1 < share < 0.9  # both the kept draw and the redraw under the mask happen
        params = SamplingParams(temperature=temperature, grammar="x")
        drawn = []
        for start in range(0, SEEDS, 250):
            samples = [SimpleNamespace(rng=np.random.default_rng(seed), grammar=base)
                       for seed in range(start, start + 250)]
            drawn += backend._choose_under_grammar(samples, np.tile(logits, (250, 1)), params)
        assert set(drawn) <= set(allowed.tolist())
        expected = {str(t): w[t] / w[allowed].sum() for t in allowed}
        assert chi_square([str(t) for t in drawn], expected) > P_MIN
        # the same seeds give the same tokens (one uniform for the draw, one more only for a redraw)
        again = backend._choose_under_grammar([SimpleNamespace(rng=np.random.default_rng(s), grammar=base)
                                                for s in range(20)], np.tile(logits, (20, 1)), params)
        assert again == drawn[:20]
    greedy = SamplingParams(temperature=0.0, grammar="x")
    best = int(allowed[np.argmax(logits[allowed])])
    logits[refused[0]] = logits.max() + 1.0  # the unmasked argmax is refused: the masked argmax is drawn
    assert backend._choose_under_grammar([SimpleNamespace(rng=None, grammar=base)], logits[None], greedy) == [best]


def test_a_bad_grammar_and_bad_parameters_are_one_line_errors(backend):
    with pytest.raises(ModelError, match="invalid GBNF grammar"):
        collect(backend, [GenerationRequest(QUESTION, SamplingParams(grammar="root ::= ("), ["x"], [0])])
    with pytest.raises(ModelError, match="top_p"):
        collect(backend, [GenerationRequest(QUESTION, SamplingParams(top_p=0.0), ["x"], [0])])


def test_missing_llama_cpp_names_the_extra(monkeypatch):
    from capcal.models.llamacpp_backend import LlamaCppBackend

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what an environment without it sees
    with pytest.raises(ModelError, match=r"capcal\[llama\]") as info:
        LlamaCppBackend()
    assert "\n" not in str(info.value)


def test_unknown_model_names_are_one_line_errors(tmp_path):
    from capcal.models.llamacpp_backend import resolve_model

    with pytest.raises(ModelError, match="neither a known model name"):
        resolve_model(str(tmp_path / "missing.gguf"))


def test_nucleus_threshold_matches_a_full_sort():
    rng = np.random.default_rng(1)
    for _ in range(200):
        p = rng.dirichlet(np.full(3000, rng.uniform(0.01, 1.0)))
        top_p = rng.uniform(0.05, 0.999)
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]
        assert ts.nucleus_threshold(p, top_p) == p[order][before < top_p].min()


# -- the embedded default ---------------------------------------------------------------------------
def test_the_embedded_default_runs_on_llama_cpp_with_hidden_states_from_transformers(embedded_backend):
    from capcal.models.embedded import EmbeddedBackend
    from capcal.models.factories import BUILTIN_MODELS
    from capcal.models.llamacpp_backend import EmbeddedLlamaBackend

    default = BUILTIN_MODELS["embedded"](n_ctx=1024, n_threads=1)
    try:
        assert isinstance(default, EmbeddedLlamaBackend) and default.backend == "embedded"
        assert default.model != embedded_backend.model  # samples of the two engines never share store keys
        assert default.describe()["hidden_states"] == "transformers"
        got = collect(default, [GenerationRequest(CAPITAL, SamplingParams(temperature=0.0, max_tokens=8), ["a"],
                                                  [0])])[0]["a"]
        assert got.text and got.finish_reason in ("stop", "length")
        states = default.hidden_states([CAPITAL, QUESTION])
        ref = embedded_backend.hidden_states([CAPITAL, QUESTION])
        assert states["last"].shape == ref["last"].shape == (2, 31, 576)
        np.testing.assert_allclose(states["mean"], ref["mean"], atol=1e-4)
        # P(True) reads the next-token distribution from llama.cpp; transformers agrees to about 0.01
        ours = default.next_token_logprobs([CAPITAL], top_k=3)[0]
        theirs = embedded_backend.next_token_logprobs([CAPITAL], top_k=3)[0]
        best = max(theirs, key=theirs.get)
        assert best in ours and abs(np.exp(ours[best]) - np.exp(theirs[best])) < 0.05
    finally:
        default.close()
    assert isinstance(BUILTIN_MODELS["embedded"](engine="transformers"), EmbeddedBackend)
    assert isinstance(BUILTIN_MODELS["embedded"](dtype="float32"), EmbeddedBackend)  # a transformers-only arg
    with pytest.raises(ModelError, match="engine must be one of"):
        BUILTIN_MODELS["embedded"](engine="vllm")


def test_the_llamacpp_factory_takes_model_names_and_paths(backend):
    from capcal.models.factories import BUILTIN_MODELS

    by_path = BUILTIN_MODELS["llamacpp"](model=str(backend.path), n_ctx=512, n_threads=1)
    try:
        assert by_path.model == "SmolLM2-135M-Instruct.Q4_1" and by_path.backend == "llamacpp"
    finally:
        by_path.close()
    assert backend.model == "SmolLM2-135M-Instruct-Q4_1"
    with pytest.raises(ModelError, match="unknown --model_args n_seq"):
        BUILTIN_MODELS["llamacpp"](n_seq=4)
    with pytest.raises(ModelError, match="n_parallel must be a positive integer"):
        BUILTIN_MODELS["llamacpp"](n_parallel=0)


def test_the_backend_passes_the_conformance_kit_and_declares_what_it_can_do(backend):
    from capcal.testing import check_backend

    assert backend.capabilities == frozenset({"logprobs", "next_token_logprobs"})
    check_backend(backend)
    with pytest.raises(NotImplementedError):
        backend.hidden_states([QUESTION])


def _fake_sysfs(root, cores: dict[int, tuple[int, int]]):
    for cpu, (package, core) in cores.items():
        topo = root / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text(f"{package}\n")
        (topo / "core_id").write_text(f"{core}\n")
    return root


def test_default_threads_count_physical_cores_not_hyperthreads(tmp_path):
    from capcal.models.llamacpp_backend import _default_threads

    # two cores with two hyperthreads each, and a second package whose core ids repeat the first's
    ht = _fake_sysfs(tmp_path / "ht", {0: (0, 0), 1: (0, 0), 2: (0, 1), 3: (0, 1), 4: (1, 0), 5: (1, 0)})
    assert _default_threads({0, 1, 2, 3}, ht) == 2
    assert _default_threads({0, 1}, ht) == 1
    assert _default_threads({0, 1, 2, 3, 4, 5}, ht) == 3
    # a VM that reports one thread per core: every CPU is a core (the 2-core machines here)
    vm = _fake_sysfs(tmp_path / "vm", {0: (0, 0), 1: (0, 1)})
    assert _default_threads({0, 1}, vm) == 2
    # no topology: half the CPUs, at least one
    assert _default_threads({0, 1, 2, 3}, tmp_path / "none") == 2
    assert _default_threads({0}, tmp_path / "none") == 1
