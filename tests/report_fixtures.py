"""Real run directories for the results / leaderboard / compare tests, built from real model outputs.

The targets come from ``graded/qwen25math_math_cot_100`` in the shared data: 100 MATH problems x 8 sampled
Qwen2.5-Math solutions with correctness labels (``score``) and extracted answers (``pred``). The
estimators are computed from the same real data:

* ``consistency``: share of the most frequent extracted answer among the 8 samples;
* ``prm``: the logistic of the reward-model score (``pred_score``) of the designated sample;
* ``oracle_cc`` (p = mu) and ``constant`` (p = mean mu) reference rows.

``make_run`` writes config.json, targets and estimator files through :class:`capcal.rundir.RunDir`, exactly
the files ``capcal run`` writes; ``write_results`` then produces ``results.json`` from them.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from capcal.rundir import RunDir

QWEN_FILE = Path("graded") / "qwen25math_math_cot_100" / "math_cot_100.jsonl"


def qwen_rows(data_dir: Path) -> list[dict]:
    """The 100 rows of the Qwen2.5-Math graded file."""
    path = data_dir / QWEN_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def qwen_estimators(rows: list[dict]) -> dict[str, np.ndarray]:
    """Real confidences computed from the graded file (see the module docstring), each (100,)."""
    correct = np.array([[float(s) for s in r["score"]] for r in rows])
    mu = correct.mean(axis=1)
    consistency = np.array([Counter(r["pred"]).most_common(1)[0][1] / len(r["pred"]) for r in rows])
    reward = np.array([r["pred_score"][0][0] for r in rows], dtype=float)
    return {"consistency": consistency, "prm": 1.0 / (1.0 + np.exp(-reward)),
            "oracle_cc": mu, "constant": np.full(len(rows), mu.mean())}


def make_run(root: Path, data_dir: Path, name: str = "run", *, model_id: str = "Qwen/Qwen2.5-Math-7B-Instruct",
             suite: dict | None = None, tasks: dict[str, slice] | None = None,
             correct_fn: Callable[[np.ndarray], np.ndarray] | None = None,
             estimator_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None) -> RunDir:
    """Write a run directory ``root/name`` from the Qwen2.5-Math graded file.

    Args:
        tasks: task name -> slice of the 100 questions (default ``{"math": slice(None)}``); two tasks with
            disjoint slices make a two-task run.
        correct_fn: maps a task's (Q, 8) correctness matrix to another one (e.g. a planted accuracy drop).
        estimator_fn: maps ``{name: confidences}`` to the estimators to write (e.g. a planted regression).
    """
    tasks = tasks or {"math": slice(None)}
    all_rows = qwen_rows(data_dir)
    rd = RunDir(root / name)
    fingerprint = hashlib.sha256((data_dir / QWEN_FILE).read_bytes()).hexdigest()
    rd.write_config({
        "capcal_version": "0.1.0", "model": "openai", "model_id": model_id,
        "model_args": {"base_url": "http://127.0.0.1:8000/v1", "model": model_id, "api_key": "sk-secret"},
        "k": 8, "seed": 0, "suite": suite,
        "sampling": {"temperature": 0.7, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "max_tokens": 2048},
        "tasks": {t: {"split": "eval", "k": 8, "fingerprint": fingerprint} for t in tasks},
        "data_fingerprints": {t: fingerprint for t in tasks},
    })
    for task, part in tasks.items():
        rows = all_rows[part]
        correct = np.array([[int(s) for s in r["score"]] for r in rows])
        if correct_fn is not None:
            correct = correct_fn(correct)
        ests = qwen_estimators(rows)
        if estimator_fn is not None:
            ests = estimator_fn(ests)
        targets = []
        for r, corr in zip(rows, correct, strict=True):
            targets.append({
                "id": str(r["idx"]), "index": int(r["idx"]), "n": len(corr), "c": int(corr.sum()),
                "mu": float(corr.mean()), "designated": 0, "r": int(corr[0]), "correct": corr.tolist(),
                "extracted": [p if p else None for p in r["pred"]],
                "sample_keys": [hashlib.sha256(resp.encode()).hexdigest() for resp in r["response"]]})
        rd.write_targets(task, targets)
        ids = [t["id"] for t in targets]
        for est, p in ests.items():
            reasons = [None if np.isfinite(v) else "unparseable reply" for v in p]
            rd.write_estimator(task, est, ids, p, reasons, {"source": "qwen25math_math_cot_100"})
    return rd
