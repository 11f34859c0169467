"""The few-shot verbalized estimator: its worked examples come from the training split only, with the mu of
that split's graded samples (issue 14). A real ``capcal run`` against the OpenAI-compatible stub server."""

from __future__ import annotations

import json

import numpy as np
import pytest
from capcal.cli import main
from capcal.errors import CapcalError
from capcal.estimators_contrib.verbalized_fewshot import FewShotVerbalized, select_shots
from capcal.registry import get_registry
from capcal.rundir import RunDir, read_jsonl
from stub_server import StubServer

LIMIT, TRAIN, K = 4, 10, 4


def _table(data_dir):
    """Right / wrong answers per gsm8k prompt of both splits, so that mu varies between questions."""
    task = get_registry().task("gsm8k", data_dir=data_dir)
    table = {}
    for ex in task.examples("eval")[:LIMIT] + task.examples("train")[:TRAIN]:
        prompt = [m for m in task.render(ex) if m["role"] == "user"][-1]["content"]
        gold = int(ex.fields["answer"])
        table[prompt] = [f"The answer is {gold}.", f"The answer is {gold + 1}.", f"So {gold * 3 + 1}.",
                         f"Thus the answer is {gold}."]
    return task, table


def test_worked_examples_come_from_the_training_split_with_its_measured_mu(tmp_path, data_dir):
    task, table = _table(data_dir)
    out = tmp_path / "run"
    with StubServer(honour_n=True, table=table) as srv:
        code = main(["run", "--model", "openai", "--model_args", f"base_url={srv.base_url},model=stub",
                     "--tasks", "gsm8k", "--k", str(K), "--limit", str(LIMIT), "--train-limit", str(TRAIN),
                     "--data-dir", str(data_dir), "--output", str(out), "--bootstrap", "20", "--no-progress",
                     "--estimators", "verbalized_fewshot:m=3:seed=5"])
        log = srv.request_log
    assert code == 0
    rd = RunDir(out)
    train_rows = {r["id"]: r for r in read_jsonl(rd.targets_path("gsm8k", "train"))}
    eval_ids = {r["id"] for r in rd.target_rows("gsm8k")}
    assert len(train_rows) == TRAIN and len(eval_ids) == LIMIT
    _, _, meta = rd.estimator_output("gsm8k", "verbalized_fewshot:m=3:seed=5")
    shots = meta["shots"]
    assert len(shots) == 3 and len({s["id"] for s in shots}) == 3
    train_examples = {ex.id: ex for ex in task.examples("train")[:TRAIN]}
    for s in shots:
        assert s["split"] == "train" and s["id"] in train_rows and s["id"] not in eval_ids
        row = train_rows[s["id"]]
        # mu from the training split's own graded samples: c / n of its targets row, recounted
        assert s["mu"] == sum(row["correct"]) / len(row["correct"]) == row["mu"] and s["n"] == K
    # the prompts the server received: every few-shot prompt shows the three examples with their mu
    fewshot = [e["prompt"] for e in log if e["prompt"] and "--- Example 1 ---" in e["prompt"]]
    assert len(fewshot) >= LIMIT
    eval_questions = [ex.fields["question"] for ex in task.examples("eval")[:LIMIT]]
    for prompt in fewshot:
        examples_part, question_part = prompt.split("--- Your question ---")
        for s in shots:
            assert train_examples[s["id"]].fields["question"] in examples_part
            assert f"\\boxed{{{s['mu']:.2f}}}" in examples_part
        assert examples_part.count("--- Example") == 3
        assert not any(q in examples_part for q in eval_questions)  # never an evaluation question
        assert sum(q in question_part for q in eval_questions) == 1
    # the selection seed is a parameter: another seed, other examples (same training split)
    mu = np.array([train_rows[i]["mu"] for i in train_rows])
    assert set(select_shots(mu, 3, 5)) != set(select_shots(mu, 3, 6)) or len(set(mu)) == 1


def test_select_shots_random_and_stratified():
    mu = np.array([0.0, 0.05, 0.5, 0.55, 0.95, 1.0, np.nan])
    for seed in range(5):
        picks = select_shots(mu, 3, seed, "stratified")
        bins = sorted(min(int(mu[i] * 3), 2) for i in picks)
        assert bins == [0, 1, 2]  # one per mu bin
        r = select_shots(mu, 4, seed)
        assert len(set(r)) == 4 and 6 not in r  # a question without graded samples is never shown
    assert list(select_shots(mu, 3, 1)) == list(select_shots(mu, 3, 1))
    with pytest.raises(CapcalError, match="6 graded questions"):
        select_shots(mu, 7, 0)


def test_fit_refuses_anything_but_the_training_split():
    class Ctx:
        split = "eval"

        def __len__(self):
            return 3

    est = FewShotVerbalized(m=2)
    with pytest.raises(CapcalError, match="training split only"):
        est.fit(Ctx())
    with pytest.raises(CapcalError, match="no training split"):
        est.fit(None)
    with pytest.raises(CapcalError, match="m must be >= 1"):
        FewShotVerbalized(m=0)


def test_a_task_without_training_split_gets_nan_with_the_reason(tmp_path, data_dir):
    out = tmp_path / "run"
    with StubServer(honour_n=True) as srv:
        code = main(["run", "--model", "openai", "--model_args", f"base_url={srv.base_url},model=stub",
                     "--tasks", "math500", "--k", "2", "--limit", "3", "--data-dir", str(data_dir),
                     "--output", str(out), "--bootstrap", "10", "--no-progress", "--estimators", "verbalized_fewshot"])
    assert code == 0
    conf, reasons, meta = RunDir(out).estimator_output("math500", "verbalized_fewshot")
    assert np.isnan(conf).all() and "no training split" in reasons[0]
    assert "no training split" in json.dumps(meta)
