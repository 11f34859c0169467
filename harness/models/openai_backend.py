"""OpenAI-compatible backend: vLLM, SGLang, llama.cpp server, or any ``/v1`` endpoint, one URL or several.

Requests go through capcal's own request loop over one ``aiohttp`` session per base URL (connection pool
sized to ``concurrency``): per request it costs about what a bare aiohttp loop costs. ``transport="sdk"`` or
``"httpx"`` sends them through :class:`openai.AsyncOpenAI` instead (the SDK's retries off, capcal's on top).

* **Bounded concurrency**: ``concurrency`` worker coroutines pull jobs from one queue, so at most
  ``concurrency`` HTTP requests are in flight over all URLs together.
* **Several base URLs**: each request goes to the least-loaded URL (fewest requests in flight, ties in
  turn); a URL that refuses connections is skipped for ``cooldown`` seconds while others answer.
* **``n`` samples per request, and a learned cap**: a request for ``k`` samples of one prompt is sent as
  ``ceil(k / max_n)`` HTTP requests with ``n`` up to ``max_n``, each seeded with the seed of its first sample
  (the :class:`~capcal.models.base.GenerationRequest` contract). When a server returns fewer choices than
  ``n`` (vLLM with a lower limit, the llama.cpp server that ignores ``n``), the backend keeps the choices it
  got (the first ones, drawn with the request's seed), learns that number as the server's cap
  (:attr:`OpenAIBackend.n_cap`), and asks for the remaining samples, and every later one, in requests of at
  most that many, each seeded with its first sample's seed: with a cap of 3 and ``k = 8`` that is 3 requests
  per question; with a cap of 1, one request per sample with its own seed.
* **Explicit sampling parameters**: every request body carries ``temperature``, ``top_p``, ``max_tokens``,
  ``seed``, ``n``, ``top_k`` and ``min_p`` (the last two as top-level JSON fields, where vLLM, SGLang and
  llama.cpp read them). ``top_k = 0`` ("off" in :class:`~capcal.models.base.SamplingParams`) is sent as the
  value that means "off" to the server: ``-1`` for vLLM and SGLang, ``0`` for the llama.cpp servers (whose
  validation rejects -1). The server is recognised from ``GET /models`` (``server="auto"``); an unknown
  server gets -1, and when it rejects that with a validation error naming ``top_k``, the backend switches to 0
  once and re-sends (never leaving ``top_k`` out, which would let a server default such as llama.cpp's 40
  truncate silently).
* **Forced answer formats**: ``SamplingParams.grammar`` (GBNF text) goes into the field the server reads:
  ``grammar`` (llama.cpp server and llama-cpp-python's server), ``guided_grammar`` (vLLM;
  ``grammar_field=structured_outputs`` sends ``{"structured_outputs": {"grammar": ...}}`` for newer vLLM),
  ``ebnf`` (SGLang). A grammar for a server that is not recognised is a one-line error naming
  ``server=`` / ``grammar_field=``, never silently dropped.
* **Modes**: ``mode="chat"`` posts ``messages`` to ``/chat/completions``; ``mode="completions"`` posts a
  ``prompt`` to ``/completions``, built from the messages by :func:`messages_to_prompt` (no chat template is
  applied: use it for base models, or render the template yourself into one user message).
* **Logprobs**: ``SamplingParams.logprobs`` / ``top_logprobs`` are requested and parsed into
  :class:`~capcal.models.base.Completion` ``tokens``, ``token_logprobs`` and ``top_logprobs``.
* **Reasoning**: ``message.reasoning_content`` (vLLM, SGLang, DeepSeek) or ``message.reasoning`` (newer vLLM,
  OpenRouter), else a leading ``<think>...</think>`` block of the text (also an unclosed ``<think>``, and a
  ``...</think>`` whose opening tag the chat template already printed) is kept in ``Completion.reasoning``,
  apart from ``Completion.text``; when the tokens spell the whole content, those of such a leading block are
  dropped from ``tokens`` (and their logprobs with them).
* **Retries**: 429 (waiting what ``retry-after-ms`` / ``Retry-After`` asks, capped at ``backoff_max``), 408,
  409, 5xx, timeouts (``timeout`` seconds per request), broken connections and unparseable or truncated
  JSON are retried with exponential backoff and jitter (``backoff_base * 2**attempt``, capped at
  ``backoff_max``, a uniformly drawn half of it added as jitter), at most ``max_retries`` times per request,
  then :class:`~capcal.errors.ModelError`. Other 4xx answers (bad request, authentication), validation
  errors reported as a 5xx (llama-cpp-python's server answers a bad field with HTTP 500) and a 200 whose body
  is an ``error`` object (``"context length exceeded"``) are not retried. Every such error quotes the
  server's own message (:func:`error_message`), e.g. ``HTTP 500: top_k: Input should be greater than or
  equal to 0``. When every URL has refused connections for ``unreachable_after`` seconds in a row,
  generation stops with ``ModelError("cannot reach ...")``.
* **Finish reasons**: each choice's ``finish_reason`` is recorded as ``"stop"``, ``"length"``,
  ``"content_filter"`` or ``"error"`` (:func:`finish_reason_of`).
* **API key**: read from the environment variable ``api_key_env`` (default ``OPENAI_API_KEY``); when unset,
  the placeholder ``"EMPTY"`` is sent (local servers need none). The key is never part of
  :meth:`OpenAIBackend.describe`; a base URL with ``user:password@`` in it is refused (one-line error that
  does not repeat the password).

Results reach ``on_result`` as soon as their HTTP request has finished (requests that finish in the same turn
of the event loop, or while a previous ``on_result`` call was running, are handed over together in one call,
so a slow durable write is made once per batch rather than once per request), in the thread that called
:meth:`OpenAIBackend.generate`: the event loop runs inside ``generate`` (when that thread already runs an
event loop, e.g. in a notebook, the loop runs in a helper thread while the caller waits, and ``on_result``
is called from that helper thread; ``agenerate`` is the coroutine to await instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError
from .base import Completion, GenerationRequest, Messages, ModelBackend, ResultCallback, SamplingParams

_MODES = {"chat": "/chat/completions", "completions": "/completions"}
_PROMPT_FORMATS = ("plain", "roles")
_RETRY_STATUS = frozenset({408, 409, 425, 429})


def messages_to_prompt(messages: Messages, prompt_format: str = "plain") -> str:
    """Turn chat messages into one prompt string for ``mode="completions"``.

    Args:
        messages: ``[{"role", "content"}, ...]``.
        prompt_format: ``"plain"``: the contents joined by a blank line (``"\\n\\n"``), no role markers, so a
            single user message is sent verbatim; ``"roles"``: each message as ``"<Role>: <content>"`` joined
            by a blank line, followed by ``"\\n\\nAssistant:"`` (a minimal transcript for base models).

    Returns:
        The prompt text. An empty message list gives ``""`` (``"Assistant:"`` with ``"roles"``).

    Raises:
        ModelError: an unknown ``prompt_format``.
    """
    if prompt_format == "plain":
        return "\n\n".join(str(m.get("content", "")) for m in messages)
    if prompt_format == "roles":
        parts = [f"{str(m.get('role', 'user')).capitalize()}: {m.get('content', '')}" for m in messages]
        parts.append("Assistant:")
        return "\n\n".join(parts)
    raise ModelError(f"unknown prompt_format {prompt_format!r}; expected one of {', '.join(_PROMPT_FORMATS)}")


def split_reasoning(content: str) -> tuple[str | None, str, int]:
    """Separate a leading think block from the answer text.

    Recognises ``<think>R</think>A`` (leading whitespace allowed), an unclosed ``<think>R`` (generation
    stopped while reasoning: the text is empty) and ``R</think>A`` without an opening tag (templates that
    print ``<think>`` into the prompt).

    Args:
        content: the generated text.

    Returns:
        ``(reasoning or None, text, offset)``: ``text`` is ``content[offset:]`` with leading whitespace
        removed, ``offset`` the index in ``content`` where ``text`` starts (0 when there is no think block).
    """
    stripped = content.lstrip()
    if stripped.startswith("<think>"):
        start = len(content) - len(stripped) + len("<think>")
        end = content.find("</think>", start)
        if end < 0:
            return content[start:].strip(), "", len(content)
        reasoning, after = content[start:end], end + len("</think>")
    else:
        end = content.find("</think>")
        if end < 0 or "<think>" in content[:end]:
            return None, content, 0
        reasoning, after = content[:end], end + len("</think>")
    rest = content[after:]
    offset = after + len(rest) - len(rest.lstrip())
    return reasoning.strip(), content[offset:], offset


def _to_num(name: str, value: Any, kind: type, minimum: float) -> Any:
    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise ModelError(f"openai backend: {name} must be a number, got {value!r}") from None
    if (isinstance(v, float) and math.isnan(v)) or v < minimum:
        raise ModelError(f"openai backend: {name} must be >= {minimum}, got {value!r}")
    return v


def _split_urls(base_url: str | Sequence[str]) -> list[str]:
    if isinstance(base_url, str):
        parts = base_url.replace("|", " ").replace(";", " ").replace(",", " ").split()
    else:
        parts = list(base_url)
    urls = [str(u).rstrip("/") for u in parts if str(u).strip()]
    if not urls:
        raise ModelError("openai backend: base_url is empty")
    for u in urls:
        p = urllib.parse.urlsplit(u)
        if p.scheme not in ("http", "https") or not p.netloc:
            raise ModelError(f"openai backend: base_url {_public_url(u)!r} is not an http(s) URL")
        if p.username is not None or p.password is not None:
            raise ModelError(f"openai backend: base_url {_public_url(u)!r} must not hold a user or password; "
                             "put the API key in the environment variable named by api_key_env")
    return urls


def _public_url(url: str) -> str:
    """The URL without a user or password in it."""
    p = urllib.parse.urlsplit(url)
    if p.username is None and p.password is None:
        return url
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    return urllib.parse.urlunsplit((p.scheme, host, p.path, p.query, p.fragment))


@dataclass(eq=False)
class _Endpoint:
    """One base URL: its client and its health."""

    url: str
    client: Any = None  # aiohttp.ClientSession or openai.AsyncOpenAI, made inside the backend's event loop
    in_flight: int = 0
    refusing_since: float | None = None  # start of the current run of refused connections
    skip_until: float = 0.0


class _Prepared:
    """One GenerationRequest, with the parts of the request body every HTTP request for it shares."""

    __slots__ = ("body", "sample_ids", "seeds", "params")

    def __init__(self, body: dict[str, Any], req: GenerationRequest):
        self.body, self.sample_ids, self.seeds, self.params = body, req.sample_ids, req.seeds, req.params


class _Rejected(Exception):
    """A request the server refused for good (4xx, a validation error, a 200 carrying an ``error``)."""

    def __init__(self, status: int, message: str, in_body: bool = False):
        super().__init__(message)
        self.status, self.message, self.in_body = status, message, in_body


class _Transient(Exception):
    """A failure worth retrying; ``wait`` is what the server asked for (seconds), if anything."""

    def __init__(self, reason: str, wait: float | None = None, refused: bool = False):
        super().__init__(reason)
        self.wait, self.refused = wait, refused


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(ms) / 1000.0)
    ra = headers.get("retry-after")
    if ra is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(ra))
    with contextlib.suppress(TypeError, ValueError, IndexError):
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(ra).timestamp() - time.time())
    return None


def _is_refused(exc: BaseException) -> bool:
    """Whether a connection error happened while connecting (nothing listens, DNS failure)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError) or type(e).__name__ in (
            "ConnectError", "ClientConnectorError", "ClientConnectorDNSError", "gaierror",
        ):
            return True
        e = e.__cause__ or e.__context__
    return False


