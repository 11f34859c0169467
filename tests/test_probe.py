"""The linear probe: soft-label logistic regression, layer/C selection, recovery on synthetic data, and the
leakage rule (no evaluation-split question reaches ``fit``) through a real ``capcal run``."""

from __future__ import annotations

import numpy as np
import pytest
from capcal.errors import CapcalError
from capcal.estimators import EstimatorContext
from capcal.estimators_contrib.probe import LinearProbe, fit_probe, fit_soft_logistic
from capcal.rundir import Targets
from model_fixtures import embedded_backend_fixture  # noqa: F401  (registers "embedded_backend")
from scipy.optimize import minimize


def _synthetic(n: int, n_layers: int, h: int, signal_layer: int, k: int, rng: np.random.Generator):
    """Features (n, n_layers, h); mu = Binomial(k, sigmoid(w . x_signal + b)) / k; returns (x, p, mu)."""
    x = rng.normal(size=(n, n_layers, h)) * rng.uniform(0.5, 3.0, size=h) + rng.normal(size=h)
    w = np.zeros(h)
    w[:5] = [1.2, -0.8, 0.6, 0.9, -1.1]
    z = ((x[:, signal_layer, :] - x[:, signal_layer, :].mean(0)) / x[:, signal_layer, :].std(0)) @ w - 0.3
    p = 1 / (1 + np.exp(-z))
    mu = rng.binomial(k, p) / k
    return x, p, mu


def test_soft_logistic_matches_direct_minimisation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 4))
    mu = rng.uniform(size=80)
    mu[:5] = 0.0
    mu[5:10] = 1.0
    c = 0.7
    coef, b = fit_soft_logistic(x, mu, c)

    def objective(theta):  # scikit-learn's: C * sum of soft cross-entropies + ||w||^2 / 2
        w, b0 = theta[:-1], theta[-1]
        z = x @ w + b0
        return c * np.sum(np.logaddexp(0, -z) * mu + np.logaddexp(0, z) * (1 - mu)) + 0.5 * w @ w

    ref = minimize(objective, np.zeros(5), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(coef, ref[:-1], atol=1e-4)
    assert b == pytest.approx(ref[-1], abs=1e-4)


def test_constant_target_gives_constant_model():
    coef, b = fit_soft_logistic(np.ones((5, 3)), np.full(5, 0.25), 1.0)
    assert np.all(coef == 0) and 1 / (1 + np.exp(-b)) == pytest.approx(0.25)


def test_probe_recovers_linear_signal_near_noise_floor():
    rng = np.random.default_rng(0)
    n_layers, h, k, signal = 5, 24, 16, 2
    x, p, mu = _synthetic(3000, n_layers, h, signal, k, rng)
    tr, va, te = slice(0, 2000), slice(2000, 2500), slice(2500, 3000)
    model, record = fit_probe(x[tr], mu[tr], x[va], mu[va], layer="best")
    assert record["layer"] == signal
    pred = model.predict(x[te][:, signal, :])
    brier = float(np.mean((pred - mu[te]) ** 2))
    floor = float(np.mean(p[te] * (1 - p[te]) / k))  # E (p - mu)^2: what even the true p scores
    constant = float(np.mean((mu[tr].mean() - mu[te]) ** 2))
    assert brier < floor * 1.15, (brier, floor)
    assert brier < 0.5 * constant
    assert float(np.mean((pred - p[te]) ** 2)) < 0.1 * floor * k  # close to the true probability


def test_all_layers_and_fixed_layer_variants():
    rng = np.random.default_rng(3)
    x, p, mu = _synthetic(600, 3, 8, 1, 8, rng)
    m_all, rec_all = fit_probe(x[:400], mu[:400], x[400:500], mu[400:500], layer="all", cs=(0.1, 1.0))
    assert rec_all["layer"] == "all" and rec_all["C"] in (0.1, 1.0)
    assert m_all.predict(x[500:].reshape(100, -1)).shape == (100,)
    m_one, rec_one = fit_probe(x[:400], mu[:400], None, None, layer=-1, cs=(1.0,))
    assert rec_one["layer"] == 2 and "held out" in rec_one["selection"]
    with pytest.raises(CapcalError, match="out of range"):
        fit_probe(x[:400], mu[:400], None, None, layer=7)


def test_bad_parameters_are_one_line_errors():
    with pytest.raises(CapcalError, match="pool"):
        LinearProbe(pool="max")
    with pytest.raises(CapcalError, match="layer"):
        LinearProbe(layer="middle")
    assert LinearProbe(layer="3", cs="0.1,1").get_params()["cs"] == (0.1, 1.0)


def _ctx(split: str, ids: list[str], tmp_path) -> EstimatorContext:
    q = len(ids)
    targets = Targets(ids=np.array(ids, dtype=object), n=np.full(q, 2), c=np.ones(q, dtype=np.int64),
                      designated=np.zeros(q, dtype=np.int64), labels=np.tile([1.0, 0.0], (q, 1)),
                      extracted=[["1", None]] * q)
    return EstimatorContext(task=None, split=split, examples=[], messages=[[{"role": "user", "content": i}]
                                                                            for i in ids],
                            ids=np.array(ids, dtype=object), backend=None, samples=[], targets=targets,
                            cache_dir=tmp_path)


def test_fit_refuses_the_evaluation_split(tmp_path):
    with pytest.raises(CapcalError, match="evaluation split"):
        LinearProbe().fit(_ctx("eval", ["a", "b", "c"], tmp_path))


@pytest.mark.model
def test_no_evaluation_question_reaches_fit_in_a_real_run(tmp_path, data_dir, embedded_backend, monkeypatch):
    from capcal.pipeline import run
    from capcal.registry import get_registry
    from capcal.runconfig import RunConfig

    seen: dict[str, list[str]] = {}
    original_fit = LinearProbe.fit

    def recording_fit(self, train, validation=None):
        seen["train_split"] = [train.split]
        seen["train"] = [str(i) for i in train.ids]
        seen["validation"] = [str(i) for i in validation.ids] if validation is not None else []
        return original_fit(self, train, validation)

    monkeypatch.setattr(LinearProbe, "fit", recording_fit)
    cfg = RunConfig(output=tmp_path / "run", tasks=["gsm8k"], k=2, limit=3, max_tokens=4, train_limit=6,
                    estimators=["probe"], data_dir=data_dir, bootstrap=10, progress=False)
    rd = run(cfg, backend=embedded_backend)

    task = get_registry().task("gsm8k", data_dir=data_dir)
    eval_ids = {e.id for e in task.examples("eval")}
    train_ids = {e.id for e in task.examples("train")}
    assert seen["train_split"] == ["train"]
    assert len(seen["train"]) == 6
    assert set(seen["train"]) <= train_ids
    assert not (set(seen["train"]) | set(seen["validation"])) & eval_ids
    conf, reasons, meta = rd.estimator_output("gsm8k", "probe")
    assert len(conf) == 3 and np.isfinite(conf).all() and ((conf >= 0) & (conf <= 1)).all(), reasons
    assert meta["n_train"] == 6 and "layer" in meta and "C" in meta
    # the features of every question were cached in the run directory, one file per question
    cached = list((rd.path / "tasks" / "gsm8k" / "cache").rglob("probe_features/*.npz"))
    assert len(cached) == 6 + 3
