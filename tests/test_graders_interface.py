"""The grader contract shared by every format: registration, options, GradeResult rules, Task wiring."""

from __future__ import annotations

import pytest
from capcal.errors import CapcalError
from capcal.graders import BUILTIN_GRADERS, Grader, GradeResult, GraderOptionError
from capcal.registry import get_registry

NAMES = {"short_answer", "numeric", "math", "integer", "multiple_choice", "llm_judge"}


def test_builtin_names_are_registered_through_the_plugin():
    assert set(BUILTIN_GRADERS) == NAMES
    registry = get_registry()
    assert NAMES <= set(registry.graders)
    assert registry.grader("multiple_choice", letters="ABCDE").letters == "ABCDE"


@pytest.mark.parametrize("name", sorted(NAMES - {"llm_judge"}))
def test_unknown_option_is_a_one_line_error(name):
    with pytest.raises(GraderOptionError) as info:
        BUILTIN_GRADERS[name](no_such_option=1)
    message = str(info.value)
    assert isinstance(info.value, CapcalError) and name in message and "no_such_option" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", sorted(NAMES - {"llm_judge"}))
def test_never_correct_without_an_extracted_answer(name):
    grader = BUILTIN_GRADERS[name]()
    fields = {"answer": "", "aliases": [""], "choices": ["", "", "", ""]}
    for response in ("", "   ", None, "\n\n"):
        result = grader.grade(response, fields)
        assert isinstance(result, GradeResult)
        assert result.correct is False and (result.extracted is None or not result.extracted.strip())
        assert not grader.equivalent("", "")


def test_base_class_guards_blank_extractions():
    class Loose(Grader):
        name = "loose"

        def extract(self, response):
            return "  "

        def check(self, extracted, fields):
            return True

        def normalize(self, extracted):
            return extracted

    assert Loose().grade("anything", {}).correct is False
    assert GradeResult("5", True).to_dict() == {"extracted": "5", "correct": True}


@pytest.mark.parametrize("task_name, response, correct", [
    ("gsm8k", "9 * 2 = 18 dollars.\nThe answer is 18.", True),
    ("math500", "so the polar form is $\\boxed{(3, \\frac{\\pi}{2})}$", True),
    ("aime25", "\\boxed{70}", True),
    ("mmlu", "Answer: B", True),
    ("triviaqa", "Answer: Sunset Boulevard", True),
    ("simpleqa", "Answer: Michio Sugeno", True),
    ("gsm8k", "The answer is 17.", False),
])
def test_tasks_grade_through_their_grader(task_name, response, correct, data_dir):
    task = get_registry().task(task_name, data_dir=data_dir)
    example = task.examples("eval", limit=1)[0]
    assert task.grade(response, example).correct is correct
