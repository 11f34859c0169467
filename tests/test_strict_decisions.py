"""The decision functions (routing, cascades, selective prediction) refuse nonsense like the rest of the
numeric core: confidences outside [0, 1] (routing), infinite scores (selective prediction orders by any real
score), targets outside [0, 1], non-binary response targets."""

from __future__ import annotations

import numpy as np
import pytest
from capcal import routing, selective

MU_S = np.array([0.0, 0.25, 0.5, 1.0])
MU_L = np.array([0.5, 0.75, 1.0, 1.0])
P = np.array([0.1, 0.4, 0.6, 0.9])
BAD_P = np.array([0.1, 1.5, -0.2, 0.9])      # two entries out of range
BAD_MU = np.array([0.0, 1.25, 0.5, 1.0])      # one entry out of range


def _raises(fn, *args, match, **kwargs):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


@pytest.mark.parametrize("fn", [routing.routing_curve, routing.routing_scores, routing.decisions])
def test_routing_refuses_confidences_outside_the_unit_interval(fn):
    _raises(fn, BAD_P, MU_S, MU_L, match=r"2 of 4 entries outside \[0, 1\]")


@pytest.mark.parametrize("fn", [routing.routing_curve, routing.routing_scores, routing.decisions])
def test_routing_refuses_targets_outside_the_unit_interval(fn):
    _raises(fn, P, BAD_MU, MU_L, match=r"mu_small.*1 of 4")
    _raises(fn, P, MU_S, BAD_MU, match=r"mu_large.*1 of 4")


def test_routing_bootstrap_names_the_estimator_with_bad_confidences():
    _raises(routing.routing_bootstrap, {"good": P, "bad": BAD_P}, MU_S, MU_L, n_boot=5,
            match=r"confidence 'bad'.*2 of 4")


def test_routing_accepts_nan_confidences_and_infinite_priority_is_refused():
    p = P.copy()
    p[1] = np.nan
    boot = routing.routing_bootstrap({"x": p}, MU_S, MU_L, n_boot=3)
    assert boot["x"]["gain"].shape == (3,)
    _raises(routing.routing_curve, None, MU_S, MU_L, priority=np.array([1.0, np.inf, 0.0, 2.0]),
            match=r"priority.*1 of 4")


def test_cascades_refuse_bad_confidences_and_targets():
    _raises(routing.cascade_curve, [BAD_P], [MU_S, MU_L], [1.0], match=r"confidence of model 1.*2 of 4")
    _raises(routing.cascade_curve, [P], [MU_S, BAD_MU], [1.0], match=r"mu of model 2.*1 of 4")
    _raises(routing.random_cascade_curve, [BAD_MU, MU_L], [1.0], match=r"mu of model 1.*1 of 4")
    _raises(routing.oracle_cascade_curve, [MU_S, BAD_MU], [1.0], match=r"mu of model 2.*1 of 4")
    _raises(routing.cascade_bootstrap, {"x": [P]}, [MU_S, BAD_MU], [1.0], match=r"mu of model 2.*1 of 4")


@pytest.mark.parametrize("fn", [selective.aurc, selective.prr, selective.selective_scores,
                                selective.risk_coverage_curve, selective.accuracy_at_coverage])
def test_selective_refuses_infinite_scores_and_bad_targets(fn):
    # only the order of the scores counts, so any finite score is accepted; an infinite one is not
    _raises(fn, np.array([0.1, np.inf, 0.6, -np.inf]), MU_S, match=r"'p'.*2 of 4")
    _raises(fn, P, BAD_MU, match=r"target.*1 of 4")


def test_selective_curve_and_bootstrap_refuse_bad_inputs():
    r = np.array([0.0, 1.0, 1.0, 1.0])
    _raises(selective.selective_curve, P, MU_S, np.array([0.0, 0.5, 1.0, 1.0]), match=r"'r'.*1 of 4")
    _raises(selective.selective_curve, P, BAD_MU, r, match=r"'mu'.*1 of 4")
    _raises(selective.selective_bootstrap, {"x": P}, {"cc": BAD_MU}, 3, match=r"target.*1 of 4")
    # and the valid inputs still give a number
    assert 0.0 <= selective.aurc(P, MU_S) <= 1.0
