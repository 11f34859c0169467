"""Dataset loading through ``datasets`` and the local mirror (capcal.data)."""

from __future__ import annotations

import hashlib
import json
import shutil

import datasets
import pytest
from capcal import data
from capcal.errors import DataError


def test_mirror_layout(tmp_path):
    assert data.mirror_file(tmp_path, "openai/gsm8k", "main", "test") == tmp_path / "openai__gsm8k/main/test.jsonl"
    assert data.mirror_file(tmp_path, "math-ai/aime25", None, "test") == tmp_path / "math-ai__aime25/default/test.jsonl"


def test_load_split_from_the_mirror_matches_the_file(data_dir):
    ds = data.load_split("openai/gsm8k", "main", "test", data_dir=data_dir)
    lines = (data_dir / "openai__gsm8k/main/test.jsonl").read_text().splitlines()
    assert len(ds) == len(lines) == 1319
    assert ds[0] == json.loads(lines[0])
    assert ds[-1] == json.loads(lines[-1])
    assert ds.column_names == ["question", "answer"]
    # cached in-process: the same object comes back
    assert data.load_split("openai/gsm8k", "main", "test", data_dir=data_dir) is ds


def test_int_columns_keep_their_type(data_dir):
    ds = data.load_split("math-ai/aime25", None, "test", data_dir=data_dir)
    assert len(ds) == 30 and ds[0]["answer"] == 70 and ds[0]["id"] == "0"


def test_mirror_never_touches_the_hub(data_dir, monkeypatch):
    calls = []
    real = datasets.load_dataset

    def spy(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    data.clear_cache()
    data.load_split("cais/mmlu", "all", "dev", data_dir=data_dir)
    assert calls == ["json"]


def test_missing_file_names_the_path(data_dir):
    with pytest.raises(DataError, match=r"data file not found: .*openai__gsm8k/main/validation\.jsonl"):
        data.load_split("openai/gsm8k", "main", "validation", data_dir=data_dir)


def test_environment_variable_and_argument(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(data_dir))
    assert data.resolve_data_dir() == data_dir
    assert data.resolve_data_dir(tmp_path) == tmp_path  # the argument wins
    assert len(data.load_split("math-ai/aime25", None, "test")) == 30
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"nowhere.*CAPCAL_DATA_DIR.*does not exist"):
        data.resolve_data_dir()
    with pytest.raises(DataError, match=r"--data-dir"):
        data.resolve_data_dir(tmp_path / "absent")
    monkeypatch.delenv(data.ENV_VAR)
    assert data.resolve_data_dir() is None
    assert data.source_of("openai/gsm8k", "main", "test") == "hf:openai/gsm8k/main/test"


def test_hub_failure_is_a_data_error(monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'no/such' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"cannot load no/such \(config default, split test\).*--data-dir"):
        data.load_split("no/such", None, "test")


def test_malformed_file_is_a_data_error(tmp_path):
    target = data.mirror_file(tmp_path, "me/bad", None, "test")
    target.parent.mkdir(parents=True)
    target.write_text('{"question": "ok"}\n{"question": \n')
    with pytest.raises(DataError, match=r"cannot read .*me__bad/default/test\.jsonl"):
        data.load_split("me/bad", None, "test", data_dir=tmp_path)


def test_require_columns_names_column_and_file(data_dir):
    ds = data.load_split("openai/gsm8k", "main", "test", data_dir=data_dir)
    data.require_columns(ds, ["question", "answer"], "f.jsonl")
    with pytest.raises(DataError, match=r"column 'problem' \(needed by fields.question\) not found in f\.jsonl"):
        data.require_columns(ds, ["question", "problem"], "f.jsonl", why="fields.question")


def test_fingerprint_is_the_file_sha256(data_dir, tmp_path):
    src = data_dir / "math-ai__aime25/default/test.jsonl"
    expected = hashlib.sha256(src.read_bytes()).hexdigest()
    assert data.fingerprint("math-ai/aime25", None, "test", data_dir=data_dir) == expected
    copy = data.mirror_file(tmp_path, "math-ai/aime25", None, "test")
    copy.parent.mkdir(parents=True)
    shutil.copy(src, copy)
    assert data.fingerprint("math-ai/aime25", None, "test", data_dir=tmp_path) == expected
    copy.write_text(src.read_text().replace('"answer": 70', '"answer": 71'))
    assert data.fingerprint("math-ai/aime25", None, "test", data_dir=tmp_path) != expected


@pytest.mark.parametrize(("path", "name", "split"), [
    ("openai/gsm8k", "main", "test"), ("math-ai/aime25", None, "test"), ("cais/mmlu", "all", "dev"),
    ("Idavidrein/gpqa", "gpqa_diamond", "train"), ("HuggingFaceH4/MATH-500", None, "test"),
])
def test_rows_read_directly_from_the_mirror_equal_those_of_datasets(data_dir, path, name, split):
    rows = data.load_rows(path, name, split, data_dir=data_dir)
    ds = data.load_split(path, name, split, data_dir=data_dir)
    assert isinstance(rows, data.Rows) and len(rows) == len(ds)
    assert rows.column_names == ds.column_names
    assert rows.to_list() == ds.to_list()
    assert data.load_rows(path, name, split, data_dir=data_dir) is rows  # cached


def test_direct_rows_fill_missing_columns_and_name_bad_lines(tmp_path):
    target = data.mirror_file(tmp_path, "me/rows", None, "test")
    target.parent.mkdir(parents=True)
    target.write_text('{"question": "q1", "answer": 1}\n\n{"answer": 2, "extra": [1, 2]}\n')
    rows = data.load_rows("me/rows", None, "test", data_dir=tmp_path)
    assert rows.column_names == ["question", "answer", "extra"]
    assert rows.to_list() == [{"question": "q1", "answer": 1, "extra": None},
                              {"answer": 2, "extra": [1, 2], "question": None}]
    assert rows.to_list() == datasets.load_dataset("json", data_files=str(target), split="train").to_list()
    bad = data.mirror_file(tmp_path, "me/bad2", None, "test")
    bad.parent.mkdir(parents=True)
    bad.write_text('{"question": "ok"}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"cannot read .*me__bad2/default/test\.jsonl: line 2 is not a JSON object"):
        data.load_rows("me/bad2", None, "test", data_dir=tmp_path)
    with pytest.raises(DataError, match=r"data file not found: .*me__none/default/test\.jsonl"):
        data.load_rows("me/none", None, "test", data_dir=tmp_path)


def test_a_task_from_the_mirror_does_not_import_datasets(data_dir):
    import subprocess
    import sys

    code = ("import sys; from capcal import get_registry; "
            f"t = get_registry().task('gsm8k', data_dir={str(data_dir)!r}); ex = t.examples(limit=3); "
            "print(len(t.examples()), 'datasets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1319", "False"]
