"""Recalibration wrappers: isotonic, Platt and histogram binning around any registered estimator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from capcal.errors import CapcalError
from capcal.estimators import Estimator, EstimatorContext, EstimatorOutput

from ._common import usable_targets

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    import numpy as np


class Calibrator:
    """A monotone map from raw confidence to recalibrated confidence, fitted on (p, target) pairs.

    Args:
        method: ``"isotonic"`` (scikit-learn ``IsotonicRegression``, clipped to [0, 1]), ``"platt"``
            (logistic regression on logit(p) with soft labels) or ``"histogram"`` (equal-width bins of p;
            each bin maps to the mean target of its fitting points; an empty bin maps to the overall mean).
        bins: number of bins of the histogram method.
    """

    def __init__(self, method: str = "isotonic", bins: int = 10):
        if method not in ("isotonic", "platt", "histogram"):
            raise CapcalError(f"recalibration: method must be isotonic, platt or histogram, got {method!r}")
        if int(bins) < 1:
            raise CapcalError(f"recalibration: bins must be >= 1, got {bins}")
        self.method, self.bins = method, int(bins)
        self._state: Any = None

    def fit(self, p: np.ndarray, target: np.ndarray) -> Calibrator:
        """Fit on (N,) confidences and (N,) targets in [0, 1]; NaN pairs are dropped.

        Raises:
            CapcalError: fewer than 2 usable pairs.
        """
        import numpy as np

        p, target = np.asarray(p, float), np.asarray(target, float)
        ok = np.isfinite(p) & np.isfinite(target)
        p, target = p[ok], np.clip(target[ok], 0.0, 1.0)
        if len(p) < 2:
            raise CapcalError(f"recalibration: only {len(p)} usable (confidence, target) pairs to fit on")
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            self._state = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, target)
        elif self.method == "platt":
            from .probe import fit_soft_logistic

            z = _logit(p)[:, None]
            self._state = fit_soft_logistic(z, target, c=1e6)
        else:
            idx = _bin_index(p, self.bins)
            counts = np.bincount(idx, minlength=self.bins)
            sums = np.bincount(idx, weights=target, minlength=self.bins)
            fallback = float(target.mean())
            self._state = np.where(counts > 0, sums / np.maximum(counts, 1), fallback)
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        """Map (Q,) confidences; NaN stays NaN."""
        import numpy as np

        if self._state is None:
            raise CapcalError("recalibration: transform called before fit")
        p = np.asarray(p, float)
        out = np.full(p.shape, np.nan)
        ok = np.isfinite(p)
        if not ok.any():
            return out
        if self.method == "isotonic":
            out[ok] = self._state.predict(p[ok])
        elif self.method == "platt":
            coef, b = self._state
            out[ok] = 1.0 / (1.0 + np.exp(-(coef[0] * _logit(p[ok]) + b)))
        else:
            out[ok] = self._state[_bin_index(p[ok], self.bins)]
        return np.clip(out, 0.0, 1.0)


def _logit(p: np.ndarray) -> np.ndarray:
    import numpy as np

    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each p in [0, 1]; the last bin is closed and 0.3, 0.6, 0.7 land where they belong."""
    import numpy as np

    scaled = np.round(np.clip(p, 0.0, 1.0) * bins, 9)  # 0.7 * 10 = 7.000000000000001 -> 7
    return np.minimum(np.floor(scaled).astype(np.int64), bins - 1)


