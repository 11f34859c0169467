"""verbalized, P(True) and consistency through the real OpenAI-compatible backend against the local test
server (tests/stub_server.py): logprobs of the first answer token after a think block, bounded retries
with new seeds, extra consistency samples drawn once and cached."""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import pytest
from capcal.estimators import EstimatorContext
from capcal.estimators_contrib._generation import derived_seeds
from capcal.estimators_contrib.consistency import Consistency, agreement_share, cluster_sizes
from capcal.estimators_contrib.ptrue import PTrue
from capcal.estimators_contrib.verbalized import Verbalized
from capcal.models.base import Completion
from capcal.models.openai_backend import OpenAIBackend
from capcal.registry import get_registry
from capcal.rundir import Targets
from stub_server import StubServer


@pytest.fixture(scope="module")
def gsm8k(data_dir):
    return get_registry().task("gsm8k", data_dir=data_dir)


def _ctx(task, backend, tmp_path, extracted) -> EstimatorContext:
    examples = task.examples(limit=len(extracted))
    rows = [{"id": ex.id, "correct": [int(task.grade(f"The answer is {a}", ex).correct) for a in e],
             "designated": 0, "extracted": e} for ex, e in zip(examples, extracted, strict=True)]
    return EstimatorContext(task=task, split="eval", examples=examples, messages=[task.render(e) for e in examples],
                            ids=np.array([e.id for e in examples], dtype=object), backend=backend,
                            samples=[[Completion(text=f"The answer is {a}") for a in e] for e in extracted],
                            targets=Targets.from_rows(rows), cache_dir=tmp_path, seed=7)


def _gold(ex) -> str:
    return ex.fields["answer"]


@pytest.mark.parametrize("reasoning", [None, "think", "field"])
def test_ptrue_through_the_openai_backend(gsm8k, tmp_path, reasoning):
    examples = gsm8k.examples(limit=3)
    golds = [_gold(e) for e in examples]

    def answer(prompt: str, seed: int, index: int) -> str:  # the "model" says Yes exactly to the gold answer
        proposed = re.search(r"Proposed answer: (.*)", prompt).group(1).strip()
        return "Yes" if proposed in golds else "No"

    with StubServer(reasoning=reasoning, answer_fn=answer) as srv:
        backend = OpenAIBackend(model="stub-model", base_url=srv.base_url)
        ctx = _ctx(gsm8k, backend, tmp_path, [[golds[0]], [str(int(golds[1]) + 1)], [None]])
        out = PTrue(max_tokens=64).predict(ctx)
        assert out.meta["method"] == "generate"
        # Yes is the only variant listed (the server's alternatives are "Yes~1", ... which are not variants)
        assert out.confidence[0] == 1.0 and out.confidence[1] == 0.0
        assert out.meta["n_proposed_from_text"] == 1 and out.confidence[2] == 0.0
        first = srv.request_log[0]["body"]
        assert first["logprobs"] is True and first["top_logprobs"] == 20 and first["temperature"] == 0.0
        n_requests = len(srv.request_log)
        PTrue(max_tokens=64).predict(ctx)  # answers are cached in the run directory: no new request
        assert len(srv.request_log) == n_requests
        backend.close()


def test_ptrue_unfinished_reasoning_is_nan(gsm8k, tmp_path):
    # the reply was cut by max_tokens inside its think block: no answer token exists
    with StubServer(answer_fn=lambda p, s, i: "<think> Yes, I am thinking about") as srv:
        backend = OpenAIBackend(model="stub-model", base_url=srv.base_url)
        ctx = _ctx(gsm8k, backend, tmp_path, [["5"]])
        out = PTrue(max_tokens=4).predict(ctx)
        assert math.isnan(out.confidence[0]) and "reasoning did not finish" in out.reasons[0]
        backend.close()


def test_verbalized_bounded_retries_with_new_seeds(gsm8k, tmp_path):
    first_seed = {i: derived_seeds(7, "verbalized", i, 3)[0] for i in range(3)}

    def answer(prompt: str, seed: int, index: int) -> str:
        q = next(i for i, e in enumerate(examples) if e.fields["question"] in prompt)
        if q == 0:
            return "I cannot say."  # never parseable
        if q == 1 and seed == first_seed[1]:
            return "hmm"  # parseable only on a retry
        return "<think>0.2 maybe</think> \\boxed{0.8}"

    examples = gsm8k.examples(limit=3)
    with StubServer(answer_fn=answer) as srv:
        backend = OpenAIBackend(model="stub-model", base_url=srv.base_url)
        ctx = _ctx(gsm8k, backend, tmp_path, [["1"], ["2"], ["3"]])
        out = Verbalized(retries=2).predict(ctx)
        assert np.isnan(out.confidence[0]) and out.reasons[0] == "unparseable reply"
        np.testing.assert_allclose(out.confidence[1:], [0.8, 0.8])
        assert out.meta["parse_rate"] == pytest.approx(1 / 3)
        assert out.meta["final_parse_rate"] == pytest.approx(2 / 3)
        assert out.meta["mean_attempts"] == pytest.approx((3 + 2 + 1) / 3)
        seeds_q0 = [e["seed"] for e in srv.request_log if examples[0].fields["question"] in e["prompt"]]
        assert len(seeds_q0) == 3 and len(set(seeds_q0)) == 3  # bounded, each retry with a new seed
        temps = [e["body"]["temperature"] for e in srv.request_log]
        assert sorted(set(temps)) == [0.0, 1.0]
        backend.close()


def test_consistency_extra_samples_through_the_server(gsm8k, tmp_path):
    def answer(prompt: str, seed: int, index: int) -> str:
        h = int(hashlib.sha256(f"{prompt}|{seed}|{index}".encode()).hexdigest(), 16) % 4
        return ["The answer is 18", "The answer is 18.0", "The answer is 20", "no idea"][h]

    with StubServer(answer_fn=answer) as srv:
        backend = OpenAIBackend(model="stub-model", base_url=srv.base_url)
        ctx = _ctx(gsm8k, backend, tmp_path, [["18", "18"], ["3", "4"]])
        out = Consistency(m=5).predict(ctx)
        assert out.meta["samples_overlap_mu"] is False
        seeds = [e["seed"] for e in srv.request_log]
        assert not set(seeds) & {0, 1}  # a separate seed stream, not the run's sample seeds
        # recompute independently from the server's answer function and the task's grader
        for i, ex in enumerate(ctx.examples):
            rendered = ctx.messages[i][-1]["content"]
            served = [answer(rendered, e["seed"], j) for e in srv.request_log if e["prompt"] == rendered
                      for j in range(e["choices"])]
            assert len(served) == 5
            ans = [gsm8k.grade(text, ex).extracted for text in served]
            sizes, _ = cluster_sizes(ans, gsm8k.grader)
            assert out.confidence[i] == pytest.approx(agreement_share(sizes, 5))
        n_requests = len(srv.request_log)
        Consistency(m=5).predict(ctx)
        assert len(srv.request_log) == n_requests  # cached: never drawn twice
        backend.close()
