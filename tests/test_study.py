"""The study command: the committed report regenerates from the committed summaries, a tiny real study
resumes without sampling twice, and bad input is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from capcal.errors import CapcalError
from capcal.study import StudyPlan, StudyTask, parse_tasks, run_study
from capcal.study_report import forced_format_section, load_summaries, write_report
from run_fixtures import capcal

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "study.md"
SUMMARIES = ROOT / "docs" / "study" / "runs"


def test_committed_report_regenerates_byte_for_byte(tmp_path):
    assert sorted(SUMMARIES.glob("*.json")), "the study's run summaries are committed in docs/study/runs"
    doc, figs = write_report(SUMMARIES, tmp_path / "study.md")
    assert doc.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")
    committed = sorted(p.name for p in (ROOT / "docs" / "study").glob("*.svg"))
    assert sorted(p.name for p in figs) == committed
    for p in figs:
        assert p.read_text(encoding="utf-8") == (ROOT / "docs" / "study" / p.name).read_text(encoding="utf-8")


def test_report_numbers_come_from_the_summaries(tmp_path):
    """Change one summary's stored metric: the regenerated text changes exactly there."""
    docs = load_summaries(SUMMARIES)
    first = docs[0]
    est = sorted(first["results"]["estimators"])[0]
    first["results"]["estimators"][est]["metrics"]["cc_brier"] = {"value": 0.987654, "ci": [0.9, 0.99]}
    folder = tmp_path / "runs"
    folder.mkdir()
    for d in docs:
        (folder / f"{d['model']}__{d['task']}.json").write_text(json.dumps(d))
    doc, _ = write_report(folder, tmp_path / "study.md")
    text = doc.read_text(encoding="utf-8")
    assert "0.988 [0.900, 0.990]" in text and "0.988 [0.900, 0.990]" not in DOC.read_text(encoding="utf-8")


def test_forced_format_table_reads_each_runs_rates():
    """The forced-format table prints each run's free and forced rates from its summary, and disappears
    for runs drawn without a forced copy."""
    docs = load_summaries(SUMMARIES)
    both = [d for d in docs if (d.get("answer_parse_rates") or {}).get("forced")]
    assert both, "the committed study drew forced copies"
    d = both[0]
    d["answer_parse_rates"]["forced"]["answer_parse_rate"] = 0.4321
    d["answer_parse_rates"]["free"]["answer_parse_rate"] = 0.1234
    d["results"]["estimators"]["verbalized"]["meta"].update(parse_rate=0.25, final_parse_rate=0.75)
    d["results"]["estimators"]["verbalized:forced=true"]["meta"].update(parse_rate=0.9, final_parse_rate=0.9)
    lines = forced_format_section([d])
    row = next(line for line in lines if line.startswith(f"| {d['title']} / {d['task']} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:4] == ["0.123", "0.432"] and cells[6:8] == ["0.250 (0.750)", "0.900"]
    assert cells[1] == str(d["answer_parse_rates"]["free"]["n_samples"])
    d["answer_parse_rates"] = {"free": d["answer_parse_rates"]["free"]}
    assert forced_format_section([d]) == []


def test_parse_tasks():
    assert parse_tasks("mmlu:300:16, gsm8k:50:8:off") == [StudyTask("mmlu", 300, 16), StudyTask("gsm8k", 50, 8, "off")]
    for bad in ("mmlu", "mmlu:0:4", "mmlu:3:x", "mmlu:3:4:sometimes", ""):
        with pytest.raises(CapcalError):
            parse_tasks(bad)


def test_cli_bad_input_is_one_line(tmp_path):
    res = capcal("study", "--tasks", "mmlu:many:4", "--output", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "name:limit:k" in res.stderr
    res = capcal("study", "--report-only", "--summaries", str(tmp_path / "none"), "--doc", str(tmp_path / "d.md"))
    assert res.returncode == 2 and "no study summaries" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.model
def test_tiny_study_resumes_without_sampling_twice(tmp_path, data_dir):
    plan = StudyPlan(models=["smollm2-135m"], tasks=[StudyTask("mmlu", 3, 2)],
                     estimators=["logprob_mean", "constant", "oracle_cc", "oracle_rc"], train_limit=3,
                     bootstrap=50, data_dir=str(data_dir), progress=False, forced_format="off")
    out, summaries = tmp_path / "runs", tmp_path / "summaries"
    [path] = run_study(plan, out, summaries, command="capcal study --tiny", log=lambda _: None)
    first = json.loads(path.read_text())
    # 3 questions x k = 2 of the evaluation split, and of the training and validation splits (the constant)
    assert first["invocations"][0]["samples_drawn"] == 3 * 3 * 2
    assert len(first["questions"]["labels"]) == 3 and all(len(s) == 2 for s in first["questions"]["labels"])
    assert first["confidences"]["oracle_cc"] == [s.count("1") / 2 for s in first["questions"]["labels"]]
    [path] = run_study(plan, out, summaries, command="capcal study --tiny", log=lambda _: None)
    again = json.loads(path.read_text())
    assert [i["samples_drawn"] for i in again["invocations"]] == [18, 0]
    assert again["questions"] == first["questions"] and again["confidences"] == first["confidences"]
    doc, figs = write_report(summaries, tmp_path / "doc" / "study.md")
    text = doc.read_text()
    assert "capcal study --tiny" in text and "SmolLM2-135M-Instruct-Q4_1 on mmlu" in text
    assert {p.name for p in figs} >= {"smollm2-135m__mmlu__reliability_cc.svg", "smollm2-135m__mmlu__budget.svg"}