#: Server dialects the backend knows: what "top_k off" is, and which request field carries a GBNF grammar.
#: ``generic`` is any other server: top_k off is sent as -1 (learned from the first validation error when the
#: server wants 0), and a grammar needs ``grammar_field=`` (it is never dropped silently).
DIALECTS: dict[str, dict[str, Any]] = {
    "vllm": {"top_k_off": -1, "grammar_field": "guided_grammar"},
    "sglang": {"top_k_off": -1, "grammar_field": "ebnf"},
    "llama.cpp": {"top_k_off": 0, "grammar_field": "grammar"},
    "generic": {"top_k_off": -1, "grammar_field": None},
}
_GRAMMAR_FIELDS = ("grammar", "guided_grammar", "structured_outputs", "ebnf")
#: Phrases of a request-validation error (pydantic, FastAPI, vLLM, llama.cpp): never worth retrying, even when
#: the server reports it as a 5xx.
_VALIDATION = re.compile(
    r"validation error|input should be|greater than or equal|less than or equal|must be (?:at least|at most|"
    r"greater|less|-1|non-negative|positive|between|one of|a )|field required|extra inputs are not permitted|"
    r"unexpected keyword|not supported|invalid (?:value|type|literal)|value_error|type_error",
    re.IGNORECASE,
)


