"""``capcal.testing``: the conformance checks pass on every built-in and fail on deliberately broken plugins.

The built-in tasks are checked on the real data (``../shared/data``) with gold replies written the way each
prompt asks; the built-in graders on real rows; the estimators on synthetic contexts graded by the real
numeric grader (and, for those that call the model, with the real embedded model); the backends with the
embedded model and with the OpenAI backend against the OpenAI-compatible test server on 127.0.0.1.
"""

from __future__ import annotations

import numpy as np
import pytest
from capcal.estimators import Estimator, EstimatorOutput
from capcal.estimators_contrib import BUILTIN_ESTIMATORS, DATA_DEPENDENT_ESTIMATORS
from capcal.graders import GradeResult
from capcal.models.base import Completion, ModelBackend
from capcal.registry import Registry
from capcal.testing import CheckError, check_backend, check_estimator, check_grader, check_task, make_context
from model_fixtures import embedded_backend_fixture  # noqa: F401  (registers "embedded_backend")

REGISTRY = Registry(entry_points=False)
TASKS = sorted(REGISTRY.task_specs)

GOLD_REPLY = {  # the answer format each built-in prompt asks for
    "short_answer": lambda ex: "Answer: " + " ".join(ex.fields["answer"].split()),
    "numeric": lambda ex: f"Step by step.\nThe answer is {ex.fields['answer']}.",
    "math": lambda ex: f"So the final answer is $\\boxed{{{ex.fields['answer']}}}$.",
    "integer": lambda ex: f"So the final answer is $\\boxed{{{ex.fields['answer']}}}$.",
    "multiple_choice": lambda ex: f"Answer: {ex.fields['answer']}",
}


def test_the_builtins_are_seven_tasks():
    assert TASKS == ["aime25", "gpqa", "gsm8k", "math500", "mmlu", "simpleqa", "triviaqa"]


# -- tasks ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TASKS)
def test_every_builtin_task_passes(name, data_dir):
    task = REGISTRY.task(name, data_dir=data_dir)
    check_task(task, limit=5, gold_response=GOLD_REPLY[task.spec.grader])


class _TaskWrapper:
    """A real task with one thing broken (the override), for the negative checks."""

    def __init__(self, task, **override):
        self._task, self._override = task, override

    def __getattr__(self, name):
        return self._override.get(name, getattr(self._task, name))


@pytest.fixture(scope="module")
def gsm8k(data_dir):
    return REGISTRY.task("gsm8k", data_dir=data_dir)


def test_check_task_fails_on_broken_tasks(gsm8k):
    real = gsm8k.examples("eval", 3)
    repeated = [real[0], real[1], real[0]]
    with pytest.raises(CheckError, match="ids repeat"):
        check_task(_TaskWrapper(gsm8k, examples=lambda split, limit: repeated))
    with pytest.raises(CheckError, match="last rendered message must be a non-empty user message"):
        check_task(_TaskWrapper(gsm8k, render=lambda ex: [{"role": "system", "content": "hi"}]))
    with pytest.raises(CheckError, match="empty reply was graded correct"):
        check_task(_TaskWrapper(gsm8k, grade=lambda response, ex: GradeResult("18", True)))
    with pytest.raises(CheckError, match="gold reply .* was graded incorrect"):
        check_task(gsm8k, gold_response=lambda ex: "I do not know.")


# -- graders ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TASKS)
def test_every_builtin_grader_passes_on_real_rows(name, data_dir):
    task = REGISTRY.task(name, data_dir=data_dir)
    examples = task.examples("eval", 4)
    write = GOLD_REPLY[task.spec.grader]
    cases = [(write(ex), ex.fields, True) for ex in examples]
    cases += [("I have no idea.", ex.fields, False) for ex in examples]
    check_grader(task.grader, cases)


def test_the_judge_grader_passes_against_a_judge_server():
    """llm_judge: the verdicts come from an OpenAI-compatible judge on 127.0.0.1 (the test server answers
    CORRECT when the judged reply is the right one); the fallback grader extracts the answer."""
    from stub_server import StubServer

    fields = {"question": "Capital of France?", "answer": "Paris", "aliases": ["Paris"]}

    def verdict(prompt: str, seed: int, index: int) -> str:
        return "CORRECT" if "city of light" in prompt else "INCORRECT"

    with StubServer(answer_fn=verdict) as srv:
        judge = REGISTRY.grader("llm_judge", base_url=srv.base_url, model="judge", max_retries=0)
        check_grader(judge, [("Answer: Paris, the city of light", fields, True), ("Answer: Lyon", fields, False)])


