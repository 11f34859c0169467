"""A third-party plugin, installed with pip, shows up in the registry and in ``capcal list`` untouched.

The example distribution ``tests/example_plugin`` (``capcal-example-plugin``) registers the task
``gsm8k_terse`` with its own template and the estimator ``question_length``. A second, deliberately broken
distribution made here must be reported with its distribution name without hiding the others.
"""

from __future__ import annotations

import importlib
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from capcal.estimators import Estimator, EstimatorContext
from capcal.registry import Registry
from capcal.rundir import Targets

PLUGIN_SRC = Path(__file__).parent / "example_plugin"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}

pytestmark = pytest.mark.slow


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _capcal(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "capcal", *args], capture_output=True, text=True, env=ENV,
                          timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Install the example plugin and a broken one (from copies in tmp), uninstall both afterwards."""
    root = tmp_path_factory.mktemp("plugins")
    example = root / "example_plugin"
    shutil.copytree(PLUGIN_SRC, example, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    broken = root / "broken_plugin"
    (broken / "capcal_broken_plugin").mkdir(parents=True)
    (broken / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "capcal-broken-plugin"
        version = "0.0.1"
        [project.entry-points.capcal]
        broken = "capcal_broken_plugin"
        [tool.setuptools]
        packages = ["capcal_broken_plugin"]
    """))
    (broken / "capcal_broken_plugin" / "__init__.py").write_text("import capcal_dependency_that_is_not_installed\n")
    try:
        _pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(example), str(broken))
        importlib.invalidate_caches()
        yield
    finally:
        _pip("uninstall", "-y", "capcal-example-plugin", "capcal-broken-plugin")
        importlib.invalidate_caches()


def test_plugin_task_and_estimator_in_the_registry(installed, data_dir):
    reg = Registry()
    assert "gsm8k_terse" in reg.task_specs
    assert {"gsm8k", "mmlu", "gpqa", "triviaqa", "simpleqa", "math500", "aime25"} <= set(reg.task_specs)
    cls = reg.estimator_class("question_length")
    assert issubclass(cls, Estimator) and cls.__module__ == "capcal_example_plugin.estimator"
    # the plugin's template directory comes before capcal's own
    assert reg.template_dirs[0].name == "templates" and "capcal_example_plugin" in str(reg.template_dirs[0])
    # the broken plugin is reported with its distribution name, and nothing else broke
    broken = [e for e in reg.plugin_errors if e.distribution == "capcal-broken-plugin"]
    assert len(broken) == 1 and "capcal_dependency_that_is_not_installed" in broken[0].error
    assert not [e for e in reg.task_errors if "gsm8k_terse" in e.path]

    task = reg.task("gsm8k_terse", data_dir=data_dir)
    examples = task.examples(limit=3)
    messages = task.render(examples[0])
    assert messages[0] == {"role": "system", "content": "You are a calculator that answers word problems with one line."}
    assert messages[1]["content"].endswith('Reply with "The answer is N" and nothing else.')
    assert task.grade("The answer is 18", examples[0]).correct

    # the estimator is a real one: exp(-words / scale) on the questions
    targets = Targets.from_rows([{"id": e.id, "correct": [1, 0], "designated": 0, "extracted": ["1", "2"]}
                                 for e in examples])
    ctx = EstimatorContext(task=task, split="eval", examples=examples, messages=[task.render(e) for e in examples],
                           ids=np.array([e.id for e in examples], dtype=object), backend=None, samples=[[]] * 3,
                           targets=targets, cache_dir=Path("."))
    out = cls(scale=30).predict(ctx)
    expected = [math.exp(-len(e.fields["question"].split()) / 30) for e in examples]
    np.testing.assert_allclose(out.confidence, expected, rtol=1e-12)
    assert out.reasons == [None, None, None] and cls(scale=30).get_params() == {"scale": 30.0}


def test_plugin_shows_in_capcal_list(installed):
    proc = _capcal("list")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    tasks_section = out.split("graders (")[0]
    assert "gsm8k_terse" in tasks_section and "template=terse_numeric.jinja" in tasks_section
    assert "(from " in tasks_section.split("gsm8k_terse")[1].splitlines()[0]  # non-built-ins show their source
    estimators_section = out.split("estimators (")[1].split("models (")[0]
    assert "question_length" in estimators_section
    assert "plugin 'broken' from distribution 'capcal-broken-plugin' failed: ModuleNotFoundError" in out

    proc = _capcal("list", "tasks")
    assert proc.returncode == 0
    for name in ("aime25", "gpqa", "gsm8k", "gsm8k_terse", "math500", "mmlu", "simpleqa", "triviaqa"):
        assert any(line.split()[0] == name for line in proc.stdout.splitlines() if line.startswith("  "))


def test_plugin_task_shows_its_own_prompt(installed, data_dir):
    proc = _capcal("show", "gsm8k_terse", "--limit", "1", "--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    assert "--- system ---\nYou are a calculator" in proc.stdout
    assert "--- gold answer ---\n18" in proc.stdout
