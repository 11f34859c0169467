"""Linear probe: logistic regression on hidden states, fitted to the soft capability target mu."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from capcal.errors import CapcalError
from capcal.estimators import Estimator, EstimatorContext, EstimatorOutput
from capcal.generation import model_identity
from capcal.models.base import Messages, ModelBackend

from ._common import usable_targets

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    import numpy as np

DEFAULT_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


# -- features ---------------------------------------------------------------------------------------------
def _feature_key(backend: ModelBackend, qid: str, messages: Messages) -> str:
    payload = json.dumps([model_identity(backend), str(qid), messages], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def hidden_features(backend: ModelBackend, ids: Sequence[str], messages: Sequence[Messages],
                    cache_dir: Path | None, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Hidden states of every layer for each prompt, from one forward pass, cached per question.

    Each question's states are kept in ``cache_dir/probe_features/<key>.npz`` (``last`` and ``mean``, both
    (L + 1, H) float32), keyed by backend, model, question id and prompt; only the missing questions are
    sent to ``backend.hidden_states``.

    Returns:
        ``{"last": (Q, L + 1, H), "mean": (Q, L + 1, H)}`` float32 arrays aligned with ``ids``.

    Raises:
        CapcalError: the backend has no access to hidden states (remote APIs).
    """
    import numpy as np

    folder = Path(cache_dir) / "probe_features" if cache_dir is not None else None
    keys = [_feature_key(backend, i, m) for i, m in zip(ids, messages, strict=True)]
    got: dict[int, dict[str, np.ndarray]] = {}
    for j, key in enumerate(keys):
        path = folder / f"{key}.npz" if folder is not None else None
        if path is not None and path.exists():
            try:
                with np.load(path) as z:
                    got[j] = {"last": z["last"], "mean": z["mean"]}
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)  # a torn file from a killed run: recompute it
    missing = [j for j in range(len(keys)) if j not in got]
    if missing:
        try:
            states = backend.hidden_states([messages[j] for j in missing], batch_size=batch_size)
        except NotImplementedError as exc:
            raise CapcalError(f"probe: {exc}; the probe needs a local backend (hf or embedded)") from None
        for pos, j in enumerate(missing):
            got[j] = {"last": np.asarray(states["last"][pos], np.float32),
                      "mean": np.asarray(states["mean"][pos], np.float32)}
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                tmp = folder / f".{keys[j]}.tmp.npz"
                np.savez(tmp, **got[j])
                tmp.replace(folder / f"{keys[j]}.npz")
    if not keys:
        return {"last": np.zeros((0, 0, 0), np.float32), "mean": np.zeros((0, 0, 0), np.float32)}
    return {pool: np.stack([got[j][pool] for j in range(len(keys))]) for pool in ("last", "mean")}


