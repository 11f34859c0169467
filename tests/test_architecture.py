"""The architecture's promises: built-ins registered in-process, one metric catalogue that every consumer
reads, the public API of ``capcal``, the package data apart from modules, and old run directories."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import capcal
import numpy as np
import pytest
from capcal import metric_catalogue as C
from capcal.errors import CapcalError, SpecError
from capcal.registry import BUILTIN_PLUGINS, Registry

ROOT = Path(__file__).resolve().parent.parent


# -- built-ins without entry points ------------------------------------------------------------------------
def test_a_registry_without_entry_points_has_every_builtin():
    from capcal.estimators_contrib import BUILTIN_ESTIMATORS, DATA_DEPENDENT_ESTIMATORS
    from capcal.graders import BUILTIN_GRADERS
    from capcal.models.factories import BUILTIN_MODELS

    reg = Registry(entry_points=False)
    assert sorted(reg.task_specs) == ["aime25", "gpqa", "gsm8k", "math500", "mmlu", "simpleqa", "triviaqa"]
    assert reg.task_errors == [] and reg.plugin_errors == []
    assert set(reg.graders) == set(BUILTIN_GRADERS) and "llm_judge" in reg.graders
    assert set(reg.estimators) == set(BUILTIN_ESTIMATORS) | set(DATA_DEPENDENT_ESTIMATORS)
    assert {"verbalized", "probe", "recalibrated", "imported"} <= set(reg.estimators)
    assert set(reg.models) == set(BUILTIN_MODELS) and {"embedded", "hf", "openai"} <= set(reg.models)
    assert [d.name for d in reg.template_dirs] == ["templates"]
    assert len(BUILTIN_PLUGINS) == 2


def test_a_plain_source_checkout_has_every_builtin(tmp_path):
    """No install at all: the repository folders mapped to ``capcal`` by a bare path finder in a Python
    started with ``-S`` (no site-packages of this checkout's install, no entry points of capcal)."""
    code = f"""
import importlib.machinery, importlib.util, sys
ROOT = {str(ROOT)!r}
DEPS = {[p for p in sys.path if p.endswith("site-packages")]!r}

class Finder:
    # capcal -> harness/, capcal.estimators_contrib -> estimators_contrib/ (what pyproject.toml maps)
    MAP = {{"capcal": ROOT + "/harness", "capcal.estimators_contrib": ROOT + "/estimators_contrib"}}
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name in cls.MAP:
            return importlib.util.spec_from_file_location(
                name, cls.MAP[name] + "/__init__.py", submodule_search_locations=[cls.MAP[name]])
        return None

sys.meta_path.insert(0, Finder)
sys.path.extend(DEPS)  # numpy, pluggy, ... (a plain path: none of its .pth hooks run)
from capcal.registry import Registry
reg = Registry(entry_points=False)
from capcal.estimators_contrib import BUILTIN_ESTIMATORS, DATA_DEPENDENT_ESTIMATORS
assert set(reg.estimators) == set(BUILTIN_ESTIMATORS) | set(DATA_DEPENDENT_ESTIMATORS)
print(sorted(reg.task_specs), len(reg.graders), len(reg.estimators) > 10, sorted(reg.models))
import capcal
print(capcal.__file__)
"""
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == ("['aime25', 'gpqa', 'gsm8k', 'math500', 'mmlu', 'simpleqa', 'triviaqa'] 6 True "
                        "['embedded', 'hf', 'llamacpp', 'openai']")
    assert Path(lines[1]).resolve() == ROOT / "harness" / "__init__.py"


def test_passing_a_builtin_plugin_again_registers_it_once():
    from capcal import builtin

    reg = Registry(entry_points=False, plugins=[builtin])
    assert reg.plugin_errors == [] and len(reg.task_specs) == 7


def test_the_run_registry_reaches_plugins(tmp_path, data_dir):
    """run(config, registry=r): an estimator's context carries r, and while the run is in progress
    get_registry() is r (templates, recalibration bases, the judge's fallback resolve through it)."""
    from capcal import hookimpl
    from capcal.estimators import Estimator, EstimatorOutput
    from capcal.registry import get_registry
    from capcal.runconfig import RunConfig

    seen = {}

    class Probe(Estimator):
        name = "registry_probe"

        def predict(self, ctx):
            seen["ctx"], seen["active"] = ctx.registry, get_registry()
            seen["prompt"] = ctx.render_prompt("estimators/verbalized.jinja", question="2 + 2?", choices=[],
                                               letters="ABCD")
            return EstimatorOutput(np.full(len(ctx), 0.5), [None] * len(ctx))

    class Plugin:
        @hookimpl
        def capcal_register_estimators(self):
            return {"registry_probe": Probe}

    class Echo(capcal.ModelBackend):
        backend, model = "echo", "echo"

        def generate(self, requests, on_result, progress=None):
            for r in requests:
                on_result([(sid, capcal.Completion(text="The answer is 18.", finish_reason="stop"))
                           for sid in r.sample_ids])

    reg = Registry(entry_points=False, plugins=[Plugin()])
    assert "registry_probe" not in get_registry().estimators
    capcal.run(RunConfig(output=tmp_path / "run", tasks=["gsm8k"], k=2, limit=2, estimators=["registry_probe"],
                         data_dir=data_dir, bootstrap=0, progress=False), registry=reg, backend=Echo())
    assert seen["ctx"] is reg and seen["active"] is reg
    assert "2 + 2?" in seen["prompt"][0]["content"]
    assert get_registry() is not reg  # the run's registry is active only while it runs


def test_recalibration_resolves_its_base_in_the_context_registry():
    """The base estimator named "level" is whatever the context's registry calls that (here two registries
    disagree: the one active at construction, and the run's own on the context)."""
    from capcal import hookimpl
    from capcal.estimators import Estimator, EstimatorOutput
    from capcal.estimators_contrib import Recalibrated
    from capcal.testing import make_context

    def level_plugin(value):
        class Level(Estimator):
            name = "level"

            def predict(self, ctx):
                return EstimatorOutput(np.full(len(ctx), value), [None] * len(ctx))

        class Plugin:
            @hookimpl
            def capcal_register_estimators(self):
                return {"level": Level}

        return Registry(entry_points=False, plugins=[Plugin()]), Level

    first, _ = level_plugin(0.9)
    second, level_of_second = level_plugin(0.25)
    with first.activate():  # the constructor checks the name in the active registry
        est = Recalibrated(base="level", method="histogram", bins=4)
    ctx = make_context(8, 2, registry=second)
    out = est.predict(ctx)
    assert type(est.base_) is level_of_second and est.fitted_on_ == "validation"
    # every base confidence is 0.25: one histogram bin, calibrated to the validation split's mean mu
    np.testing.assert_allclose(out.confidence, np.mean(ctx.other_split("validation").targets.mu))


# -- the metric catalogue ------------------------------------------------------------------------------------
def _schema_accepts(metric: str) -> bool:
    import jsonschema
    from capcal.results import results_schema

    schema = results_schema()
    sub = {"$defs": schema["$defs"], **schema["$defs"]["metrics"]}
    return jsonschema.Draft202012Validator(sub).is_valid({metric: {"value": 0.1, "ci": [0.0, 0.2]}})


CATALOGUE = C.metric_names(include_families=False) + ["passk_mse@1", "passk_mse@4", "passk_mse@64"]
NOT_METRICS = ["cc_brierr", "accuracy", "passk_mse@0", "passk_mse", "passk_mse@x", "budget"]


def test_the_catalogue_describes_every_metric():
    for m in C.METRICS:
        assert m.direction in (-1, 0, 1) and m.target in C.TARGETS and m.kind in ("calibration", "selective", "passk", "budget")
        assert m.title
    assert C.lookup("passk_mse@16").title == "pass@16 MSE" and C.lookup("passk_mse@16").direction == -1
    assert C.headline_defaults() == ["cc_brier", "cc_ece", "rc_brier", "rc_ece", "auroc", "passk_mse@4", "budget_gain"]
    assert C.compare_defaults() == ["cc_brier", "rc_brier", "cc_ece", "rc_ece", "auroc", "spearman"]


@pytest.mark.parametrize("name", CATALOGUE)
def test_every_consumer_accepts_a_catalogue_name(name, tmp_path):
    from capcal.report.table import check_metric_names
    from capcal.suites import parse_suite

    assert _schema_accepts(name)
    check_metric_names([name])  # the leaderboard
    suite = {"version": "1.0", "tasks": {"gsm8k": {"split": "eval", "k": 4}}, "estimators": ["constant"],
             "headline_metrics": [name]}
    assert parse_suite("s", suite).headline_metrics == [name]
    comparable = C.lookup(name).comparable
    assert (name in C.comparable_metrics() or name.startswith("passk_mse@")) == comparable


@pytest.mark.parametrize("name", NOT_METRICS)
def test_every_consumer_rejects_a_name_outside_the_catalogue(name, tmp_path):
    from capcal.compare import compare_runs
    from capcal.report.table import check_metric_names
    from capcal.suites import parse_suite

    assert not _schema_accepts(name)
    with pytest.raises(CapcalError, match="unknown metric"):
        check_metric_names([name])
    suite = {"version": "1.0", "tasks": {"gsm8k": {"split": "eval", "k": 4}}, "estimators": ["constant"],
             "headline_metrics": [name]}
    with pytest.raises(SpecError, match="unknown metric"):
        parse_suite("s", suite)
    with pytest.raises(CapcalError, match="cannot be compared"):
        compare_runs(tmp_path, tmp_path, metric=name)


def test_compare_accepts_exactly_the_comparable_names(tmp_path):
    from capcal.compare import COMPARABLE_METRICS, compare_runs

    assert COMPARABLE_METRICS == [m.name for m in C.METRICS if m.comparable and not m.is_family]
    for name in C.metric_names(include_families=False):
        if C.lookup(name).comparable:
            continue  # accepted: it fails later, on the missing run directory
        with pytest.raises(CapcalError, match="cannot be compared"):
            compare_runs(tmp_path, tmp_path, metric=name)


def test_analysis_reports_the_catalogue_names(tmp_path):
    from capcal.analysis import METRIC_NAMES, analyze
    from capcal.targets import Targets

    rng = np.random.default_rng(0)
    rows = [{"id": str(i), "correct": list(rng.integers(0, 2, 4)), "designated": 0} for i in range(30)]
    out = analyze(Targets.from_rows(rows), {"a": rng.uniform(size=30)}, n_boot=0)
    names = set(out["estimators"]["a"]["metrics"])
    assert set(METRIC_NAMES) == {m.name for m in C.METRICS if m.kind in ("calibration", "selective")}
    assert names == set(METRIC_NAMES) | {"passk_mse@1", "passk_mse@4", "budget_gain"}
    assert all(C.is_known_metric(n) for n in names)


# -- public API ------------------------------------------------------------------------------------------------
def test_the_public_api():
    assert set(capcal.__all__) == set(capcal._EXPORTS) | {"__version__", "hookimpl"}
    for name in capcal.__all__:
        assert getattr(capcal, name) is not None, name
    from capcal.estimators import Estimator, EstimatorContext, EstimatorOutput
    from capcal.pipeline import run
    from capcal.results import load_results
    from capcal.tasks import Example, Task

    assert capcal.run is run and capcal.Task is Task and capcal.Example is Example
    assert (capcal.Estimator, capcal.EstimatorContext, capcal.EstimatorOutput) == (Estimator, EstimatorContext,
                                                                                 EstimatorOutput)
    assert capcal.load_results is load_results and callable(capcal.analyze)
    with pytest.raises(AttributeError):
        capcal.no_such_name  # noqa: B018


def test_importing_capcal_is_cheap():
    code = "import sys, capcal; print(sorted(m for m in ('numpy', 'scipy', 'jinja2', 'torch') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_backend_capabilities_are_declared():
    from capcal.models.base import ModelBackend
    from capcal.models.hf_backend import HFBackend
    from capcal.models.openai_backend import OpenAIBackend

    assert ModelBackend.supports_hidden_states is False and ModelBackend.supports_next_token_logprobs is False
    assert HFBackend.supports_hidden_states and HFBackend.supports_next_token_logprobs and HFBackend.supports_logprobs
    assert OpenAIBackend.supports_logprobs and not OpenAIBackend.supports_hidden_states


def test_estimator_parameters_come_from_the_constructor():
    from capcal.estimators_contrib import BUILTIN_ESTIMATORS, DATA_DEPENDENT_ESTIMATORS

    needed = {"imported": {"source": "theirs"}}  # the one built-in without a usable default
    for name, cls in {**BUILTIN_ESTIMATORS, **DATA_DEPENDENT_ESTIMATORS}.items():
        est = cls(**needed.get(name, {}))
        assert list(est.get_params()) == cls.parameter_names(), name
    rec = BUILTIN_ESTIMATORS["recalibrated"](base="oracle_rc")
    assert rec.get_params() == {"base": "oracle_rc", "method": "isotonic", "target": "mu", "bins": 10,
                                "base_params": {}}


# -- package data, old run directories -------------------------------------------------------------------------
def test_task_specs_are_not_under_a_module_name():
    from capcal.resources import resource_path

    specs = resource_path("tasks")
    assert (specs / "gsm8k" / "gsm8k.yaml").is_file()
    text = (ROOT / "pyproject.toml").read_text()
    assert '"capcal.task_specs" = "tasks"' in text and '"capcal.tasks" = "tasks"' not in text
    assert (ROOT / "harness" / "tasks.py").is_file()


def test_a_run_directory_of_the_earlier_layout_still_reads(tmp_path, data_dir):
    """A run written before finish reasons and the catalogue (targets rows without reasons, an estimator
    meta without params) is analysed and tabulated as it is."""
    from capcal.report import build_leaderboard
    from capcal.results import load_results, write_results
    from capcal.rundir import RunDir

    rd = RunDir(tmp_path / "old")
    rd.write_config({"model": "embedded", "k": 4, "seed": 0, "tasks": {"gsm8k": {"split": "eval", "k": 4}}})
    rows = [{"id": f"q{i}", "index": i, "n": 4, "c": sum(c), "mu": sum(c) / 4, "designated": 0, "r": c[0],
             "correct": c, "extracted": ["1"] * 4}
            for i, c in enumerate([[1, 0, 1, 1], [0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]])]
    rd.write_targets("gsm8k", rows)
    rd.write_estimator("gsm8k", "constant", [r["id"] for r in rows], [0.5] * 4, [None] * 4, {})
    write_results(rd, n_boot=0, seed=0)
    doc = load_results(rd.path)
    assert doc["tasks"]["gsm8k"]["mean_mu"] == pytest.approx(np.mean([0.75, 0.25, 1.0, 0.0]))
    assert build_leaderboard([doc]).rows[0].estimator == "constant"


def test_a_results_document_of_another_version_names_the_migration(tmp_path):
    from capcal.results import ResultsError, load_results

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"schema_version": 0, "tasks": {}}))
    with pytest.raises(ResultsError) as info:
        load_results(path)
    message = str(info.value)
    assert "\n" not in message and "re-create it with this capcal" in message and "write_results" in message


def test_the_wheel_layout_keeps_specs_apart(tmp_path):
    """pyproject maps the spec folder to capcal/task_specs (checked cheaply; tests/test_wheel.py builds it)."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    text = (tmp_path / "pyproject.toml").read_text()
    assert '"capcal.task_specs" = ["*/*.yaml", "*/*.md", "*/*.jinja", "*.md"]' in text
    assert "[project.entry-points.capcal]" not in text  # built-ins need no entry point
