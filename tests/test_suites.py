"""Suites of registry.yaml: loaded and validated, typos name the close match, malformed entries name the key."""

from __future__ import annotations

import pytest
import yaml
from capcal.errors import SpecError, UnknownNameError
from capcal.registry import get_registry
from capcal.resources import resource_path
from capcal.suites import Suite, list_suites, load_suite

SEVEN = ["triviaqa", "simpleqa", "gsm8k", "math500", "aime25", "mmlu", "gpqa"]


def test_capcal_v1_has_the_seven_tasks():
    suite = load_suite("capcal-v1")
    assert isinstance(suite, Suite)
    assert suite.name == "capcal-v1" and suite.version == "1.0"
    assert list(suite.tasks) == SEVEN
    assert all(t.split == "eval" and t.k >= 8 for t in suite.tasks.values())
    assert suite.tasks["aime25"].k == 64 and suite.tasks["gsm8k"].limit is None
    assert suite.headline_metrics == ["cc_brier", "cc_ece", "rc_brier", "rc_ece", "auroc", "passk_mse@4",
                                      "budget_gain"]
    assert {"oracle_cc", "oracle_rc", "constant", "verbalized", "consistency"} <= set(suite.estimators)
    assert suite.to_record() == {"name": "capcal-v1", "version": "1.0"}


def test_suites_name_only_registered_tasks_and_estimators():
    registry = get_registry()
    for name in list_suites():
        load_suite(name).check_registered(registry)


def test_registry_yaml_is_the_bundled_resource():
    raw = yaml.safe_load(resource_path("registry.yaml").read_text())
    assert sorted(raw["suites"]) == list_suites() and "capcal-v1" in list_suites()


def test_typo_names_the_close_match():
    with pytest.raises(UnknownNameError, match=r"unknown suite 'capcal-v2'; did you mean 'capcal-v1'"):
        load_suite("capcal-v2")


def test_check_registered_rejects_unknown_estimator(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"suites": {"s": {
        "version": "1.0", "tasks": {"gsm8k": {"k": 4}}, "estimators": ["verbalised"],
        "headline_metrics": ["cc_brier"]}}}))
    with pytest.raises(UnknownNameError, match="verbalized"):
        load_suite("s", path).check_registered(get_registry())


def test_check_registered_takes_estimator_parameters_and_refuses_unknown_ones(tmp_path):
    from capcal.errors import CapcalError

    path = tmp_path / "registry.yaml"
    good = {"version": "1.0", "tasks": {"gsm8k": {"k": 4}}, "estimators": ["consistency:m=4", "verbalized"],
            "headline_metrics": ["cc_brier"]}
    bad = dict(good, estimators=["consistency:bogus=1"])
    path.write_text(yaml.safe_dump({"suites": {"good": good, "bad": bad}}))
    load_suite("good", path).check_registered(get_registry())
    with pytest.raises(CapcalError, match=r"estimator 'consistency:bogus=1': unknown parameter 'bogus'; consistency takes m"):
        load_suite("bad", path).check_registered(get_registry())


def _suite_file(tmp_path, **overrides):
    suite = {"version": "1.0", "tasks": {"gsm8k": {"split": "eval", "k": 4, "limit": 8}},
             "estimators": ["consistency"], "headline_metrics": ["cc_brier"]}
    suite.update(overrides)
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"suites": {"s": suite}}))
    return path


@pytest.mark.parametrize("overrides, key, message", [
    ({"version": 1}, "suites.s.version", "expected a version string"),
    ({"tasks": {}}, "suites.s.tasks", "non-empty mapping"),
    ({"tasks": {"gsm8k": {"k": 0}}}, "suites.s.tasks.gsm8k.k", "integer >= 1"),
    ({"tasks": {"gsm8k": {"k": 4, "limit": -2}}}, "suites.s.tasks.gsm8k.limit", "integer >= 1 or null"),
    ({"tasks": {"gsm8k": {"kk": 4}}}, "suites.s.tasks.gsm8k.kk", "unknown key"),
    ({"estimators": []}, "suites.s.estimators", "non-empty list"),
    ({"estimators": ["a", "a"]}, "suites.s.estimators", "must not repeat"),
    ({"headline_metrics": ["cc_brierr"]}, "suites.s.headline_metrics", "unknown metric 'cc_brierr'"),
    ({"colour": "red"}, "suites.s.colour", "unknown key"),
])
def test_malformed_suite_names_file_and_key(tmp_path, overrides, key, message):
    path = _suite_file(tmp_path, **overrides)
    with pytest.raises(SpecError) as exc:
        load_suite("s", path)
    assert exc.value.key == key and message in str(exc.value) and str(path) in str(exc.value)


def test_valid_custom_suite(tmp_path):
    suite = load_suite("s", _suite_file(tmp_path))
    assert suite.tasks["gsm8k"].k == 4 and suite.tasks["gsm8k"].limit == 8


def test_broken_yaml(tmp_path):
    path = tmp_path / "registry.yaml"
    path.write_text("suites: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        list_suites(path)