# -- the model ----------------------------------------------------------------------------------------------
def fit_soft_logistic(x: np.ndarray, mu: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression on soft labels mu in [0, 1].

    Each row enters twice: as label 1 with weight mu and as label 0 with weight 1 - mu (rows of weight 0
    are dropped), so the weighted log-loss equals the cross-entropy against the soft target. Solved with
    scikit-learn's LBFGS; ``c`` is its inverse regularisation strength.

    Args:
        x: (N, D) standardised features.
        mu: (N,) soft targets in [0, 1].
        c: inverse regularisation strength (> 0).

    Returns:
        ``(coef (D,), intercept)``. When mu is constant the model is that constant (coef 0).
    """
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    mu = np.clip(np.asarray(mu, dtype=float), 0.0, 1.0)
    if mu.max() - mu.min() < 1e-12:
        m = float(np.clip(mu.mean(), 1e-6, 1 - 1e-6))
        return np.zeros(x.shape[1]), float(np.log(m / (1 - m)))
    pos, neg = mu > 0, mu < 1
    xx = np.concatenate([x[pos], x[neg]])
    yy = np.concatenate([np.ones(pos.sum()), np.zeros(neg.sum())])
    ww = np.concatenate([mu[pos], 1.0 - mu[neg]])
    model = LogisticRegression(C=float(c), max_iter=2000, tol=1e-6)
    with warnings.catch_warnings():  # tiny or separable splits stop early; the fit is still usable
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(xx, yy, sample_weight=ww)
    return model.coef_[0].astype(float), float(model.intercept_[0])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    import numpy as np

    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass
class _Fitted:
    layer: int | str
    c: float
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _sigmoid(((x - self.mean) / self.scale) @ self.coef + self.intercept)


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 1e-12, scale, 1.0)


def _layer_matrix(feats: np.ndarray, layer: int | str) -> np.ndarray:
    """(Q, L + 1, H) -> (Q, H) for one layer, or (Q, (L + 1) * H) for ``"all"``."""
    if layer == "all":
        return feats.reshape(len(feats), -1)
    return feats[:, int(layer), :]


def fit_probe(train: np.ndarray, mu_train: np.ndarray, val: np.ndarray | None, mu_val: np.ndarray | None,
              layer: int | str = "best", cs: Sequence[float] = DEFAULT_CS, seed: int = 0) -> tuple[_Fitted, dict]:
    """Fit the probe on arrays, choosing the layer (for ``"best"``) and C by validation CC-Brier.

    Args:
        train: (N, L + 1, H) features of the training questions.
        mu_train: (N,) their capability targets.
        val: (M, L + 1, H) features of the validation questions, or ``None``: then a seeded 20% of the
            training questions is held out for the selection (and the final fit uses all of them).
        mu_val: (M,) validation targets.
        layer: ``"best"`` (every layer is tried), an int (that layer; negative counts from the end) or
            ``"all"`` (all layers concatenated).
        cs: candidate inverse regularisation strengths.
        seed: seed of the hold-out split when there is no validation set.

    Returns:
        ``(fitted model, selection record)``; the record holds ``layer``, ``C``, ``val_cc_brier`` and
        the validation Brier of every candidate.
    """
    import numpy as np

    n_layers = train.shape[1]
    if layer == "best":
        layers: list[int | str] = list(range(n_layers))
    elif layer == "all":
        layers = ["all"]
    else:
        li = int(layer)
        if not -n_layers <= li < n_layers:
            raise CapcalError(f"probe: layer {layer} out of range (the model has {n_layers} hidden-state layers)")
        layers = [li % n_layers]
    selection = "validation split"
    if val is None or len(val) == 0:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(train))
        n_val = max(1, len(train) // 5)
        val, mu_val = train[order[:n_val]], mu_train[order[:n_val]]
        fit_x, fit_mu = train[order[n_val:]], mu_train[order[n_val:]]
        selection = "20% of the training split held out"
    else:
        fit_x, fit_mu = train, mu_train
    scores: dict[str, float] = {}
    best: tuple[float, int | str, float] | None = None
    for li in layers:
        xtr, xva = _layer_matrix(fit_x, li), _layer_matrix(val, li)
        mean, scale = _standardiser(xtr)
        ztr, zva = (xtr - mean) / scale, (xva - mean) / scale
        for c in cs:
            coef, b = fit_soft_logistic(ztr, fit_mu, c)
            brier = float(np.mean((_sigmoid(zva @ coef + b) - mu_val) ** 2))
            scores[f"{li}:{c:g}"] = brier
            if best is None or brier < best[0] - 1e-15:
                best = (brier, li, float(c))
    assert best is not None
    brier, li, c = best
    x_final = _layer_matrix(train, li)
    mean, scale = _standardiser(x_final)
    coef, b = fit_soft_logistic((x_final - mean) / scale, mu_train, c)
    record = {"layer": li, "C": c, "val_cc_brier": brier, "selection": selection, "candidates": scores}
    return _Fitted(li, c, mean, scale, coef, b), record


# -- the estimator ------------------------------------------------------------------------------------------
class LinearProbe(Estimator):
    """Logistic-regression probe on the hidden states of the answer prompt (no generation).

    Features are the hidden states of every layer at the last prompt token (``pool="last"``) or averaged
    over the prompt tokens (``pool="mean"``), from ONE forward pass per prompt (``backend.hidden_states``),
    cached in the run directory. The probe is fitted on the task's training split to the soft target mu,
    with standardised features; the layer (``layer="best"``) and C are chosen by CC-Brier on the validation
    split (or on 20% of the training split held out when the task has no validation split). It never
    sees the evaluation split: ``fit`` refuses an ``"eval"`` context and ``predict`` refuses questions that
    were in the training data.

    Args:
        layer: ``"best"``, an int or ``"all"``.
        pool: ``"last"`` or ``"mean"``.
        cs: candidate C values (comma-separated string or list).
        batch_size: prompts per forward pass.
        max_train: use at most this many training questions (seeded subset; ``None`` = all).

    Meta: ``layer``, ``C``, ``val_cc_brier``, ``selection``, ``n_train``, ``n_validation``, ``pool``.
    """

    name = "probe"
    learns = True
    needs_model = True

    def __init__(self, layer: int | str = "best", pool: str = "last", cs: Sequence[float] | str = DEFAULT_CS,
                 batch_size: int = 8, max_train: int | None = None):
        if pool not in ("last", "mean"):
            raise CapcalError(f"probe: pool must be 'last' or 'mean', got {pool!r}")
        if isinstance(layer, str) and layer not in ("best", "all"):
            try:
                layer = int(layer)
            except ValueError:
                raise CapcalError(f"probe: layer must be 'best', 'all' or an int, got {layer!r}") from None
        if isinstance(cs, str):
            cs = [float(v) for v in cs.split(",") if v.strip()]
        cs = tuple(float(v) for v in cs)
        if not cs or min(cs) <= 0:
            raise CapcalError("probe: cs must be positive numbers")
        self.layer = layer
        self.pool = pool
        self.cs = cs
        self.batch_size = int(batch_size)
        self.max_train = None if max_train is None else int(max_train)
        self.model_: _Fitted | None = None
        self.record_: dict = {}
        self.train_ids_: frozenset[str] = frozenset()

    def features(self, ctx: EstimatorContext) -> np.ndarray:
        """(Q, L + 1, H) features of the questions of ``ctx`` (computed once, then read from the cache)."""
        if ctx.backend is None:
            raise CapcalError("probe: the run has no model backend to read hidden states from")
        ids = [str(i) for i in ctx.ids]
        return hidden_features(ctx.backend, ids, ctx.messages, ctx.cache_dir, self.batch_size)[self.pool]

    def _split_arrays(self, ctx: EstimatorContext, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                                            list[str]]:
        import numpy as np

        if ctx.split == "eval":
            raise CapcalError("probe: refusing to fit on the evaluation split (leakage rule)")
        mu = usable_targets(ctx)[0]
        keep = np.flatnonzero(np.isfinite(mu))
        if limit is not None and len(keep) > limit:
            keep = np.sort(np.random.default_rng(seed).choice(keep, size=limit, replace=False))
        sub = ctx.subset(keep)
        return self.features(sub), mu[keep], [str(i) for i in sub.ids]

    def fit(self, train: EstimatorContext | None, validation: EstimatorContext | None = None) -> LinearProbe:
        if train is None or len(train) == 0:
            raise CapcalError("probe: the task has no training split to fit on (spec: dataset splits)")
        x_tr, mu_tr, ids_tr = self._split_arrays(train, self.max_train, train.seed)
        if len(mu_tr) < 2:
            raise CapcalError("probe: fewer than 2 graded training questions")
        x_va = mu_va = None
        ids_va: list[str] = []
        if validation is not None and len(validation):
            x_va, mu_va, ids_va = self._split_arrays(validation, None, validation.seed)
        self.model_, self.record_ = fit_probe(x_tr, mu_tr, x_va, mu_va, self.layer, self.cs, seed=train.seed)
        self.record_.update(n_train=len(mu_tr), n_validation=len(ids_va), train_split=train.split,
                            validation_split=validation.split if validation is not None else None)
        self.train_ids_ = frozenset(ids_tr) | frozenset(ids_va)
        return self

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        if self.model_ is None:
            train = ctx.other_split("train")
            if train is None:
                raise CapcalError(f"probe: task {getattr(ctx.task, 'name', '?')!r} has no training split")
            self.fit(train, ctx.other_split("validation"))
        assert self.model_ is not None
        leaked = self.train_ids_.intersection(str(i) for i in ctx.ids)
        if leaked:
            raise CapcalError(f"probe: {len(leaked)} evaluated questions were in the probe's training data "
                              f"(e.g. {sorted(leaked)[0]!r})")
        x = _layer_matrix(self.features(ctx), self.model_.layer)
        conf = self.model_.predict(x)
        meta = {k: v for k, v in self.record_.items() if k != "candidates"}
        meta.update(pool=self.pool, candidates=self.record_.get("candidates", {}))
        return EstimatorOutput(conf, [None] * len(ctx), meta)