def dialect_of_models(listing: Any) -> str:
    """The server dialect suggested by a ``GET /models`` answer (``owned_by`` of the first model).

    vLLM reports ``owned_by: "vllm"``, SGLang ``"sglang"``, llama.cpp's ``llama-server`` ``"llamacpp"`` and
    llama-cpp-python's server ``"me"`` (with a ``permissions`` list); anything else is ``"generic"``.
    """
    try:
        first = listing["data"][0]
        owner = str(first.get("owned_by", "")).strip().lower()
    except (KeyError, IndexError, TypeError, AttributeError):
        return "generic"
    if owner == "vllm":
        return "vllm"
    if owner == "sglang":
        return "sglang"
    if owner in ("llamacpp", "llama.cpp", "llama-cpp") or (owner == "me" and "permissions" in first):
        return "llama.cpp"
    return "generic"


def error_message(raw: bytes | str | None, limit: int = 300) -> str:
    """The server's own message in an error body, as one line of at most ``limit`` characters.

    Understands ``{"error": {"message": ...}}`` (OpenAI, vLLM, llama.cpp), ``{"error": "..."}``,
    ``{"message": ...}``, ``{"detail": "..."}`` and FastAPI/pydantic's ``{"detail": [{"loc", "msg"}, ...]}``;
    anything else is the body's text. An empty body gives ``""``.
    """
    if raw is None:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    msg = text
    with contextlib.suppress(ValueError, TypeError):
        msg = _message_of(json.loads(text)) or text
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _message_of(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, list):
        return "; ".join(m for m in (_message_of(x) for x in obj[:5]) if m)
    if not isinstance(obj, dict):
        return ""
    if "error" in obj and obj["error"]:
        inner = _message_of(obj["error"])
        if inner:
            return inner
    if "msg" in obj:  # one pydantic error: {"loc": [...], "msg": "..."}
        loc = obj.get("loc")
        where = ".".join(str(x) for x in loc if x != "body") if isinstance(loc, (list, tuple)) else ""
        return f"{where}: {obj['msg']}" if where else str(obj["msg"])
    for key in ("message", "detail"):
        if obj.get(key):
            return _message_of(obj[key])
    return ""


def _error_code(obj: Any) -> int | None:
    """An HTTP-like status inside a 200's ``error`` object (OpenRouter and proxies put one there)."""
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict):
        return None
    for key in ("code", "status"):
        with contextlib.suppress(TypeError, ValueError):
            code = int(err.get(key))
            if 100 <= code <= 599:
                return code
    return None


#: ``finish_reason`` values of servers mapped onto the four kinds capcal grades.
_FINISH = {"stop": "stop", "eos": "stop", "eos_token": "stop", "stop_sequence": "stop", "end_turn": "stop",
           "tool_calls": "stop", "function_call": "stop", "length": "length", "max_tokens": "length",
           "model_length": "length", "content_filter": "content_filter", "error": "error", "abort": "error"}


