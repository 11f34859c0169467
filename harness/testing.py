"""Conformance checks for plugin authors, in the spirit of scikit-learn's ``check_estimator``.

Run them in your plugin's own tests::

    from capcal.testing import check_estimator, check_grader, check_task, make_context

    def test_my_estimator_conforms():
        check_estimator(MyEstimator())                      # synthetic contexts, no model needed

    def test_my_grader_conforms():
        check_grader(MyGrader(), cases=[("The answer is 4", {"answer": "4"}, True)])

Each check raises :class:`CheckError` (an ``AssertionError``, so pytest shows it as a failure) whose
message names the plugin and the rule it broke, and returns ``None`` when everything holds:

* :func:`check_task`: examples with unique string ids and canonical fields, well-formed chat prompts,
  an empty reply never correct, gold answers (when you say how to write one) graded correct.
* :func:`check_grader`: ``GradeResult`` types, never correct without an extracted answer, your cases
  graded as expected, ``normalize`` hashable and ``equivalent`` reflexive.
* :func:`check_estimator`: named constructor parameters with defaults that ``get_params`` returns and that
  rebuild an equal estimator (``**options``, if any, must fold into them); one confidence per question, in [0, 1] or NaN with a reason; repeatable
  output; works on a subset of questions; ``fit`` never reads the evaluation split (it is given only the
  training and validation contexts, and reading the evaluation targets while fitting is caught); the
  held-out splits share no question (id or normalised text) with the scored ones, and the confidences do
  not change when the scored questions' own targets are permuted, unless the estimator's meta declares
  it in-sample (:func:`capcal.leakage.check_estimator_leakage`).
* :func:`check_backend`: identity and ``describe``; every requested sample reported once with a
  :class:`~capcal.models.base.Completion`; each declared capability (``supports_logprobs``,
  ``supports_hidden_states``, ``supports_next_token_logprobs``) works and the undeclared ones raise
  ``NotImplementedError``.

:func:`make_context` builds a synthetic :class:`~capcal.estimators.EstimatorContext` (with training and
validation splits, no model) for estimators that do not call the model.
"""

from __future__ import annotations

import inspect
import json
import math
import tempfile
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .estimators import Estimator, EstimatorContext, EstimatorOutput
from .models.base import CAPABILITIES, Completion, GenerationRequest, ModelBackend, SamplingParams
from .targets import Targets

__all__ = ["CheckError", "check_backend", "check_estimator", "check_grader", "check_task", "make_context"]

ROLES = ("system", "user", "assistant")


class CheckError(AssertionError):
    """A plugin breaks a rule of the capcal interface; the message says which."""


def _require(ok: Any, who: str, message: str) -> None:
    if not ok:
        raise CheckError(f"{who}: {message}")


# -- tasks and graders ---------------------------------------------------------------------------------
def _check_result(who: str, result: Any, where: str) -> None:
    _require(hasattr(result, "extracted") and hasattr(result, "correct"), who,
             f"{where} returned {type(result).__name__}, expected a GradeResult (extracted, correct)")
    _require(result.extracted is None or isinstance(result.extracted, str), who,
             f"{where}: extracted must be a str or None, got {type(result.extracted).__name__}")
    _require(isinstance(result.correct, (bool, np.bool_)), who,
             f"{where}: correct must be a bool, got {type(result.correct).__name__}")
    if result.extracted is None or not str(result.extracted).strip():
        _require(not result.correct, who, f"{where}: graded correct without an extracted answer")


