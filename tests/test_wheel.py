"""Packaging: the wheel carries the task specs (at capcal/task_specs/, apart from the module capcal.tasks),
templates and registry.yaml, and works outside the source checkout.

The wheel is built from a copy of the working tree, installed into a fresh virtual environment (its
dependencies borrowed from the test environment through a ``.pth`` path, so nothing is downloaded), and
``capcal list tasks`` runs there. ``capcal.__file__`` proves the code came from the wheel, not the editable
install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEVEN = ["aime25", "gpqa", "gsm8k", "math500", "mmlu", "simpleqa", "triviaqa"]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _copy_tree(dest: Path) -> None:
    """Copy what git would see (tracked and untracked, not ignored) into ``dest``."""
    files = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout
    for rel in filter(None, files.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    _copy_tree(src)
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)], cwd=tmp)
    wheels = list((tmp / "dist").glob("capcal-*.whl"))
    assert len(wheels) == 1
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp)
                .stdout.strip())
    # dependencies only: a plain path entry does not run the editable-install hook of the test environment
    (site / "_capcal_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(py), "install",
          "--no-deps", "--no-index", str(wheels[0])], cwd=tmp)
    return {"tmp": tmp, "venv": venv, "py": py, "site": site, "wheel": wheels[0]}


def test_wheel_contents(wheel_venv):
    names = zipfile.ZipFile(wheel_venv["wheel"]).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"capcal", "capcal-0.1.0.dist-info"}  # no generic top-level module such as `tasks`
    for name in SEVEN:
        assert f"capcal/task_specs/{name}/{name}.yaml" in names
        assert f"capcal/task_specs/{name}/README.md" in names
    for template in ("gsm8k.jinja", "mmlu.jinja", "multiple_choice.jinja", "short_answer.jinja",
                     "math_boxed.jinja", "integer_boxed.jinja"):
        assert f"capcal/templates/{template}" in names
    assert "capcal/tasks.py" in names and "capcal/taskspec.py" in names and "capcal/prompts.py" in names


def test_installed_wheel_lists_the_seven_tasks(wheel_venv, data_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONWARNINGS"] = "ignore"
    py, venv, cwd = str(wheel_venv["py"]), wheel_venv["venv"], wheel_venv["tmp"]
    where = _run([py, "-c", "import capcal, capcal.tasks as t; print(capcal.__file__); print(t.__file__)"],
                 cwd=cwd, env=env).stdout.split()
    assert all(Path(p).resolve().is_relative_to(venv.resolve()) for p in where), where
    assert where[1].endswith("tasks.py")
    proc = _run([str(venv / "bin" / "capcal"), "list", "tasks"], cwd=cwd, env=env)
    names = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.startswith("  ")]
    assert set(SEVEN) <= set(names), proc.stdout
    assert "task spec errors" not in proc.stdout
    show = _run([str(venv / "bin" / "capcal"), "show", "mmlu", "--limit", "1", "--data-dir", str(data_dir)],
                cwd=cwd, env=env)
    assert "multiple-choice question about abstract algebra" in show.stdout
