"""The pipeline end to end on the real embedded model (SmolLM2-135M): tiny, but every stage for real."""

from __future__ import annotations

import json

import numpy as np
import pytest
from capcal.grading import grade_sample
from capcal.models.base import Completion
from capcal.pipeline import Pipeline, run
from capcal.registry import get_registry
from capcal.results import load_results
from capcal.runconfig import RunConfig, derive_seed
from capcal.store import SampleStore
from model_fixtures import embedded_backend_fixture  # noqa: F401  (registers "embedded_backend")


class CountingBackend:
    """Wraps a backend and counts the samples it is asked for (everything else is passed through)."""

    def __init__(self, inner):
        self.inner, self.asked = inner, 0
        self.backend, self.model = inner.backend, inner.model

    def generate(self, requests, on_result, progress=None):
        self.asked += sum(len(r.sample_ids) for r in requests)
        return self.inner.generate(requests, on_result, progress)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.model
def test_embedded_run_end_to_end_and_resume(tmp_path, data_dir, embedded_backend):
    out = tmp_path / "run"
    cfg = dict(output=out, tasks=["triviaqa"], k=3, limit=2, max_tokens=12, data_dir=data_dir,
               estimators=["oracle_cc", "oracle_rc", "logprob_mean"], bootstrap=50, progress=False, seed=5)
    backend = CountingBackend(embedded_backend)
    rd = run(RunConfig(**cfg), backend=backend)
    assert backend.asked == 2 * 3

    task = get_registry().task("triviaqa", data_dir=data_dir)
    examples = task.examples("eval", 2)
    rows = rd.target_rows("triviaqa")
    assert [r["id"] for r in rows] == [ex.id for ex in examples]
    with SampleStore(rd.store_path) as store:
        for row, ex in zip(rows, examples, strict=True):
            assert row["n"] == 3 and len(row["correct"]) == 3 and row["designated"] == 0
            recs = store.get_records(row["sample_keys"])
            comps = [Completion.from_dict(recs[k]["completion"]) for k in row["sample_keys"]]
            # every sample was drawn with its derived seed, carries logprobs, and grades as recorded
            assert [recs[k]["info"]["seed"] for k in row["sample_keys"]] == [derive_seed(5, ex.id, j) for j in range(3)]
            assert all(c.token_logprobs and len(c.token_logprobs) <= 12 for c in comps)
            # regraded as the pipeline grades (DESIGN.md: a sample cut at the token limit is incorrect,
            # reason "truncated", nothing extracted; 12 new tokens cut some answers)
            regraded = [grade_sample(task, c.text, c.finish_reason, ex)[0] for c in comps]
            assert row["correct"] == [int(g.correct) for g in regraded]
            assert row["extracted"] == [g.extracted for g in regraded]
            assert row["c"] == sum(row["correct"]) and row["r"] == row["correct"][0]

    config = json.loads(rd.config_path.read_text())
    sampling = config["tasks"]["triviaqa"]["sampling"]
    assert sampling == {**sampling, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "max_tokens": 12, "seed": 5}
    assert config["backend"]["backend"] == "embedded"

    targets = rd.targets("triviaqa")
    conf, reasons, _ = rd.estimator_output("triviaqa", "oracle_cc")
    np.testing.assert_allclose(conf, targets.mu)
    conf_rc, _, _ = rd.estimator_output("triviaqa", "oracle_rc")
    np.testing.assert_allclose(conf_rc, targets.r)
    lp, _, _ = rd.estimator_output("triviaqa", "logprob_mean")
    assert np.all((lp > 0) & (lp <= 1))
    doc = load_results(rd.path)
    assert doc["tasks"]["triviaqa"]["estimators"]["oracle_cc"]["metrics"]["cc_brier"]["value"] == 0.0

    # re-running the same configuration asks the model for nothing and redoes no stage
    stamps = {p: p.stat().st_mtime_ns for p in [rd.targets_path("triviaqa"), rd.results_path,
                                                 rd.estimator_path("triviaqa", "oracle_cc")]}
    again = CountingBackend(embedded_backend)
    pipeline = Pipeline(RunConfig(**cfg), backend=again)
    pipeline.run()
    assert again.asked == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # a changed designated index re-grades (new response target) without drawing any sample
    again = CountingBackend(embedded_backend)
    run(RunConfig(**{**cfg, "designated": 2}), backend=again)
    assert again.asked == 0
    assert [r["r"] for r in rd.target_rows("triviaqa")] == [r["correct"][2] for r in rows]
