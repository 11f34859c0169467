"""A question-length heuristic: long questions are harder, so confidence falls with length."""

from __future__ import annotations

import numpy as np
from capcal.estimators import Estimator, EstimatorContext, EstimatorOutput


class QuestionLengthEstimator(Estimator):
    """Confidence ``exp(-words / scale)`` from the number of whitespace-separated words in the question.

    Args:
        scale: words at which confidence falls to 1/e (> 0).

    A question without text gets NaN with the reason ``"empty question"``. It needs no model and learns nothing.
    """

    name = "question_length"

    def __init__(self, scale: float = 60.0):
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = float(scale)

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        words = np.array([len(str(ex.fields.get("question", "")).split()) for ex in ctx.examples], dtype=float)
        confidence = np.exp(-words / self.scale)
        confidence[words == 0] = np.nan
        reasons = ["empty question" if w == 0 else None for w in words]
        return EstimatorOutput(confidence, reasons, meta={"scale": self.scale, "mean_words": float(words.mean())
                                                          if len(words) else None})
