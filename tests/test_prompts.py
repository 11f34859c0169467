"""Sandboxed Jinja rendering into chat messages (capcal.prompts)."""

from __future__ import annotations

import pytest
from capcal.prompts import (
    ExpressionError,
    PromptError,
    PromptRenderer,
    compile_field_expression,
    evaluate_field,
    expression_columns,
)
from capcal.resources import resource_path


@pytest.fixture()
def tdir(tmp_path):
    (tmp_path / "both.jinja").write_text(
        "{% block system %}You are {{ persona }}.{% endblock %}\n"
        "{% block user %}\n  Q: {{ question }}\n{% endblock %}\n")
    (tmp_path / "plain.jinja").write_text("Q: {{ question }}\n")
    (tmp_path / "empty_system.jinja").write_text(
        "{% block system %}{% if persona %}{{ persona }}{% endif %}{% endblock %}"
        "{% block user %}{{ question }}{% endblock %}")
    (tmp_path / "undefined.jinja").write_text("{% block user %}{{ question }} {{ hint }}{% endblock %}")
    (tmp_path / "evil.jinja").write_text("{{ question.__class__.__mro__[1].__subclasses__() }}")
    (tmp_path / "partial.jinja").write_text("Note: {{ note }}")
    (tmp_path / "includes.jinja").write_text(
        "{% block user %}{{ question }} {% include 'partial.jinja' %}{% endblock %}")
    (tmp_path / "loop.jinja").write_text(
        "{% block user %}{% for c in choices %}{{ letters[loop.index0] }}) {{ c }}\n{% endfor %}{% endblock %}")
    (tmp_path / "broken.jinja").write_text("{{ question ")
    (tmp_path / "blank.jinja").write_text("{% block user %}  {% endblock %}")
    return tmp_path


def test_blocks_become_system_and_user_messages(tdir):
    msgs = PromptRenderer([tdir]).render("both.jinja", {"persona": "terse", "question": "2+2?"})
    assert msgs == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Q: 2+2?"}]


def test_template_without_blocks_is_one_user_message(tdir):
    assert PromptRenderer([tdir]).render("plain.jinja", {"question": "x"}) == [{"role": "user", "content": "Q: x"}]


def test_empty_system_block_is_left_out_and_spec_system_replaces_it(tdir):
    r = PromptRenderer([tdir])
    assert r.render("empty_system.jinja", {"persona": "", "question": "q"}) == [{"role": "user", "content": "q"}]
    msgs = r.render("both.jinja", {"persona": "p", "question": "q"}, system="Answer about {{ question }}")
    assert msgs[0] == {"role": "system", "content": "Answer about q"}


def test_undefined_variable_names_template_and_variable(tdir):
    with pytest.raises(PromptError, match=r"template 'undefined.jinja': undefined variable 'hint'"):
        PromptRenderer([tdir]).render("undefined.jinja", {"question": "q"})


def test_sandbox_blocks_python_internals(tdir):
    with pytest.raises(PromptError, match="not allowed in the sandbox|undefined variable"):
        PromptRenderer([tdir]).render("evil.jinja", {"question": "q"})


def test_missing_template_and_syntax_errors_are_prompt_errors(tdir):
    r = PromptRenderer([tdir])
    with pytest.raises(PromptError, match=r"template 'nope.jinja' not found in: "):
        r.render("nope.jinja", {})
    with pytest.raises(PromptError, match=r"template 'broken.jinja' line 1: syntax error"):
        r.render("broken.jinja", {"question": "q"})
    with pytest.raises(PromptError, match="empty user message"):
        r.render("blank.jinja", {})


def test_undeclared_variables_follow_includes(tdir):
    r = PromptRenderer([tdir])
    assert r.undeclared_variables("includes.jinja") == {"question", "note"}
    assert r.undeclared_variables("loop.jinja") == {"choices", "letters"}
    assert r.render("includes.jinja", {"question": "q", "note": "n"})[0]["content"] == "q Note: n"
    assert r.render("loop.jinja", {"choices": ["x", "y"], "letters": ["A", "B"]})[0]["content"] == "A) x\nB) y"


def test_earlier_directory_wins(tmp_path, tdir):
    first = tmp_path / "first"
    first.mkdir()
    (first / "plain.jinja").write_text("override {{ question }}")
    assert PromptRenderer([first, tdir]).render("plain.jinja", {"question": "q"})[0]["content"] == "override q"
    assert PromptRenderer([tdir, first]).render("plain.jinja", {"question": "q"})[0]["content"] == "Q: q"


def test_builtin_templates_render_with_the_documented_format():
    r = PromptRenderer([resource_path("templates")])
    mc = r.render("mmlu.jinja", {"question": "Pick", "choices": ["a", "b", "c", "d"],
                                 "letters": list("ABCD"), "subject": "high_school_physics"})[0]["content"]
    assert "about high school physics" in mc and "A) a\nB) b\nC) c\nD) d" in mc and '"Answer: X"' in mc
    gsm = r.render("gsm8k.jinja", {"question": "Q?", "fewshot": []})[0]["content"]
    assert gsm.endswith("Question: Q?") and '"The answer is N"' in gsm
    shots = [{"question": "1+1?", "solution": "1+1=2\n#### 2", "answer": "2"}]
    gsm = r.render("gsm8k.jinja", {"question": "Q?", "fewshot": shots})[0]["content"]
    assert gsm.startswith("Question: 1+1?\n1+1=2\nThe answer is 2.")
    assert "\\boxed{}" in r.render("math_boxed.jinja", {"question": "x"})[0]["content"]


def test_field_expressions_return_native_values():
    doc = {"answer": "step\n#### 1,234", "choices": ["x", "y"], "idx": 1, "Correct Answer": "c",
           "nested": {"aliases": ["a", "b"]}}
    assert evaluate_field("answer.split('####')[-1] | trim | replace(',', '')", doc) == "1234"
    assert evaluate_field('"ABCD"[idx]', doc) == "B"
    assert evaluate_field("nested.aliases", doc) == ["a", "b"]
    assert evaluate_field("[doc['Correct Answer'], choices[0]]", doc) == ["c", "x"]
    assert evaluate_field("missing_ok | default(none)", doc) is None
    assert expression_columns("answer.split('#')[0] ~ range(2) | string") == {"answer"}
    assert expression_columns("doc['Correct Answer']") == {"doc"}


def test_field_expression_errors():
    with pytest.raises(ExpressionError, match="syntax error"):
        compile_field_expression("answer |")
    with pytest.raises(ExpressionError, match="is undefined"):
        evaluate_field("question", {"problem": "p"})
    with pytest.raises(ExpressionError, match="has no element 7"):
        evaluate_field("choices[7]", {"choices": []})
    with pytest.raises(ExpressionError):
        evaluate_field("doc.__class__.__mro__", {"x": 1})
