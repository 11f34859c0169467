"""Verbalized confidence: ask the model how likely it is to answer the question correctly."""

from __future__ import annotations

from typing import TYPE_CHECKING

from capcal.errors import CapcalError
from capcal.estimators import Estimator, EstimatorContext, EstimatorOutput
from capcal.forced_formats import confidence_grammar
from capcal.generation import CompletionCache, derived_seeds, generate_many
from capcal.models.base import SamplingParams
from capcal.tasks import LETTERS

from ._common import question_of
from ._verbalized_parse import parse_confidence

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    pass


class Verbalized(Estimator):
    """Verbalized confidence on a ten-step probability ladder, answered as ``\\boxed{p}``.

    The prompt (``templates/estimators/verbalized.jinja``) shows the question (and its options) and asks,
    before any answer, for the probability of answering it correctly. The reply is parsed by
    :func:`capcal.estimators_contrib._verbalized_parse.parse_confidence`. An unparseable reply is asked
    again with a new seed at ``retry_temperature``, at most ``retries`` times; after the last retry the
    question gets NaN with the reason ``"unparseable reply"``.

    Args:
        template: template file, relative to a registered template folder.
        temperature: temperature of the first attempt (0 = greedy).
        retry_temperature: temperature of the retries (> 0, so that a new seed gives a new reply).
        retries: how many more attempts an unparseable reply gets (0 = none).
        max_tokens: token limit of a reply (raise it for reasoning models).
        forced: decode the reply under the forced format ``probability`` (free lines, then a final line
            ``\\boxed{p}``; :mod:`capcal.forced_formats`); ``None`` (default) follows the run: forced when
            the run's samples are (``--forced-format on``), free otherwise.

    Meta:
        ``parse_rate`` (share of questions parsed at the first attempt), ``final_parse_rate`` (after
        retries), ``mean_attempts``, ``n_unparseable``, ``examples_unparseable`` (up to 3 raw replies),
        ``forced`` (whether the forced format was used).
    """

    name = "verbalized"
    needs_model = True
    #: file of the reply cache in the split's cache folder, and the seed stream of the attempts
    _cache_file = "verbalized_replies.jsonl"
    _seed_stream = "verbalized"

    def __init__(self, template: str = "estimators/verbalized.jinja", temperature: float = 0.0,
                 retry_temperature: float = 1.0, retries: int = 2, max_tokens: int = 20,
                 forced: bool | None = None):
        if int(retries) < 0:
            raise CapcalError(f"verbalized: retries must be >= 0, got {retries}")
        if float(retry_temperature) <= 0 and int(retries) > 0:
            raise CapcalError("verbalized: retry_temperature must be > 0 (a greedy retry repeats the reply)")
        self.template = template
        self.temperature = float(temperature)
        self.retry_temperature = float(retry_temperature)
        self.retries = int(retries)
        self.max_tokens = int(max_tokens)
        self.forced = None if forced is None else bool(forced)

    def is_forced(self, ctx: EstimatorContext) -> bool:
        """Whether replies are decoded under the forced format (the parameter, else the run's setting)."""
        if self.forced is not None:
            return self.forced
        return getattr(getattr(ctx, "sampling", None), "grammar", None) is not None

    def prompts(self, ctx: EstimatorContext) -> list[list[dict[str, str]]]:
        """The rendered confidence prompts, one per question of ``ctx``."""
        out = []
        for example, messages in zip(ctx.examples, ctx.messages, strict=True):
            question, choices = question_of(example, messages)
            out.append(ctx.render_prompt(self.template, question=question, choices=choices, letters=LETTERS))
        return out

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        import numpy as np

        q = len(ctx)
        if ctx.backend is None:
            return EstimatorOutput(np.full(q, np.nan), ["no model backend in this run"] * q,
                                   {"parse_rate": 0.0, "final_parse_rate": 0.0})
        prompts = self.prompts(ctx)
        cache = CompletionCache(ctx.cache_dir / self._cache_file)
        conf = np.full(q, np.nan)
        attempts = np.zeros(q, dtype=np.int64)
        last_reply: list[str] = [""] * q
        todo = np.arange(q)
        first_parsed = 0
        forced = self.is_forced(ctx)
        extra = {"grammar": confidence_grammar(self.max_tokens)} if forced else {}
        for attempt in range(self.retries + 1):
            if not len(todo):
                break
            temp = self.temperature if attempt == 0 else self.retry_temperature
            params = SamplingParams(temperature=temp, top_p=1.0, top_k=0, min_p=0.0, max_tokens=self.max_tokens,
                                    **extra)
            seeds = [[derived_seeds(ctx.seed, self._seed_stream, int(i), self.retries + 1)[attempt]] for i in todo]
            replies = generate_many(ctx.backend, [prompts[i] for i in todo], seeds, params, cache,
                                    desc=f"{self.name} (attempt {attempt + 1})")
            still = []
            for i, reply in zip(todo, replies, strict=True):
                attempts[i] += 1
                last_reply[i] = reply[0].text
                value = parse_confidence(reply[0].text)
                if value is None:
                    still.append(i)
                else:
                    conf[i] = value
                    first_parsed += attempt == 0
            todo = np.array(still, dtype=np.int64)
        reasons = [None if np.isfinite(c) else "unparseable reply" for c in conf]
        failed = [last_reply[i] for i in range(q) if not np.isfinite(conf[i])]
        meta = {
            "parse_rate": first_parsed / q if q else 0.0,
            "final_parse_rate": float(np.isfinite(conf).mean()) if q else 0.0,
            "mean_attempts": float(attempts.mean()) if q else 0.0,
            "n_unparseable": len(failed),
            "examples_unparseable": [r[:200] for r in failed[:3]],
            "params": self.get_params(),
            "forced": forced,
        }
        return EstimatorOutput(conf, reasons, meta)
