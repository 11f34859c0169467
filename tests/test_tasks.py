"""The seven built-in tasks on the real data in ../shared/data, and the Task mechanics (capcal.tasks)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import Counter

import pytest
import yaml
from capcal.errors import DataError, SpecError
from capcal.registry import Registry
from capcal.resources import resource_path
from capcal.tasks import Example, Task
from capcal.taskspec import TaskSpec, load_spec

FILES = {
    "triviaqa": "mandarjoshi__trivia_qa/rc.nocontext/validation.jsonl",
    "simpleqa": "basicv8vc__SimpleQA/default/test.jsonl",
    "gsm8k": "openai__gsm8k/main/test.jsonl",
    "math500": "HuggingFaceH4__MATH-500/default/test.jsonl",
    "aime25": "math-ai__aime25/default/test.jsonl",
    "mmlu": "cais__mmlu/all/test.jsonl",
    "gpqa": "Idavidrein__gpqa/gpqa_diamond/train.jsonl",
}
# the final-answer line each prompt asks for, applied to the gold answer
FORMAT = {
    "triviaqa": "Answer: {}", "simpleqa": "Answer: {}", "gsm8k": "Step one.\nThe answer is {}",
    "math500": "So the result is \\boxed{{{}}}.", "aime25": "Hence \\boxed{{{}}}", "mmlu": "Answer: {}",
    "gpqa": "Reasoning.\nAnswer: {}",
}


@pytest.fixture(scope="module")
def registry():
    return Registry()


@pytest.fixture(scope="module")
def tasks(registry, data_dir):
    return {name: registry.task(name, data_dir=data_dir) for name in FILES}


def _rows(data_dir, name):
    with open(data_dir / FILES[name], encoding="utf-8") as fh:  # not str.splitlines: rows hold U+2028
        return [json.loads(line) for line in fh if line.strip()]


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_row_loads_with_unique_ids(tasks, data_dir, name):
    task = tasks[name]
    examples = task.examples()
    rows = _rows(data_dir, name)
    assert len(examples) == len(rows)
    assert [e.index for e in examples] == list(range(len(rows)))
    assert len({e.id for e in examples}) == len(examples)
    assert all(isinstance(e.fields["question"], str) and e.fields["question"] for e in examples)
    assert all(isinstance(e.fields["answer"], str) and e.fields["answer"] for e in examples)
    assert examples[5].doc == rows[5]
    assert task.examples(limit=3) == examples[:3]


@pytest.mark.parametrize("name", sorted(FILES))
def test_render_and_grade_the_gold_answer(tasks, name):
    task = tasks[name]
    for ex in task.examples(limit=25):
        messages = task.render(ex)
        assert messages[-1]["role"] == "user"
        assert ex.fields["question"].split("\n")[0].strip() in messages[-1]["content"]
        gold = task.grade(FORMAT[name].format(ex.fields["answer"]), ex)
        assert gold.correct, (name, ex.index, ex.fields["answer"], gold)
        assert not task.grade("", ex).correct


def test_triviaqa_ids_and_aliases(tasks, data_dir):
    rows = _rows(data_dir, "triviaqa")
    examples = tasks["triviaqa"].examples()
    assert all(r["question_id"] is None for r in rows)  # the offline copy has no ids
    for ex, row in zip(examples[:200], rows[:200], strict=True):
        assert ex.id == hashlib.sha1(row["question"].encode()).hexdigest()
        assert ex.fields["aliases"] == row["answer"]["aliases"]
        assert ex.fields["answer"] == row["answer"]["aliases"][0]
    ex = examples[0]
    assert tasks["triviaqa"].grade("Answer: West Sunset Boulevard", ex).correct
    assert not tasks["triviaqa"].grade("Answer: Cats", ex).correct


def test_gsm8k_gold_is_the_number_after_hashes(tasks, data_dir):
    rows = _rows(data_dir, "gsm8k")
    golds = [re.search(r"####\s*(.+)$", r["answer"]).group(1).replace(",", "").strip() for r in rows]
    assert [e.fields["answer"] for e in tasks["gsm8k"].examples()] == golds
    assert any("," in re.search(r"####\s*(.+)$", r["answer"]).group(1) for r in rows)  # commas were removed
    assert len(tasks["gsm8k"].examples("train")) == 7473
    with pytest.raises(DataError, match="task 'gsm8k' has no validation split"):
        tasks["gsm8k"].examples("validation")
    with pytest.raises(DataError, match="unknown split role 'dev'"):
        tasks["gsm8k"].examples("dev")


def test_mmlu_letters_and_splits(tasks, data_dir):
    rows = _rows(data_dir, "mmlu")
    examples = tasks["mmlu"].examples()
    assert [e.fields["answer"] for e in examples] == ["ABCD"[r["answer"]] for r in rows]
    assert [e.fields["choices"] for e in examples[:100]] == [r["choices"] for r in rows[:100]]
    assert len(tasks["mmlu"].examples("train")) == 1531 and len(tasks["mmlu"].examples("validation")) == 285
    # repeated question texts get distinct, stable ids
    base = Counter(hashlib.sha1(r["question"].strip().encode()).hexdigest() for r in rows)
    assert sum(c - 1 for c in base.values()) == sum("-" in e.id for e in examples) > 0
    assert "D) " in tasks["mmlu"].render(examples[0])[0]["content"]


def test_math500_and_aime25_ids_from_the_data(tasks, data_dir):
    assert [e.id for e in tasks["math500"].examples()] == [r["unique_id"] for r in _rows(data_dir, "math500")]
    aime = tasks["aime25"].examples()
    assert [e.id for e in aime] == [str(i) for i in range(30)]
    assert aime[0].fields["answer"] == "70" and isinstance(aime[0].doc["answer"], int)


def test_gpqa_shuffle_keeps_the_gold_with_its_option(tasks, data_dir):
    rows = _rows(data_dir, "gpqa")
    examples = tasks["gpqa"].examples()
    letters = Counter()
    for ex, row in zip(examples, rows, strict=True):
        f = ex.fields
        originals = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"],
                     row["Incorrect Answer 3"]]
        assert f["choices"][ord(f["answer"]) - 65] == row["Correct Answer"].strip()
        assert f["choices"] == [originals[i].strip() for i in f["permutation"]]
        assert f["permutation"].index(0) == ord(f["answer"]) - 65
        assert f["shuffle_seed"] == 0 and ex.id == row["Record ID"]
        letters[f["answer"]] += 1
    assert set(letters) == set("ABCD") and min(letters.values()) >= 30  # 198 / 4 = 49.5 expected each
    # the order depends on seed and question only: a lone document gives the same order
    lone = tasks["gpqa"].example_from_doc(rows[100], 100)
    assert lone.fields["choices"] == examples[100].fields["choices"] and lone.id == examples[100].id


def test_gpqa_seed_changes_the_order(registry, data_dir, tasks):
    spec = copy.deepcopy(load_spec(resource_path("tasks") / "gpqa" / "gpqa.yaml"))
    spec.choices_shuffle = {"seed": 1}
    other = Task(spec, registry=registry, data_dir=data_dir).examples()
    same = sum(a.fields["permutation"] == b.fields["permutation"]
               for a, b in zip(other, tasks["gpqa"].examples(), strict=True))
    assert same < 40  # 1/24 of 198 expected by chance
    again = Task(load_spec(resource_path("tasks") / "gpqa" / "gpqa.yaml"), registry=registry, data_dir=data_dir)
    assert [e.fields["answer"] for e in again.examples()] == [e.fields["answer"] for e in tasks["gpqa"].examples()]


def test_example_from_doc(tasks):
    ex = tasks["gsm8k"].example_from_doc({"question": "2+2?", "answer": "2+2=4\n#### 4"}, index=7)
    assert isinstance(ex, Example) and ex.index == 7 and ex.fields["answer"] == "4"
    assert ex.id == hashlib.sha1(b"2+2?").hexdigest()
    assert tasks["gsm8k"].grade("The answer is 4", ex).correct
    with pytest.raises(DataError, match=r"fields.answer.*undefined"):
        tasks["gsm8k"].example_from_doc({"question": "2+2?"})
    with pytest.raises(DataError, match="JSON object"):
        tasks["gsm8k"].example_from_doc(["not", "a", "dict"])


def test_generation_and_fingerprint(tasks, data_dir):
    gen = tasks["mmlu"].generation
    assert gen["max_tokens"] == 32 and gen["temperature"] == 1.0 and gen["top_p"] == 1.0
    gen["max_tokens"] = 1
    assert tasks["mmlu"].generation["max_tokens"] == 32
    digest = hashlib.sha256((data_dir / FILES["aime25"]).read_bytes()).hexdigest()
    assert tasks["aime25"].fingerprint() == digest
    assert tasks["gsm8k"].fingerprint("train") != tasks["gsm8k"].fingerprint()


def _write_spec(tmp_path, **over):
    data = yaml.safe_load((resource_path("tasks") / "gsm8k" / "gsm8k.yaml").read_text())
    data.update(over)
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_missing_column_names_column_and_file(registry, data_dir, tmp_path):
    path = _write_spec(tmp_path, fields={"question": "problem", "answer": "answer"})
    task = Task(load_spec(path), registry=registry, data_dir=data_dir)
    with pytest.raises(DataError, match=r"column 'problem' \(needed by fields.question\) not found in "
                                        r".*openai__gsm8k/main/test\.jsonl"):
        task.examples()


def test_spec_folder_template_system_prompt_and_fewshot(registry, data_dir, tmp_path):
    (tmp_path / "mine.jinja").write_text(
        "{% block user %}{% for s in fewshot %}Q: {{ s.question }} A: {{ s.answer }}\n{% endfor %}"
        "Q: {{ question }} A:{% endblock %}")
    path = _write_spec(tmp_path, template="mine.jinja", system="Solve carefully.",
                       fewshot={"n": 2, "split": "train", "seed": 3})
    task = Task(load_spec(path), registry=registry, data_dir=data_dir)
    ex = task.examples(limit=1)[0]
    messages = task.render(ex)
    assert messages[0] == {"role": "system", "content": "Solve carefully."}
    lines = messages[1]["content"].splitlines()
    assert len(lines) == 3 and lines[-1] == f"Q: {ex.fields['question']} A:"
    train = {e.fields["question"]: e.fields["answer"] for e in task.examples("train")}
    for line in lines[:2]:
        q, a = line[3:].rsplit(" A: ", 1)
        assert train[q] == a
    assert task.render(task.examples(limit=2)[1])[1]["content"].splitlines()[:2] == lines[:2]  # same shots


def test_grader_options_are_checked(registry, tmp_path):
    path = _write_spec(tmp_path, grader={"name": "numeric", "options": {"no_such_option": 1}})
    with pytest.raises(SpecError, match=r"custom\.yaml: key 'grader.options': rejected by grader 'numeric'"):
        Task(load_spec(path), registry=registry)


def test_spec_objects_are_checked_like_files(registry):
    spec = TaskSpec.from_dict({"task": "t", "dataset": {"path": "a/b", "split": "test"},
                               "fields": {"question": "q", "answer": "a"}, "template": "mmlu.jinja",
                               "grader": {"name": "multiple_choice"}})
    with pytest.raises(SpecError, match=r"<object>: key 'template'.*undefined variable\(s\) choices, subject"):
        Task(spec, registry=registry)
