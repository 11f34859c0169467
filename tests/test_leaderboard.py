"""The leaderboard, rendered from results.json of real runs: rows, cells, means, warnings and the four formats."""

from __future__ import annotations

import csv
import io
import json
import math
import re

import numpy as np
import pytest
from capcal.cli import main
from capcal.report import DEFAULT_METRICS, build_leaderboard, load_leaderboard, render
from capcal.report.table import MEAN, Cell, mean_cell
from capcal.report.text import fmt_cell
from capcal.results import load_results, write_results
from report_fixtures import make_run

SUITE = {"name": "capcal-v1", "version": "1.0"}
TASKS = {"math_a": slice(0, 50), "math_b": slice(50, 100)}


def _worse(ests):
    """A second 'model' whose estimators are real confidences, shuffled (a worse estimator)."""
    rng = np.random.default_rng(7)
    return {k: (rng.permutation(v) if k in ("consistency", "prm") else v) for k, v in ests.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("lb")
    a = make_run(root, data_dir, "qwen-a", model_id="qwen-math-a", suite=SUITE, tasks=TASKS)
    b = make_run(root, data_dir, "qwen-b", model_id="qwen-math-b", suite=None, tasks=TASKS, estimator_fn=_worse)
    c = make_run(root, data_dir, "qwen-c", model_id="qwen-math-c", suite=SUITE, tasks=TASKS, estimator_fn=_worse)
    for rd in (a, b, c):
        write_results(rd, n_boot=200, seed=0)
    return a, b, c


def test_rows_are_model_x_estimator_and_cells_come_from_results(runs):
    a, b, _ = runs
    lb = load_leaderboard([a.path, b.path])
    assert lb.tasks == ["math_a", "math_b"] and lb.metrics == DEFAULT_METRICS
    assert [(r.model, r.estimator) for r in lb.rows] == [
        (m, e) for m in ("qwen-math-a", "qwen-math-b") for e in ("consistency", "constant", "oracle_cc", "prm")]
    doc = load_results(b.path)
    row = next(r for r in lb.rows if r.model == "qwen-math-b" and r.estimator == "prm")
    for task in lb.tasks:
        for m in lb.metrics:
            entry = doc["tasks"][task]["estimators"]["prm"]["metrics"][m]
            cell = row.cell(task, m)
            assert cell.value == entry["value"] and [cell.lo, cell.hi] == entry["ci"]


def test_mean_over_tasks_with_independent_interval(runs):
    a, _, _ = runs
    doc = load_results(a.path)
    lb = build_leaderboard([doc])
    row = next(r for r in lb.rows if r.estimator == "consistency")
    per_task = [doc["tasks"][t]["estimators"]["consistency"]["metrics"]["cc_brier"] for t in TASKS]
    (v1, (l1, h1)), (v2, (l2, h2)) = [(m["value"], m["ci"]) for m in per_task]
    mean = (v1 + v2) / 2
    lo = mean - math.sqrt((v1 - l1) ** 2 + (v2 - l2) ** 2) / 2
    hi = mean + math.sqrt((h1 - v1) ** 2 + (h2 - v2) ** 2) / 2
    got = row.cell(MEAN, "cc_brier")
    assert got.value == pytest.approx(mean, abs=1e-15)
    assert (got.lo, got.hi) == (pytest.approx(lo, abs=1e-15), pytest.approx(hi, abs=1e-15))
    assert (l1 + l2) / 2 <= got.lo <= got.value <= got.hi <= (h1 + h2) / 2
    # a single task: the mean column is that task's own cell, interval included
    single = build_leaderboard([doc], ["cc_brier"])
    only = build_leaderboard([{**doc, "tasks": {"math_a": doc["tasks"]["math_a"]}}], ["cc_brier"])
    assert only.rows[0].cell(MEAN, "cc_brier") == only.rows[0].cell("math_a", "cc_brier")
    assert single.rows[0].cell(MEAN, "cc_brier").lo is not None


def test_mean_cell_edge_cases():
    assert mean_cell([Cell(0.1, 0.0, 0.2), Cell(None)]) == Cell(None)  # a missing task: no mean
    assert mean_cell([Cell(0.1), Cell(0.3, 0.2, 0.4)]) == Cell(pytest.approx(0.2))  # no interval
    assert mean_cell([]) == Cell(None)


def test_mixing_suites_warns(runs, capsys):
    a, b, c = runs
    assert load_leaderboard([a.path, c.path]).warnings == []  # same suite and version
    lb = load_leaderboard([a.path, b.path])
    assert any("different suites" in w and "qwen-b: no suite" in w for w in lb.warnings)
    assert main(["leaderboard", str(a.path), str(b.path)]) == 0
    captured = capsys.readouterr()
    assert "capcal: warning: runs come from different suites" in captured.err
    assert "> **warning:** runs come from different suites" in captured.out


def test_markdown(runs, capsys):
    a, _, _ = runs
    assert main(["leaderboard", str(a.path)]) == 0
    out = capsys.readouterr().out
    doc = load_results(a.path)
    cc = doc["tasks"]["math_a"]["estimators"]["consistency"]["metrics"]["cc_brier"]
    assert out.startswith("# capcal leaderboard")
    assert "## Mean over tasks" in out and "## CC-Brier ↓" in out and "## AUROC ↑" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("| qwen-math-a | consistency |")
                and f"{cc['value']:.3f}" in ln)
    assert fmt_cell(Cell(cc["value"], *cc["ci"])) in line
    header = next(ln for ln in out.splitlines() if ln.startswith("| Model | Estimator | math_a"))
    assert header.count("|") == 6  # model, estimator, two tasks, mean