class Recalibrated(Estimator):
    """Any registered estimator followed by a calibrator fitted on a held-out split.

    ``fit(train, validation)``: the base estimator (if it learns) is fitted on ``train``; its
    confidences on the held-out split (``validation``, else ``train`` for a base that does not learn)
    are paired with that split's target and fit the calibrator; ``predict`` applies both on the
    evaluation split. A learned base with no validation split: the training split is cut in two (seeded),
    the base learns on one half and the calibrator on the other.

    Args:
        base: registered name of the wrapped estimator (``"verbalized"``, ``"ptrue"``, ``"probe"``, ...).
        method: ``"isotonic"``, ``"platt"`` or ``"histogram"``.
        target: ``"mu"`` (capability target, default) or ``"r"`` (response target) to calibrate towards.
        bins: bins of the histogram method.
        base_params: constructor parameters of the base estimator.
        **base_options: ``base_<parameter>=value`` items, added to ``base_params`` (the command line cannot
            spell a dict: ``recalibrated:base=imported:base_source=NAME``).
    """

    name = "recalibrated"
    learns = True

    def __init__(self, base: str = "verbalized", method: str = "isotonic", target: str = "mu", bins: int = 10,
                 base_params: dict[str, Any] | None = None, **base_options: Any):
        bad = sorted(k for k in base_options if not k.startswith("base_") or k == "base_")
        if bad:
            raise CapcalError(f"recalibration: unknown parameter {bad[0]!r}; expected base, method, target, bins, "
                              "base_params or base_<parameter of the base estimator>")
        base_params = {**dict(base_params or {}), **{k[len("base_"):]: v for k, v in base_options.items()}}
        if target not in ("mu", "r"):
            raise CapcalError(f"recalibration: target must be 'mu' or 'r', got {target!r}")
        if base == self.name:
            raise CapcalError("recalibration: the base estimator cannot be 'recalibrated' itself")
        self.base = base
        self.method = method
        self.target = target
        self.bins = int(bins)
        self.base_params = dict(base_params or {})
        self.calibrator_ = Calibrator(method, bins)
        self.base_ = self._make_base()
        self.needs_model = bool(getattr(self.base_, "needs_model", False))
        self.fitted_on_: str | None = None

    def _make_base(self, registry: Any = None) -> Estimator:
        """Build the base estimator from ``registry`` (default: the active one, which a run sets to its own)."""
        if registry is None:
            from capcal.registry import get_registry

            registry = get_registry()
        cls = registry.estimator_class(self.base)
        try:
            return cls(**self.base_params)
        except TypeError as exc:
            raise CapcalError(f"recalibration: bad base_params for {self.base!r}: {exc}") from None

    def _bind(self, ctx: EstimatorContext | None) -> None:
        """Use the base estimator of the context's registry (the run's plugins), if it differs."""
        if ctx is not None and ctx.registry is not None and self.fitted_on_ is None:
            if ctx.registry.estimator_class(self.base) is not type(self.base_):
                self.base_ = self._make_base(ctx.registry)
                self.needs_model = bool(getattr(self.base_, "needs_model", False))

    def _target(self, ctx: EstimatorContext) -> np.ndarray:
        mu, r = usable_targets(ctx)
        return mu if self.target == "mu" else r

    def fit(self, train: EstimatorContext | None, validation: EstimatorContext | None = None) -> Recalibrated:
        import numpy as np

        for ctx in (train, validation):
            if ctx is not None and ctx.split == "eval":
                raise CapcalError("recalibration: refusing to fit on the evaluation split (leakage rule)")
        self._bind(train if train is not None else validation)
        held = validation if validation is not None and len(validation) else None
        if getattr(self.base_, "learns", False):
            if train is None or len(train) == 0:
                raise CapcalError(f"recalibration: base {self.base!r} learns but the task has no training split")
            if held is None:
                order = np.random.default_rng(train.seed).permutation(len(train))
                half = len(train) // 2
                if half < 2:
                    raise CapcalError("recalibration: too few training questions to split")
                fit_part = train.subset(np.sort(order[half:]))
                held = train.subset(np.sort(order[:half]))
                train = fit_part
            self.base_.fit(train, None)  # the base selects its own hyper-parameters inside train
        else:
            held = held if held is not None else (train if train is not None and len(train) else None)
        if held is None:
            raise CapcalError("recalibration: the task has no training or validation split to fit on")
        raw = self.base_.predict(held)
        self.calibrator_.fit(raw.confidence, self._target(held))
        self.fitted_on_ = held.split
        return self

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        if self.fitted_on_ is None:
            self._bind(ctx)
            self.fit(ctx.other_split("train"), ctx.other_split("validation"))
        raw = self.base_.predict(ctx)
        conf = self.calibrator_.transform(raw.confidence)
        meta = {"base": self.base, "method": self.method, "target": self.target, "fitted_on": self.fitted_on_,
                "base_meta": raw.meta}
        return EstimatorOutput(conf, list(raw.reasons), meta)

