"""Task spec loading and schema validation (capcal.taskspec)."""

from __future__ import annotations

import copy

import pytest
import yaml
from capcal.errors import SpecError
from capcal.resources import resource_path
from capcal.taskspec import DEFAULT_GENERATION, SPEC_SCHEMA, TaskSpec, find_spec_files, load_spec

BUILTIN = ["aime25", "gpqa", "gsm8k", "math500", "mmlu", "simpleqa", "triviaqa"]

MINIMAL = {
    "task": "mini",
    "dataset": {"path": "openai/gsm8k", "name": "main", "split": "test"},
    "fields": {"question": "question", "answer": "answer"},
    "template": "gsm8k.jinja",
    "grader": {"name": "numeric"},
}


def _spec(**changes):
    data = copy.deepcopy(MINIMAL)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        if value is KeyError:
            node.pop(last)
        else:
            node[last] = value
    return data


def test_builtin_specs_load_and_name_their_folder():
    files = find_spec_files(resource_path("tasks"))
    assert [f.parent.name for f in files] == BUILTIN
    for f in files:
        spec = load_spec(f)
        assert spec.name == f.stem == f.parent.name
        assert spec.source == str(f)
        assert {"question", "answer"} <= set(spec.fields)
        assert spec.metadata["version"] == 1 and spec.metadata["citation"]
        assert (f.parent / "README.md").is_file()


def test_builtin_generation_defaults_fit_the_embedded_model():
    specs = {f.stem: load_spec(f) for f in find_spec_files(resource_path("tasks"))}
    assert specs["triviaqa"].generation["max_tokens"] <= 64
    assert specs["mmlu"].generation["max_tokens"] <= 64
    assert specs["gsm8k"].generation["max_tokens"] == 256
    for spec in specs.values():
        assert spec.generation["temperature"] > 0 and spec.generation["top_p"] == 1.0
        assert spec.generation["k"] >= 1
    assert specs["gpqa"].choices_shuffle == {"seed": 0}
    assert specs["mmlu"].dataset.validation_split and specs["mmlu"].dataset.train_split
    assert specs["gsm8k"].dataset.train_split == "train"


def test_minimal_spec_gets_defaults():
    spec = TaskSpec.from_dict(_spec(), source="mini.yaml")
    assert spec.generation == DEFAULT_GENERATION
    assert spec.fewshot == {"n": 0, "split": "train", "seed": 0}
    assert spec.dataset.train_split is None and spec.choices_shuffle is None and spec.system is None
    assert spec.split_name("eval") == "test" and spec.split_name("train") is None
    with pytest.raises(ValueError, match="unknown split role"):
        spec.split_name("dev")


def test_generation_overrides_merge_with_defaults():
    spec = TaskSpec.from_dict(_spec(generation={"max_tokens": 7, "stop": ["\n\n"]}))
    assert spec.generation == {**DEFAULT_GENERATION, "max_tokens": 7, "stop": ["\n\n"]}


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"task": KeyError}, "task", "missing"),
        ({"dataset__path": KeyError}, "dataset.path", "missing; expected a string"),
        ({"fields__answer": KeyError}, "fields.answer", "missing"),
        ({"task": 3}, "task", "expected a string, got int 3"),
        ({"task": "has space"}, "task", "expected a name"),
        ({"template": "gsm8k.txt"}, "template", "ending in .jinja"),
        ({"template": "/abs/gsm8k.jinja"}, "template", "ending in .jinja"),
        ({"grader": "numeric"}, "grader", "expected a mapping, got str"),
        ({"grader__options": [1]}, "grader.options", "expected a mapping or null"),
        ({"generation": {"temperature": -1}}, "generation.temperature", ">= 0"),
        ({"generation": {"top_p": 0}}, "generation.top_p", "> 0"),
        ({"generation": {"k": 2.5}}, "generation.k", "expected an integer"),
        ({"generation": {"stop": "\n"}}, "generation.stop", "expected a list"),
        ({"fewshot": {"n": 2, "split": "train"}}, "fewshot.split", "dataset.train_split is not set"),
        ({"fields__question": 5}, "fields.question", "expected a string"),
        ({"fields__2bad": "x"}, "fields.2bad", "identifier"),
        ({"fields__answer": "answer |"}, "fields.answer", "syntax error"),
        ({"id_field": "doc[", }, "id_field", "syntax error"),
        ({"colour": "red"}, "colour", "unknown key"),
        ({"choices_shuffle": {"seed": "x"}}, "choices_shuffle.seed", "expected an integer"),
        ({"metadata": {"citation": 3}}, "metadata.citation", "expected a string"),
    ],
)
def test_schema_errors_name_key_and_expectation(changes, key, words):
    with pytest.raises(SpecError) as info:
        TaskSpec.from_dict(_spec(**changes), source="x/spec.yaml")
    assert info.value.key == key
    assert info.value.path == "x/spec.yaml"
    assert words in info.value.message
    assert str(info.value).startswith(f"x/spec.yaml: key '{key}': ")


def test_schema_is_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(SPEC_SCHEMA)


def test_load_spec_reads_yaml_and_reports_unreadable_files(tmp_path):
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(_spec(system="Be brief about {{ question }}.")))
    spec = load_spec(path)
    assert spec.name == "mini" and spec.system.startswith("Be brief") and spec.source_dir == tmp_path
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_spec(tmp_path / "absent.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(SpecError, match="expected a YAML mapping at the top level, got null"):
        load_spec(tmp_path / "empty.yaml")


def test_safe_load_refuses_python_tags(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("task: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(SpecError, match="YAML syntax error"):
        load_spec(path)


def test_find_spec_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.yaml").write_text("x: 1")
    (tmp_path / "b.yml").write_text("x: 1")
    (tmp_path / "notes.md").write_text("no")
    assert [p.name for p in find_spec_files(tmp_path)] == ["one.yaml", "b.yml"]
    assert find_spec_files(tmp_path / "b.yml") == [tmp_path / "b.yml"]
    assert find_spec_files(tmp_path / "missing") == []