def test_csv_round_trips_numbers(runs, tmp_path):
    a, b, _ = runs
    out = tmp_path / "lb.csv"
    assert main(["leaderboard", str(a.path), str(b.path), "--format", "csv", "--output", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 8
    doc = load_results(a.path)
    row = next(r for r in rows if r["model"] == "qwen-math-a" and r["estimator"] == "prm")
    entry = doc["tasks"]["math_b"]["estimators"]["prm"]["metrics"]["auroc"]
    assert float(row["math_b.auroc"]) == entry["value"]
    assert [float(row["math_b.auroc.lo"]), float(row["math_b.auroc.hi"])] == entry["ci"]
    assert row["suite"] == "capcal-v1@1.0" and row["run"] == "qwen-a"


def test_output_dir_writes_all_four_formats(runs, tmp_path):
    a, b, _ = runs
    assert main(["leaderboard", str(a.path), str(b.path), "--output-dir", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["leaderboard.csv", "leaderboard.html", "leaderboard.json", "leaderboard.md"]
    data = json.loads((tmp_path / "leaderboard.json").read_text())
    assert data["tasks"] == ["math_a", "math_b"] and len(data["rows"]) == 8
    assert set(data["rows"][0]["cells"]) == {"math_a", "math_b", "mean"}


def test_html_is_self_contained_with_plots(runs):
    a, b, _ = runs
    html = render(load_leaderboard([a.path, b.path]), "html")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)  # nothing fetched from a network
    assert "<link" not in html and "<script src" not in html
    # 2 runs x 2 tasks x (2 reliability + pass@k + budget) plots, each with drawn series
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 16 and all('class="series"' in s for s in svgs)
    assert html.count('<table class="sortable"') == 1 + len(DEFAULT_METRICS)
    assert 'data-value="' in html and "addEventListener(\"click\"" in html


def test_bad_input_is_one_line(runs, capsys, tmp_path):
    a, _, _ = runs
    assert main(["leaderboard", str(a.path), "--metrics", "cc_brierr"]) == 2
    assert "unknown metric 'cc_brierr'" in capsys.readouterr().err
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "no results file" in capsys.readouterr().err


def test_failures_and_flags_are_listed(tmp_path, data_dir):
    """NaN confidences (with their reasons), reply parse rates and the samples-overlap flag of an estimator's
    meta reach the leaderboard as notes (Markdown section and HTML list); clean estimators stay silent."""
    from capcal.rundir import RunDir

    rd = make_run(tmp_path, data_dir, "flags", model_id="qwen-flags", tasks={"math": slice(0, 40)})
    rd = RunDir(rd)
    conf, _, _ = rd.estimator_output("math", "prm")
    conf[[3, 7, 11]] = np.nan
    reasons = ["unparseable reply" if not math.isfinite(p) else None for p in conf]
    rd.write_estimator("math", "prm", rd.targets("math").ids, conf, reasons,
                       {"parse_rate": 0.5, "final_parse_rate": 0.925})
    conf_c, reasons_c, _ = rd.estimator_output("math", "consistency")
    rd.write_estimator("math", "consistency", rd.targets("math").ids, conf_c, reasons_c, {"samples_overlap_mu": True})
    write_results(rd.path, n_boot=20, seed=0)
    lb = load_leaderboard([rd.path])
    assert lb.notes == [
        "flags/math/consistency: computed from the samples that define mu",
        "flags/math/prm: failed on 3 of 40 questions (unparseable reply: 3); reply parse rate 0.925 (first try 0.5)",
    ]
    md = render(lb, "md")
    assert "## Failures and flags" in md and "- flags/math/prm: failed on 3 of 40 questions" in md
    assert "<h2>Failures and flags</h2>" in render(lb, "html")
    assert json.loads(render(lb, "json"))["notes"] == lb.notes


def test_markdown_task_summary_has_mu_and_bernoulli_variance(runs):
    """The Markdown starts with one line per run x task: questions, n, mean mu and mean mu(1 - mu), the
    latter equal to the value computed from the targets."""
    from capcal.rundir import RunDir

    a = runs[0]
    md = render(load_leaderboard([RunDir(a).path]), "md")
    t = RunDir(a).targets("math_a")
    expected = f"| `qwen-a` | math_a | 50 | 8 | {float(t.mu.mean()):.3f} | {float((t.mu * (1 - t.mu)).mean()):.3f} |"
    assert expected in md, md[:800]
