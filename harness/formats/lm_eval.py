"""lm-evaluation-harness ``--log_samples`` files of a generation task with ``repeats``.

lm-eval writes ``<output_path>/<model>/samples_<task>_<timestamp>.jsonl``: one line per document *and
filter*, with ``doc_id`` (row of the task's dataset after lm-eval's own processing), ``doc`` (the raw
document), ``arguments`` (the prompt), ``resps`` (``[[r_1, ..., r_k]]``: the k repeats of the one
generation request), ``filtered_resps`` (the filter's answers), ``filter`` and one key per metric. Next to
it, ``results_<timestamp>.json`` holds the model and the task's ``generation_kwargs`` and ``repeats``.

Per-sample verdicts: lm-eval's built-in filters keep one repeat (``take_first``) or vote, so its standard
metrics are per document. A metric whose value is a list of k 0/1 values (one per repeat, as a task with a
``process_results`` that scores every repeat writes it) is read as the source's verdict of each sample;
with ``repeats: 1`` a 0/1 metric is one too. Without such a metric capcal's grader alone defines the
targets and the import says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import DataError
from .generic import iter_jsonl
from .records import ImportedQuestion, ImportedSample, SourceInfo, as_index

_STAMP = re.compile(r"_\d{4}-\d{2}-\d{2}T[\d\-.:]+$")


def _task_of(path: Path) -> str:
    return _STAMP.sub("", path.stem[len("samples_"):])


def _pick_file(path: Path, task: str | None) -> tuple[Path, list[str]]:
    notes: list[str] = []
    if path.is_file():
        return path, notes
    files = sorted(path.rglob("samples_*.jsonl"))
    if not files:
        raise DataError(f"{path}: no lm-eval samples_*.jsonl files (run lm_eval with --log_samples)")
    by_task: dict[str, list[Path]] = {}
    for f in files:
        by_task.setdefault(_task_of(f), []).append(f)
    if len(by_task) > 1:
        wanted = [t for t in by_task if t == task]
        if not wanted:
            raise DataError(f"{path} holds samples of several lm-eval tasks ({', '.join(sorted(by_task))}); "
                            "name the samples file")
        chosen = by_task[wanted[0]]
    else:
        chosen = next(iter(by_task.values()))
    if len(chosen) > 1:
        notes.append(f"{len(chosen)} samples files of the same lm-eval task: read the newest, {chosen[-1].name}")
    return chosen[-1], notes


def _results_for(samples: Path, lm_task: str) -> dict[str, Any] | None:
    for f in sorted(samples.parent.glob("results*.json"), reverse=True):
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict) and lm_task in (doc.get("configs") or {}):
            return {"path": str(f), **doc}
    return None


def _messages(arguments: Any) -> list[dict] | None:
    """The prompt of the first request as chat messages (a chat template's JSON, or a plain prompt)."""
    try:
        first = next(iter(arguments.values())) if isinstance(arguments, dict) else arguments[0]
        prompt = first["arg_0"] if isinstance(first, dict) else first[0]
    except (KeyError, IndexError, TypeError, StopIteration):
        return None
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, str):
        try:
            parsed = json.loads(prompt)
            if isinstance(parsed, list) and all(isinstance(m, dict) for m in parsed):
                return parsed
        except json.JSONDecodeError:
            pass
        return [{"role": "user", "content": prompt}]
    return None


def _per_sample_metric(lines: list[dict], k: int) -> tuple[str, str] | None:
    """``(filter, metric)`` whose value is one 0/1 verdict per repeat, if any line has one."""
    for line in lines:
        for metric in line.get("metrics") or []:
            value = line.get(metric)
            if isinstance(value, list) and len(value) == k and all(v in (0, 1) for v in value):
                return str(line.get("filter")), metric
            if k == 1 and not isinstance(value, (list, dict, str)) and value in (0, 1):
                return str(line.get("filter")), metric
    return None


