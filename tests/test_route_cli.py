"""``capcal route`` on real runs: runs built from real graded generations (Qwen2.5-Math, 100 MATH problems
x 8 samples: one run holds samples 0-3, the other samples 4-7, each with estimators computed from its own
samples) and two real runs of the embedded SmolLM2 at different temperatures."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from capcal import routing as R
from capcal.cli import main
from capcal.routing_runs import route_runs
from capcal.rundir import RunDir
from model_fixtures import embedded_backend_fixture  # noqa: F401  (registers "embedded_backend")
from report_fixtures import qwen_rows


def _write_run(root: Path, name: str, rows: list[dict], samples: slice, *, model_id: str,
               drop: int = 0, reverse: bool = False, tokens: bool = True) -> RunDir:
    """A run directory of ``rows`` restricted to ``samples``: targets, consistency over those samples,
    the reward-model score of the first of them, oracle_cc. ``drop`` leaves out the last questions;
    ``reverse`` writes the rows in reverse order (runs must be matched by id, not position)."""
    rd = RunDir(root / name)
    rd.write_config({"model": "openai", "model_id": model_id, "k": 4, "seed": 0, "tasks": {"math": {"k": 4}}})
    rows = rows[: len(rows) - drop] if drop else rows
    targets, cons, prm = [], [], []
    for r in rows:
        corr = [int(s) for s in r["score"][samples]]
        preds = r["pred"][samples]
        words = [len(resp.split()) for resp in r["response"][samples]]
        targets.append({"id": str(r["idx"]), "index": int(r["idx"]), "n": len(corr), "c": sum(corr),
                        "mu": sum(corr) / len(corr), "designated": 0, "r": corr[0], "correct": corr,
                        "extracted": preds, "sample_keys": [f"{name}-{r['idx']}-{j}" for j in range(len(corr))],
                        **({"completion_tokens": words} if tokens else {})})
        cons.append(Counter(preds).most_common(1)[0][1] / len(preds))
        prm.append(1.0 / (1.0 + np.exp(-r["pred_score"][samples.start][0])))
    if reverse:
        targets, cons, prm = targets[::-1], cons[::-1], prm[::-1]
    rd.write_targets("math", targets)
    ids = [t["id"] for t in targets]
    mu = [t["mu"] for t in targets]
    for est, p in (("consistency", cons), ("prm", prm), ("oracle_cc", mu)):
        rd.write_estimator("math", est, ids, np.array(p), [None] * len(ids), {})
    return rd


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    rows = qwen_rows(data_dir)
    root = tmp_path_factory.mktemp("route")
    return {
        "a": _write_run(root, "first-half", rows, slice(0, 4), model_id="qwen-math-samples-0-3"),
        "b": _write_run(root, "second-half", rows, slice(4, 8), model_id="qwen-math-samples-4-7", reverse=True),
        "b_short": _write_run(root, "second-half-short", rows, slice(4, 8), model_id="qwen-short", drop=10),
        "no_tokens": _write_run(root, "no-tokens", rows, slice(4, 8), model_id="qwen-nt", tokens=False),
    }


def _arrays(rd: RunDir, ids):
    rows = {r["id"]: r for r in rd.target_rows("math")}
    return np.array([rows[i]["mu"] for i in ids])


def test_route_prints_the_table_with_intervals(runs, capsys, tmp_path):
    code = main(["route", str(runs["a"].path), str(runs["b"].path), "--n-boot", "200",
                 "--output-dir", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert "routing first-half -> second-half" in out and "100 shared questions" in out
    for name in ("consistency", "prm", "oracle_cc", "large:consistency", "oracle", "random"):
        assert f"\n  {name} " in out
    line = next(ln for ln in out.splitlines() if ln.startswith("  consistency "))
    assert line.count("[") == 4                      # gain, acc@20, acc@50, decision accuracy with intervals
    assert "paired differences of the gain captured" in out and "consistency-prm" in out
    doc = json.loads((tmp_path / "out" / "route.json").read_text())
    t = doc["tasks"]["math"]
    # independent check of the point values on the id-matched arrays
    ids = [r["id"] for r in runs["a"].target_rows("math")]
    mu_s, mu_l = _arrays(runs["a"], ids), _arrays(runs["b"], ids)
    p = runs["a"].estimator_output("math", "consistency", np.array(ids, dtype=object))[0]
    want = R.routing_scores(p, mu_s, mu_l)
    got = t["routing"]["scores"]["consistency"]
    for k in ("gain", "acc@20", "acc@50", "decision_accuracy"):
        assert got[k]["value"] == pytest.approx(want[k], abs=1e-12)
        lo, hi = got[k]["ci"]
        assert lo <= got[k]["value"] <= hi
    # cost ratio from the recorded completion tokens
    tok = [np.mean([x for r in rd.target_rows("math") for x in r["completion_tokens"]]) for rd in (runs["a"], runs["b"])]
    assert t["cost_ratios"] == pytest.approx([tok[1] / tok[0]])
    assert t["routing"]["curves"]["consistency"][-1]["cost"] == pytest.approx(tok[1] / tok[0])
    csv = (tmp_path / "out" / "route_curves.csv").read_text().splitlines()
    assert csv[0] == "task,kind,series,x,cost,accuracy" and any(",routing,oracle," in ln for ln in csv)


def test_runs_are_matched_by_id_and_missing_questions_reported(runs):
    full = route_runs([runs["a"].path, runs["b"].path], n_boot=0)
    short = route_runs([runs["a"].path, runs["b_short"].path], n_boot=0)
    t = short.tasks[0]
    assert t.n_shared == 90 and t.left_out["first-half"] == 10 and t.left_out["second-half-short"] == 0
    assert any("10 question(s) not in every run are left out" in w for w in short.warnings)
    # the reversed row order of "second-half" changes nothing: values equal routing on id-matched arrays
    ids = [r["id"] for r in runs["a"].target_rows("math")][:90]
    mu_s, mu_l = _arrays(runs["a"], ids), _arrays(runs["b"], ids)
    p = runs["a"].estimator_output("math", "prm", np.array(ids, dtype=object))[0]
    assert t.routing["scores"]["prm"]["gain"]["value"] == pytest.approx(R.routing_scores(p, mu_s, mu_l)["gain"])
    assert full.tasks[0].n_shared == 100


def test_cascade_of_three_runs_and_given_cost_ratios(runs, capsys):
    code = main(["route", str(runs["a"].path), str(runs["b"].path), str(runs["no_tokens"].path),
                 "--estimator", "consistency", "--cost-ratio", "2,5", "--n-boot", "50",
                 "--output-dir", str(runs["a"].path.parent / "cascade-out")])
    out = capsys.readouterr().out
    assert code == 0 and "cascade first-half -> second-half -> no-tokens (marginal costs 2, 5)" in out
    assert "cost ratio 5 (given)" in out and "prm" not in out.split("routing")[1].split("cascade")[0]


def test_unknown_tokens_leave_the_cost_unknown(runs):
    rep = route_runs([runs["a"].path, runs["no_tokens"].path], n_boot=0)
    t = rep.tasks[0]
    assert t.cost_ratios is None and "pass --cost-ratio" in t.cost_source
    assert all(pt["cost"] is None for pt in t.routing["curves"]["prm"])
    assert t.routing["scores"]["prm"]["gain"]["value"] is not None      # the scores do not need the cost


@pytest.mark.parametrize("extra, message", [
    ([], "at least two runs"),
    (["RUN_B", "--cost-ratio", "2,3"], "needs 1 positive number"),
    (["RUN_B", "--cost-ratio", "x"], "expects numbers"),
    (["RUN_B", "--estimator", "nope"], "nope"),
    (["RUN_B", "--threshold", "2"], "threshold"),
])
def test_bad_input_is_a_one_line_error(runs, capsys, extra, message):
    extra = [str(runs["b"].path) if e == "RUN_B" else e for e in extra]
    assert main(["route", str(runs["a"].path), *extra, "--n-boot", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.model
def test_route_on_two_embedded_model_runs(tmp_path, data_dir, embedded_backend, capsys):
    """Two real runs of SmolLM2 on the same mmlu questions (temperature 1.0 and 0.5): token counts are
    recorded by the run, and ``capcal route`` scores routing between them."""
    from capcal.pipeline import run
    from capcal.runconfig import RunConfig

    rds = []
    for name, temp in (("t1.0", 1.0), ("t0.5", 0.5)):
        cfg = RunConfig(output=tmp_path / name, tasks=["mmlu"], k=3, limit=6, max_tokens=8, temperature=temp,
                        data_dir=data_dir, estimators=["logprob_mean", "oracle_cc"], bootstrap=20, progress=False,
                        seed=3)
        rds.append(run(cfg, backend=embedded_backend))
    rows = rds[0].target_rows("mmlu")
    assert all(len(r["completion_tokens"]) == 3 and all(1 <= t <= 8 for t in r["completion_tokens"]) for r in rows)
    code = main(["route", str(rds[0].path), str(rds[1].path), "--n-boot", "50"])
    out = capsys.readouterr().out
    assert code == 0 and "6 shared questions" in out and "mean completion tokens" in out
    assert "logprob_mean" in out and (rds[0].path / "route" / "route.json").exists()


def test_leaderboard_shows_routing_for_a_pair_of_models(runs):
    """Two runs without a suite by different models: the leaderboard pairs them, weaker -> stronger."""
    from capcal.report import load_leaderboard, render
    from capcal.results import write_results

    for rd in (runs["a"], runs["b"]):
        write_results(rd, n_boot=50, seed=0)
    lb = load_leaderboard([runs["a"].path, runs["b"].path])
    assert len(lb.routing) == 1
    pair = lb.routing[0]
    mus = {rd.path.name: np.mean([r["mu"] for r in rd.target_rows("math")]) for rd in (runs["a"], runs["b"])}
    assert mus[pair["small"]] <= mus[pair["large"]]
    got = pair["tasks"]["math"]["scores"]["consistency"]["gain"]
    ids = [r["id"] for r in RunDir(runs["a"].path.parent / pair["small"]).target_rows("math")]
    small, large = RunDir(runs["a"].path.parent / pair["small"]), RunDir(runs["a"].path.parent / pair["large"])
    p = small.estimator_output("math", "consistency", np.array(ids, dtype=object))[0]
    assert got["value"] == pytest.approx(R.routing_scores(p, _arrays(small, ids), _arrays(large, ids))["gain"])
    md = render(lb, "md")
    assert "## Routing" in md and f"| {pair['small_model']} → {pair['large_model']} | math | consistency |" in md
    data = json.loads(render(lb, "json"))
    assert data["routing"][0]["tasks"]["math"]["scores"]["consistency"]["gain"]["ci"][0] is not None