def check_grader(grader: Any, cases: Iterable[tuple[str, dict, bool]] = ()) -> None:
    """Check a grader (an object with ``extract``, ``grade``, ``normalize``, ``equivalent``).

    Args:
        grader: the grader instance.
        cases: ``(response, fields, expected correct)`` triples graded and compared with the expectation;
            ``fields`` are an example's canonical fields (``{"answer": ..., "aliases": [...], ...}``).

    Raises:
        CheckError: the first rule broken.
    """
    who = f"grader {getattr(grader, 'name', type(grader).__name__)!r}"
    _require(isinstance(getattr(grader, "name", None), str) and grader.name, who, "needs a non-empty str `name`")
    for method in ("extract", "grade", "normalize", "equivalent"):
        _require(callable(getattr(grader, method, None)), who, f"has no method {method}()")
    cases = list(cases)
    for fields in [c[1] for c in cases] or [{"answer": "1", "aliases": ["1"], "choices": []}]:
        for empty in ("", "   ", "\n"):
            result = grader.grade(empty, fields)
            _check_result(who, result, f"grade({empty!r})")
            _require(not result.correct, who, f"an empty reply {empty!r} was graded correct")
    for response, fields, expected in cases:
        result = grader.grade(response, fields)
        _check_result(who, result, f"grade({response[:40]!r})")
        _require(bool(result.correct) == bool(expected), who,
                 f"grade({response[:60]!r}, answer={fields.get('answer')!r}) gave correct={result.correct}, "
                 f"expected {expected}")
        again = grader.grade(response, fields)
        _require((again.extracted, bool(again.correct)) == (result.extracted, bool(result.correct)), who,
                 f"grade({response[:40]!r}) is not repeatable")
        extracted = grader.extract(response)
        _require(extracted is None or isinstance(extracted, str), who, "extract() must return a str or None")
        if extracted is not None and extracted.strip():
            key = grader.normalize(extracted)
            _require(isinstance(key, Hashable), who, f"normalize({extracted!r}) is not hashable")
            _require(grader.equivalent(extracted, extracted), who, f"equivalent({extracted!r}, itself) is False")


def check_task(task: Any, *, split: str = "eval", limit: int = 5,
               gold_response: Callable[[Any], str] | None = None) -> None:
    """Check a task (:class:`capcal.tasks.Task` or anything with the same interface) on real rows.

    Args:
        task: the task.
        split: the split role to read (``"eval"``, ``"train"``, ``"validation"``).
        limit: rows to check.
        gold_response: writes the gold answer of an example the way the prompt asks
            (``lambda ex: f"The answer is {ex.fields['answer']}"``); each such reply must grade correct.

    Raises:
        CheckError: the first rule broken.
    """
    who = f"task {getattr(task, 'name', type(task).__name__)!r}"
    _require(isinstance(getattr(task, "name", None), str) and task.name, who, "needs a non-empty str `name`")
    examples = task.examples(split, limit)
    _require(isinstance(examples, list) and examples, who, f"examples({split!r}, {limit}) returned no examples")
    _require(len(examples) <= limit, who, f"examples(limit={limit}) returned {len(examples)} rows")
    ids = [ex.id for ex in examples]
    _require(all(isinstance(i, str) and i for i in ids), who, "question ids must be non-empty strings")
    _require(len(set(ids)) == len(ids), who, "question ids repeat within a split")
    _require([ex.id for ex in task.examples(split, limit)] == ids, who, "examples() is not repeatable")
    for ex in examples:
        where = f"{who}, question {ex.id!r}"
        _require(isinstance(ex.index, int) and ex.index >= 0, where, "index must be an int >= 0")
        _require(isinstance(ex.fields, dict), where, "fields must be a dict")
        _require(isinstance(ex.fields.get("question"), str) and ex.fields["question"].strip(), where,
                 "fields['question'] must be a non-empty str")
        _require("answer" in ex.fields, where, "fields has no 'answer'")
        messages = task.render(ex)
        _require(isinstance(messages, list) and messages, where, "render() returned no messages")
        for m in messages:
            _require(isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str),
                     where, f"render() gave a malformed message {m!r}")
        _require(messages[-1]["role"] == "user" and messages[-1]["content"].strip(), where,
                 "the last rendered message must be a non-empty user message")
        _check_result(where, task.grade("", ex), "grade('')")
        _require(not task.grade("", ex).correct, where, "an empty reply was graded correct")
        if gold_response is not None:
            reply = gold_response(ex)
            result = task.grade(reply, ex)
            _check_result(where, result, f"grade({reply[:40]!r})")
            _require(result.correct, where, f"the gold reply {reply[:60]!r} was graded incorrect "
                                            f"(extracted {result.extracted!r})")
    generation = getattr(task, "generation", {})
    _require(isinstance(generation, dict), who, "generation must be a dict of sampling defaults")


