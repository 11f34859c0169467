"""Factories of the built-in model backends and the parser of ``--model_args``.

``capcal run --model NAME --model_args k=v,k2=v2`` (the lm-evaluation-harness convention) calls
``BUILTIN_MODELS[NAME](**parse_model_args(...))``. Backends are imported only when a factory is called, so
listing models needs neither torch nor a server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import ModelError, build_from_options
from .base import ModelBackend

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def convert_value(text: str) -> Any:
    """Convert one ``--model_args`` value: int, float, bool (``true``/``false``, any case), ``none``/``null``
    -> ``None``; anything else stays a string. Quoted values are always strings (quotes removed)."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _split_top_level(spec: str) -> list[str]:
    """Split on commas outside single or double quotes; an unclosed quote is an error."""
    parts, current, quote = [], [], None
    for ch in spec:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            current.append(ch)
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quote:
        raise ModelError(f"malformed --model_args {spec!r}: unclosed {quote} quote")
    parts.append("".join(current))
    return parts


def parse_model_args(spec: str | None) -> dict[str, Any]:
    """Parse ``"k=v,k2=v2"`` into a dict with int / float / bool / None conversion.

    A value that holds commas is quoted: ``base_urls="http://a:8000/v1,http://b:8000/v1"``. An empty or
    whitespace-only spec gives ``{}``; a trailing comma is allowed.

    Raises:
        capcal.errors.ModelError: a part without ``=``, an empty or invalid key, a repeated key, or an
            unclosed quote (one line naming the offending part).
    """
    if spec is None or not spec.strip():
        return {}
    out: dict[str, Any] = {}
    parts = _split_top_level(spec.strip())
    if parts and not parts[-1].strip():
        parts = parts[:-1]
    for part in parts:
        if "=" not in part:
            raise ModelError(f"malformed --model_args {spec!r}: {part.strip()!r} is not key=value")
        key, value = (s.strip() for s in part.split("=", 1))
        if not _KEY.fullmatch(key):
            raise ModelError(f"malformed --model_args {spec!r}: bad key {key!r} in {part.strip()!r}")
        if key in out:
            raise ModelError(f"malformed --model_args {spec!r}: key {key!r} given twice")
        out[key] = convert_value(value)
    return out


def _call(name: str, cls: type, kwargs: dict[str, Any]) -> ModelBackend:
    """Call ``cls(**kwargs)``, turning unknown or missing arguments into one-line ModelErrors."""
    return build_from_options(cls, kwargs, where=f"model {name!r}", noun="--model_args", error=ModelError,
                              quote=False)


_ENGINES = ("auto", "llamacpp", "transformers")


def _model_alias(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Accept lm-eval's ``pretrained=`` for ``model=`` and make the model a string (``model=7`` is a name)."""
    if "pretrained" in kwargs:
        if "model" in kwargs:
            raise ModelError(f"model {name!r}: give either model= or pretrained=, not both")
        kwargs["model"] = kwargs.pop("pretrained")
    if "model" in kwargs and kwargs["model"] is not None:
        kwargs["model"] = str(kwargs["model"])
    return kwargs


def embedded(**kwargs: Any) -> ModelBackend:
    """The embedded SmolLM2-135M-Instruct (no server, no download).

    ``engine``: ``llamacpp`` (llama.cpp in process: the default when llama-cpp-python is installed; args
    n_ctx, n_parallel, n_threads, cache_dir) or ``transformers`` (the fallback; args batch_size, dtype,
    device, cache_dir, num_threads). Hidden states (probes) always come from transformers."""
    from .embedded import EmbeddedBackend
    from .llamacpp_backend import EmbeddedLlamaBackend, llama_cpp_available

    engine = kwargs.pop("engine", "auto")
    if engine not in _ENGINES:
        raise ModelError(f"model 'embedded': engine must be one of {', '.join(_ENGINES)}, got {engine!r}")
    if engine == "auto":
        hf_only = {"batch_size", "dtype", "device", "num_threads"} & set(kwargs)
        engine = "llamacpp" if llama_cpp_available() and not hf_only else "transformers"
    if engine == "llamacpp":
        return _call("embedded", EmbeddedLlamaBackend, kwargs)
    return _call("embedded", EmbeddedBackend, kwargs)


def hf(**kwargs: Any) -> ModelBackend:
    """A transformers model: ``model=`` (or lm-eval's ``pretrained=``) id or path, plus gguf_file, dtype,
    device, batch_size, name, revision, num_threads."""
    from .hf_backend import HFBackend

    return _call("hf", HFBackend, _model_alias("hf", kwargs))


def openai(**kwargs: Any) -> ModelBackend:
    """An OpenAI-compatible server (see :class:`capcal.models.openai_backend.OpenAIBackend` for the args)."""
    try:
        from .openai_backend import OpenAIBackend
    except ImportError as exc:
        raise ModelError(f"the openai backend is unavailable: {exc}") from None
    return _call("openai", OpenAIBackend, kwargs)


def llamacpp(**kwargs: Any) -> ModelBackend:
    """llama.cpp in process (llama-cpp-python): ``model=`` a .gguf path or a model name (default
    smollm2-135m), plus n_ctx, n_parallel, n_threads, n_batch, n_gpu_layers, name, verbose."""
    from .llamacpp_backend import LlamaCppBackend

    return _call("llamacpp", LlamaCppBackend, _model_alias("llamacpp", kwargs))


BUILTIN_MODELS: dict[str, Callable[..., ModelBackend]] = {"embedded": embedded, "hf": hf, "llamacpp": llamacpp,
                                                          "openai": openai}
