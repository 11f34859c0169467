"""Import of a real inspect_ai eval log with ``--epochs 4`` (issue 14).

The fixture ``tests/fixtures/inspect/capcal_gsm8k_epochs.json`` was made by inspect_ai 0.3.285 (a fixture
maker only, in its own virtual environment) with ``tests/fixtures/inspect/make_fixture.py``: the first 6
GSM8K test questions served by tests/stub_server.py on 127.0.0.1, ``inspect eval
tests/fixtures/inspect/capcal_gsm8k_epochs.py --model openai/stub -M responses_api=false --epochs 4
--temperature 1.0 --log-format json``, each epoch scored by inspect's ``match(numeric=True)``; the
transcript (``events``) is dropped from the committed log.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from capcal.errors import DataError
from capcal.formats import detect_format, read_source
from capcal.importing import import_samples
from capcal.rundir import RunDir

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "inspect" / "capcal_gsm8k_epochs.json"


def test_real_inspect_log_with_epochs(tmp_path, data_dir):
    assert detect_format(FIXTURE) == "inspect"
    log = json.loads(FIXTURE.read_text())
    assert log["eval"]["config"]["epochs"] == 4 and len(log["samples"]) == 24
    report = import_samples(FIXTURE, "gsm8k", tmp_path / "run", data_dir=data_dir)
    assert report.n_matched == 6 and report.matched_by == {"index": 6}  # sample ids are rows, the text agrees
    assert (report.n_min, report.n_max) == (4, 4) and report.model_id == "openai/stub"
    rows = {r["index"]: r for r in RunDir(tmp_path / "run").target_rows("gsm8k")}
    disagree = 0
    for s in log["samples"]:
        row = rows[int(s["id"])]
        text = s["output"]["choices"][0]["message"]["content"]
        gold = s["target"]
        numbers = re.findall(r"-?\d+", text)
        ours = int(bool(numbers) and numbers[-1] == gold)  # capcal's numeric grader, checked independently
        assert row["correct"][s["epoch"] - 1] == ours
        disagree += ours != (s["scores"]["match"]["value"] == "C")
    assert report.verdicts == 24 and report.disagreements["count"] == disagree
    config = RunDir(tmp_path / "run").config
    assert config["tasks"]["gsm8k"]["sampling"]["epochs"] == 4


def test_a_binary_eval_archive_is_refused_with_the_conversion_command(tmp_path):
    archive = tmp_path / "log.eval"
    archive.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="inspect log convert --to json"):
        read_source(archive)