# -- estimators -----------------------------------------------------------------------------------------
class _SyntheticTask:
    """A stand-in task for :func:`make_context`: numeric answers, graded with the ``numeric`` grader."""

    name = "synthetic"
    generation = {"temperature": 1.0, "max_tokens": 16}

    def __init__(self):
        from .graders import BUILTIN_GRADERS

        self.grader = BUILTIN_GRADERS["numeric"]()

    def render(self, example: Any) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{example.fields['question']}\nEnd with \"The answer is N\"."}]

    def grade(self, response: str, example: Any):
        return self.grader.grade(response, example.fields)


def make_context(n_questions: int = 12, k: int = 4, *, seed: int = 0, split: str = "eval",
                 backend: ModelBackend | None = None, cache_dir: str | Path | None = None,
                 registry: Any = None, _others: dict | None = None) -> EstimatorContext:
    """A synthetic estimator context: arithmetic questions, k graded samples each, and other splits.

    The samples are real :class:`Completion` objects ("The answer is N", with per-token log-probabilities)
    graded by the ``numeric`` grader through :func:`capcal.targets.grade_split`; each question has its own
    chance of a right answer, so mu varies between 0 and 1. ``split_context("train" | "validation")`` gives
    contexts of the same kind on other questions (``n_questions`` each, other seeds).

    Args:
        n_questions: Q, questions of this split.
        k: samples per question.
        seed: seed of the questions, the answers and ``ctx.seed``.
        split: the split name recorded in the context.
        backend: a model backend for estimators that call the model (default ``None``).
        cache_dir: the estimators' cache folder (default: a new temporary folder).
        registry: recorded as ``ctx.registry`` (default ``None``: the active registry).
    """
    from .targets import grade_split
    from .tasks import Example

    rng = np.random.default_rng([seed, {"eval": 0, "train": 1, "validation": 2}.get(split, 3)])
    task = _SyntheticTask()
    examples = []
    for i in range(n_questions):
        a, b = (int(x) for x in rng.integers(2, 99, size=2))
        examples.append(Example(index=i, id=f"{split}-{seed}-{i}", doc={"a": a, "b": b},
                                fields={"question": f"What is {a} + {b}?", "answer": str(a + b)}))
    skill = rng.beta(1.2, 1.2, size=n_questions)
    samples = []
    for q, ex in enumerate(examples):
        row = []
        for _ in range(k):
            right = rng.uniform() < skill[q]
            value = int(ex.fields["answer"]) + (0 if right else int(rng.integers(1, 9)))
            text = f"{a_plus(ex)} = {value}. The answer is {value}"
            tokens = text.split(" ")
            lps = [float(-rng.exponential(0.3 if right else 1.0)) for _ in tokens]
            row.append(Completion(text=text, finish_reason="stop", tokens=tokens, token_logprobs=lps,
                                  top_logprobs=[{t: lp} for t, lp in zip(tokens, lps, strict=True)]))
        samples.append(row)
    targets = Targets.from_rows(grade_split(task, examples, samples, designated=0))
    cache = Path(cache_dir) if cache_dir is not None else Path(tempfile.mkdtemp(prefix="capcal-check-"))
    others = _others if _others is not None else {}
    ctx = EstimatorContext(task=task, split=split, examples=examples, messages=[task.render(e) for e in examples],
                           ids=np.array([e.id for e in examples], dtype=object), backend=backend,
                           samples=samples, targets=targets, cache_dir=cache / split, seed=seed,
                           sampling=SamplingParams(temperature=1.0, max_tokens=16), registry=registry)
    others[split] = ctx

    def split_context(name: str) -> EstimatorContext:
        if name not in others:
            others[name] = make_context(n_questions, k, seed=seed, split=name, backend=backend, cache_dir=cache,
                                        registry=registry, _others=others)
        return others[name]

    ctx.split_context = split_context
    return ctx


def a_plus(example: Any) -> str:
    """``"a + b"`` of a synthetic example (the working shown before its answer)."""
    return f"{example.doc['a']} + {example.doc['b']}"


class _EvalGuard:
    """Wraps the evaluation targets; records any read while ``state["fitting"]`` is set."""

    def __init__(self, targets: Targets, state: dict):
        object.__setattr__(self, "_targets", targets)
        object.__setattr__(self, "_state", state)

    def __getattr__(self, name: str) -> Any:
        state = object.__getattribute__(self, "_state")
        if state["fitting"]:
            state["leaks"].append(name)
        return getattr(object.__getattribute__(self, "_targets"), name)

    def __len__(self) -> int:
        return len(object.__getattribute__(self, "_targets"))


