"""The confidence-estimator interface (scikit-learn-like) and the context an estimator works on.

An estimator is a class with its parameters in the constructor, ``fit`` where it learns, and ``predict``
that returns one confidence per question (NaN where it failed, with the reason kept). Built-ins live in
``capcal.estimators_contrib``; third parties register theirs through the ``capcal_register_estimators`` hook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .models.base import Completion, Messages, ModelBackend, SamplingParams
from .rundir import Targets


@dataclass
class EstimatorContext:
    """Everything an estimator may read about one task split of one run.

    Attributes:
        task: the :class:`capcal.tasks.Task` (grader, templates, spec).
        split: ``"eval"``, ``"train"`` or ``"validation"`` (the spec's role names).
        examples: (Q,) the task's examples (``capcal.tasks.Example``) of this split, in order.
        messages: (Q,) the rendered answer prompts.
        ids: (Q,) question ids, aligned with ``examples``.
        backend: the model backend of the run, or ``None`` when the run has no model at hand.
        samples: (Q,) per question the stored completions, in sample-index order.
        targets: graded targets aligned with ``ids`` (n, c, mu, designated, labels, extracted).
        cache_dir: a folder of the run directory where this estimator may cache expensive features.
        seed: the run seed, for anything random.
        split_context: ``split_context("train" | "validation")`` returns the context of another split of the
            same task, sampling and grading it first if needed (the pipeline provides it); ``None`` when
            unavailable. Learned estimators must fit on these, never on the ``"eval"`` split. It may raise
            :class:`capcal.errors.CapcalError` (e.g. ``DataError``) when the task has no such split.
        sampling: the sampling parameters the stored samples were drawn with (``None`` when unknown);
            estimators that draw more answers of the same kind (consistency) reuse them.
    """

    task: Any
    split: str
    examples: list[Any]
    messages: list[Messages]
    ids: np.ndarray
    backend: ModelBackend | None
    samples: list[list[Completion]]
    targets: Targets
    cache_dir: Path
    seed: int = 0
    split_context: Callable[[str], EstimatorContext] | None = None
    sampling: SamplingParams | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep) -> EstimatorContext:
        """This context restricted to the questions at positions ``keep`` (examples, messages, samples,
        targets), in that order."""
        from dataclasses import replace

        idx = np.asarray(keep, dtype=np.int64)
        pick = [int(i) for i in idx]
        return replace(self, examples=[self.examples[i] for i in pick] if self.examples else [],
                       messages=[self.messages[i] for i in pick] if self.messages else [],
                       ids=np.asarray(self.ids)[idx], samples=[self.samples[i] for i in pick] if self.samples else [],
                       targets=self.targets.take(idx))


@dataclass
class EstimatorOutput:
    """What ``predict`` returns.

    Attributes:
        confidence: (Q,) float in [0, 1]; NaN where the estimator failed on that question.
        reasons: (Q,) ``None`` where it succeeded, otherwise a short reason (``"unparseable reply"``).
        meta: anything worth recording (parse rate, chosen layer, regularisation, flags such as
            ``"samples_overlap_mu": True``).
    """

    confidence: np.ndarray
    reasons: list[str | None]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.confidence = np.asarray(self.confidence, dtype=float)
        if len(self.reasons) != len(self.confidence):
            raise ValueError("confidence and reasons must have the same length")
        bad = np.isfinite(self.confidence) & ((self.confidence < 0) | (self.confidence > 1))
        if bad.any():
            raise ValueError(f"{int(bad.sum())} confidences outside [0, 1]")

    @property
    def failure_rate(self) -> float:
        """Share of questions with a NaN confidence (0.0 for an empty output)."""
        return float(np.isnan(self.confidence).mean()) if len(self.confidence) else 0.0


class Estimator:
    """Base class of confidence estimators.

    Subclasses set ``name``, set ``learns = True`` when ``fit`` must be called before ``predict``, set
    ``needs_model = True`` when they call the model, and implement :meth:`predict` (and :meth:`fit`).
    """

    name: str = "estimator"
    learns: bool = False
    needs_model: bool = False

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (public attributes not ending in ``_``), recorded with the output."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and not k.endswith("_")}

    def fit(self, train: EstimatorContext, validation: EstimatorContext | None = None) -> Estimator:
        """Learn from a training split (and select hyper-parameters on ``validation``). Returns ``self``."""
        return self

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        """One confidence per question of ``ctx``."""
        raise NotImplementedError