def read_lm_eval(path: str | Path, task: str | None = None) -> tuple[list[ImportedQuestion], SourceInfo]:
    """Read one lm-eval samples file (or the output folder holding it); see the module docstring.

    Raises:
        DataError: no samples file, a malformed line, a task whose documents have several requests
            (log-likelihood tasks: capcal imports generations).
    """
    samples_file, notes = _pick_file(Path(path), task)
    lm_task = _task_of(samples_file)
    info = SourceInfo(format="lm_eval", path=str(path), files=[str(samples_file)], task=lm_task, notes=notes)
    by_doc: dict[int, list[tuple[str, dict]]] = {}
    for lineno, row in iter_jsonl(samples_file):
        where = f"{samples_file}:{lineno}"
        if "doc_id" not in row or "resps" not in row:
            raise DataError(f"{where}: not an lm-eval samples line (no 'doc_id' / 'resps')")
        by_doc.setdefault(as_index(row["doc_id"], where, "doc_id"), []).append((where, row))
    results = _results_for(samples_file, lm_task)
    if results is not None:
        info.files.append(results["path"])
        info.model_id = results.get("model_name") or (results.get("config") or {}).get("model")
        cfg = (results.get("configs") or {}).get(lm_task) or {}
        gen = cfg.get("generation_kwargs") or {}
        sampling = {"temperature": gen.get("temperature"), "top_p": gen.get("top_p"),
                    "max_tokens": gen.get("max_gen_toks", gen.get("max_tokens")), "do_sample": gen.get("do_sample"),
                    "stop": gen.get("until"), "repeats": cfg.get("repeats")}
        info.sampling = {k: v for k, v in sampling.items() if v is not None}
        info.extra["lm_eval_version"] = results.get("lm_eval_version")
    questions: list[ImportedQuestion] = []
    chosen: tuple[str, str] | None = None
    decided = False
    for doc_id in sorted(by_doc):
        lines = by_doc[doc_id]
        where, first = lines[0]
        resps = first["resps"]
        if not isinstance(resps, list) or len(resps) != 1 or not isinstance(resps[0], list):
            raise DataError(f"{where}: document {doc_id} has {len(resps) if isinstance(resps, list) else 0} "
                            "requests; capcal imports generation tasks (one request with k repeats)")
        texts = [r if isinstance(r, str) else "" for r in resps[0]]
        rows = [row for _, row in lines]
        if not decided:
            chosen, decided = _per_sample_metric(rows, len(texts)), True
        verdicts: list[Any] = [None] * len(texts)
        extracted: list[Any] = [None] * len(texts)
        if chosen is not None:
            line = next((r for r in rows if str(r.get("filter")) == chosen[0]), None)
            value = None if line is None else line.get(chosen[1])
            if isinstance(value, list) and len(value) == len(texts):
                verdicts = [bool(v) for v in value]
            elif len(texts) == 1 and value in (0, 1):
                verdicts = [bool(value)]
            filtered = None if line is None else line.get("filtered_resps")
            if isinstance(filtered, list) and filtered and isinstance(filtered[0], list) \
                    and len(filtered[0]) == len(texts):
                extracted = [None if a is None else str(a) for a in filtered[0]]
        doc = first.get("doc") if isinstance(first.get("doc"), dict) else None
        text = None
        if doc is not None:
            text = next((doc[k] for k in ("question", "problem", "Question") if isinstance(doc.get(k), str)), None)
        questions.append(ImportedQuestion(
            where=where, index=doc_id, question=text, doc=doc, prompt=_messages(first.get("arguments")),
            samples=[ImportedSample(text=t, correct=v, extracted=e) for t, v, e in zip(texts, verdicts, extracted,
                                                                                        strict=True)]))
    if chosen is None:
        info.notes.append("lm-eval scored each document, not each repeat (no metric with one value per repeat): "
                          "capcal's grader alone defines the targets")
    else:
        info.extra["verdicts_from"] = {"filter": chosen[0], "metric": chosen[1]}
        info.notes.append(f"per-repeat verdicts of lm-eval: metric {chosen[1]!r} of filter {chosen[0]!r}")
    return questions, info
