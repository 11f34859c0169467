"""``capcal list`` and ``capcal show`` as a user runs them (subprocesses), and their library functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from capcal.cli.list_cmd import render_listing
from capcal.cli.show_cmd import render_show
from capcal.hookspecs import hookimpl
from capcal.registry import Registry

SEVEN = ["aime25", "gpqa", "gsm8k", "math500", "mmlu", "simpleqa", "triviaqa"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def capcal(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "capcal", *args], capture_output=True, text=True,
                          env=env or ENV, timeout=300)


def test_list_tasks_shows_the_seven():
    proc = capcal("list", "tasks")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("tasks (")
    names = [ln.split()[0] for ln in lines[1:] if ln.startswith("  ") and ln.strip()]
    assert set(SEVEN) <= set(names)
    gsm = next(ln for ln in lines if ln.split() and ln.split()[0] == "gsm8k")
    assert "openai/gsm8k/main:test" in gsm and "grader=numeric" in gsm and "template=gsm8k.jinja" in gsm
    assert "graders (" not in proc.stdout


def test_list_everything():
    proc = capcal("list")
    assert proc.returncode == 0, proc.stderr
    for section in ("tasks (", "graders (", "estimators (", "models ("):
        assert section in proc.stdout
    graders = proc.stdout.split("graders (")[1].split("estimators (")[0]
    for name in ("short_answer", "numeric", "math", "integer", "multiple_choice"):
        assert f"  {name} " in graders
    assert "  embedded " in proc.stdout.split("models (")[1]


def test_list_rejects_unknown_kind():
    proc = capcal("list", "widgets")
    assert proc.returncode == 2 and "invalid choice: 'widgets'" in proc.stderr


def test_listing_reports_spec_and_plugin_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: bad\n")

    class Plugin:
        @hookimpl
        def capcal_register_tasks(self):
            return [tmp_path]

        @hookimpl
        def capcal_register_estimators(self):
            raise RuntimeError("estimator table exploded")

    reg = Registry(plugins=[Plugin()])
    text = render_listing(reg, "tasks")
    assert "task spec errors (1):" in text and f"{bad}: key 'dataset': missing" in text
    text = render_listing(reg)
    assert "plugin errors (" in text and "capcal_register_estimators: RuntimeError: estimator table exploded" in text
    assert "gsm8k" in text


def test_show_gsm8k_prints_the_chat_messages(data_dir):
    proc = capcal("show", "gsm8k", "--limit", "2", "--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.count("=== document ") == 2 and "=== document 0 (id " in out and "=== document 1 (id " in out
    assert out.count("--- user ---") == 2 and "--- system ---" not in out
    assert "Question: Janet\u2019s ducks lay 16 eggs per day." in out
    assert 'end your reply with a final line of the form "The answer is N"' in out
    assert "--- gold answer ---\n18\n" in out and "--- gold answer ---\n3\n" in out
    assert "max_tokens=256" in out


def test_show_uses_the_environment_mirror_and_json(data_dir):
    proc = capcal("show", "gpqa", "--limit", "1", "--json", env={**ENV, "CAPCAL_DATA_DIR": str(data_dir)})
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["index"] == 0 and rows[0]["answer"] in "ABCD"
    assert rows[0]["messages"][-1]["role"] == "user" and "A) " in rows[0]["messages"][-1]["content"]


def test_show_library_function_matches_the_task(data_dir):
    reg = Registry()
    task = reg.task("mmlu", data_dir=data_dir)
    text = render_show(task, limit=1, split="validation")
    ex = task.examples("validation", limit=1)[0]
    assert task.render(ex)[0]["content"] in text
    assert f"--- gold answer ---\n{ex.fields['answer']}) " in text
    with pytest.raises(Exception, match="--limit must be at least 1"):
        render_show(task, limit=0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "gsm8"], "unknown task 'gsm8'; did you mean 'gsm8k'?"),
        (["show", "gsm8k", "--data-dir", "/nonexistent/capcal-data"], "does not exist"),
        (["show", "no_such_spec.yaml"], "task spec file not found: no_such_spec.yaml"),
        (["show", "gsm8k", "--split", "validation", "--data-dir", "{data}"], "task 'gsm8k' has no validation split"),
        (["show", "simpleqa", "--split", "train", "--data-dir", "{data}"], "task 'simpleqa' has no train split"),
        (["show", "triviaqa", "--split", "train", "--data-dir", "{data}"],
         "data file not found: {data}/mandarjoshi__trivia_qa/rc.nocontext/train.jsonl"),
    ],
)
def test_show_errors_are_one_line(args, message, data_dir):
    args = [a.replace("{data}", str(data_dir)) for a in args]
    proc = capcal(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("capcal: error:")]
    # the mirror path may be reported resolved (../shared can be a symlink)
    expected = {message.replace("{data}", str(d)) for d in (data_dir, data_dir.resolve())}
    assert len(errors) == 1 and any(m in errors[0] for m in expected), proc.stderr
