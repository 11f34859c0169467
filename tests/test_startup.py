"""The command line loads only what a command needs (the import side of issue 15's start-up budget).

Each command runs in a fresh interpreter; the test reads which heavy third-party modules it imported.
Timing itself is measured in benchmarks, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def _loaded(*args: str, env: dict[str, str] | None = None) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
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


def test_list_and_leaderboard_load_neither_numpy_nor_jsonschema_once_their_inputs_were_checked(tmp_path, data_dir):
    """The schema check of unchanged task specs and results documents is remembered (capcal.schema_cache),
    so after the first run neither command imports jsonschema, and neither needs numpy at all."""
    from capcal.results import write_results
    from report_fixtures import make_run

    cache = {"CAPCAL_CACHE_DIR": str(tmp_path / "cache")}
    assert "jsonschema" in _loaded("list", env=cache)  # the first run validates the specs ...
    assert not _loaded("list", env=cache) & {"numpy", "jsonschema", "scipy"}  # ... the next one does not
    rd = make_run(tmp_path, data_dir)
    write_results(rd.path, n_boot=20)
    fresh = {"CAPCAL_CACHE_DIR": str(tmp_path / "other-cache")}
    assert "jsonschema" in _loaded("leaderboard", str(rd.path), env=fresh)
    assert not _loaded("leaderboard", str(rd.path), env=fresh) & {"numpy", "jsonschema", "scipy"}


def test_a_remembered_verdict_never_hides_a_changed_document(tmp_path, monkeypatch):
    from capcal import schema_cache
    from capcal.errors import SpecError
    from capcal.taskspec import load_spec

    monkeypatch.setenv("CAPCAL_CACHE_DIR", str(tmp_path / "cache"))
    good = Path(__file__).resolve().parents[1] / "tasks" / "gsm8k" / "gsm8k.yaml"
    spec = tmp_path / "gsm8k.yaml"
    spec.write_text(good.read_text(encoding="utf-8"), encoding="utf-8")
    load_spec(spec)
    load_spec(spec)  # remembered
    assert schema_cache.accepted_before("x", {"a": 1}) is False
    schema_cache.remember_accepted("x", {"a": 1})
    assert schema_cache.accepted_before("x", {"a": 1}) and not schema_cache.accepted_before("x", {"a": 2})
    assert not schema_cache.accepted_before("y", {"a": 1})  # another schema: checked afresh
    spec.write_text(good.read_text(encoding="utf-8").replace("task: gsm8k", "task: gsm8k\nbogus_key: 1"),
                    encoding="utf-8")
    with pytest.raises(SpecError, match="bogus_key"):
        load_spec(spec)
    with pytest.raises(SpecError, match="bogus_key"):  # a rejected spec is never remembered
        load_spec(spec)
