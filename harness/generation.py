"""Drawing completions for estimators through any backend, with a durable per-estimator cache.

Public for plugin authors: an estimator that calls the model uses :func:`generate_many` with a
:class:`CompletionCache` in ``ctx.cache_dir``, and :func:`derived_seeds` for draws of its own.

Estimators that call the model (verbalized, P(True) through ``generate``, consistency with extra samples)
store every completion they receive in a JSON Lines file inside the run's cache folder, keyed by
(backend, model, messages, sampling parameters, seed). A re-run reads them back and never asks the
backend again for a stored completion; a torn last line (a killed run) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .models.base import Completion, GenerationRequest, Messages, ModelBackend, SamplingParams

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    pass

__all__ = ["CompletionCache", "completion_key", "derived_seeds", "generate_many", "model_identity"]

_IDENTITY_KEYS = ("backend", "model", "gguf_file", "revision", "dtype")


def model_identity(backend: ModelBackend) -> dict:
    """What identifies the model behind a backend: kind, model, weights file, revision, dtype.

    Volatile settings of ``describe()`` (concurrency, whether a server honours ``n``, URLs) are left out,
    so that cached results survive a change of server or batch size.
    """
    desc = backend.describe()
    return {k: desc.get(k) for k in _IDENTITY_KEYS if desc.get(k) is not None}


def completion_key(backend: ModelBackend, messages: Messages, params: SamplingParams, seed: int) -> str:
    """sha256 over what determines a completion: model identity, messages, parameters and seed."""
    payload = json.dumps([model_identity(backend), messages, params.to_dict(), int(seed)], sort_keys=True,
                         ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def derived_seeds(run_seed: int, stream: str, index: int, count: int) -> list[int]:
    """``count`` seeds in [0, 2**31) for question ``index``, from a stream named ``stream``.

    Different stream names give (with overwhelming probability) seeds disjoint from each other and from
    the small integers a run uses for its own samples, so extra samples are new draws.
    """
    import numpy as np

    tag = int.from_bytes(hashlib.sha256(stream.encode()).digest()[:4], "little")
    state = np.random.SeedSequence([int(run_seed) & 0xFFFFFFFF, tag, int(index)]).generate_state(count)
    return [int(s) & 0x7FFFFFFF for s in state]


class CompletionCache:
    """Append-only JSON Lines cache of completions (one line per completion, fsynced after each batch).

    Args:
        path: the cache file, or ``None`` for no caching (everything is requested from the backend).
    """

    def __init__(self, path: Path | None):
        self.path = Path(path) if path is not None else None
        self._rows: dict[str, Completion] = {}
        if self.path is not None and self.path.exists():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        row = json.loads(line)
                        self._rows[row["key"]] = Completion.from_dict(row["completion"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue  # a torn line from a killed run: that completion is requested again

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def get(self, key: str) -> Completion | None:
        return self._rows.get(key)

    def put(self, pairs: Sequence[tuple[str, Completion]]) -> None:
        for key, completion in pairs:
            self._rows[key] = completion
        if self.path is None or not pairs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            for key, completion in pairs:
                fh.write(json.dumps({"key": key, "completion": completion.to_dict()}, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def generate_many(
    backend: ModelBackend,
    prompts: Sequence[Messages],
    seeds: Sequence[Sequence[int]],
    params: SamplingParams,
    cache: CompletionCache | None = None,
    desc: str = "estimator",
) -> list[list[Completion]]:
    """Draw ``len(seeds[i])`` completions of ``prompts[i]`` for every i, reusing cached ones.

    Args:
        backend: any :class:`ModelBackend`.
        prompts: (Q,) chat messages.
        seeds: (Q,) per prompt, the seeds of the wanted samples (one completion per seed).
        params: sampling parameters, sent explicitly.
        cache: where completions are kept between runs (``None``: no cache).
        desc: label of the progress bar (shown on a terminal only).

    Returns:
        (Q,) lists of completions, aligned with ``seeds``.
    """
    from tqdm import tqdm

    cache = cache if cache is not None else CompletionCache(None)
    keys = [[completion_key(backend, m, params, s) for s in ss] for m, ss in zip(prompts, seeds, strict=True)]
    requests = []
    for m, ss, ks in zip(prompts, seeds, keys, strict=True):
        todo = [(k, s) for k, s in zip(ks, ss, strict=True) if k not in cache]
        if todo:
            requests.append(GenerationRequest(messages=m, params=params, sample_ids=[k for k, _ in todo],
                                              seeds=[s for _, s in todo]))
    if requests:
        total = sum(len(r.sample_ids) for r in requests)
        with tqdm(total=total, desc=desc, unit="sample", disable=None, leave=False) as bar:
            backend.generate(requests, on_result=cache.put, progress=bar.update)
    out = []
    for ks in keys:
        row = [cache.get(k) for k in ks]
        out.append([c if c is not None else Completion(text="", finish_reason="missing") for c in row])
    return out
