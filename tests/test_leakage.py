"""The leakage rule: learned estimators never fit on the questions they are scored on, whatever the config.

Runs go through the real pipeline against the stub OpenAI-compatible server on 127.0.0.1 (the model
replies do not matter here, only which questions each estimator was allowed to fit on).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from capcal.errors import SpecError
from capcal.estimators import Estimator, EstimatorOutput
from capcal.hookspecs import hookimpl
from capcal.leakage import LeakageError, check_estimator_leakage, overlap, question_text, without_scored
from capcal.pipeline import Pipeline
from capcal.registry import Registry
from capcal.report import load_leaderboard, render
from capcal.runconfig import RunConfig
from capcal.rundir import RunDir
from capcal.taskspec import load_spec
from stub_server import StubServer

GSM8K = Path(__file__).resolve().parents[1] / "tasks" / "gsm8k" / "gsm8k.yaml"


def _registry_file(tmp_path: Path, split: str) -> Path:
    reg = tmp_path / "registry.yaml"
    reg.write_text(
        "suites:\n  leaky:\n    version: '1.0'\n    description: scores the training split\n"
        f"    tasks:\n      gsm8k: {{split: {split}, k: 2, limit: 6}}\n"
        "    estimators: [constant, recalibrated, probe]\n"
        "    headline_metrics: [cc_brier]\n", encoding="utf-8")
    return reg


@pytest.fixture()
def stub():
    with StubServer(honour_n=True) as srv:
        yield srv


def test_suite_scoring_the_train_split_fits_on_no_scored_question(tmp_path, data_dir, stub, monkeypatch):
    """``split: train`` plus constant, recalibrated and probe: the training split is refused for fitting;
    recalibrated and probe fail with one clear error naming the refusal, constant falls back to its
    in-sample base rate and records it."""
    import capcal.suites as suites

    reg = _registry_file(tmp_path, "train")
    real = suites._registry_file
    monkeypatch.setattr(suites, "_registry_file", lambda path=None: real(path if path is not None else reg))
    out = tmp_path / "run"
    cfg = RunConfig(output=out, model="openai", model_args={"base_url": stub.base_url, "model": "stub"},
                    suite="leaky", data_dir=data_dir, progress=False, bootstrap=0, train_limit=5)
    pipe = Pipeline(cfg)
    pipe.run()
    rd = RunDir(out)
    scored = set(rd.targets("gsm8k").ids)
    # nothing of a training split was sampled or graded: the only split the run saw is the scored one
    assert not (out / "tasks" / "gsm8k" / "splits").exists()
    assert not any(info["split"] != "eval" for info in _infos(out))
    assert len(scored) == 6 and pipe.splits["gsm8k"].examples[0].index == 0
    conf, _, meta = rd.estimator_output("gsm8k", "constant")
    assert meta["in_sample"] is True and meta["source"] == "eval"
    assert np.allclose(conf, rd.targets("gsm8k").mu.mean())
    refused = [s for s in meta["fit_splits"] if s["split"] == "train"]
    assert refused and "is the evaluation split of this run" in refused[0]["refused"]
    for name in ("recalibrated", "probe"):
        conf, reasons, meta = rd.estimator_output("gsm8k", name)
        assert np.isnan(conf).all()
        assert "split 'train' is the evaluation split of this run" in reasons[0], reasons[0]
        assert "\n" not in reasons[0]
    # the in-sample constant is marked on the leaderboard
    lb = load_leaderboard([out])
    md, html = render(lb, "md"), render(lb, "html")
    assert "| constant † |" in md and any(f.endswith("not comparable with held-out estimators")
                                          and "/gsm8k/constant †: in-sample" in f for f in lb.flags)
    assert 'constant <span class="mark">†</span>' in html


def _infos(out: Path) -> list[dict]:
    from capcal.store import SampleStore

    with SampleStore(out / "samples.sqlite") as store:
        return [rec["info"] for rec in store.get_records(store.keys()).values()]


def _dup_task(tmp_path: Path, data_dir: Path) -> tuple[Registry, Path, list[str]]:
    """A gsm8k copy whose training split repeats 4 evaluation questions: 2 verbatim (same id) and 2 with
    other whitespace and case (other id, same normalised text), plus 8 genuine training questions."""
    mirror = tmp_path / "mirror" / "local__dup" / "main"
    mirror.mkdir(parents=True)
    src = data_dir / "openai__gsm8k" / "main"
    test = [json.loads(x) for x in (src / "test.jsonl").read_text().splitlines()[:6]]
    train = [json.loads(x) for x in (src / "train.jsonl").read_text().splitlines()[:8]]
    disguised = [dict(test[2], question="  " + test[2]["question"].upper() + " "),
                 dict(test[3], question=test[3]["question"].replace(" ", "  "))]
    (mirror / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    (mirror / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [test[0], *train[:4], test[1],
                                                                             *disguised, *train[4:]]))
    specs = tmp_path / "specs"
    specs.mkdir()
    text = GSM8K.read_text().replace("task: gsm8k", "task: gsm8k_dup").replace("path: openai/gsm8k", "path: local/dup")
    (specs / "gsm8k_dup.yaml").write_text(text)

    class Plugin:
        @hookimpl
        def capcal_register_tasks(self):
            return [specs]

    return Registry(plugins=[Plugin()]), tmp_path / "mirror", [r["question"] for r in train]


def test_duplicates_across_splits_are_dropped_and_recorded(tmp_path, data_dir, stub):
    reg, mirror, train_questions = _dup_task(tmp_path, data_dir)
    out = tmp_path / "run"
    cfg = RunConfig(output=out, model="openai", model_args={"base_url": stub.base_url, "model": "stub"},
                    tasks=["gsm8k_dup"], k=4, data_dir=mirror, progress=False, bootstrap=0,
                    estimators=["constant", "recalibrated:base=logprob_mean"], train_limit=50)
    pipe = Pipeline(cfg, registry=reg, log=lambda msg: logs.append(msg))
    logs: list[str] = []
    pipe.run()
    rd = RunDir(out)
    train_rows = json.loads("[" + ",".join((out / "tasks" / "gsm8k_dup" / "splits" / "train" / "targets.jsonl")
                                            .read_text().splitlines()) + "]")
    assert len(train_rows) == 12
    _, _, meta = rd.estimator_output("gsm8k_dup", "constant")
    record = next(s for s in meta["fit_splits"] if s["split"] == "train")
    assert record == {"split": "train", "n": 8, "removed": 4, "removed_by_id": 2, "removed_by_text": 2}
    assert meta["in_sample"] is False and meta["source"] == "train"
    # independent computation: the mean mu of the 8 genuine training questions only
    task = reg.task("gsm8k_dup", data_dir=mirror)
    genuine = {ex.id for ex in task.examples("train") if ex.fields["question"] in train_questions}
    assert len(genuine) == 8
    expected = np.mean([r["mu"] for r in train_rows if r["id"] in genuine])
    assert meta["value"] == pytest.approx(expected)
    _, _, meta_r = rd.estimator_output("gsm8k_dup", "recalibrated:base=logprob_mean")
    assert meta_r["fitted_on"] == "train" and meta_r["fit_splits"][0]["removed"] == 4
    assert any("4 questions of split 'train' are also scored (2 by id, 2 by question text)" in m for m in logs)


def test_without_scored_refuses_a_fully_overlapping_split(tmp_path, data_dir, stub):
    reg, mirror, _ = _dup_task(tmp_path, data_dir)
    cfg = RunConfig(output=tmp_path / "run", model="openai", model_args={"base_url": stub.base_url, "model": "stub"},
                    tasks=["gsm8k_dup"], k=2, data_dir=mirror, progress=False, bootstrap=0,
                    estimators=["oracle_cc"])                 # builds (and keeps) the evaluation context
    pipe = Pipeline(cfg, registry=reg)
    pipe.run()
    ev = pipe.context(pipe.splits["gsm8k_dup"])
    with pytest.raises(LeakageError, match="all 6 questions are also scored questions"):
        without_scored(ev, ev, "self")
    mask, by_id, by_text = overlap(ev.subset([0, 1]), ev)
    assert mask.tolist() == [True, True] and (by_id, by_text) == (2, 0)
    ex = ev.examples[0]
    assert question_text(ex) == question_text(type(ex)(index=0, id="x", doc={}, fields={
        "question": "  " + ex.fields["question"].upper().replace(" ", "   ")}))


def test_spec_with_train_split_equal_to_split_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GSM8K.read_text().replace("train_split: train", "train_split: test"))
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert info.value.key == "dataset.train_split" and str(bad) in str(info.value)
    assert "'test' is the evaluation split" in str(info.value)


# -- the check for third-party estimators ---------------------------------------------------------------
class PromptLength(Estimator):
    """Reads only the prompts: never depends on the scored targets."""

    name = "prompt_length"

    def predict(self, ctx):
        n = np.array([len(m[-1]["content"]) for m in ctx.messages], float)
        return EstimatorOutput(n / (n.max() + 1.0), [None] * len(ctx))


class PeeksAtTargets(Estimator):
    """Fits its base rate on the evaluated questions without saying so: the leak the check must catch."""

    name = "peeks"

    def predict(self, ctx):
        return EstimatorOutput(np.full(len(ctx), float(ctx.targets.mu.mean())), [None] * len(ctx))


def test_check_estimator_leakage(tmp_path, data_dir, stub):
    cfg = RunConfig(output=tmp_path / "run", model="openai", model_args={"base_url": stub.base_url, "model": "stub"},
                    tasks=["gsm8k"], k=4, limit=6, data_dir=data_dir, progress=False, bootstrap=0,
                    train_limit=20, estimators=["constant"])  # keeps the eval and the (held-out) train context
    pipe = Pipeline(cfg)
    pipe.run()
    ev = pipe.context(pipe.splits["gsm8k"])
    assert check_estimator_leakage(PromptLength, ev)["reads_scored_targets"] is False
    with pytest.raises(LeakageError, match="peeks.*change .* when that split's own targets are permuted"):
        check_estimator_leakage(PeeksAtTargets, ev)
    from capcal.registry import get_registry

    oracle = get_registry().estimator_class("oracle_cc")
    got = check_estimator_leakage(oracle, ev)                 # reads mu, but declares it (samples_overlap_mu)
    assert got["reads_scored_targets"] and got["declared_in_sample"]
    constant = get_registry().estimator_class("constant")
    got = check_estimator_leakage(constant, ev)               # fits on gsm8k's training split: held out
    assert got["reads_scored_targets"] is False
    with pytest.raises(LeakageError, match="fit questions are also scored"):
        check_estimator_leakage(constant, ev, train=ev.subset([0, 1, 2]))


def test_in_sample_constant_on_math500_is_marked(tmp_path, data_dir, stub):
    """math500 has no training split: constant uses the evaluated questions' own mean mu, and the Markdown
    and HTML leaderboards mark that row (and the oracle, computed from the samples that define mu)."""
    out = tmp_path / "run"
    cfg = RunConfig(output=out, model="openai", model_args={"base_url": stub.base_url, "model": "stub"},
                    tasks=["math500"], k=2, limit=4, data_dir=data_dir, progress=False, bootstrap=20,
                    estimators=["constant", "oracle_cc", "logprob_mean"])
    Pipeline(cfg).run()
    from capcal.results import load_results

    est = load_results(out)["tasks"]["math500"]["estimators"]
    assert est["constant"]["in_sample"].startswith("fitted on the evaluated questions")
    assert est["oracle_cc"]["in_sample"] == "computed from the samples that define mu"
    assert est["logprob_mean"]["in_sample"] is None
    lb = load_leaderboard([out])
    md, html = render(lb, "md"), render(lb, "html")
    lines = md.splitlines()
    assert any(ln.split(" | ")[1] == "constant †" for ln in lines if ln.startswith("| "))
    assert any(ln.split(" | ")[1] == "oracle_cc †" for ln in lines if ln.startswith("| "))
    assert not any(ln.split(" | ")[1] == "logprob_mean †" for ln in lines if ln.startswith("| "))
    assert "† in-sample row" in md and "`capcal compare` never gates on it" in md
    assert any("/math500/constant †: in-sample, fitted on the evaluated questions" in f for f in lb.flags)
    assert 'constant <span class="mark">†</span>' in html and "logprob_mean <span" not in html
    assert "† in-sample row" in html