def finish_reason_of(choice: dict[str, Any]) -> str:
    """One of ``"stop"``, ``"length"``, ``"content_filter"``, ``"error"`` for a response choice.

    A choice carrying an ``error`` object, or a finish reason such as ``"abort"``, is ``"error"``; a missing
    reason (some servers send ``null`` for a finished answer) is ``"stop"``; unknown values are ``"stop"``
    when there is text, else ``"error"``.
    """
    if choice.get("error"):
        return "error"
    reason = choice.get("finish_reason")
    if reason is None:
        return "stop"
    mapped = _FINISH.get(str(reason).lower())
    if mapped is not None:
        return mapped
    msg = choice.get("message")
    text = msg.get("content") if isinstance(msg, dict) else choice.get("text")
    return "stop" if text else "error"


class OpenAIBackend(ModelBackend):
    """Sample from an OpenAI-compatible server (see the module docstring for the behaviour).

    Args:
        model: the model name sent in every request (and part of the store key). ``None``: the first id
            that ``GET <base_url>/models`` lists.
        base_url: one URL (``http://host:8000/v1``), several separated by ``,``, ``|``, ``;`` or whitespace
            (``--model_args 'base_url="http://a:8000/v1,http://b:8000/v1"'``), or a list of URLs.
        mode: ``"chat"`` or ``"completions"``.
        concurrency: most HTTP requests in flight at once, over all URLs (default 64).
        max_n: most samples asked for in one request (``n``); 1 sends one request per sample. A server that
            answers with fewer choices lowers it for the rest of the backend's life (:attr:`n_cap`).
        timeout: seconds per HTTP request (connect, and each read).
        max_retries: retries per HTTP request before :class:`~capcal.errors.ModelError`.
        backoff_base: first backoff in seconds; doubled after each retry.
        backoff_max: cap of one backoff and of an honoured ``Retry-After``, in seconds.
        unreachable_after: seconds of refused connections on every URL after which generation stops.
        cooldown: seconds a URL that refused a connection is skipped while other URLs work.
        api_key_env: environment variable holding the API key.
        prompt_format: completions mode only, see :func:`messages_to_prompt`.
        transport: ``"aiohttp"`` (default: capcal's own request loop over one ``aiohttp`` session per URL, the
            fastest), ``"sdk"`` (the ``openai`` SDK's request path over its aiohttp transport) or ``"httpx"``
            (the SDK over its default httpx transport). Without ``aiohttp`` installed, ``"aiohttp"`` falls
            back to ``"httpx"``.
        server: ``"auto"`` (ask ``GET /models`` once: vLLM, SGLang and the llama.cpp servers say who they
            are), or one of ``vllm``, ``sglang``, ``llama.cpp``, ``generic``: fixes the value sent for
            "top_k off" and the grammar field (:data:`DIALECTS`).
        top_k_off: the value sent when ``SamplingParams.top_k`` is 0 (off): ``-1`` (vLLM, SGLang) or ``0``
            (llama.cpp); ``None``: the server's dialect, corrected once from a validation error that
            names ``top_k``.
        grammar_field: the request field that carries ``SamplingParams.grammar``: ``grammar`` (llama.cpp),
            ``guided_grammar`` (vLLM), ``structured_outputs`` (newer vLLM: ``{"grammar": ...}``) or
            ``ebnf`` (SGLang); ``None``: the dialect's. A grammar for a server whose field is unknown is an
            error, never dropped.

    Raises:
        ModelError: an invalid argument, or (with ``model=None``) a server that cannot be reached.
    """

    backend = "openai"
    supports_logprobs = True

    def __init__(
        self,
        model: str | None = None,
        base_url: str | Sequence[str] = "http://127.0.0.1:8000/v1",
        *,
        mode: str = "chat",
        concurrency: int = 64,
        max_n: int = 32,
        timeout: float = 600.0,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        unreachable_after: float = 10.0,
        cooldown: float = 5.0,
        api_key_env: str = "OPENAI_API_KEY",
        prompt_format: str = "plain",
        transport: str = "aiohttp",
        server: str = "auto",
        top_k_off: int | None = None,
        grammar_field: str | None = None,
    ):
        self.base_urls = _split_urls(base_url)
        if mode not in _MODES:
            raise ModelError(f"openai backend: mode must be 'chat' or 'completions', got {mode!r}")
        if prompt_format not in _PROMPT_FORMATS:
            raise ModelError(f"openai backend: prompt_format must be one of {_PROMPT_FORMATS}, got {prompt_format!r}")
        if transport not in ("aiohttp", "sdk", "httpx"):
            raise ModelError(f"openai backend: transport must be 'aiohttp', 'sdk' or 'httpx', got {transport!r}")
        if server != "auto" and server not in DIALECTS:
            raise ModelError(f"openai backend: server must be 'auto' or one of {', '.join(DIALECTS)}, got {server!r}")
        if top_k_off is not None and top_k_off not in (0, -1):
            raise ModelError(f"openai backend: top_k_off must be 0 or -1, got {top_k_off!r}")
        if grammar_field is not None and grammar_field not in _GRAMMAR_FIELDS:
            raise ModelError(f"openai backend: grammar_field must be one of {', '.join(_GRAMMAR_FIELDS)}, "
                             f"got {grammar_field!r}")
        if transport == "aiohttp":
            try:
                import aiohttp  # noqa: F401
            except ImportError:
                transport = "httpx"
        self.mode, self.prompt_format, self.transport = mode, prompt_format, transport
        self.concurrency = _to_num("concurrency", concurrency, int, 1)
        self.max_n = _to_num("max_n", max_n, int, 1)
        self.timeout = _to_num("timeout", timeout, float, 1e-3)
        self.max_retries = _to_num("max_retries", max_retries, int, 0)
        self.backoff_base = _to_num("backoff_base", backoff_base, float, 0.0)
        self.backoff_max = _to_num("backoff_max", backoff_max, float, 0.0)
        self.unreachable_after = _to_num("unreachable_after", unreachable_after, float, 0.0)
        self.cooldown = _to_num("cooldown", cooldown, float, 0.0)
        self.api_key_env = str(api_key_env)
        self.server = server
        self._top_k_off_arg, self._grammar_field_arg = top_k_off, grammar_field
        self._path = _MODES[mode]
        self._endpoints = [_Endpoint(u) for u in self.base_urls]
        self._turn = 0
        self._n_cap: int | None = None  # learned: the most choices the server returns for one request
        self._n_full = False  # a request with n > 1 was answered in full
        self._dialect: str | None = None if server == "auto" else server
        self._top_k_off: int | None = top_k_off
        self._top_k_learned = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._headers: dict[str, str] = {}
        self.stats = {"http_requests": 0, "retries": 0, "samples": 0}
        self.model = str(model) if model else self._first_model()

    # -- configuration -----------------------------------------------------------------------------------------
    @property
    def n_honoured(self) -> bool | None:
        """Whether the server returned ``n`` choices for ``n > 1`` (``None``: not seen yet; ``False``: it
        returned fewer, see :attr:`n_cap`)."""
        if self._n_cap is not None:
            return False
        return True if self._n_full else None

    @property
    def n_cap(self) -> int | None:
        """The most choices the server returned for one request, learned from its first short answer (1 for a
        server that ignores ``n``); ``None`` while every answer had the ``n`` asked for."""
        return self._n_cap

    @property
    def dialect(self) -> str | None:
        """The server dialect in use (a key of :data:`DIALECTS`); ``None`` until the first generation."""
        return self._dialect

    def describe(self) -> dict[str, Any]:
        """Backend settings for the run configuration; no API key, no password in URLs."""
        return {
            "backend": self.backend,
            "model": self.model,
            "base_urls": [_public_url(u) for u in self.base_urls],
            "mode": self.mode,
            "prompt_format": self.prompt_format if self.mode == "completions" else None,
            "concurrency": self.concurrency,
            "max_n": self.max_n,
            "n_honoured": self.n_honoured,
            "n_cap": self._n_cap,
            "server": self._dialect or self.server,
            "top_k_off": self._top_k_off,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "backoff_base": self.backoff_base,
            "backoff_max": self.backoff_max,
            "api_key_env": self.api_key_env,
            "transport": self.transport,
        }

    def _api_key(self) -> str:
        return os.environ.get(self.api_key_env) or "EMPTY"

    def _get_models(self, url: str) -> Any:
        req = urllib.request.Request(url + "/models", headers={"Authorization": f"Bearer {self._api_key()}"})
        with urllib.request.urlopen(req, timeout=min(self.timeout, 30.0)) as r:
            return json.loads(r.read())

    def _first_model(self) -> str:
        url = self.base_urls[0] + "/models"
        try:
            data = self._get_models(self.base_urls[0])
            model = str(data["data"][0]["id"])
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            raise ModelError(f"cannot reach {_public_url(url)} to find the model name (give model=...): {e}") from None
        if self._dialect is None:
            self._dialect = dialect_of_models(data)
        return model

    def _detect_dialect(self) -> str:
        """The dialect of the first URL's server from ``GET /models``; ``generic`` when it cannot tell."""
        try:
            return dialect_of_models(self._get_models(self.base_urls[0]))
        except (OSError, ValueError, TypeError):
            return "generic"

    def _off_value(self) -> int:
        if self._top_k_off is None:
            self._top_k_off = DIALECTS.get(self._dialect or "generic", DIALECTS["generic"])["top_k_off"]
        return self._top_k_off

    def _grammar_field(self) -> str:
        field = self._grammar_field_arg or DIALECTS.get(self._dialect or "generic", DIALECTS["generic"])["grammar_field"]
        if field is None:
            raise ModelError(
                f"openai backend: a grammar (forced answer format) was asked for, but the server at "
                f"{_public_url(self.base_urls[0])} is not recognised as vLLM, SGLang or llama.cpp; give "
                f"server=vllm|sglang|llama.cpp or grammar_field={'|'.join(_GRAMMAR_FIELDS)} in --model_args")
        return field

    def _make_client(self, url: str) -> Any:
        """The HTTP client of one URL: an ``aiohttp.ClientSession``, or an ``openai.AsyncOpenAI``."""
        if self.transport == "aiohttp":
            import aiohttp

            from .. import __version__

            self._headers = {"Authorization": f"Bearer {self._api_key()}", "Content-Type": "application/json",
                             "Accept": "application/json", "User-Agent": f"capcal/{__version__}"}
            connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency,
                                             keepalive_timeout=60.0)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=self.timeout)
            return aiohttp.ClientSession(connector=connector, timeout=timeout)
        import httpx2
        import openai

        limits = httpx2.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        cls = openai.DefaultAioHttpClient if self.transport == "sdk" else openai.DefaultAsyncHttpxClient
        try:
            http_client = cls(limits=limits, timeout=self.timeout)
        except RuntimeError:  # the SDK's aiohttp extra is missing
            http_client = openai.DefaultAsyncHttpxClient(limits=limits, timeout=self.timeout)
        return openai.AsyncOpenAI(
            api_key=self._api_key(), base_url=url, max_retries=0, timeout=self.timeout, http_client=http_client
        )

    # -- request bodies ------------------------------------------------------------------------------------------
    def _base_body(self, req: GenerationRequest) -> dict[str, Any]:
        """The JSON body every HTTP request for ``req`` shares (``seed``, ``n`` and an off ``top_k`` are set
        per request)."""
        p: SamplingParams = req.params
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "min_p": p.min_p,
        }
        if p.top_k > 0:
            body["top_k"] = p.top_k
        if self.mode == "chat":
            body["messages"] = req.messages
            if p.logprobs or p.top_logprobs > 0:
                body["logprobs"] = True
                if p.top_logprobs > 0:
                    body["top_logprobs"] = p.top_logprobs
        else:
            body["prompt"] = messages_to_prompt(req.messages, self.prompt_format)
            if p.logprobs or p.top_logprobs > 0:
                body["logprobs"] = p.top_logprobs
        if p.stop:
            body["stop"] = list(p.stop)
        grammar = getattr(p, "grammar", None)
        if grammar:
            field = self._grammar_field()
            body[field] = {"grammar": grammar} if field == "structured_outputs" else grammar
        return body

    # -- parsing -------------------------------------------------------------------------------------------------
    def _completion(self, choice: dict[str, Any], seed: int, params: SamplingParams) -> Completion:
        lp = choice.get("logprobs")
        tokens = token_lps = top = None
        if self.mode == "chat":
            msg = choice["message"]
            content = msg.get("content") or ""
            reasoning = msg.get("reasoning_content") or msg.get("reasoning")
            if lp and lp.get("content") is not None:
                entries = lp["content"]
                tokens = [e["token"] for e in entries]
                token_lps = [float(e["logprob"]) for e in entries]
                if params.top_logprobs > 0:
                    top = [{t["token"]: float(t["logprob"]) for t in (e.get("top_logprobs") or ())} for e in entries]
        else:
            content = choice.get("text") or ""
            reasoning = None
            if lp and lp.get("tokens") is not None:
                tokens = list(lp["tokens"])
                token_lps = [float("nan") if v is None else float(v) for v in lp["token_logprobs"]]
                if params.top_logprobs > 0 and lp.get("top_logprobs") is not None:
                    top = [dict(d or {}) for d in lp["top_logprobs"]]
        text = content
        if not reasoning:
            reasoning, text, offset = split_reasoning(content)
            if offset and tokens is not None and "".join(tokens) == content:
                # the tokens spell the content: drop those that lie entirely inside the think block
                pos, drop = 0, 0
                for t in tokens:
                    if pos + len(t) > offset:
                        break
                    pos += len(t)
                    drop += 1
                tokens, token_lps = tokens[drop:], token_lps[drop:] if token_lps is not None else None
                top = top[drop:] if top is not None else None
        return Completion(
            text=text, reasoning=reasoning or None, finish_reason=finish_reason_of(choice), tokens=tokens,
            token_logprobs=token_lps, top_logprobs=top, seed=seed,
        )

    # -- the async core ------------------------------------------------------------------------------------------
    def _pick(self) -> _Endpoint:
        eps = self._endpoints
        if len(eps) == 1:
            return eps[0]
        now = time.monotonic()
        live = [e for e in eps if e.skip_until <= now] or eps
        self._turn += 1
        m = len(live)
        best = live[self._turn % m]
        for j in range(1, m):
            e = live[(self._turn + j) % m]
            if e.in_flight < best.in_flight:
                best = e
        return best

    def _check_reachable(self, now: float) -> None:
        if all(e.refusing_since is not None and now - e.refusing_since >= self.unreachable_after
               for e in self._endpoints):
            urls = ", ".join(_public_url(e.url) for e in self._endpoints)
            raise ModelError(f"cannot reach {urls}: connection refused for {self.unreachable_after:g} s")

    async def _send(self, ep: _Endpoint, body: dict[str, Any]) -> tuple[int, Any, bytes]:
        """One HTTP request: ``(status, headers, body bytes)``, or _Transient for a connection-level failure."""
        if self.transport == "aiohttp":
            import aiohttp

            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            try:
                async with ep.client.post(ep.url + self._path, data=data, headers=self._headers) as resp:
                    return resp.status, resp.headers, await resp.read()
            except aiohttp.ClientConnectorError:  # nothing listens, DNS failure
                raise _Transient("connection refused", refused=True) from None
            except (asyncio.TimeoutError, TimeoutError):
                raise _Transient(f"timed out after {self.timeout:g} s") from None
            except (aiohttp.ClientError, OSError) as e:  # dropped connection, broken chunked body, ...
                raise _Transient(f"connection error: {type(e).__name__}: {e}") from None
        import httpx2
        import openai

        try:
            resp = await ep.client.post(self._path, body=body, cast_to=httpx2.Response)
            return resp.status_code, resp.headers, resp.content
        except openai.APIStatusError as e:
            return e.status_code, e.response.headers, e.response.content
        except openai.APIConnectionError as e:  # includes APITimeoutError
            refused = _is_refused(e)  # (the SDK's aiohttp transport reports a refused connect as a timeout)
            if not refused and isinstance(e, openai.APITimeoutError):
                raise _Transient(f"timed out after {self.timeout:g} s") from None
            raise _Transient("connection refused" if refused else f"connection error: {e.__cause__ or e}",
                             refused=refused) from None
        except (httpx2.TransportError, OSError) as e:
            raise _Transient(f"transport error: {e}") from None
        except (openai.OpenAIError, httpx2.HTTPError, ValueError, TypeError) as e:  # not worth retrying
            raise ModelError(f"{_public_url(ep.url)}{self._path}: request failed: {e}") from None

    def _choices(self, status: int, headers: Any, raw: bytes) -> list[dict[str, Any]]:
        """The choices of one answer, or _Transient (worth retrying) / _Rejected (not worth it).

        A 200 carrying an ``error`` object (a proxy or server that reports failures in the body) is rejected
        with the server's message, unless its own code says it is transient (429, 5xx).
        """
        if 200 <= status < 300:
            try:
                obj = json.loads(raw)
            except ValueError as e:  # truncated or otherwise broken JSON
                raise _Transient(f"malformed response ({type(e).__name__}: {e})") from None
            choices = obj.get("choices") if isinstance(obj, dict) else None
            if isinstance(choices, list) and choices:
                return choices
            if isinstance(obj, dict) and obj.get("error"):
                msg = error_message(raw) or "error without a message"
                code = _error_code(obj)
                if code is not None and (code in _RETRY_STATUS or code >= 500) and not _VALIDATION.search(msg):
                    raise _Transient(f"HTTP {status} with an error object (code {code}): {msg}")
                raise _Rejected(status, msg, in_body=True)
            raise _Transient("response without choices")
        msg = error_message(raw)
        if status in _RETRY_STATUS or (status >= 500 and not _VALIDATION.search(msg)):
            raise _Transient(f"HTTP {status}: {msg}" if msg else f"HTTP {status}", _retry_after(headers))
        raise _Rejected(status, msg)

    def _learn(self, rejected: _Rejected, body: dict[str, Any], top_k: int) -> bool:
        """Correct the request from a validation error once (the "top_k off" value); True if it changed."""
        if top_k > 0 or self._top_k_off_arg is not None or self._top_k_learned:
            return False
        if "top_k" not in rejected.message.lower().replace("top-k", "top_k"):
            return False
        self._top_k_off = 0 if body.get("top_k", -1) < 0 else -1
        self._top_k_learned = True
        body["top_k"] = self._top_k_off
        return True

    def _backoff(self, ep: _Endpoint, e: _Transient, attempt: int) -> float:
        """Seconds to wait before retry ``attempt + 1``, or ModelError when retrying is over."""
        now = time.monotonic()
        if e.refused:
            if ep.refusing_since is None:
                ep.refusing_since = now
            ep.skip_until = now + self.cooldown
            self._check_reachable(now)
        if attempt >= self.max_retries:
            if e.refused:
                raise ModelError(f"cannot reach {_public_url(ep.url)}: connection refused")
            raise ModelError(f"{_public_url(ep.url)}{self._path}: giving up after {attempt + 1} attempts: {e}")
        d = min(self.backoff_max, self.backoff_base * 2.0**attempt)
        if e.wait is not None:  # the server said how long: wait that (capped), plus a little jitter
            return min(self.backoff_max, e.wait) + random.random() * 0.1 * d
        delay = d / 2 + random.random() * d / 2
        if e.refused:  # do not sleep past the moment the server counts as unreachable
            left = self.unreachable_after - (now - min(x.refusing_since or now for x in self._endpoints))
            delay = min(delay, max(0.05, left))
        return delay

    def _queue_rest(self, queue: asyncio.Queue, prep: _Prepared, lo: int, hi: int) -> None:
        """Queue samples ``lo..hi-1`` of ``prep`` in requests of at most the learned cap."""
        step = self._n_cap or self.max_n
        for a in range(lo, hi, step):
            queue.put_nowait((prep, a, min(hi, a + step)))

    async def _run_job(self, prep: _Prepared, lo: int, hi: int, queue: asyncio.Queue, state: dict) -> None:
        cap = self._n_cap
        if cap is not None and hi - lo > cap:  # queued before the cap was learned
            self._queue_rest(queue, prep, lo + cap, hi)
            hi = lo + cap
        want = hi - lo
        seed = prep.seeds[lo]
        body = dict(prep.body)
        body["seed"] = seed
        body["n"] = want
        top_k = prep.params.top_k
        if top_k <= 0:
            body["top_k"] = self._off_value()
        attempt = 0
        while True:
            ep = self._pick()
            ep.in_flight += 1
            self.stats["http_requests"] += 1
            failure: _Transient | None = None
            try:
                status, headers, raw = await self._send(ep, body)
                choices = self._choices(status, headers, raw)
            except _Transient as e:
                failure = e
            except _Rejected as e:
                if self._learn(e, body, top_k):
                    self.stats["retries"] += 1
                    continue
                hint = f" (is {self.api_key_env} set?)" if e.status in (401, 403) else ""
                what = "error in a 200 response" if e.in_body else f"HTTP {e.status}{hint}"
                raise ModelError(f"{_public_url(ep.url)}{self._path}: {what}: {e.message or 'no message'}") from None
            finally:
                ep.in_flight -= 1
            if failure is None:
                ep.refusing_since = None
                ep.skip_until = 0.0
                break
            await asyncio.sleep(self._backoff(ep, failure, attempt))
            attempt += 1
            self.stats["retries"] += 1
        got = len(choices)
        if got > 1:
            choices = sorted(choices, key=lambda c: c.get("index", 0))
        if got > want:
            choices, got = choices[:want], want
        if got < want:  # the server caps n (or ignores it): remember the cap, ask for the rest
            self._n_cap = got if self._n_cap is None else min(self._n_cap, got)
            self._queue_rest(queue, prep, lo + got, hi)
        elif want > 1:
            self._n_full = True
        params = prep.params
        try:
            results = [(prep.sample_ids[lo + i], self._completion(c, seed, params)) for i, c in enumerate(choices)]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelError(f"{_public_url(ep.url)}{self._path}: unexpected response shape: {e!r}") from None
        self.stats["samples"] += len(results)
        state["pending"].extend(results)
        state["wake"].set()

    async def _deliver(self, state: dict, done: asyncio.Event) -> None:
        """Hand finished samples to ``on_result``, coalescing those that finish in the same loop turn.

        While ``on_result`` runs (e.g. an fsynced store write) the loop is blocked and answers pile up in the
        sockets; they are then delivered together in the next call, so a slow ``on_result`` is called less
        often with bigger batches instead of once per HTTP request.
        """
        wake: asyncio.Event = state["wake"]
        on_result, progress = state["on_result"], state["progress"]
        while True:
            await wake.wait()
            await asyncio.sleep(0)  # let requests that finish in the same loop turn join the batch
            wake.clear()
            batch, state["pending"] = state["pending"], []
            if not batch:
                continue
            try:
                on_result(batch)
                if progress is not None:
                    progress(len(batch))
            except BaseException as e:
                _stop_on(e, state, done)
                return
            state["delivered"] += len(batch)
            if state["delivered"] == state["total"]:
                done.set()

    async def _worker(self, queue: asyncio.Queue, state: dict, done: asyncio.Event) -> None:
        while True:
            prep, lo, hi = await queue.get()
            try:
                await self._run_job(prep, lo, hi, queue, state)
            except BaseException as e:
                _stop_on(e, state, done)
                return

    async def agenerate(
        self,
        requests: Sequence[GenerationRequest],
        on_result: ResultCallback,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """The coroutine behind :meth:`generate`; ``on_result`` runs in the awaiting event loop's thread.

        The clients are bound to the first event loop that runs this coroutine; use one loop per backend.
        """
        if not any(req.sample_ids for req in requests):
            return
        if self._dialect is None:
            self._dialect = await asyncio.get_running_loop().run_in_executor(None, self._detect_dialect)
        for ep in self._endpoints:
            if ep.client is None:
                ep.client = self._make_client(ep.url)
        queue: asyncio.Queue = asyncio.Queue()
        n_jobs = total = 0
        step = self._n_cap or self.max_n
        for req in requests:
            k = len(req.sample_ids)
            if k == 0:
                continue
            prep = _Prepared(self._base_body(req), req)
            total += k
            for lo in range(0, k, step):
                queue.put_nowait((prep, lo, min(k, lo + step)))
                n_jobs += 1
        if n_jobs == 0:
            return
        state: dict[str, Any] = {"total": total, "delivered": 0, "pending": [], "wake": asyncio.Event(),
                                 "error": None, "on_result": on_result, "progress": progress}
        done = asyncio.Event()
        workers = [asyncio.ensure_future(self._worker(queue, state, done)) for _ in range(min(self.concurrency, n_jobs))]
        workers.append(asyncio.ensure_future(self._deliver(state, done)))
        try:
            await done.wait()
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        if state["error"] is not None:
            raise state["error"]

    def generate(self, requests: Sequence[GenerationRequest], on_result: ResultCallback,
                 progress: Callable[[int], None] | None = None) -> None:
        """Draw every sample of every request (see :meth:`ModelBackend.generate`).

        Raises:
            capcal.errors.ModelError: a URL was unreachable for ``unreachable_after`` seconds, a request
                failed ``max_retries + 1`` times, or the server rejected a request (4xx other than 408/409/429).
            Exception: whatever ``on_result`` raised (generation stops at once).
        """
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
            loop = self._loop
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                loop.run_until_complete(self.agenerate(requests, on_result, progress))
                return
            error: list[BaseException] = []

            def run() -> None:
                try:
                    loop.run_until_complete(self.agenerate(requests, on_result, progress))
                except BaseException as e:  # re-raised in the caller's thread
                    error.append(e)

            t = threading.Thread(target=run, name="capcal-openai")
            t.start()
            t.join()
            if error:
                raise error[0]

    def close(self) -> None:
        """Close the HTTP clients and the event loop."""
        with self._lock:
            loop, self._loop = self._loop, None
            clients = [e.client for e in self._endpoints if e.client is not None]
            for e in self._endpoints:
                e.client = None
            if loop is None or loop.is_closed():
                return
            if clients:

                async def close_all() -> None:
                    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)

                with contextlib.suppress(Exception):
                    loop.run_until_complete(close_all())
            loop.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self._loop is not None and not self._loop.is_closed() and not self._loop.is_running():
                self.close()


def _stop_on(error: BaseException, state: dict, done: asyncio.Event) -> None:
    """Record the first error of a generation and wake the waiter; a cancellation propagates."""
    if state["error"] is None:
        state["error"] = error
    done.set()
    if isinstance(error, asyncio.CancelledError):
        raise error
