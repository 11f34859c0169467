"""The minimal example files of docs/import.md import as the document says (issue 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from capcal.importing import import_confidences, import_samples
from capcal.rundir import RunDir

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples" / "import"


def test_generic_per_question_example(tmp_path, data_dir):
    report = import_samples(EXAMPLES / "generic_per_question.jsonl", "gsm8k", tmp_path / "run", data_dir=data_dir)
    assert report.matched_by == {"id": 1, "index": 1, "text": 1} and report.n_samples == 9
    rows = RunDir(tmp_path / "run").target_rows("gsm8k")
    assert [r["correct"] for r in rows] == [[1, 0, 1], [1, 0, 1], [1, 0, 0]]
    assert rows[1]["reasons"][1] == "truncated" and report.truncated == 1
    assert report.verdicts == 6 and report.disagreements["count"] == 0
    rep = import_confidences(tmp_path / "run", EXAMPLES / "confidences.jsonl", "my_probe")
    conf, reasons, _ = RunDir(tmp_path / "run").estimator_output("gsm8k", "my_probe")
    assert conf[0] == 0.82 and np.isnan(conf[1]) and reasons[1] == "timeout" and conf[2] == 0.4
    assert rep.n_matched == 3


def test_generic_per_sample_example(tmp_path, data_dir):
    report = import_samples(EXAMPLES / "generic_per_sample.jsonl", "gsm8k", tmp_path / "run", data_dir=data_dir)
    assert report.n_matched == 2 and report.n_samples == 4
    assert [r["correct"] for r in RunDir(tmp_path / "run").target_rows("gsm8k")] == [[1, 0], [1, 0]]


def test_official_example(tmp_path, data_dir):
    folder = EXAMPLES / "official" / "outputs" / "gsm8k-test__my-model"
    report = import_samples(folder, "gsm8k", tmp_path / "run", data_dir=data_dir)
    assert report.model_id == "my-model" and report.matched_by == {"index": 2}
    assert report.confidences == ["verbalized_confidence"]
    conf, reasons, _ = RunDir(tmp_path / "run").estimator_output("gsm8k", "verbalized_confidence")
    assert conf[0] == 0.9 and np.isnan(conf[1]) and "fallback" in reasons[1]


def test_confidences_as_csv_and_export_errors_are_one_line(tmp_path, data_dir, capsys):
    from capcal.cli import main

    run = tmp_path / "run"
    import_samples(EXAMPLES / "generic_per_sample.jsonl", "gsm8k", run, data_dir=data_dir)
    ids = [r["id"] for r in RunDir(run).target_rows("gsm8k")]
    csv = tmp_path / "p.csv"
    csv.write_text(f"id,confidence\n{ids[0]},0.25\n{ids[1]},\n")
    assert main(["import", "--confidences", str(csv), "--name", "from_csv", str(run)]) == 0
    conf, reasons, _ = RunDir(run).estimator_output("gsm8k", "from_csv")
    assert conf[0] == 0.25 and np.isnan(conf[1]) and reasons[1] == "no confidence in the source"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "confidence": 1.5}\n')
    capsys.readouterr()
    assert main(["import", "--confidences", str(bad), "--name", "bad", str(run)]) == 2
    assert "outside [0, 1]" in capsys.readouterr().err
    assert main(["export", "--format", "official", str(run), "--output", str(tmp_path / "o"), "--tasks", "mmlu"]) == 2
    err = capsys.readouterr().err
    assert "has no targets for task 'mmlu'" in err and "Traceback" not in err
    assert main(["export", str(tmp_path / "nothing"), "--output", str(tmp_path / "o")]) == 2
    assert "not a capcal run directory" in capsys.readouterr().err
