"""Fixtures of the metrics tests: the real graded matrix of ../shared/data/graded/qwen25math_math_cot_100.

100 MATH problems x 8 Qwen2.5-Math samples, each graded by the Qwen rule-based grader (``score``), with a
reward-model score per sample (``pred_score``). The reward model gives a real, question-level confidence:
the logistic of the mean reward of the 8 samples, centred on the mean over all questions.

Use: ``from metrics_fixtures import graded_fixture  # noqa: F401`` registers the fixture ``graded``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from capcal.rundir import Targets

GRADED = Path("graded") / "qwen25math_math_cot_100" / "math_cot_100.jsonl"


def load_graded(data_dir: Path) -> tuple[list[dict], Targets, np.ndarray]:
    """(raw rows, Targets with designated sample 0, reward-model confidence (Q,))."""
    rows = [json.loads(line) for line in (data_dir / GRADED).read_text(encoding="utf-8").splitlines() if line]
    targets = Targets.from_rows([{"id": str(r["idx"]), "correct": [int(bool(s)) for s in r["score"]],
                                  "designated": 0} for r in rows])
    reward = np.array([np.mean([s[0] for s in r["pred_score"]]) for r in rows])
    conf = 1.0 / (1.0 + np.exp(-(reward - reward.mean())))
    return rows, targets, conf


@pytest.fixture(scope="session", name="graded")
def graded_fixture(data_dir):
    """The real graded matrix: ``(rows, targets, reward_confidence)``."""
    return load_graded(data_dir)
