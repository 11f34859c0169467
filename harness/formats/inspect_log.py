"""inspect_ai eval logs with epochs (``inspect eval ... --epochs k --log-format json``).

A JSON log holds ``eval`` (task, model, ``config.epochs``, ``model_generate_config``) and ``samples``: one
entry per (sample id, epoch) with ``input``, ``target``, ``output.choices[0].message.content``,
``output.choices[0].stop_reason``, ``output.usage`` and ``scores`` (``{scorer: {"value", "answer"}}``).
The epochs of one sample id are its k samples, in epoch order. The source's verdict is the first scorer's
value: ``"C"`` / 1 correct, ``"I"`` / ``"N"`` / 0 incorrect, anything else (``"P"``, partial credit) none.
A sample's question text is ``metadata["question"]`` when the task keeps it there, else its input.

The default binary ``.eval`` archive is compressed with zstd, which Python's ``zipfile`` cannot read:
convert it first with ``inspect log convert --to json LOG.eval --output-dir DIR``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DataError
from .records import ImportedQuestion, ImportedSample, SourceInfo, questions_with_samples

_STOP = {"stop": "stop", "max_tokens": "length", "model_length": "length", "content_filter": "content_filter"}


def _text(content: Any) -> tuple[str, str | None]:
    """``(answer text, reasoning)`` of a message content: a string, or a list of typed parts."""
    if isinstance(content, str) or content is None:
        return content or "", None
    texts, reasoning = [], []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict):
            if part.get("type") == "reasoning":
                reasoning.append(str(part.get("reasoning") or ""))
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
    return "".join(texts), ("".join(reasoning) or None)


def _verdict(scores: Any) -> bool | None:
    if not isinstance(scores, dict) or not scores:
        return None
    value = next(iter(scores.values()))
    value = value.get("value") if isinstance(value, dict) else value
    if value in ("C", True) or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 1):
        return True
    if value in ("I", "N", False) or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0):
        return False
    return None


def _input_text(sample: dict) -> str | None:
    meta = sample.get("metadata") or {}
    if isinstance(meta, dict) and isinstance(meta.get("question"), str):
        return meta["question"]
    value = sample.get("input")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        users = [m for m in value if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return _text(users[-1].get("content"))[0]
    return None


def read_inspect(path: str | Path) -> tuple[list[ImportedQuestion], SourceInfo]:
    """Read one inspect_ai JSON eval log (or a folder holding exactly one ``*.json`` log).

    Raises:
        DataError: a ``.eval`` archive (convert it), unreadable JSON, a log without samples.
    """
    path = Path(path)
    if path.is_dir():
        logs = sorted(path.glob("*.json"))
        if len(logs) != 1:
            evals = sorted(path.glob("*.eval"))
            hint = " (convert .eval archives: inspect log convert --to json)" if evals else ""
            raise DataError(f"{path}: expected one inspect_ai *.json log, found {len(logs)}{hint}")
        path = logs[0]
    if path.suffix == ".eval":
        raise DataError(f"{path}: a binary .eval archive (zstd-compressed); convert it first: "
                        f"inspect log convert --to json {path.name} --output-dir DIR")
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable inspect_ai JSON log ({exc})") from None
    if not isinstance(log, dict) or not isinstance(log.get("samples"), list) or not isinstance(log.get("eval"), dict):
        raise DataError(f"{path}: not an inspect_ai eval log with samples (keys 'eval' and 'samples')")
    ev = log["eval"]
    info = SourceInfo(format="inspect", path=str(path), files=[str(path)], task=ev.get("task"),
                      model_id=ev.get("model"))
    gen = ev.get("model_generate_config") or {}
    sampling = {"temperature": gen.get("temperature"), "top_p": gen.get("top_p"), "top_k": gen.get("top_k"),
                "max_tokens": gen.get("max_tokens"), "epochs": (ev.get("config") or {}).get("epochs")}
    info.sampling = {k: v for k, v in sampling.items() if v is not None}
    if log.get("status") not in (None, "success"):
        info.notes.append(f"the inspect_ai log has status {log.get('status')!r}")
    groups: dict[str, tuple[ImportedQuestion, dict[int, ImportedSample]]] = {}
    errors = 0
    for n, sample in enumerate(log["samples"]):
        where = f"{path} samples[{n}]"
        if not isinstance(sample, dict) or "id" not in sample:
            raise DataError(f"{where}: a sample without 'id'")
        sid = str(sample["id"])
        epoch = int(sample.get("epoch") or 1)
        if sid not in groups:
            raw = sample["id"]
            index = raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else None
            groups[sid] = (ImportedQuestion(where=where, id=sid, index=index, question=_input_text(sample)), {})
        q, epochs = groups[sid]
        output = sample.get("output") or {}
        choices = output.get("choices") or []
        if sample.get("error") or not choices:
            errors += 1
            text, reasoning, finish = "", None, "error"
        else:
            message = choices[0].get("message") or {}
            text, reasoning = _text(message.get("content"))
            stop = choices[0].get("stop_reason")
            finish = _STOP.get(stop, stop)
        usage = output.get("usage") or {}
        scores = sample.get("scores") or {}
        first = next(iter(scores.values()), {}) if isinstance(scores, dict) else {}
        answer = first.get("answer") if isinstance(first, dict) else None
        epochs[epoch] = ImportedSample(text=text, reasoning=reasoning, finish_reason=finish,
                                       correct=_verdict(scores), prompt_tokens=usage.get("input_tokens"),
                                       completion_tokens=usage.get("output_tokens"),
                                       extracted=None if answer is None else str(answer))
    questions = questions_with_samples(groups.values())
    if errors:
        info.notes.append(f"{errors} inspect_ai samples ended in an error (imported as failed, finish reason 'error')")
    return questions, info
