"""The command line loads only what a command needs (the import side of issue 15's start-up budget).

Each command runs in a fresh interpreter; the test reads which heavy third-party modules it imported.
Timing itself is measured in benchmarks, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("numpy", "scipy", "sklearn", "jsonschema", "jinja2", "datasets", "pandas", "openai", "aiohttp", "torch",
         "transformers", "math_verify", "tqdm")

_PROBE = """
import json, sys
from capcal.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = {heavy!r}
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""


def _loaded(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_help_imports_no_heavy_module():
    assert _loaded("--help") == set()


def test_run_help_imports_no_heavy_module():
    assert _loaded("run", "--help") == set()


def test_list_imports_neither_scipy_nor_backends():
    assert not _loaded("list") & {"scipy", "sklearn", "datasets", "pandas", "openai", "aiohttp", "torch",
                                  "transformers", "math_verify"}


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_leaderboard_of_a_run_imports_no_scipy_datasets_or_backend(tmp_path, fmt):
    # a missing run directory still goes through the command's imports before failing
    loaded = _loaded("leaderboard", str(tmp_path / "missing"), "--format", fmt)
    assert not loaded & {"scipy", "sklearn", "datasets", "pandas", "openai", "aiohttp", "torch", "transformers",
                         "math_verify", "jinja2"}


def test_leaderboard_formats_agree_with_the_report_module():
    from capcal.cli.leaderboard_cmd import FORMAT_NAMES
    from capcal.report import FORMATS

    assert tuple(FORMATS) == FORMAT_NAMES
