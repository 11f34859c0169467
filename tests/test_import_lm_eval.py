"""Import of a real lm-evaluation-harness ``--log_samples`` file of a task with ``repeats`` (issue 14).

The fixture ``tests/fixtures/lm_eval/samples_capcal_gsm8k_rep.jsonl`` (with ``results.json``) was made by
lm-eval 0.4.13 (``pip install lm_eval``, a fixture maker only, not a capcal dependency), run from the
repository root by ``python tests/fixtures/lm_eval/make_fixture.py``, which serves the first 8 GSM8K test
questions from tests/stub_server.py on 127.0.0.1 and runs::

    python -m lm_eval --model local-chat-completions \\
        --model_args model=stub,base_url=http://127.0.0.1:<port>/v1/chat/completions,num_concurrent=1,max_retries=1,tokenized_requests=False \\
        --apply_chat_template --include_path tests/fixtures/lm_eval --tasks capcal_gsm8k_rep \\
        --limit 8 --log_samples --output_path <tmp>/out

The task (``capcal_gsm8k_rep.yaml``) has ``repeats: 4`` and scores every repeat with lm-eval's own
``exact_match`` after its regex filter ``The answer is (N)`` (``exact_match_per_repeat``). The stub's
replies include ``The answer is $18.`` and ``Let me think. 18``, which capcal's numeric grader accepts and
that lm-eval's regex does not, so the two graders disagree on some samples.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from capcal.cli import main
from capcal.formats import detect_format
from capcal.importing import import_samples
from capcal.rundir import RunDir

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "lm_eval" / "samples_capcal_gsm8k_rep.jsonl"


def _lm_eval_lines():
    return [json.loads(x) for x in FIXTURE.read_text(encoding="utf-8").splitlines()]


def _last_number_is_gold(text: str, gold: str) -> int:
    numbers = re.findall(r"-?\d[\d,]*", text)
    return int(bool(numbers) and numbers[-1].replace(",", "") == gold.replace(",", ""))


def test_real_lm_eval_log_samples_with_repeats(tmp_path, data_dir, capsys):
    assert detect_format(FIXTURE) == "lm_eval"
    lines = _lm_eval_lines()
    assert len(lines) == 8 and all(len(x["resps"][0]) == 4 for x in lines)
    out = tmp_path / "run"
    assert main(["import", str(FIXTURE), "--task", "gsm8k", "--output", str(out), "--data-dir", str(data_dir),
                 "--estimators", "consistency,oracle_cc", "--bootstrap", "50"]) == 0
    err = capsys.readouterr().err
    rd = RunDir(out)
    rows = {r["index"]: r for r in rd.target_rows("gsm8k")}
    assert sorted(rows) == list(range(8))
    disagree = 0
    all_agree_questions = 0
    for line in lines:
        row = rows[line["doc_id"]]
        lm = line["exact_match_per_repeat"]  # lm-eval's own verdict of each repeat
        ours = row["correct"]
        # capcal's numeric grader, checked independently: these replies end in their answer
        assert ours == [_last_number_is_gold(t, line["target"]) for t in line["resps"][0]]
        disagree += sum(a != b for a, b in zip(lm, ours, strict=True))
        if lm == ours:  # the two graders agree on the question: the same correct count
            all_agree_questions += 1
            assert row["c"] == sum(lm)
        assert row["n"] == 4
    assert disagree > 0 and all_agree_questions > 0
    record = json.loads((rd.task_dir("gsm8k") / "imports" / "eval.json").read_text())
    assert record["format"] == "lm_eval" and record["model_id"] == "stub"
    assert record["matched_by"] == {"doc": 8}  # the logged document gives capcal's question id
    assert record["verdicts"] == 32 and record["disagreements"]["count"] == disagree
    assert f"disagree on {disagree} of 32 samples" in err
    config = rd.config
    assert config["tasks"]["gsm8k"]["sampling"]["temperature"] == 1.0
    assert config["tasks"]["gsm8k"]["sampling"]["repeats"] == 4
    assert json.loads(rd.results_path.read_text())["tasks"]["gsm8k"]["n_questions"] == 8

    # with the source's verdicts as labels, every question has lm-eval's own per-repeat count
    report = import_samples(FIXTURE, "gsm8k", tmp_path / "lm", data_dir=data_dir, labels="imported")
    assert report.disagreements["count"] == disagree
    lm_rows = {r["index"]: r for r in RunDir(tmp_path / "lm").target_rows("gsm8k")}
    for line in lines:
        assert lm_rows[line["doc_id"]]["c"] == sum(line["exact_match_per_repeat"])
        assert lm_rows[line["doc_id"]]["correct"] == line["exact_match_per_repeat"]


def test_lm_eval_output_folder_and_per_document_metrics(tmp_path, data_dir):
    # the output layout lm-eval writes: <output_path>/<model>/samples_<task>_<timestamp>.jsonl
    folder = tmp_path / "out" / "stub"
    folder.mkdir(parents=True)
    lines = _lm_eval_lines()
    for x in lines:  # a task scored per document only (as lm-eval's built-in metrics are)
        del x["exact_match_per_repeat"]
        x["metrics"] = ["exact_match"]
    (folder / "samples_gsm8k_2026-12-01T20-47-08.123456.jsonl").write_text(
        "".join(json.dumps(x) + "\n" for x in lines))
    report = import_samples(tmp_path / "out", "gsm8k", tmp_path / "run", data_dir=data_dir)
    assert report.n_matched == 8 and report.verdicts == 0
    assert any("not each repeat" in n for n in report.notes)
