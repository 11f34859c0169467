"""The corpus of broken task specs: each gives ONE clear error naming the file and the key, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from capcal.errors import SpecError
from capcal.hookspecs import hookimpl
from capcal.registry import Registry
from capcal.taskspec import check_spec, load_spec

CORPUS = Path(__file__).parent / "broken_specs"

# file -> (key named in the error (None: file-level), words the message must contain)
EXPECTED = {
    "missing_key.yaml": ("grader", ["missing", "expected a mapping"]),
    "missing_nested_key.yaml": ("dataset.split", ["missing", "expected a string"]),
    "wrong_type.yaml": ("generation.max_tokens", ["expected an integer", "'lots'"]),
    "wrong_type_fields.yaml": ("fields", ["expected a mapping", "got a list"]),
    "unknown_grader.yaml": ("grader.name", ["unknown grader 'numerik'", "did you mean 'numeric'"]),
    "unknown_template.yaml": ("template", ["'no_such_template.jinja' not found"]),
    "undefined_variable.yaml": ("template", ["undefined variable(s) hint", "undefined_variable.jinja"]),
    "template_syntax.yaml": ("template", ["line 2", "syntax error"]),
    "yaml_syntax.yaml": (None, ["YAML syntax error at line 4"]),
    "unknown_key.yaml": ("generation.temprature", ["unknown key", "temperature"]),
    "not_a_mapping.yaml": (None, ["expected a YAML mapping", "got a list"]),
    "bad_expression.yaml": ("fields.answer", ["Jinja expression", "syntax error"]),
    "bad_range.yaml": ("generation.k", ["expected a value >= 1", "got 0"]),
    "shuffle_without_choices.yaml": ("choices_shuffle", ["fields.choices"]),
    "train_split_is_split.yaml": ("dataset.train_split", ["'test' is the evaluation split", "fit on the questions"]),
    "validation_split_is_split.yaml": ("dataset.validation_split",
                                       ["'validation' is the evaluation split", "scored on"]),
}


def test_corpus_is_complete():
    assert sorted(p.name for p in CORPUS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.fixture(scope="module")
def registry():
    return Registry()


def _error_of(path: Path, registry: Registry) -> SpecError:
    with pytest.raises(SpecError) as info:
        check_spec(load_spec(path), registry)
    return info.value


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_spec_in_process(name, registry):
    key, words = EXPECTED[name]
    err = _error_of(CORPUS / name, registry)
    assert err.key == key
    assert Path(err.path).name == name
    text = str(err)
    assert "\n" not in text
    assert text.startswith(str(CORPUS / name))
    if key:
        assert f"key '{key}'" in text
    for word in words:
        assert word in text, text


def test_registry_reports_each_broken_spec_without_losing_the_good_ones():
    class Broken:
        @hookimpl
        def capcal_register_tasks(self):
            return [CORPUS]

    reg = Registry(plugins=[Broken()])
    assert sorted(Path(e.path).name for e in reg.task_errors) == sorted(EXPECTED)
    assert {"gsm8k", "mmlu", "gpqa"} <= set(reg.task_specs)
    assert not any(n.startswith("broken_") for n in reg.task_specs)
    # asking for a broken task by its file stem raises that file's own error
    with pytest.raises(SpecError, match="unknown grader 'numerik'"):
        reg.task_spec("unknown_grader")


def test_broken_specs_through_the_cli(tmp_path):
    """``capcal show FILE.yaml`` on every broken spec: exit code 2, one line on stderr, no traceback."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for name, (key, words) in sorted(EXPECTED.items()):
        proc = subprocess.run([sys.executable, "-m", "capcal", "show", str(CORPUS / name)],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == 2, (name, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("capcal: error:")]
        assert len(lines) == 1, proc.stderr
        assert name in lines[0] and (key is None or f"key '{key}'" in lines[0])
        assert all(w in lines[0] for w in words)
        assert proc.stdout == ""
