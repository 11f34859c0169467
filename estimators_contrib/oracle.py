"""Reference rows: the two oracles (p = mu, p = r) and the constant base-rate baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from capcal.errors import CapcalError
from capcal.estimators import Estimator, EstimatorContext, EstimatorOutput

from ._common import usable_targets

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    import numpy as np


def _from_target(values: np.ndarray, what: str) -> EstimatorOutput:
    import numpy as np

    reasons = [None if np.isfinite(v) else f"no graded samples ({what} undefined)" for v in values]
    return EstimatorOutput(values, reasons, {})


class _Oracle(Estimator):
    """p = the target named by :attr:`target` (``"mu"`` or ``"r"``); NaN where a question has no samples."""

    target = "mu"

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        mu, r = usable_targets(ctx)
        out = _from_target(mu if self.target == "mu" else r, self.target)
        out.meta = {"samples_overlap_mu": True}
        return out


class OracleCC(_Oracle):
    """The capability oracle: p = mu (the share of correct samples). CC-Brier 0 by construction.

    Its RC-Brier equals mean mu(1 - mu) in expectation over the designated sample (the Bernoulli variance);
    note that mu is computed from the same samples as the targets, so it is an upper reference, not a method.
    """

    name = "oracle_cc"
    target = "mu"


class OracleRC(_Oracle):
    """The response oracle: p = r (the designated sample's correctness, 0 or 1). RC-Brier 0 by construction."""

    name = "oracle_rc"
    target = "r"


class Constant(Estimator):
    """A constant confidence: the mean capability target of the training split (a base rate).

    Args:
        value: a fixed confidence in [0, 1]; when given, nothing is fitted.
        split: which held-out split supplies the base rate (``"train"``, falling back to ``"validation"``).

    Fitting: ``fit(train, validation)`` takes the mean mu of ``train`` (else of ``validation``). When the
    task has neither split (triviaqa, simpleqa, math500, aime25, gpqa), ``predict`` uses the mean mu of the
    evaluated questions themselves, an *in-sample* base rate, and says so in meta (``"source": "eval"``,
    ``"in_sample": true``): its Brier score then equals the uncertainty term of the Brier decomposition.
    """

    name = "constant"
    # It does learn, but fits itself in ``predict`` through ``ctx.split_context`` so that a task without a
    # training split still gets its documented fallback (a pipeline calls ``fit`` only for ``learns``).
    learns = False

    def __init__(self, value: float | None = None):
        if value is not None and not 0.0 <= float(value) <= 1.0:
            raise CapcalError(f"constant: value must be in [0, 1], got {value}")
        self.value = None if value is None else float(value)
        self.value_: float | None = None
        self.source_: str | None = None

    def fit(self, train: EstimatorContext | None, validation: EstimatorContext | None = None) -> Constant:
        import numpy as np

        if self.value is not None:
            self.value_, self.source_ = self.value, "fixed"
            return self
        for ctx in (train, validation):
            if ctx is None or len(ctx) == 0:
                continue
            if ctx.split == "eval":
                raise CapcalError("constant: refusing to fit on the evaluation split")
            mu = usable_targets(ctx)[0]
            if np.isfinite(mu).any():
                self.value_, self.source_ = float(np.nanmean(mu)), ctx.split
                return self
        return self

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        import numpy as np

        q = len(ctx)
        meta: dict = {}
        if self.value_ is None:
            self.fit(ctx.other_split("train"), ctx.other_split("validation"))
        if self.value_ is None:
            mu = usable_targets(ctx)[0]
            if not np.isfinite(mu).any():
                return EstimatorOutput(np.full(q, np.nan), ["no graded samples"] * q, {"source": None})
            value, meta = float(np.nanmean(mu)), {"source": "eval", "in_sample": True}
        else:
            value, meta = self.value_, {"source": self.source_, "in_sample": False}
        meta["value"] = value
        return EstimatorOutput(np.full(q, value), [None] * q, meta)
