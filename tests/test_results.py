"""The results document: built from a real run directory, validated by the JSON schema, loaded back;
old, corrupt and invalid files give one clear CapcalError."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from capcal.cli import main
from capcal.errors import CapcalError
from capcal.results import (
    SCHEMA_VERSION,
    ResultsError,
    build_results,
    is_known_metric,
    load_results,
    metric_direction,
    results_schema,
    validate_results,
    write_results,
)
from report_fixtures import make_run, qwen_estimators, qwen_rows
from sklearn.metrics import brier_score_loss, mean_squared_error, roc_auc_score

N_BOOT = 200


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    """A real run (Qwen2.5-Math targets, real confidences) with one planted estimator failure pattern."""
    def with_failures(ests):
        ests = dict(ests)
        p = ests["prm"].copy()
        p[:7] = np.nan  # 7 failed questions
        ests["prm"] = p
        return ests

    rd = make_run(tmp_path_factory.mktemp("results"), data_dir, "qwen", estimator_fn=with_failures,
                  suite={"name": "capcal-v1", "version": "1.0"})
    write_results(rd, n_boot=N_BOOT, seed=0)
    return rd


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(results_schema())


def test_written_results_validate_and_load(run):
    doc = load_results(run.path)  # validates against the schema
    jsonschema.Draft202012Validator(results_schema()).validate(doc)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["model"] == {"backend": "openai", "model_id": "Qwen/Qwen2.5-Math-7B-Instruct",
                            "args": {"base_url": "http://127.0.0.1:8000/v1", "model": "Qwen/Qwen2.5-Math-7B-Instruct"}}
    assert "sk-secret" not in run.results_path.read_text()
    assert doc["suite"] == {"name": "capcal-v1", "version": "1.0"}
    assert doc["sampling"]["max_tokens"] == 2048 and doc["sampling"]["temperature"] == 0.7
    assert doc["k"] == 8 and doc["run_name"] == "qwen"
    task = doc["tasks"]["math"]
    assert task["n_questions"] == 100 and task["n_samples"] == {"min": 8, "max": 8}
    assert len(task["data_fingerprint"]) == 64
    assert task["designated_indices"] == [0] and task["n_boot"] == N_BOOT
    assert set(task["estimators"]) == {"consistency", "prm", "oracle_cc", "constant"}


def test_metric_values_match_independent_computations(run, data_dir):
    doc = load_results(run.path)
    rows = qwen_rows(data_dir)
    correct = np.array([[float(s) for s in r["score"]] for r in rows])
    mu, r = correct.mean(axis=1), correct[:, 0]
    p = qwen_estimators(rows)["consistency"]
    m = doc["tasks"]["math"]["estimators"]["consistency"]["metrics"]
    assert m["cc_brier"]["value"] == pytest.approx(mean_squared_error(mu, p), abs=1e-12)
    assert m["rc_brier"]["value"] == pytest.approx(brier_score_loss(r, p), abs=1e-12)
    assert m["auroc"]["value"] == pytest.approx(roc_auc_score(r, p), abs=1e-12)
    lo, hi = m["cc_brier"]["ci"]
    assert 0 <= lo < m["cc_brier"]["value"] < hi
    assert doc["tasks"]["math"]["mean_mu"] == pytest.approx(mu.mean())
    # the answer parse rate: share of the 800 samples with an extracted answer
    n_extracted = sum(bool(x) for row in rows for x in row["pred"])
    assert doc["tasks"]["math"]["answer_parse_rate"] == pytest.approx(n_extracted / 800)


def test_failures_and_parse_rate_are_recorded(run):
    prm = load_results(run.path)["tasks"]["math"]["estimators"]["prm"]
    assert prm["n_nan"] == 7 and prm["nan_rate"] == pytest.approx(0.07)
    assert prm["parse_rate"] == pytest.approx(0.93)
    assert prm["failure_reasons"] == {"unparseable reply": 7}
    assert prm["meta"] == {"source": "qwen25math_math_cot_100"}


def test_curves_and_bins_present(run):
    est = load_results(run.path)["tasks"]["math"]["estimators"]["consistency"]
    assert len(est["reliability"]["cc"]) == 10 and len(est["reliability"]["rc"]) == 10
    assert sum(b["count"] for b in est["reliability"]["cc"]) == 100
    assert [pt["k"] for pt in est["passk_curve"]] == [1, 2, 4, 8]
    assert [pt["B"] for pt in est["budget_curve"]] == [1, 2, 4, 8]


def test_given_analysis_is_used_as_is(run, tmp_path):
    from capcal.results import analyze_run

    analysis = analyze_run(run.path, n_boot=0, seed=3)
    doc = build_results(run, analysis, created="2026-01-02T03:04:05Z")
    assert doc["created"] == "2026-01-02T03:04:05Z"
    assert doc["tasks"]["math"]["n_boot"] == 0 and doc["tasks"]["math"]["seed"] == 3
    assert doc["tasks"]["math"]["estimators"]["consistency"]["metrics"]["cc_brier"]["ci"] == [None, None]


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.update(schema_version=0), "schema_version 0 is not supported"),
    (lambda d: d.pop("schema_version"), "schema_version None is not supported"),
    (lambda d: d["tasks"]["math"]["estimators"]["prm"]["metrics"]["cc_brier"].update(value="low"),
     "tasks/math/estimators/prm/metrics/cc_brier/value"),
    (lambda d: d["tasks"]["math"].pop("estimators"), "tasks/math"),
    (lambda d: d["model"].pop("model_id"), "model"),
    (lambda d: d["tasks"]["math"]["estimators"]["prm"].update(nan_rate=1.5), "nan_rate"),
])
def test_invalid_documents_give_one_clear_error(run, tmp_path, mutate, expected):
    doc = json.loads(run.results_path.read_text())
    mutate(doc)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ResultsError) as exc:
        load_results(path)
    msg = str(exc.value)
    assert expected in msg and str(path) in msg and "\n" not in msg


def test_corrupt_file_gives_a_clear_error(run, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(run.results_path.read_text()[:500])  # truncated, as after a crash
    with pytest.raises(ResultsError, match=r"corrupt results file, not valid JSON \(line \d+, column \d+"):
        load_results(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ResultsError, match="cannot read"):
        load_results(path)
    with pytest.raises(ResultsError, match="no results file"):
        load_results(tmp_path / "missing")
    with pytest.raises(ResultsError, match="expected a JSON object"):
        validate_results([1, 2])


def test_cli_reports_old_results_in_one_line(run, tmp_path, capsys):
    doc = json.loads(run.results_path.read_text())
    doc["schema_version"] = 0
    (tmp_path / "results.json").write_text(json.dumps(doc))
    assert main(["leaderboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("capcal: error:") and "schema_version 0" in err and "\n" not in err


def test_results_error_is_a_capcal_error():
    assert issubclass(ResultsError, CapcalError)


def test_metric_catalogue():
    assert metric_direction("cc_brier") == -1 and metric_direction("auroc") == 1
    assert metric_direction("passk_mse@16") == -1 and metric_direction("cc_uncertainty") == 0
    assert is_known_metric("passk_mse@4") and not is_known_metric("cc_brierr")
    with pytest.raises(KeyError):
        metric_direction("accuracy")
