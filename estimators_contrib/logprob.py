"""Token-probability baselines of the designated response (response-level baselines, no extra model call)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from capcal.estimators import Estimator, EstimatorContext, EstimatorOutput

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    pass


def sequence_scores(token_logprobs: Sequence[float] | None) -> tuple[float, float, str | None]:
    """Mean-token and whole-sequence probability of one response.

    Args:
        token_logprobs: natural-log probability of each generated token (``None`` or empty: not returned).

    Returns:
        ``(exp(mean logprob), exp(sum logprob), None)``, both in [0, 1]; ``(nan, nan, reason)`` when the
        backend returned no (or non-finite) logprobs.
    """
    import numpy as np

    if not token_logprobs:
        return math.nan, math.nan, "backend returned no logprobs (sample with logprobs=True)"
    lp = np.asarray(token_logprobs, dtype=float)
    if not np.isfinite(lp).all():
        return math.nan, math.nan, "non-finite token logprob"
    lp = np.minimum(lp, 0.0)  # rounding can give +1e-7
    return float(np.exp(lp.mean())), float(np.exp(lp.sum())), None


class MeanTokenProb(Estimator):
    """exp(mean token log-probability) of the designated response: the geometric-mean token probability.

    Needs the stored samples to carry ``token_logprobs`` (the run samples with ``logprobs=True``);
    otherwise every question is NaN with the reason saying so. Only the answer text's tokens count (a
    reasoning part kept apart by the backend is not scored).
    """

    name = "logprob_mean"
    _column = 0

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        import numpy as np

        conf = np.full(len(ctx), np.nan)
        reasons: list[str | None] = [None] * len(ctx)
        lengths = []
        for i in range(len(ctx)):
            d = int(ctx.targets.designated[i])
            samples = ctx.samples[i] if i < len(ctx.samples) else []
            if d >= len(samples):
                reasons[i] = "designated sample not stored"
                continue
            scores = sequence_scores(samples[d].token_logprobs)
            conf[i], reasons[i] = scores[self._column], scores[2]
            lengths.append(len(samples[d].token_logprobs or []))
        meta = {"mean_tokens": float(np.mean(lengths)) if lengths else 0.0,
                "n_nan": int(np.isnan(conf).sum())}
        return EstimatorOutput(conf, reasons, meta)


class SequenceProb(MeanTokenProb):
    """exp(sum of token log-probabilities): the probability of the whole designated response.

    Shrinks with length, so it is mostly a reference row; see :class:`MeanTokenProb` for requirements.
    """

    name = "logprob_seq"
    _column = 1
