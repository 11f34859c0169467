"""Oracles, constant, consistency, token-logprob baselines and recalibration on contexts built from real
tasks (real data files, real graders) and real Completion objects; numbers checked by hand or against
scikit-learn / scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from capcal.errors import CapcalError, UnknownNameError
from capcal.estimators import EstimatorContext
from capcal.estimators_contrib import BUILTIN_ESTIMATORS
from capcal.estimators_contrib.consistency import (
    Consistency,
    ConsistencyEntropy,
    agreement_entropy,
    agreement_share,
    cluster_sizes,
)
from capcal.estimators_contrib.logprob import MeanTokenProb, SequenceProb, sequence_scores
from capcal.estimators_contrib.oracle import Constant, OracleCC, OracleRC
from capcal.estimators_contrib.recalibration import Calibrator, Recalibrated
from capcal.models.base import Completion
from capcal.registry import get_registry
from capcal.rundir import Targets
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression


def make_ctx(task, split: str, examples, correct: list[list[int]], extracted: list[list[str | None]],
             tmp_path, samples=None, split_context=None) -> EstimatorContext:
    """A context of real examples of a real task with the given graded samples (targets rows as written
    by the run pipeline)."""
    rows = [{"id": ex.id, "correct": c, "designated": 0, "extracted": e}
            for ex, c, e in zip(examples, correct, extracted, strict=True)]
    samples = samples or [[Completion(text=str(a)) for a in e] for e in extracted]
    return EstimatorContext(task=task, split=split, examples=examples, messages=[task.render(ex) for ex in examples],
                            ids=np.array([ex.id for ex in examples], dtype=object), backend=None, samples=samples,
                            targets=Targets.from_rows(rows), cache_dir=tmp_path / split, split_context=split_context)


@pytest.fixture(scope="module")
def gsm8k(data_dir):
    return get_registry().task("gsm8k", data_dir=data_dir)


def test_builtins_are_registered_through_entry_points():
    names = set(get_registry().estimators)
    assert set(BUILTIN_ESTIMATORS) <= names
    assert {"verbalized", "ptrue", "consistency", "consistency_entropy", "logprob_mean", "logprob_seq", "probe",
            "oracle_cc", "oracle_rc", "constant", "recalibrated"} <= names


# -- oracles and constant -------------------------------------------------------------------------------
def test_oracles_and_constant(gsm8k, tmp_path):
    ev = gsm8k.examples("eval", limit=4)
    tr = gsm8k.examples("train", limit=3)
    correct = [[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 1, 1]]
    ex = [["1"] * 4] * 4
    train_ctx = make_ctx(gsm8k, "train", tr, [[1, 1], [0, 1], [0, 0]], [["1"] * 2] * 3, tmp_path)
    ctx = make_ctx(gsm8k, "eval", ev, correct, ex, tmp_path,
                   split_context=lambda s: train_ctx if s == "train" else (_ for _ in ()).throw(CapcalError("no")))
    np.testing.assert_array_equal(OracleCC().predict(ctx).confidence, [0.5, 0.0, 1.0, 0.75])
    np.testing.assert_array_equal(OracleRC().predict(ctx).confidence, [1, 0, 1, 0])
    fitted = Constant().fit(train_ctx, None)
    out = fitted.predict(ctx)
    np.testing.assert_allclose(out.confidence, 0.5)  # (1 + 0.5 + 0) / 3
    assert out.meta["source"] == "train" and out.meta["in_sample"] is False
    # predict without fit finds the training split through split_context
    assert Constant().predict(ctx).meta["source"] == "train"
    with pytest.raises(CapcalError, match="evaluation split"):
        Constant().fit(ctx)


def test_constant_without_training_split_is_in_sample_and_flagged(gsm8k, tmp_path):
    ctx = make_ctx(gsm8k, "eval", gsm8k.examples(limit=2), [[1, 0], [1, 1]], [["3", "4"], ["5", "5"]], tmp_path)
    out = Constant().predict(ctx)
    np.testing.assert_allclose(out.confidence, 0.75)
    assert out.meta == {"source": "eval", "in_sample": True, "value": 0.75}
    assert Constant(value=0.2).fit(None).predict(ctx).confidence.tolist() == [0.2, 0.2]
    with pytest.raises(CapcalError):
        Constant(value=1.5)


# -- consistency ----------------------------------------------------------------------------------------
def test_cluster_sizes_with_real_graders():
    reg = get_registry()
    numeric = reg.grader("numeric")
    assert cluster_sizes(["1,000", "$1000.00", "1000", "999", None, ""], numeric) == ([3, 1], 2)
    math_grader = reg.grader("math")
    assert cluster_sizes(["\\frac{1}{2}", "0.5", "\\dfrac{1}{2}", "2"], math_grader) == ([3, 1], 0)
    choice = reg.grader("multiple_choice")
    assert cluster_sizes(["b", "B", "C", None], choice) == ([2, 1], 1)


def test_share_and_entropy_by_hand():
    assert agreement_share([3, 1], 6) == 0.5
    assert agreement_share([], 4) == 0.0
    # sizes 3,1 + 2 failures as singletons over m = 6: H = -(0.5 ln 0.5 + 3 * (1/6) ln (1/6))
    h = -(0.5 * math.log(0.5) + 3 * (1 / 6) * math.log(1 / 6))
    assert agreement_entropy([3, 1], 2) == pytest.approx(1 - h / math.log(6), abs=1e-12)
    assert agreement_entropy([5], 0) == 1.0
    assert agreement_entropy([1, 1, 1, 1], 0) == pytest.approx(0.0, abs=1e-12)
    assert agreement_entropy([], 3) == pytest.approx(0.0, abs=1e-12)
    assert agreement_entropy([1], 0) == 1.0 and agreement_entropy([], 1) == 0.0


def test_consistency_reusing_stored_samples_is_flagged(gsm8k, tmp_path):
    ev = gsm8k.examples(limit=3)
    extracted = [["18", "18.0", "$18", "20", None], ["3", "4", "5", "6", "7"], [None] * 5]
    ctx = make_ctx(gsm8k, "eval", ev, [[1, 1, 1, 0, 0], [0] * 5, [0] * 5], extracted, tmp_path)
    out = Consistency(m=5, reuse_samples=True).predict(ctx)
    np.testing.assert_allclose(out.confidence, [0.6, 0.2, 0.0])
    assert out.meta["samples_overlap_mu"] is True
    ent = ConsistencyEntropy(m=4).predict(ctx)  # no backend: falls back to stored samples, flagged
    assert ent.meta["samples_overlap_mu"] is True and ent.meta["m_used_max"] == 4
    h0 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    np.testing.assert_allclose(ent.confidence, [1 - h0 / math.log(4), 0.0, 0.0], atol=1e-12)
    with pytest.raises(CapcalError):
        Consistency(m=0)


# -- token logprobs -------------------------------------------------------------------------------------
def test_sequence_scores_by_hand():
    lp = [math.log(0.5), math.log(0.25), math.log(1.0)]
    mean, seq, why = sequence_scores(lp)
    assert why is None
    assert mean == pytest.approx(0.5, abs=1e-12)  # geometric mean of 0.5, 0.25, 1
    assert seq == pytest.approx(0.125, abs=1e-12)
    assert math.isnan(sequence_scores(None)[0]) and "no logprobs" in sequence_scores([])[2]


def test_logprob_estimators_read_the_designated_sample(gsm8k, tmp_path):
    ev = gsm8k.examples(limit=2)
    samples = [[Completion(text="a", token_logprobs=[math.log(0.9), math.log(0.4)]), Completion(text="b")],
               [Completion(text="c"), Completion(text="d", token_logprobs=[math.log(0.2)])]]
    ctx = make_ctx(gsm8k, "eval", ev, [[1, 0], [0, 1]], [["1", "2"], ["3", "4"]], tmp_path, samples=samples)
    out = MeanTokenProb().predict(ctx)
    assert out.confidence[0] == pytest.approx(0.6, abs=1e-12)
    assert math.isnan(out.confidence[1]) and "no logprobs" in out.reasons[1]
    assert SequenceProb().predict(ctx).confidence[0] == pytest.approx(0.36, abs=1e-12)
    ctx.targets.designated[:] = 1
    assert MeanTokenProb().predict(ctx).confidence[1] == pytest.approx(0.2, abs=1e-12)


# -- recalibration --------------------------------------------------------------------------------------
def test_isotonic_matches_sklearn_and_histogram_by_hand():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200)
    y = (rng.uniform(size=200) < p**2).astype(float)
    iso = Calibrator("isotonic").fit(p, y)
    ref = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
    grid = np.linspace(-0.1, 1.1, 50)
    np.testing.assert_allclose(iso.transform(grid), ref.predict(np.clip(grid, 0, 1)), atol=1e-12)
    for method in ("isotonic", "platt", "histogram"):  # all-NaN input (every base confidence failed)
        assert np.isnan(Calibrator(method).fit(p, y).transform([np.nan, np.nan])).all()
    hist = Calibrator("histogram", bins=10).fit([0.3, 0.31, 0.7, 0.75, 1.0, 0.05], [1, 0, 1, 1, 0, 0])
    # 0.3 and 0.31 share bin 3 (mean 0.5), 0.7/0.75 bin 7 (1.0), 1.0 the closed last bin, 0.05 bin 0;
    # an empty bin maps to the overall mean 0.5
    np.testing.assert_allclose(hist.transform([0.3, 0.7, 1.0, 0.0, 0.55, np.nan])[:5], [0.5, 1.0, 0.0, 0.0, 0.5])
    assert np.isnan(hist.transform([np.nan])[0])


def test_platt_matches_direct_minimisation():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.95, size=300)
    y = rng.uniform(size=300)  # soft targets
    cal = Calibrator("platt").fit(p, y)
    z = np.log(p / (1 - p))

    def nll(theta):
        s = theta[0] * z + theta[1]
        return np.sum(np.logaddexp(0, -s) * y + np.logaddexp(0, s) * (1 - y))

    a, b = minimize(nll, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    expected = 1 / (1 + np.exp(-(a * z[:10] + b)))
    np.testing.assert_allclose(cal.transform(p[:10]), expected, atol=1e-4)


def test_recalibrated_oracle_fits_on_held_out_split(gsm8k, tmp_path):
    tr = gsm8k.examples("train", limit=6)
    ev = gsm8k.examples(limit=3)
    train_ctx = make_ctx(gsm8k, "train", tr, [[1, 1], [1, 0], [0, 0], [1, 1], [0, 1], [0, 0]], [["1"] * 2] * 6,
                         tmp_path)
    ctx = make_ctx(gsm8k, "eval", ev, [[1, 1], [0, 1], [0, 0]], [["1"] * 2] * 3, tmp_path)
    est = Recalibrated(base="oracle_rc", method="histogram", bins=2).fit(train_ctx, None)
    out = est.predict(ctx)
    # on train, r = [1, 1, 0, 1, 0, 0]: bin of r=0 has mu [0, 0.5, 0] -> 1/6; bin of r=1 has mu [1, .5, 1]
    np.testing.assert_allclose(out.confidence, [5 / 6, 1 / 6, 1 / 6])
    assert out.meta["fitted_on"] == "train" and out.meta["base"] == "oracle_rc"
    with pytest.raises(CapcalError, match="evaluation split"):
        Recalibrated(base="oracle_cc").fit(ctx)
    with pytest.raises(UnknownNameError, match="did you mean"):
        Recalibrated(base="verbalised")
    with pytest.raises(CapcalError, match="method"):
        Recalibrated(base="oracle_cc", method="beta")
