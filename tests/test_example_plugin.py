"""A third-party plugin, installed with pip, shows up in the registry and in ``capcal list`` untouched.

The example distribution ``tests/example_plugin`` (``capcal-example-plugin``) registers the task
``gsm8k_terse`` with its own template and the estimator ``question_length``. A second, deliberately broken
distribution made here must be reported with its distribution name without hiding the others.

Both are installed into a temporary virtual environment, never into the development one. That environment
sees this checkout's capcal (through the same editable-install hook, or a build of the checkout) and borrows
the test environment's other packages through a ``.pth`` path, so nothing is downloaded. Whatever must see
the plugin runs with that environment's Python.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_SRC = Path(__file__).parent / "example_plugin"
ENV = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}, "PYTHONWARNINGS": "ignore"}
VENV: dict[str, Path] = {}

pytestmark = pytest.mark.slow


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _pip(*args: str) -> None:
    _run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(VENV["py"]), *args])


def _capcal(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV["py"]), "-m", "capcal", *args], capture_output=True, text=True, env=ENV,
                          timeout=300)


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` with the temporary environment's Python (``sys.argv[1:]`` is ``args``)."""
    return subprocess.run([str(VENV["py"]), "-c", code, *args], capture_output=True, text=True, env=ENV,
                          timeout=300)


def _make_venv(root: Path) -> Path:
    """A fresh venv that sees this checkout's capcal and the test environment's other packages."""
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    dev_site = Path(sysconfig.get_paths()["purelib"])
    # dependencies only: a plain path entry runs none of the test environment's .pth files
    (site / "_capcal_test_deps.pth").write_text(str(dev_site) + "\n")
    hooks = sorted(dev_site.glob("__editable__*capcal*"))
    if hooks:  # this checkout's editable install: the same hook in the new environment
        for hook in hooks:
            shutil.copy2(hook, site / hook.name)
    else:
        _run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(py), "install",
              "--no-deps", "--no-build-isolation", "--no-index", str(ROOT)])
    return py


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A temporary venv with the example plugin and a broken one installed (from copies in tmp)."""
    root = tmp_path_factory.mktemp("plugins")
    VENV["py"] = _make_venv(root)
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
    _pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(example), str(broken))
    yield root / "venv"


def test_only_the_temporary_environment_has_the_plugin(installed):
    assert importlib.util.find_spec("capcal_example_plugin") is None  # the development environment
    proc = _python("import capcal, capcal_example_plugin; print(capcal.__file__); print(capcal_example_plugin.__file__)")
    assert proc.returncode == 0, proc.stderr
    capcal_file, plugin_file = proc.stdout.split()
    assert Path(capcal_file).resolve().is_relative_to(ROOT)
    assert Path(plugin_file).resolve().is_relative_to(installed.resolve())


#: Runs in the temporary environment: ``python -c REGISTRY_CHECKS DATA_DIR``.
REGISTRY_CHECKS = """
import math
import sys
from pathlib import Path

import numpy as np
from capcal.estimators import Estimator, EstimatorContext
from capcal.registry import Registry
from capcal.rundir import Targets

data_dir = Path(sys.argv[1])
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
"""


def test_plugin_task_and_estimator_in_the_registry(installed, data_dir):
    proc = _python(REGISTRY_CHECKS, str(data_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]


CONFORMANCE = """
import sys
from capcal.registry import Registry
from capcal.testing import check_estimator, check_task
from capcal_example_plugin.estimator import QuestionLengthEstimator

check_estimator(QuestionLengthEstimator())
check_estimator(QuestionLengthEstimator(scale=5.0))
task = Registry().task("gsm8k_terse", data_dir=sys.argv[1])
check_task(task, limit=5, gold_response=lambda ex: f"The answer is {ex.fields['answer']}")
print("conforms")
"""


def test_the_example_plugin_passes_the_conformance_checks(installed, data_dir):
    proc = _python(CONFORMANCE, str(data_dir))
    assert proc.returncode == 0 and proc.stdout.strip() == "conforms", proc.stderr[-3000:]


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
