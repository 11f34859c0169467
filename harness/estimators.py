"""The confidence-estimator interface (scikit-learn-like) and the context an estimator works on.

An estimator is a class with its parameters in the constructor, ``fit`` where it learns, and ``predict``
that returns one confidence per question (NaN where it failed, with the reason kept). Built-ins live in
``capcal.estimators_contrib``; third parties register theirs through the ``capcal_register_estimators`` hook.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CapcalError
from .models.base import Completion, Messages, ModelBackend, SamplingParams
from .targets import Targets

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    import numpy as np


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
        registry: the :class:`capcal.registry.Registry` of the run; every name an estimator resolves
            (templates, a wrapped base estimator) is looked up here. ``None`` means the registry active in
            this context (:func:`capcal.registry.get_registry`).
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
    registry: Any = None

    def __len__(self) -> int:
        return len(self.ids)

    def get_registry(self) -> Any:
        """The run's registry (:attr:`registry`), or the one active in this context when it is ``None``."""
        if self.registry is not None:
            return self.registry
        from .registry import get_registry

        return get_registry()

    def render_prompt(self, template: str, **variables: Any) -> Messages:
        """Render an estimator's Jinja template from the run's template folders to one user message.

        Args:
            template: file name relative to a registered template folder (``"estimators/verbalized.jinja"``).
            **variables: the template's variables (sandboxed; an undefined variable is an error).

        Returns:
            ``[{"role": "user", "content": text}]``, surrounding whitespace stripped.

        Raises:
            UnknownNameError: no registered template folder holds ``template``.
            CapcalError: the template uses a variable that was not given.
        """
        from .prompts import render_user_prompt

        return render_user_prompt(template, template_dirs=self.get_registry().template_dirs, **variables)

    def other_split(self, split: str) -> EstimatorContext | None:
        """``split_context(split)``, or ``None`` when the run has no such split (no error raised)."""
        if self.split_context is None:
            return None
        try:
            return self.split_context(split)
        except CapcalError:
            return None

    def subset(self, keep: Sequence[int] | np.ndarray) -> EstimatorContext:
        """This context restricted to the questions at positions ``keep`` (examples, messages, samples,
        targets), e.g. to hold out part of a training split."""
        import numpy as np

        pick = [int(i) for i in np.asarray(keep, dtype=np.int64)]
        return replace(self, examples=[self.examples[i] for i in pick] if self.examples else [],
                       messages=[self.messages[i] for i in pick] if self.messages else [], ids=np.asarray(self.ids)[pick],
                       samples=[self.samples[i] for i in pick] if self.samples else [],
                       targets=self.targets.take(pick))


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
        import numpy as np

        self.confidence = np.asarray(self.confidence, dtype=float)
        if len(self.reasons) != len(self.confidence):
            raise ValueError("confidence and reasons must have the same length")
        bad = np.isfinite(self.confidence) & ((self.confidence < 0) | (self.confidence > 1))
        if bad.any():
            raise ValueError(f"{int(bad.sum())} confidences outside [0, 1]")

    @property
    def failure_rate(self) -> float:
        """Share of questions with a NaN confidence (0.0 for an empty output)."""
        import numpy as np

        return float(np.isnan(self.confidence).mean()) if len(self.confidence) else 0.0


class Estimator:
    """Base class of confidence estimators.

    Subclasses set ``name``, set ``learns = True`` when ``fit`` must be called before ``predict``, set
    ``needs_model = True`` when they call the model, and implement :meth:`predict` (and :meth:`fit`).
    """

    name: str = "estimator"
    learns: bool = False
    needs_model: bool = False

    @classmethod
    def parameter_names(cls) -> list[str]:
        """The constructor's keyword parameters, in signature order (scikit-learn's convention: every
        parameter is stored unchanged as an attribute of the same name)."""
        if cls.__init__ is object.__init__:
            return []
        return [p.name for p in inspect.signature(cls.__init__).parameters.values()
                if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def get_params(self) -> dict[str, Any]:
        """``{parameter: value}`` for every constructor parameter (:meth:`parameter_names`), recorded with
        the output. A parameter not stored under its own name is left out."""
        return {k: getattr(self, k) for k in self.parameter_names() if hasattr(self, k)}

    def fit(self, train: EstimatorContext, validation: EstimatorContext | None = None) -> Estimator:
        """Learn from a training split (and select hyper-parameters on ``validation``). Returns ``self``."""
        return self

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        """One confidence per question of ``ctx``."""
        raise NotImplementedError
