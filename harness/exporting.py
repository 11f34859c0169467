"""Writing a capcal run in another tool's layout (``capcal export --format official RUN``).

``official``: the paper's official code's files (:mod:`capcal.formats.official`), so that its scripts
(consistency, verbalized and P(True) with ``--ground_truth_jsonl``, the applications) read capcal's samples:
``OUT/outputs/<task>-<split>__<model>/{sampled,ground_truth}.jsonl`` + ``ground_truth_summary.json`` and
``OUT/estimator_results/<estimator>/<task>-<split>__<model>/confidence_predictions_cc.jsonl``. Question ids
are ``<task>_<split>_<row>`` (the official naming; its response-calibration scripts parse the row number).
``capcal import --format official OUT/outputs/<...>`` reads it back, confidences included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .errors import CapcalError, RunDirError
from .formats.official import official_question, write_official
from .registry import Registry, get_registry
from .rundir import RunDir, completion_token_count
from .store import SampleStore

EXPORT_FORMATS = ("official",)

__all__ = ["EXPORT_FORMATS", "export_run"]


def export_run(run_dir: str | Path, output: str | Path, fmt: str = "official", *, tasks: list[str] | None = None,
               data_dir: str | Path | None = None, registry: Registry | None = None) -> list[dict[str, Any]]:
    """Export the evaluation split of each task of a run.

    Args:
        run_dir: a sampled or imported run directory.
        output: the folder to write into (created).
        fmt: ``"official"``.
        tasks: the tasks to export (default: every task with targets).
        data_dir: the tasks' data mirror (default: the run's).

    Returns:
        Per task ``{"task", "outputs": folder, "estimators": {name: file}, "questions", "samples"}``.

    Raises:
        CapcalError: unknown format, not a run directory, a task the run does not have.
    """
    if fmt not in EXPORT_FORMATS:
        raise CapcalError(f"--format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    rd = RunDir(run_dir)
    config = rd.config
    have = rd.tasks()
    if not have:
        raise RunDirError(f"{rd.path}: no task has targets to export")
    for t in tasks or []:
        if t not in have:
            raise CapcalError(f"{rd.path} has no targets for task {t!r} (it has: {', '.join(have)})")
    registry = registry or get_registry()
    data_dir = data_dir if data_dir is not None else config.get("data_dir")
    model_id = str(config.get("model_id") or config.get("model") or "model")
    out = Path(output)
    done = []
    with SampleStore(rd.store_path) as store:
        for name in tasks or have:
            task = registry.task(name, data_dir=data_dir)
            role = (config.get("tasks", {}).get(name) or {}).get("split", "eval")
            split_name = task.split_name(role)
            pool = {str(ex.id): ex for ex in task.examples(role)}
            rows = rd.target_rows(name)
            records = store.get_records(k for r in rows for k in r["sample_keys"])
            questions = []
            for r in rows:
                ex = pool.get(str(r["id"]))
                if ex is None:
                    raise RunDirError(f"{rd.path}: question {r['id']!r} of {name} is not in the task's data; "
                                      "was it changed since the run?")
                prompt = task.render(ex)
                samples = []
                for j, key in enumerate(r["sample_keys"]):
                    rec = records.get(key)
                    if rec is None:
                        raise RunDirError(f"{rd.store_path}: sample {j} of question {r['id']!r} is missing")
                    payload, info = rec["completion"], rec.get("info") or {}
                    samples.append({"text": payload.get("text") or "", "extracted": r["extracted"][j],
                                    "correct": int(r["correct"][j]), "prompt": prompt,
                                    "prompt_tokens": info.get("prompt_tokens") or 0,
                                    "completion_tokens": info.get("completion_tokens")
                                    or completion_token_count(payload) or 0})
                questions.append({"index": int(r["index"]), "question": official_question(ex.fields),
                                  "answer": ex.fields.get("answer"), "samples": samples})
            names = rd.estimators(name)
            if "estimators" in config:
                names = [n for n in names if n in config["estimators"] or rd.is_imported_estimator(name, n)]
            ids = [str(r["id"]) for r in rows]
            estimators = {}
            for est in names:
                conf, reasons, _ = rd.estimator_output(name, est, np.array(ids, dtype=object))
                estimators[est] = (conf, reasons)
            written = write_official(out, name, split_name, model_id, questions, estimators)
            done.append({"task": name, **written, "questions": len(questions),
                         "samples": sum(len(q["samples"]) for q in questions)})
    return done
