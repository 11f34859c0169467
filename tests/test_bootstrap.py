"""The vectorised paired bootstrap: weighted metrics equal metrics of the resampled data, seeding, pairing."""

from __future__ import annotations

import numpy as np
import pytest
from capcal.analysis import point_metrics
from capcal.bootstrap import PreparedEstimator, TaskArrays, bootstrap_metrics, percentile_ci, resample_counts
from metrics_fixtures import graded_fixture  # noqa: F401  (session fixture "graded")


def _labels(rng, q, n_max, ragged):
    n = rng.integers(3, n_max + 1, q) if ragged else np.full(q, n_max)
    labels = np.full((q, n_max), np.nan)
    skill = rng.random(q)
    for i in range(q):
        labels[i, :n[i]] = rng.random(n[i]) < skill[i]
    return n, labels


def _confidences(rng, q):
    return {"cont": rng.random(q), "ties": np.round(rng.random(q), 1),
            "nan": np.where(rng.random(q) < 0.15, np.nan, rng.random(q)),
            "nan_ties": np.where(rng.random(q) < 0.15, np.nan, np.round(rng.random(q), 1)),
            "const": np.full(q, 0.4)}


@pytest.mark.parametrize("ragged", [False, True])
def test_weighted_resample_equals_expanded_data(ragged):
    """A count vector w gives exactly the metrics of the data set that repeats question i w_i times."""
    rng = np.random.default_rng(4)
    q = 300
    n, labels = _labels(rng, q, 8, ragged)
    c = np.nansum(labels, axis=1).astype(int)
    task = TaskArrays(mu=c / n, r=labels[:, 0], n=n, c=c)
    conf = _confidences(rng, q)
    prepared = {k: PreparedEstimator(p, task) for k, p in conf.items()}
    boot = bootstrap_metrics(prepared, task, n_boot=3, seed=11)
    counts = np.concatenate(list(resample_counts(q, 3, seed=11)))
    for j in range(3):
        idx = np.repeat(np.arange(q), counts[j].astype(int))
        for name, p in conf.items():
            want = point_metrics(p[idx], task.mu[idx], task.r[idx], labels[idx])
            for metric, v in want.items():
                got = boot[name][metric][j]
                assert (np.isnan(v) and np.isnan(got)) or got == pytest.approx(v, rel=1e-9, abs=1e-12), \
                    (name, metric)


def test_unit_weights_give_the_point_values(graded):
    _, targets, conf = graded
    task = TaskArrays(mu=targets.mu, r=targets.r, n=targets.n, c=targets.c)
    for p in (conf, np.round(conf, 1), targets.mu):
        est = PreparedEstimator(p, task)
        w = np.ones((1, 100))
        got = est.metrics(w @ est.features, w, task)
        for metric, v in point_metrics(p, targets.mu, targets.r, targets.labels).items():
            assert (np.isnan(v) and np.isnan(got[metric][0])) or got[metric][0] == pytest.approx(v, abs=1e-12)


def test_resamples_are_seeded_and_chunk_independent():
    a = np.concatenate(list(resample_counts(50, 7, seed=3)))
    b = np.concatenate(list(resample_counts(50, 7, seed=3, chunk=2)))
    c = np.concatenate(list(resample_counts(50, 7, seed=4)))
    assert a.shape == (7, 50) and (a.sum(axis=1) == 50).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_paired_and_independent_of_threads_and_estimator_set(graded):
    _, targets, conf = graded
    task = TaskArrays(mu=targets.mu, r=targets.r, n=targets.n, c=targets.c)
    ests = {"rm": PreparedEstimator(conf, task), "mu": PreparedEstimator(targets.mu, task),
            "rm2": PreparedEstimator(conf.copy(), task)}
    one = bootstrap_metrics(ests, task, 40, seed=5, workers=1)
    two = bootstrap_metrics(ests, task, 40, seed=5, workers=2, chunk=7)
    alone = bootstrap_metrics({"rm": PreparedEstimator(conf, task)}, task, 40, seed=5)
    for metric in one["rm"]:
        np.testing.assert_array_equal(one["rm"][metric], two["rm"][metric])
        np.testing.assert_array_equal(one["rm"][metric], alone["rm"][metric])
        # same resamples for every estimator: an identical estimator differs by exactly 0 in each
        np.testing.assert_array_equal(one["rm"][metric], one["rm2"][metric])
    assert np.all(one["mu"]["cc_brier"] == 0)
    assert np.std(one["rm"]["cc_brier"]) > 0


def test_percentile_ci():
    v = np.arange(1001, dtype=float)
    assert percentile_ci(v) == pytest.approx((25.0, 975.0), abs=1e-9)
    assert percentile_ci(np.r_[v, np.nan]) == pytest.approx((25.0, 975.0), abs=1e-9)
    lo, hi = percentile_ci(np.full(5, np.nan))
    assert np.isnan(lo) and np.isnan(hi)


def test_interval_covers_the_truth_usually():
    """A sanity check of the interval's scale: for the mean of (p - mu)^2 on fresh data sets drawn from the
    same population, the 95% interval covers the population value in most of 40 trials."""
    rng = np.random.default_rng(8)
    grid = np.repeat(np.arange(9) / 8, 20000)
    truth = float(np.mean((np.clip(grid + rng.normal(0, 0.2, grid.size), 0, 1) - grid) ** 2))
    hits = 0
    for trial in range(40):
        q = 200
        mu = rng.integers(0, 9, q) / 8
        p = np.clip(mu + rng.normal(0, 0.2, q), 0, 1)
        task = TaskArrays(mu=mu, r=(rng.random(q) < mu).astype(float), n=np.full(q, 8), c=(mu * 8).astype(int))
        boot = bootstrap_metrics({"e": PreparedEstimator(p, task)}, task, 300, seed=trial)
        lo, hi = percentile_ci(boot["e"]["cc_brier"])
        hits += lo <= truth <= hi
    assert hits >= 32
