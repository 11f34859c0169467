"""The paper's official code: its output directory, read (``capcal import``) and written (``capcal export``).

The official code (appier-research/llm-calibration) writes, per dataset split and model,
``outputs/<dataset>-<split>__<model>/``:

* ``sampled.jsonl``: one line per sample: ``example_id``, ``sampled_id`` (0..k-1), ``prompt_tokens``,
  ``completion_tokens``, ``prompt`` (chat messages), ``response``, ``parsed_response``,
  ``ground_truth_answer``, ``correctness`` (0/1);
* ``ground_truth.jsonl``: one line per question: ``example_id``, ``total_prompt_tokens``,
  ``total_completion_tokens``, ``ground_truth_answer``, ``num_samples``, ``num_correct``,
  ``expected_accuracy`` (mu), ``question``;
* ``ground_truth_summary.json``: ``num_examples``, ``k_samples``, ``mean_accuracy``, ``std_accuracy``,
  ``min_accuracy``, ``max_accuracy``;

and its estimator scripts write ``estimator_results/<method>/<dataset>-<split>__<model>/
confidence_predictions_<cc|rc>.jsonl`` (``example_id``, ``confidence``, ``parse_success``, ...; a reply it
could not parse is written as ``confidence`` 0.5 with ``parse_success: false``) and
``consistency_k<k>.jsonl``. Its question ids are ``<dataset>_<split>_<row>`` for most datasets, so the
trailing number is offered as the row index (taken only when the question text agrees).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .generic import iter_jsonl
from .records import (
    ImportedQuestion,
    ImportedSample,
    SourceInfo,
    as_bool,
    as_count,
    as_index,
    as_text,
    questions_with_samples,
)

_TRAILING_INT = re.compile(r"_(\d+)$")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _sample_file(path: Path) -> Path:
    if path.is_dir():
        path = path / "sampled.jsonl"
    if not path.is_file():
        raise DataError(f"official output: {path} not found (a directory with sampled.jsonl is expected)")
    return path


def confidence_files(run_dir: Path) -> dict[str, str]:
    """``{name: path}`` of the official estimator outputs that belong to an output directory.

    They live at ``<root>/estimator_results/<method>/<run_dir name>/`` where ``<root>`` is the folder above
    ``outputs/``: ``confidence_predictions_cc.jsonl`` becomes ``<method>``, ``..._rc.jsonl``
    ``<method>_rc`` and ``consistency_k<k>.jsonl`` ``<method>_k<k>``.
    """
    found: dict[str, str] = {}
    root = run_dir.parent.parent / "estimator_results"
    if not root.is_dir():
        return found
    for method_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        here = method_dir / run_dir.name
        if not here.is_dir():
            continue
        method = method_dir.name
        for f in sorted(here.glob("*.jsonl")):
            if f.name == "confidence_predictions_cc.jsonl":
                found[method] = str(f)
            elif f.name == "confidence_predictions_rc.jsonl":
                found[f"{method}_rc"] = str(f)
            elif m := re.fullmatch(r"consistency_k(\d+)\.jsonl", f.name):
                found[f"{method}_k{m.group(1)}"] = str(f)
    return found


def read_official(path: str | Path) -> tuple[list[ImportedQuestion], SourceInfo]:
    """Read an official output directory (or its ``sampled.jsonl``).

    Samples are grouped by ``example_id`` and ordered by ``sampled_id``; a repeated (example_id, sampled_id)
    pair (the official resume can write one twice) keeps its first line and is reported in the notes. The
    question text comes from ``ground_truth.jsonl`` when it is there; the model id from the folder name
    ``<dataset>-<split>__<model>``.

    Raises:
        DataError: no ``sampled.jsonl``, a malformed line (file and line named).
    """
    sampled = _sample_file(Path(path))
    folder = sampled.parent
    info = SourceInfo(format="official", path=str(path), files=[str(sampled)])
    if "__" in folder.name:
        info.model_id = folder.name.split("__", 1)[1]
        info.task = folder.name.split("__", 1)[0]
    texts: dict[str, str] = {}
    gt = folder / "ground_truth.jsonl"
    if gt.is_file():
        info.files.append(str(gt))
        for _lineno, row in iter_jsonl(gt):
            if "example_id" in row and isinstance(row.get("question"), str):
                texts[str(row["example_id"])] = row["question"]
    by_id: dict[str, tuple[ImportedQuestion, dict[int, ImportedSample]]] = {}
    duplicates = 0
    for lineno, row in iter_jsonl(sampled):
        where = f"{sampled}:{lineno}"
        if "example_id" not in row or "response" not in row:
            raise DataError(f"{where}: an official sample line needs 'example_id' and 'response'")
        qid = str(row["example_id"])
        j = as_index(row.get("sampled_id"), where, "sampled_id")
        if qid not in by_id:
            m = _TRAILING_INT.search(qid)
            prompt = row.get("prompt") if isinstance(row.get("prompt"), list) else None
            by_id[qid] = (ImportedQuestion(where=where, id=qid, index=int(m.group(1)) if m else None,
                                           question=texts.get(qid), prompt=prompt), {})
        q, samples = by_id[qid]
        j = len(samples) if j is None else j
        if j in samples:
            duplicates += 1
            continue
        extracted = row.get("parsed_response")
        samples[j] = ImportedSample(
            text=as_text(row["response"], where, "response"), correct=as_bool(row.get("correctness"), where, "correctness"),
            completion_tokens=as_count(row.get("completion_tokens"), where, "completion_tokens"),
            prompt_tokens=as_count(row.get("prompt_tokens"), where, "prompt_tokens"),
            extracted=None if extracted is None else str(extracted))
    questions = questions_with_samples(by_id.values())
    if duplicates:
        info.notes.append(f"{duplicates} repeated (example_id, sampled_id) lines in {sampled.name}: kept the first of each")
    info.confidences = confidence_files(folder)
    return questions, info


# -- writing ---------------------------------------------------------------------------------------------
def official_question(fields: dict[str, Any]) -> str:
    """The question as the official code shows it: multiple choice gets ``A. option`` lines appended."""
    question = str(fields.get("question", ""))
    choices = fields.get("choices") or []
    if choices:
        question = question + "\n" + "\n".join(f"{_LETTERS[i]}. {c}" for i, c in enumerate(choices))
    return question.strip()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+@:-]+", "-", name).strip("-") or "model"


def write_official(out: Path, task_name: str, split_name: str, model_id: str, questions: list[dict[str, Any]],
                   estimators: dict[str, tuple[np.ndarray, list[str | None]]]) -> dict[str, Any]:
    """Write one task split in the official layout under ``out`` (``outputs/`` and ``estimator_results/``).

    Args:
        out: the root folder (created).
        task_name, split_name: for the folder name ``<task>-<split>__<model>`` and the question ids
            ``<task>_<split>_<row>``.
        model_id: the model; its last ``/`` part names the folder.
        questions: per question ``{"index", "question", "answer", "samples": [{"text", "extracted",
            "correct", "prompt", "prompt_tokens", "completion_tokens"}]}`` in split order.
        estimators: ``{name: (confidence (Q,), reasons (Q,))}``; NaN is written as the official fallback
            (0.5 with ``parse_success: false``).

    Returns:
        ``{"outputs": folder, "estimators": {name: file}}``.
    """
    tag = f"{_safe(task_name)}-{_safe(split_name)}__{_safe(model_id.split('/')[-1])}"
    folder = out / "outputs" / tag
    folder.mkdir(parents=True, exist_ok=True)
    sampled, truth, ids = [], [], []
    for q in questions:
        qid = f"{task_name}_{split_name}_{q['index']}"
        ids.append(qid)
        for j, s in enumerate(q["samples"]):
            sampled.append({"example_id": qid, "sampled_id": j, "prompt_tokens": int(s.get("prompt_tokens") or 0),
                            "completion_tokens": int(s.get("completion_tokens") or 0), "prompt": s.get("prompt") or [],
                            "response": s["text"], "parsed_response": s.get("extracted"),
                            "ground_truth_answer": q["answer"], "correctness": int(s["correct"])})
        n = len(q["samples"])
        c = sum(int(s["correct"]) for s in q["samples"])
        truth.append({"example_id": qid,
                      "total_prompt_tokens": sum(int(s.get("prompt_tokens") or 0) for s in q["samples"]),
                      "total_completion_tokens": sum(int(s.get("completion_tokens") or 0) for s in q["samples"]),
                      "ground_truth_answer": q["answer"], "num_samples": n, "num_correct": c,
                      "expected_accuracy": c / n, "question": q["question"]})
    _write_lines(folder / "sampled.jsonl", sampled)
    _write_lines(folder / "ground_truth.jsonl", truth)
    acc = np.array([t["expected_accuracy"] for t in truth], dtype=float)
    summary = {"num_examples": len(truth), "k_samples": max((t["num_samples"] for t in truth), default=0),
               "mean_accuracy": float(acc.mean()) if len(acc) else 0.0,
               "std_accuracy": float(acc.std()) if len(acc) > 1 else 0.0,
               "min_accuracy": float(acc.min()) if len(acc) else 0.0,
               "max_accuracy": float(acc.max()) if len(acc) else 0.0}
    (folder / "ground_truth_summary.json").write_text(json.dumps(summary, indent=4), encoding="utf-8")
    written = {}
    for name, (conf, reasons) in estimators.items():
        est_dir = out / "estimator_results" / _safe(name) / tag
        est_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for qid, t, p, why in zip(ids, truth, np.asarray(conf, dtype=float), reasons, strict=True):
            ok = bool(math.isfinite(p))
            rows.append({"example_id": qid, "confidence": float(p) if ok else 0.5,
                         "expected_accuracy": t["expected_accuracy"], "num_samples": t["num_samples"],
                         "num_correct": t["num_correct"], "prompt_tokens": 0, "completion_tokens": 0, "prompt": [],
                         "response": "" if ok else str(why or "failed"),
                         "parsed_response": str(float(p)) if ok else "None", "parse_success": ok})
        path = est_dir / "confidence_predictions_cc.jsonl"
        _write_lines(path, rows)
        written[name] = str(path)
    return {"outputs": str(folder), "estimators": written}


def _write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    from ..rundir import write_atomic

    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
