"""Every built-in estimator through a real ``capcal run`` on the embedded model, over gsm8k and mmlu.

Tiny on purpose (2 questions, k = 2, 4 new tokens): it proves the estimators work on the contexts the
pipeline builds, with the real model, real tasks and real graders; it does not measure their quality.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from capcal import Registry, hookimpl
from capcal.estimators_contrib import BUILTIN_ESTIMATORS
from capcal.estimators_contrib._generation import CompletionCache
from model_fixtures import embedded_backend_fixture  # noqa: F401  (registers "embedded_backend")

pytestmark = [pytest.mark.model, pytest.mark.slow]


# Cheaper parameters for the 2-core CI machine (the pipeline builds estimators with no arguments, so the
# test registers the built-in classes with these defaults under their own names).
SMALL = {"verbalized": {"max_tokens": 12, "retries": 1}, "consistency": {"m": 4},
         "consistency_entropy": {"m": 4}, "probe": {"cs": (0.1, 1.0)},
         "recalibrated": {"base_params": {"max_tokens": 12, "retries": 1}}}


def _small(cls, params):
    def __init__(self, **kw):
        cls.__init__(self, **{**params, **kw})

    return type(cls.__name__, (cls,), {"__init__": __init__})


class _SmallBuiltins:
    @hookimpl
    def capcal_register_estimators(self):
        return {name: _small(cls, SMALL.get(name, {})) for name, cls in BUILTIN_ESTIMATORS.items()}


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory, data_dir, embedded_backend):
    from capcal import builtin
    from capcal.pipeline import run
    from capcal.runconfig import RunConfig

    registry = Registry(entry_points=False, builtins=False, plugins=[builtin, _SmallBuiltins()])
    out = tmp_path_factory.mktemp("est") / "run"
    cfg = RunConfig(output=out, tasks=["gsm8k", "mmlu"], k=2, limit=2, max_tokens=4, train_limit=4,
                    estimators=sorted(BUILTIN_ESTIMATORS), data_dir=data_dir, bootstrap=10, progress=False)
    return run(cfg, registry=registry, backend=embedded_backend)


@pytest.mark.parametrize("task", ["gsm8k", "mmlu"])
def test_every_estimator_produces_confidences(embedded_run, task):
    rd = embedded_run
    assert set(BUILTIN_ESTIMATORS) <= set(rd.estimators(task))
    for name in BUILTIN_ESTIMATORS:
        conf, reasons, meta = rd.estimator_output(task, name)
        assert len(conf) == 2
        assert "error" not in meta, (name, meta.get("error"))
        assert not any(r and r.startswith("estimator failed") for r in reasons), (name, reasons)
        finite = np.isfinite(conf)
        assert ((conf[finite] >= 0) & (conf[finite] <= 1)).all()
        if name == "verbalized":  # a reply may be unparseable: then NaN with its reason, never a crash
            assert all(r == "unparseable reply" for r, ok in zip(reasons, finite, strict=True) if not ok)
            assert 0.0 <= meta["parse_rate"] <= meta["final_parse_rate"] <= 1.0
        elif name in ("ptrue", "recalibrated"):
            assert all(r for r, ok in zip(reasons, finite, strict=True) if not ok)
        else:
            assert finite.all(), (name, reasons)


def test_recorded_meta(embedded_run):
    rd = embedded_run
    targets = rd.targets("gsm8k")
    conf, _, meta = rd.estimator_output("gsm8k", "oracle_cc")
    np.testing.assert_allclose(conf, targets.mu)
    _, _, probe = rd.estimator_output("mmlu", "probe")
    # mmlu's spec maps the train role to its validation file and the validation role to dev
    assert probe["train_split"] == "train" and probe["validation_split"] == "validation"
    assert probe["n_train"] == 4 and probe["n_validation"] == 4 and probe["selection"] == "validation split"
    assert isinstance(probe["layer"], int) and probe["C"] in (0.1, 1.0)
    _, _, cons = rd.estimator_output("gsm8k", "consistency")
    assert cons["samples_overlap_mu"] is False and cons["m_used_min"] == 4
    _, _, ptrue = rd.estimator_output("mmlu", "ptrue")
    assert ptrue["method"] == "next_token" and 0 < ptrue["mean_yes_no_mass"] <= 1
    _, _, const = rd.estimator_output("gsm8k", "constant")
    assert const["source"] == "train" and const["in_sample"] is False


def test_extra_consistency_samples_are_disjoint_and_cached(embedded_run):
    rd = embedded_run
    path = rd.task_dir("gsm8k") / "cache" / "eval" / "consistency_samples.jsonl"
    cache = CompletionCache(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 * 4  # m = 4 per question, each drawn once
    seeds = {json.loads(line)["completion"]["seed"] for line in lines}
    stored = {c.seed for row in _stored_samples(rd, "gsm8k") for c in row}
    assert not seeds & stored  # new draws, not the samples that define mu
    assert all(json.loads(line)["key"] in cache for line in lines)


def _stored_samples(rd, task):
    from capcal.models.base import Completion
    from capcal.store import SampleStore

    keys = [k for row in rd.target_rows(task) for k in row["sample_keys"]]
    with SampleStore(rd.store_path) as store:
        got = store.get_many(keys)
    return [[Completion.from_dict(got[k]) for k in row["sample_keys"]] for row in rd.target_rows(task)]
