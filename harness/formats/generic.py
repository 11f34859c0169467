"""capcal's generic import format: JSON Lines, one line per question or one line per sample.

Per question (a line with ``responses``)::

    {"id": "q1", "index": 0, "question": "What is 2+2?",
     "responses": ["The answer is 4.", {"text": "It is 5.", "correct": false, "finish_reason": "stop",
                                         "tokens": ["It", " is", " 5."], "token_logprobs": [-0.1, -0.2, -0.9],
                                         "completion_tokens": 3, "prompt_tokens": 20}],
     "correct": [true, false], "finish_reasons": ["stop", "stop"]}

Per sample (a line with ``response``)::

    {"id": "q1", "sample_index": 0, "response": "The answer is 4.", "correct": true, "finish_reason": "stop"}

Question keys (any subset; matching tries them in this order): ``id``, ``index`` (row number in the task's
split), the task's document (``doc``: an object in the task's data schema, or the document's columns at the
top level of the line), ``question`` (text, matched after normalisation). Every sample field but the text is
optional: ``correct`` (true/false or 0/1), ``finish_reason``, ``reasoning``, ``tokens``, ``token_logprobs``,
``completion_tokens``, ``prompt_tokens``, ``extracted``. In the per-question form, ``correct``,
``finish_reasons``, ``token_logprobs`` and ``completion_tokens`` may also be lists parallel to ``responses``.
Per-sample lines of one question are grouped by their question key and ordered by ``sample_index`` (else
by line order); all lines of a file use one form. See ``docs/import.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..grading import read_jsonl as iter_jsonl
from .records import (
    ImportedQuestion,
    ImportedSample,
    SourceInfo,
    as_bool,
    as_count,
    as_index,
    as_logprobs,
    as_text,
    as_tokens,
)

_QUESTION_KEYS = {"id", "index", "question", "doc", "prompt"}
_SAMPLE_KEYS = {"response", "text", "sample_index", "correct", "finish_reason", "reasoning", "tokens",
                "token_logprobs", "completion_tokens", "prompt_tokens", "extracted"}
_PARALLEL = {"responses", "correct", "finish_reasons", "token_logprobs", "completion_tokens"}


def _question_keys(obj: dict, where: str, reserved: set[str]) -> dict[str, Any]:
    qid = obj.get("id")
    if qid is not None and not isinstance(qid, (str, int)):
        raise DataError(f"{where}: 'id' must be a string or an integer, got {type(qid).__name__}")
    question = obj.get("question")
    if question is not None and not isinstance(question, str):
        raise DataError(f"{where}: 'question' must be a string")
    doc = obj.get("doc")
    if doc is not None and not isinstance(doc, dict):
        raise DataError(f"{where}: 'doc' must be a JSON object in the task's data schema")
    if doc is None:
        rest = {k: v for k, v in obj.items() if k not in reserved}
        doc = rest or None
        if doc is not None and question is not None:
            doc = {"question": question, **doc}
    prompt = obj.get("prompt")
    if prompt is not None and not (isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt)):
        raise DataError(f"{where}: 'prompt' must be a list of chat messages")
    return {"id": None if qid is None else str(qid), "index": as_index(obj.get("index"), where),
            "question": question, "doc": doc, "prompt": prompt}


def _sample(entry: Any, where: str) -> ImportedSample:
    if isinstance(entry, str) or entry is None:
        return ImportedSample(text=as_text(entry, where, "response"))
    if not isinstance(entry, dict):
        raise DataError(f"{where}: a response must be a string or an object with 'text'")
    text_key = "text" if "text" in entry else "response"
    if text_key not in entry:
        raise DataError(f"{where}: a response object needs 'text'")
    tokens = as_tokens(entry.get("tokens"), where)
    logprobs = as_logprobs(entry.get("token_logprobs"), where)
    if tokens is not None and logprobs is not None and len(tokens) != len(logprobs):
        raise DataError(f"{where}: 'tokens' ({len(tokens)}) and 'token_logprobs' ({len(logprobs)}) differ in length")
    count = as_count(entry.get("completion_tokens"), where, "completion_tokens")
    if count is None and tokens is not None:
        count = len(tokens)
    finish = entry.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise DataError(f"{where}: 'finish_reason' must be a string")
    extracted = entry.get("extracted")
    return ImportedSample(
        text=as_text(entry[text_key], where, text_key), correct=as_bool(entry.get("correct"), where),
        finish_reason=finish, reasoning=entry.get("reasoning") if isinstance(entry.get("reasoning"), str) else None,
        tokens=tokens, token_logprobs=logprobs, completion_tokens=count,
        prompt_tokens=as_count(entry.get("prompt_tokens"), where, "prompt_tokens"),
        extracted=None if extracted is None else str(extracted))


def _per_question(obj: dict, where: str) -> ImportedQuestion:
    responses = obj["responses"]
    if not isinstance(responses, list):
        raise DataError(f"{where}: 'responses' must be a list (one entry per sample)")
    samples = [_sample(r, f"{where} responses[{j}]") for j, r in enumerate(responses)]
    for key in ("correct", "finish_reasons", "token_logprobs", "completion_tokens"):
        values = obj.get(key)
        if values is None:
            continue
        if key == "token_logprobs" and values and not isinstance(values[0], list):
            raise DataError(f"{where}: 'token_logprobs' of a question must be one list per response")
        if not isinstance(values, list) or len(values) != len(samples):
            raise DataError(f"{where}: {key!r} must be a list as long as 'responses' ({len(samples)})")
        for j, (s, v) in enumerate(zip(samples, values, strict=True)):
            at = f"{where} {key}[{j}]"
            if key == "correct":
                s.correct = as_bool(v, at)
            elif key == "finish_reasons":
                if v is not None and not isinstance(v, str):
                    raise DataError(f"{at}: a finish reason must be a string")
                s.finish_reason = v
            elif key == "token_logprobs":
                s.token_logprobs = as_logprobs(v, at)
            else:
                s.completion_tokens = as_count(v, at, "completion_tokens")
    keys = _question_keys(obj, where, _QUESTION_KEYS | _PARALLEL)
    return ImportedQuestion(where=where, samples=samples, **keys)


def read_generic(path: str | Path) -> tuple[list[ImportedQuestion], SourceInfo]:
    """Read a generic JSON Lines file (module docstring; ``docs/import.md``).

    Raises:
        DataError: unreadable file, a malformed line (file and line named), both forms in one file, or two
            per-sample lines claiming the same sample of the same question.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"import source not found: {path}")
    info = SourceInfo(format="generic", path=str(path), files=[str(path)])
    questions: list[ImportedQuestion] = []
    grouped: dict[tuple, tuple[ImportedQuestion, dict[int, ImportedSample], list[ImportedSample]]] = {}
    form = None
    for lineno, obj in iter_jsonl(path):
        where = f"{path}:{lineno}"
        this = "question" if "responses" in obj else "sample" if ("response" in obj or "text" in obj) else None
        if this is None:
            raise DataError(f"{where}: a line needs 'responses' (one line per question) or 'response' "
                            "(one line per sample)")
        if form is None:
            form = this
        elif form != this:
            raise DataError(f"{where}: mixes one-line-per-{this} with the one-line-per-{form} lines above")
        if this == "question":
            questions.append(_per_question(obj, where))
            continue
        keys = _question_keys(obj, where, _QUESTION_KEYS | _SAMPLE_KEYS)
        group = ("id", keys["id"]) if keys["id"] is not None else ("index", keys["index"]) \
            if keys["index"] is not None else ("question", keys["question"]) if keys["question"] is not None \
            else ("doc", json.dumps(keys["doc"], sort_keys=True)) if keys["doc"] is not None else None
        if group is None:
            raise DataError(f"{where}: a sample line needs a question key: 'id', 'index', 'question' or 'doc'")
        sample = _sample(obj, where)
        if group not in grouped:
            q = ImportedQuestion(where=where, **keys)
            grouped[group] = (q, {}, [])
            questions.append(q)
        q, by_index, unindexed = grouped[group]
        j = as_index(obj.get("sample_index"), where, "sample_index")
        if j is None:
            unindexed.append(sample)
        elif j in by_index:
            raise DataError(f"{where}: sample_index {j} of {q.label()} appears twice")
        else:
            by_index[j] = sample
    for q, by_index, unindexed in grouped.values():
        if by_index and unindexed:
            raise DataError(f"{q.where}: some samples of {q.label()} have 'sample_index' and some do not")
        q.samples = [by_index[j] for j in sorted(by_index)] if by_index else unindexed
    if form is None:
        raise DataError(f"{path}: no lines to import")
    info.extra["form"] = f"one line per {form}"
    return questions, info