class _CorrectWithoutAnswer:
    name = "broken_always_right"

    def extract(self, response):
        return None

    def grade(self, response, fields):
        return GradeResult(None, True)

    def normalize(self, extracted):
        return extracted

    def equivalent(self, a, b):
        return a == b


class _WrongTypes(_CorrectWithoutAnswer):
    name = "broken_types"

    def grade(self, response, fields):
        return {"extracted": response, "correct": "yes"}


class _Unrepeatable(_CorrectWithoutAnswer):
    name = "broken_unrepeatable"

    def __init__(self):
        self.calls = 0

    def extract(self, response):
        return response.strip() or None

    def grade(self, response, fields):
        self.calls += 1
        extracted = self.extract(response)
        return GradeResult(extracted, extracted is not None and self.calls % 2 == 0)


def test_check_grader_fails_on_broken_graders():
    with pytest.raises(CheckError, match="graded correct without an extracted answer"):
        check_grader(_CorrectWithoutAnswer())
    with pytest.raises(CheckError, match="expected a GradeResult"):
        check_grader(_WrongTypes())
    with pytest.raises(CheckError, match="is not repeatable"):
        check_grader(_Unrepeatable(), [("42", {"answer": "42"}, True)])


# -- estimators --------------------------------------------------------------------------------------------
ALL_ESTIMATORS = {**BUILTIN_ESTIMATORS, **DATA_DEPENDENT_ESTIMATORS}  # everything capcal registers
NO_MODEL = [n for n, cls in sorted(ALL_ESTIMATORS.items())
            if not cls.needs_model and n not in ("recalibrated", "imported")]


def test_no_model_builtins_are_known():
    assert NO_MODEL == ["constant", "logprob_mean", "logprob_seq", "oracle_cc", "oracle_rc"]


@pytest.mark.parametrize("name", NO_MODEL)
def test_builtin_estimators_without_a_model_pass(name):
    check_estimator(BUILTIN_ESTIMATORS[name]())


def test_imported_passes_on_an_imported_file(tmp_path):
    """``imported`` reads RUN/tasks/<task>/imported/<source>.jsonl next to the context's cache folder."""
    import json

    ctx = make_context(10, 2, cache_dir=tmp_path / "tasks" / "t" / "cache")
    folder = tmp_path / "tasks" / "t" / "imported"
    folder.mkdir(parents=True)
    rows = [{"id": qid, "confidence": None if i == 3 else i / 10, "reason": "refused" if i == 3 else None}
            for i, qid in enumerate(ctx.ids)]
    (folder / "theirs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    check_estimator(ALL_ESTIMATORS["imported"](source="theirs"), ctx)


def test_recalibrated_passes_over_a_base_without_a_model():
    check_estimator(BUILTIN_ESTIMATORS["recalibrated"](base="logprob_mean", method="isotonic"))
    check_estimator(BUILTIN_ESTIMATORS["recalibrated"](base="oracle_rc", method="histogram", bins=4))


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(n for n, cls in ALL_ESTIMATORS.items()
                                        if cls.needs_model or n == "recalibrated"))  # all that call the model
def test_builtin_estimators_with_the_embedded_model_pass(name, embedded_backend, tmp_path):
    small = {"verbalized": {"max_tokens": 12, "retries": 1}, "consistency": {"m": 3},
             "consistency_entropy": {"m": 3}, "probe": {"cs": (0.1, 1.0)},
             "recalibrated": {"base_params": {"max_tokens": 12, "retries": 1}},
             "verbalized_fewshot": {"m": 2, "max_tokens": 12, "retries": 1}}
    ctx = make_context(6, 3, backend=embedded_backend, cache_dir=tmp_path)
    check_estimator(ALL_ESTIMATORS[name](**small.get(name, {})), ctx)


class WrongLength(Estimator):
    name = "broken_length"

    def predict(self, ctx):
        q = len(ctx) - 1
        return EstimatorOutput(np.full(q, 0.5), [None] * q)


class OutOfRange(Estimator):
    name = "broken_range"

    def __init__(self, scale: float = 3.0):
        self.scale = scale

    def predict(self, ctx):
        out = EstimatorOutput(np.full(len(ctx), 0.5), [None] * len(ctx))
        out.confidence = out.confidence * self.scale  # sidesteps EstimatorOutput's own validation
        return out


class FitReadsEvaluation(Estimator):
    """Learns the mean mu, but of the evaluation split (reached through the training context)."""

    name = "broken_leak"
    learns = True

    def fit(self, train, validation=None):
        self.mean_ = float(np.mean(train.split_context("eval").targets.mu))
        return self

    def predict(self, ctx):
        return EstimatorOutput(np.full(len(ctx), self.mean_), [None] * len(ctx))