def _guarded(ctx: EstimatorContext) -> tuple[EstimatorContext, EstimatorContext | None, EstimatorContext | None,
                                             dict]:
    """Copies of the evaluation context and its training / validation contexts, whose evaluation targets
    report reads made while the estimator fits."""
    state: dict[str, Any] = {"fitting": False, "leaks": [], "fit_splits": []}
    eval_ctx = replace(ctx, targets=_EvalGuard(ctx.targets, state))
    others: dict[str, EstimatorContext | None] = {}

    def split_context(name: str) -> EstimatorContext:
        if name == "eval" or name == ctx.split:
            return eval_ctx
        if name not in others:
            other = ctx.split_context(name) if ctx.split_context is not None else None
            others[name] = None if other is None else replace(other, split_context=split_context)
        if others[name] is None:
            from .errors import DataError

            raise DataError(f"no {name!r} split")
        return others[name]

    eval_ctx.split_context = split_context
    return eval_ctx, eval_ctx.other_split("train"), eval_ctx.other_split("validation"), state


def _check_output(who: str, out: Any, q: int, where: str) -> np.ndarray:
    _require(isinstance(out, EstimatorOutput), who, f"{where} returned {type(out).__name__}, expected EstimatorOutput")
    conf = np.asarray(out.confidence, dtype=float)
    _require(conf.shape == (q,), who, f"{where} returned {conf.size} confidences for {q} questions")
    _require(len(out.reasons) == q, who, f"{where} returned {len(out.reasons)} reasons for {q} questions")
    finite = np.isfinite(conf)
    _require(not np.isinf(conf).any(), who, f"{where} returned an infinite confidence")
    bad = finite & ((conf < 0) | (conf > 1))
    _require(not bad.any(), who, f"{where} returned {int(bad.sum())} confidence(s) outside [0, 1] "
                                 f"(first: {conf[bad][0] if bad.any() else ''})")
    for i in np.flatnonzero(~finite):
        _require(isinstance(out.reasons[i], str) and out.reasons[i].strip(), who,
                 f"{where}: question {i} has a NaN confidence without a reason")
    _require(isinstance(out.meta, dict), who, f"{where}: meta must be a dict")
    try:
        json.dumps(out.meta, default=str, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise CheckError(f"{who}: {where}: meta cannot be recorded as JSON ({exc})") from None
    return conf


def _call(who: str, what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except CheckError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the plugin is reported as a failed check
        raise CheckError(f"{who}: {what} raised {type(exc).__name__}: {exc}".splitlines()[0]) from exc


def check_estimator(estimator: Estimator | type, ctx: EstimatorContext | None = None) -> None:
    """Check an estimator (an instance, or a class built with its defaults) against the interface.

    Args:
        estimator: the estimator.
        ctx: the evaluation context to predict on (with ``split_context`` giving ``"train"`` and
            ``"validation"`` for estimators that learn). Default: :func:`make_context` (no model); an
            estimator with ``needs_model = True`` needs a context with a backend.

    Raises:
        CheckError: the first rule broken (see the module docstring).
    """
    cls = estimator if isinstance(estimator, type) else type(estimator)
    who = f"estimator {getattr(cls, 'name', cls.__name__)!r}"
    _require(isinstance(getattr(cls, "name", None), str) and cls.name and cls.name != Estimator.name, who,
             "needs its own non-empty str `name`")
    # parameters: from the constructor signature, all with defaults, stored under their own names
    init = cls.__init__
    params = ([] if init is object.__init__ else
              [p for p in inspect.signature(init).parameters.values() if p.name != "self"])
    _require(not any(p.kind is p.VAR_POSITIONAL for p in params), who,
             "the constructor must take named parameters (no *args)")
    params = [p for p in params if p.kind is not p.VAR_KEYWORD]  # **options must fold into named ones
    for p in params:
        _require(p.default is not inspect.Parameter.empty, who,
                 f"constructor parameter {p.name!r} needs a default (the registry builds estimators by name)")
    if isinstance(estimator, type):
        estimator = _call(who, "the constructor with default parameters", estimator)
    for flag in ("learns", "needs_model"):
        _require(isinstance(getattr(estimator, flag, False), bool), who, f"`{flag}` must be a bool")
    got = _call(who, "get_params()", estimator.get_params)
    _require(isinstance(got, dict) and set(got) == {p.name for p in params}, who,
             f"get_params() returned {sorted(got) if isinstance(got, dict) else got!r}, expected the constructor "
             f"parameters {sorted(p.name for p in params)}")
    clone = _call(who, "rebuilding from get_params()", lambda: cls(**got))
    _require(clone.get_params() == got, who, "an estimator rebuilt from get_params() has other parameters")

    ctx = ctx if ctx is not None else make_context()
    if estimator.needs_model:
        _require(ctx.backend is not None, who, "needs a model: pass a context whose backend is set")
    eval_ctx, train, validation, state = _guarded(ctx)
    q = len(eval_ctx)
    fit = estimator.fit

    def guarded_fit(train_ctx=None, validation_ctx=None, *args, **kwargs):
        for c in (train_ctx, validation_ctx):
            if isinstance(c, EstimatorContext):
                state["fit_splits"].append(c.split)
        state["fitting"] = True
        try:
            return fit(train_ctx, validation_ctx, *args, **kwargs)
        finally:
            state["fitting"] = False

    estimator.fit = guarded_fit  # type: ignore[method-assign]
    try:
        if estimator.learns:
            fitted = _call(who, "fit(train, validation)", lambda: estimator.fit(train, validation))
            _require(fitted is estimator, who, "fit() must return self")
        out = _call(who, "predict(ctx)", lambda: estimator.predict(eval_ctx))
        conf = _check_output(who, out, q, "predict(ctx)")
        _require("eval" not in state["fit_splits"], who, "fit() was called with the evaluation split")
        _require(not state["leaks"], who, f"fit() read the evaluation split's targets "
                                          f"({', '.join(sorted(set(state['leaks'])))}): fit on train/validation only")
        again = _check_output(who, _call(who, "a second predict(ctx)", lambda: estimator.predict(eval_ctx)), q,
                              "a second predict(ctx)")
        _require(np.array_equal(np.isnan(conf), np.isnan(again))
                 and np.allclose(conf[~np.isnan(conf)], again[~np.isnan(again)], atol=1e-9), who,
                 "predict(ctx) twice on the same context gave different confidences")
        half = max(1, q // 2)
        sub = eval_ctx.subset(np.arange(half))
        _check_output(who, _call(who, f"predict on {half} of the questions", lambda: estimator.predict(sub)), half,
                      f"predict on a subset of {half} questions")
        _require("eval" not in state["fit_splits"], who, "fit() was called with the evaluation split")
        _require(not state["leaks"], who, "fit() read the evaluation split's targets")
    finally:
        del estimator.fit
    # the leakage rule (capcal.leakage): the held-out splits share no question with the scored ones, and
    # the confidences do not move when the scored questions' own targets are permuted and flipped, unless
    # the estimator declares itself in-sample (meta "in_sample" / "samples_overlap_mu")
    from .leakage import LeakageError, check_estimator_leakage

    try:
        _call(who, "the leakage check", lambda: check_estimator_leakage(lambda: cls(**got), ctx))
    except CheckError as exc:
        if isinstance(exc.__cause__, LeakageError):
            raise CheckError(f"{who}: {exc.__cause__}") from None
        raise


# -- backends -------------------------------------------------------------------------------------------
def check_backend(backend: ModelBackend, *, messages: Sequence[list[dict[str, str]]] | None = None,
                  params: SamplingParams | None = None, samples: int = 2) -> None:
    """Check a model backend: identity, sampling through ``generate``, and its declared capabilities.

    Args:
        backend: the backend (ready to serve).
        messages: prompts to sample (default: two short questions).
        params: sampling parameters (default: temperature 1, at most 8 new tokens).
        samples: samples per prompt.

    Raises:
        CheckError: the first rule broken.
    """
    who = f"backend {getattr(backend, 'backend', type(backend).__name__)!r}"
    _require(isinstance(getattr(backend, "backend", None), str) and backend.backend, who, "needs a str `backend`")
    _require(isinstance(getattr(backend, "model", None), str) and backend.model, who, "needs a str `model`")
    desc = _call(who, "describe()", backend.describe)
    _require(isinstance(desc, dict) and desc.get("backend") == backend.backend, who,
             "describe() must be a dict whose 'backend' is the backend's name")
    _call(who, "json.dumps(describe())", lambda: json.dumps(desc))
    messages = list(messages or [[{"role": "user", "content": "What is 2 + 2? Answer with a number."}],
                                 [{"role": "user", "content": "Name a colour."}]])
    params = params or SamplingParams(temperature=1.0, max_tokens=8,
                                      logprobs=bool(getattr(backend, "supports_logprobs", False)))
    requests = [GenerationRequest(messages=m, params=params, sample_ids=[f"q{i}-s{j}" for j in range(samples)],
                                  seeds=[1000 * i + j for j in range(samples)]) for i, m in enumerate(messages)]
    got: dict[str, list[Completion]] = {}
    progressed: list[int] = []

    def on_result(pairs):
        for sid, comp in pairs:
            got.setdefault(sid, []).append(comp)

    _call(who, "generate()", lambda: backend.generate(requests, on_result, progressed.append))
    wanted = {sid for r in requests for sid in r.sample_ids}
    _require(set(got) == wanted, who, f"generate() reported {sorted(set(got))[:4]}..., expected every sample id "
                                      f"once ({len(wanted)})")
    _require(all(len(v) == 1 for v in got.values()), who, "generate() reported a sample more than once")
    _require(not progressed or sum(progressed) == len(wanted), who,
             f"progress() counted {sum(progressed)} samples, {len(wanted)} were drawn")
    for sid, (comp,) in sorted(got.items()):
        _require(isinstance(comp, Completion), who, f"sample {sid}: expected a Completion, got {type(comp).__name__}")
        _require(isinstance(comp.text, str), who, f"sample {sid}: text must be a str")
        _require(isinstance(comp.finish_reason, str) and comp.finish_reason, who,
                 f"sample {sid}: finish_reason must be set (\"stop\", \"length\", ...)")
        if params.logprobs and getattr(backend, "supports_logprobs", False):
            _require(comp.tokens is not None and comp.token_logprobs is not None
                     and len(comp.tokens) == len(comp.token_logprobs), who,
                     f"sample {sid}: declares supports_logprobs but gave no aligned tokens / token_logprobs")
            _require(all(not math.isfinite(v) or v <= 1e-6 for v in comp.token_logprobs), who,
                     f"sample {sid}: a token log-probability is above 0")
    declared = getattr(backend, "capabilities", frozenset())
    _require(set(declared) <= set(CAPABILITIES), who, f"unknown capabilities {sorted(set(declared) - set(CAPABILITIES))}")
    if getattr(backend, "supports_hidden_states", False):
        states = _call(who, "hidden_states()", lambda: backend.hidden_states(messages[:2]))
        _require(isinstance(states, dict) and {"last", "mean"} <= set(states), who,
                 "hidden_states() must return {'last': ..., 'mean': ...}")
        for key in ("last", "mean"):
            arr = np.asarray(states[key])
            _require(arr.ndim == 3 and arr.shape[0] == len(messages[:2]) and np.isfinite(arr).all(), who,
                     f"hidden_states()[{key!r}] must be a finite (B, L + 1, H) array, got shape {arr.shape}")
    else:
        _require(_raises_not_implemented(lambda: backend.hidden_states(messages[:1])), who,
                 "hidden_states() works but supports_hidden_states is not declared (or it fails another way)")
    if getattr(backend, "supports_next_token_logprobs", False):
        dists = _call(who, "next_token_logprobs()", lambda: backend.next_token_logprobs(messages, top_k=5))
        _require(isinstance(dists, list) and len(dists) == len(messages), who,
                 "next_token_logprobs() must return one dict per prompt")
        for d in dists:
            _require(isinstance(d, dict) and d and all(isinstance(t, str) for t in d), who,
                     "next_token_logprobs(): each item must be a non-empty {token: logprob} dict")
            total = sum(math.exp(v) for v in d.values())
            _require(total <= 1 + 1e-6, who, f"next_token_logprobs(): probabilities add up to {total:.4f} > 1")
    else:
        _require(_raises_not_implemented(lambda: backend.next_token_logprobs(messages[:1])), who,
                 "next_token_logprobs() works but supports_next_token_logprobs is not declared "
                 "(or it fails another way)")


def _raises_not_implemented(fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except NotImplementedError:
        return True
    except Exception:  # noqa: BLE001
        return False
    return False
