"""The backend is created only when something needs it: a resumed run with nothing left to sample loads no
model, and a run that needs a few more samples creates it once and asks only for those.

The backend is the real OpenAI backend against the real stub server; a registered factory counts how often
the pipeline constructs it.
"""

from __future__ import annotations

import json

from capcal import hookimpl
from capcal.models.openai_backend import OpenAIBackend
from capcal.pipeline import run
from capcal.registry import Registry
from capcal.runconfig import RunConfig
from stub_server import StubServer


def _registry(base_url: str, built: list[OpenAIBackend]) -> Registry:
    def counting(**kwargs):
        backend = OpenAIBackend(base_url=base_url, **kwargs)
        built.append(backend)
        return backend

    class Plugin:
        @hookimpl
        def capcal_register_models(self):
            return {"counted": counting}

    return Registry(plugins=[Plugin()])


def _config(out, data_dir, limit: int, estimators=("oracle_cc", "constant")) -> RunConfig:
    return RunConfig(output=out, model="counted", model_args={"model": "stub-model", "max_n": 4}, tasks=["gsm8k"],
                     k=4, limit=limit, data_dir=data_dir, progress=False, bootstrap=50, estimators=list(estimators),
                     train_limit=5)


def test_a_finished_run_resumed_constructs_no_backend(tmp_path, data_dir):
    out = tmp_path / "run"
    built: list[OpenAIBackend] = []
    with StubServer() as srv:
        reg = _registry(srv.base_url, built)
        rd = run(_config(out, data_dir, 3), registry=reg)
        # 3 questions x 4 samples (n = 4), and 5 training questions for `constant`
        assert len(built) == 1 and len(srv.request_log) == 3 + 5
        config = json.loads(rd.config_path.read_text())
        targets = rd.targets_path("gsm8k").read_text()
        results = json.loads(rd.results_path.read_text())

        rd = run(_config(out, data_dir, 3), registry=reg)
        assert len(built) == 1, "the resumed run constructed a backend"
        assert len(srv.request_log) == 3 + 5
    assert rd.targets_path("gsm8k").read_text() == targets
    assert json.loads(rd.results_path.read_text()) == results
    again = json.loads(rd.config_path.read_text())
    assert again["model_id"] == config["model_id"] == "stub-model"
    assert again["backend"] == config["backend"]


def test_a_resume_that_needs_more_samples_creates_the_backend_once(tmp_path, data_dir):
    out = tmp_path / "run"
    built: list[OpenAIBackend] = []
    with StubServer() as srv:
        reg = _registry(srv.base_url, built)
        run(_config(out, data_dir, 2), registry=reg)
        first = {e["prompt"] for e in srv.request_log}
        srv.clear_log()
        rd = run(_config(out, data_dir, 3), registry=reg)
        log = srv.request_log
    assert len(built) == 2
    assert len(log) == 1 and log[0]["prompt"] not in first  # only the new question was asked for
    # (the training split of `constant` was stored by the first run: not asked again)
    rows = [json.loads(line) for line in rd.targets_path("gsm8k").read_text().splitlines()]
    assert len(rows) == 3 and all(r["n"] == 4 for r in rows)


def test_other_model_args_never_reuse_the_earlier_identity(tmp_path, data_dir):
    """A changed model name is a different identity: the store keys change and everything is sampled again."""
    out = tmp_path / "run"
    built: list[OpenAIBackend] = []
    with StubServer() as srv:
        reg = _registry(srv.base_url, built)
        run(_config(out, data_dir, 2), registry=reg)
        srv.clear_log()
        cfg = _config(out, data_dir, 2)
        cfg.model_args = {"model": "other-model", "max_n": 4}
        rd = run(cfg, registry=reg)
        log = srv.request_log
    assert len(built) == 2 and len(log) == 2 + 5 and {e["body"]["model"] for e in log} == {"other-model"}
    assert json.loads(rd.config_path.read_text())["model_id"] == "other-model"
