"""Shared helpers for the grader tests: the Qwen2.5-Math labelled generations of ``../shared/data/graded``."""

from __future__ import annotations

import json
from pathlib import Path

GRADED = Path("graded") / "qwen25math_math_cot_100" / "math_cot_100.jsonl"


def load_qwen_math(data_dir: Path) -> list[dict]:
    """The 100 rows (each: ``question``, ``gt``, ``level``, 8 ``response`` texts, 8 ``score`` labels)."""
    with open(data_dir / GRADED, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    assert len(rows) == 100 and sum(len(r["response"]) for r in rows) == 800
    return rows


def to_grade_input(rows: list[dict]) -> list[dict]:
    """One ``capcal grade`` input line per response: ``doc`` in the MATH-500 schema, plus ``response``.

    The graded file has no ``subject`` column; it is written as an empty string (the math500 spec maps it).
    """
    lines = []
    for row in rows:
        doc = {"problem": row["question"], "answer": row["gt"], "subject": "", "level": row["level"],
               "unique_id": f"qwen25math_math_cot_100/{row['idx']}"}
        for j, (response, label) in enumerate(zip(row["response"], row["score"], strict=True)):
            lines.append({"doc": doc, "response": response, "label": bool(label), "sample": j})
    return lines
