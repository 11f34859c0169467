"""The paper's official output format: ``capcal export --format official`` and the round trip back (issue 14).

Run A is a real ``capcal run`` against the OpenAI-compatible stub server on 127.0.0.1; it is exported in
the official layout, imported back as run B, and B must have identical targets and identical metrics.
"""

from __future__ import annotations

import json

import pytest
from capcal.cli import main
from capcal.formats.official import read_official
from capcal.rundir import RunDir
from run_fixtures import gsm8k_table
from stub_server import StubServer

LIMIT, K = 10, 4
ESTIMATORS = "consistency:reuse_samples=true,oracle_cc,oracle_rc,constant"


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("official") / "a"
    with StubServer(honour_n=True, table=gsm8k_table(data_dir, LIMIT)) as srv:
        code = main(["run", "--model", "openai", "--model_args", f"base_url={srv.base_url},model=stub",
                     "--tasks", "gsm8k", "--k", str(K), "--limit", str(LIMIT), "--data-dir", str(data_dir),
                     "--output", str(out), "--estimators", ESTIMATORS, "--bootstrap", "200", "--train-limit", "6",
                     "--no-progress"])
    assert code == 0
    return out


def test_export_writes_the_official_files(run_a, tmp_path, data_dir):
    out = tmp_path / "paper"
    assert main(["export", "--format", "official", str(run_a), "--output", str(out)]) == 0
    folder = out / "outputs" / "gsm8k-test__stub"
    sampled = [json.loads(x) for x in (folder / "sampled.jsonl").read_text().splitlines()]
    truth = [json.loads(x) for x in (folder / "ground_truth.jsonl").read_text().splitlines()]
    summary = json.loads((folder / "ground_truth_summary.json").read_text())
    assert len(sampled) == LIMIT * K and len(truth) == LIMIT
    # the official code's own field names (SampledResult, GroundTruthResult)
    assert set(sampled[0]) == {"example_id", "sampled_id", "prompt_tokens", "completion_tokens", "prompt", "response",
                               "parsed_response", "ground_truth_answer", "correctness"}
    assert set(truth[0]) == {"example_id", "total_prompt_tokens", "total_completion_tokens", "ground_truth_answer",
                             "num_samples", "num_correct", "expected_accuracy", "question"}
    rows = RunDir(run_a).target_rows("gsm8k")
    for row, t in zip(rows, truth, strict=True):
        assert t["example_id"] == f"gsm8k_test_{row['index']}"  # the official naming: <dataset>_<split>_<row>
        assert t["num_samples"] == row["n"] and t["num_correct"] == row["c"] and t["expected_accuracy"] == row["mu"]
        mine = [s for s in sampled if s["example_id"] == t["example_id"]]
        assert [s["correctness"] for s in sorted(mine, key=lambda s: s["sampled_id"])] == row["correct"]
    assert summary["num_examples"] == LIMIT and summary["k_samples"] == K
    assert summary["mean_accuracy"] == pytest.approx(sum(r["mu"] for r in rows) / LIMIT)
    conf = out / "estimator_results" / "oracle_cc" / "gsm8k-test__stub" / "confidence_predictions_cc.jsonl"
    preds = [json.loads(x) for x in conf.read_text().splitlines()]
    assert [p["confidence"] for p in preds] == [r["mu"] for r in rows]
    assert all(p["parse_success"] for p in preds)