class FitsOnEvaluation(Estimator):
    """Fits inside predict on the very context it predicts."""

    name = "broken_fit_on_eval"
    learns = True

    def fit(self, train, validation=None):
        self.mean_ = float(np.mean(train.targets.mu))
        return self

    def predict(self, ctx):
        self.fit(ctx)
        return EstimatorOutput(np.full(len(ctx), self.mean_), [None] * len(ctx))


class NanWithoutReason(Estimator):
    name = "broken_nan"

    def predict(self, ctx):
        return EstimatorOutput(np.full(len(ctx), np.nan), [None] * len(ctx))


class HiddenParameter(Estimator):
    name = "broken_params"

    def __init__(self, width: int = 3):
        self.w = width  # not stored under its own name: get_params cannot report it

    def predict(self, ctx):
        return EstimatorOutput(np.full(len(ctx), 0.5), [None] * len(ctx))


class NoDefault(HiddenParameter):
    name = "broken_no_default"

    def __init__(self, width: int):
        self.width = width


class Unrepeatable(Estimator):
    name = "broken_random"

    def predict(self, ctx):
        return EstimatorOutput(np.random.default_rng().uniform(size=len(ctx)), [None] * len(ctx))


@pytest.mark.parametrize("estimator, message", [
    (WrongLength(), "returned 11 confidences for 12 questions"),
    (OutOfRange(), r"confidence\(s\) outside \[0, 1\]"),
    (FitReadsEvaluation(), "fit\\(\\) read the evaluation split's targets"),
    (FitsOnEvaluation(), "fit\\(\\) was called with the evaluation split"),
    (NanWithoutReason(), "NaN confidence without a reason"),
    (HiddenParameter(), "get_params\\(\\) returned \\[\\], expected the constructor parameters \\['width'\\]"),
    (NoDefault, "needs a default"),
    (Unrepeatable(), "twice on the same context gave different confidences"),
])
def test_check_estimator_fails_on_broken_estimators(estimator, message):
    with pytest.raises(CheckError, match=message):
        check_estimator(estimator)


def test_a_fixed_estimator_passes_the_same_checks():
    """The broken leak estimator, fitted on its training split as it should be, passes."""

    class FitOnTrain(FitReadsEvaluation):
        name = "fixed_leak"

        def fit(self, train, validation=None):
            self.mean_ = float(np.mean(train.targets.mu))
            return self

    check_estimator(FitOnTrain())
    ctx = make_context(5, 2)
    assert len(ctx) == 5 and ctx.targets.labels.shape == (5, 2)
    assert ctx.other_split("train").ids[0] != ctx.ids[0] and ctx.other_split("validation") is not None
    assert 0 < float(np.mean(ctx.targets.mu)) < 1


# -- backends ------------------------------------------------------------------------------------------------
@pytest.mark.model
def test_the_embedded_backend_passes(embedded_backend):
    assert embedded_backend.capabilities == {"logprobs", "hidden_states", "next_token_logprobs"}
    check_backend(embedded_backend)


def test_the_openai_backend_passes_against_a_server():
    from capcal.models.openai_backend import OpenAIBackend
    from stub_server import StubServer

    with StubServer() as srv:
        backend = OpenAIBackend(model="stub", base_url=srv.base_url)
        try:
            assert backend.capabilities == {"logprobs"}
            check_backend(backend)
        finally:
            backend.close()


class _Backend(ModelBackend):
    backend, model = "broken", "m"

    def generate(self, requests, on_result, progress=None):
        for r in requests:
            on_result([(sid, Completion(text="4", finish_reason="stop")) for sid in r.sample_ids])


class _DropsASample(_Backend):
    def generate(self, requests, on_result, progress=None):
        for r in requests:
            on_result([(sid, Completion(text="4", finish_reason="stop")) for sid in r.sample_ids[1:]])


class _Twice(_Backend):
    def generate(self, requests, on_result, progress=None):
        super().generate(requests, on_result)
        super().generate(requests[:1], on_result)


class _DeclaresHiddenStates(_Backend):
    supports_hidden_states = True


class _HidesNextToken(_Backend):
    def next_token_logprobs(self, messages, top_k=20):
        return [{"4": -0.1} for _ in messages]


def test_check_backend_fails_on_broken_backends():
    check_backend(_Backend())  # the minimal correct one passes
    with pytest.raises(CheckError, match="expected every sample id"):
        check_backend(_DropsASample())
    with pytest.raises(CheckError, match="more than once"):
        check_backend(_Twice())
    with pytest.raises(CheckError, match="hidden_states\\(\\) raised NotImplementedError"):
        check_backend(_DeclaresHiddenStates())
    with pytest.raises(CheckError, match="supports_next_token_logprobs is not declared"):
        check_backend(_HidesNextToken())