def test_round_trip_gives_identical_targets_and_metrics(run_a, tmp_path, data_dir):
    out = tmp_path / "paper"
    assert main(["export", "--format", "official", str(run_a), "--output", str(out)]) == 0
    b = tmp_path / "b"
    assert main(["import", str(out / "outputs" / "gsm8k-test__stub"), "--task", "gsm8k", "--output", str(b),
                 "--data-dir", str(data_dir), "--bootstrap", "200"]) == 0
    ra, rb = RunDir(run_a).target_rows("gsm8k"), RunDir(b).target_rows("gsm8k")
    fields = ("id", "index", "n", "c", "mu", "designated", "r", "correct", "extracted")
    assert [{f: r[f] for f in fields} for r in ra] == [{f: r[f] for f in fields} for r in rb]
    record = json.loads((RunDir(b).task_dir("gsm8k") / "imports" / "eval.json").read_text())
    assert record["matched_by"] == {"index": LIMIT}  # official ids carry the row, checked against the text
    assert record["verdicts"] == LIMIT * K and record["disagreements"]["count"] == 0
    assert sorted(record["confidences"]) == sorted(ESTIMATORS.split(","))

    doc_a = json.loads(RunDir(run_a).results_path.read_text())["tasks"]["gsm8k"]
    doc_b = json.loads(RunDir(b).results_path.read_text())["tasks"]["gsm8k"]
    assert set(doc_a["estimators"]) == set(doc_b["estimators"]) == set(ESTIMATORS.split(","))
    for name, est in doc_a["estimators"].items():
        assert est["metrics"] == doc_b["estimators"][name]["metrics"], name
        assert est["reliability"] == doc_b["estimators"][name]["reliability"], name
    for key in ("n_questions", "mean_mu", "bernoulli_variance", "actual_passk"):
        assert doc_a[key] == doc_b[key]


def test_official_reader_keeps_the_first_of_repeated_lines_and_the_fallback_is_nan(tmp_path, data_dir):
    from capcal.importing import import_confidences, import_samples
    from capcal.registry import get_registry

    task = get_registry().task("gsm8k", data_dir=data_dir)
    exs = task.examples("eval")[:3]
    folder = tmp_path / "outputs" / "gsm8k-test__some-model"
    folder.mkdir(parents=True)
    lines, truth = [], []
    for i, ex in enumerate(exs):
        gold = int(ex.fields["answer"])
        for j in range(3):
            lines.append({"example_id": f"gsm8k_test_{ex.index}", "sampled_id": j, "prompt_tokens": 10,
                          "completion_tokens": 4, "prompt": [{"role": "user", "content": ex.fields["question"]}],
                          "response": f"\\boxed{{{gold if j <= i else gold + 1}}}", "parsed_response": None,
                          "ground_truth_answer": str(gold), "correctness": int(j <= i)})
        truth.append({"example_id": f"gsm8k_test_{ex.index}", "question": ex.fields["question"]})
    lines.append(dict(lines[0], response="a repeated line from a resumed run", correctness=0))
    (folder / "sampled.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (folder / "ground_truth.jsonl").write_text("".join(json.dumps(x) + "\n" for x in truth))
    est = tmp_path / "estimator_results" / "verbalized_confidence" / folder.name
    est.mkdir(parents=True)
    (est / "confidence_predictions_cc.jsonl").write_text(
        json.dumps({"example_id": "gsm8k_test_0", "confidence": 0.5, "parse_success": False}) + "\n"
        + json.dumps({"example_id": "gsm8k_test_1", "confidence": 0.8, "parse_success": True}) + "\n")
    questions, info = read_official(folder)
    assert info.model_id == "some-model" and len(questions) == 3
    assert any("repeated" in n for n in info.notes)
    assert info.confidences == {"verbalized_confidence": str(est / "confidence_predictions_cc.jsonl")}
    report = import_samples(folder, "gsm8k", tmp_path / "run", data_dir=data_dir)
    assert report.confidences == ["verbalized_confidence"]
    rows = RunDir(tmp_path / "run").target_rows("gsm8k")
    assert [r["c"] for r in rows] == [1, 2, 3]
    conf, reasons, meta = RunDir(tmp_path / "run").estimator_output("gsm8k", "verbalized_confidence")
    assert conf[1] == 0.8 and conf[0] != conf[0] and "fallback" in reasons[0]  # the 0.5 fallback is NaN
    assert reasons[2] == "no imported confidence" and meta["source"] == "imported"
    # the official id is known to the run, so a second confidence file in the official form matches too
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"example_id": "gsm8k_test_2", "confidence": 0.3}) + "\n")
    rep = import_confidences(tmp_path / "run", other, "probe_x")
    assert rep.n_matched == 1 and rep.n_missing == 2
