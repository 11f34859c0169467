"""A small, real OpenAI-compatible HTTP server with switchable faults, for tests and benchmarks.

It answers ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models`` on 127.0.0.1 from a
deterministic table, so the same (prompt, seed, choice index) always gives the same answer and different
seeds give different answers. It honours ``n`` (or ignores it, like the llama.cpp server), returns
``logprobs`` / ``top_logprobs`` when asked, optionally ``reasoning_content``, and injects faults.

API (in-process, the server runs in a background thread with its own event loop)::

    from stub_server import Faults, StubServer   # pytest puts tests/ on sys.path; others add it

    with StubServer(faults=Faults(rate_429=0.1, rate_500=0.1, rate_stall=0.05, rate_drop=0.05,
                                  rate_truncate=0.05, stall_s=2.0, seed=0),
                    honour_n=True) as srv:
        srv.base_url        # "http://127.0.0.1:<port>/v1"
        srv.request_log     # list of dicts, one per request received (copy), see LOG ENTRIES below
        srv.max_in_flight   # the most requests the server was handling at the same time
        srv.clear_log()

Subprocess use (e.g. a benchmark, or a test that needs the server outside its own process)::

    python tests/stub_server.py --port 0 [--no-honour-n] [--rate-429 0.1] [--rate-500 0.1]
        [--rate-stall 0.1] [--rate-drop 0.1] [--rate-truncate 0.1] [--retry-after 0.05] [--stall-s 30]
        [--fault-seed 0] [--max-faults-per-request 2] [--schedule 429,ok,drop] [--reasoning field|think]
        [--table answers.json] [--log requests.jsonl] [--no-log] [--latency-s 0] [--max-n 3]
        [--top-k-min 0] [--owned-by vllm]

prints ``PORT <port>`` on its first stdout line once it is listening, and serves until SIGTERM/SIGINT.
:func:`spawn_server` wraps that as a context manager (``with spawn_server(...) as srv: srv.base_url``).
``GET /stub/log`` returns the request log as JSON in both modes.

ANSWERS. The prompt text is the content of the last user message (chat) or the prompt (completions).
Choice ``i`` of a request with seed ``s`` is ``candidates[H(prompt, s, i) % len(candidates)]`` where ``H``
is SHA-256 and ``candidates`` is ``table[prompt]`` when the table has the prompt, else :data:`DEFAULT_CANDIDATES`.
A request without a seed uses the arrival index instead (so unseeded samples still differ). ``max_tokens``
truncates the answer to that many word tokens (``finish_reason="length"``).

TOKENS AND LOGPROBS. Tokens are the answer split as ``re.findall(r"\\s*\\S+")``; token ``t`` at position
``j`` has logprob ``-(H(prompt, s, i, j) % 1000) / 500``; ``top_logprobs`` lists the token itself followed by
``<token>~1``, ``<token>~2``, ... with logprobs 1, 2, ... lower (chat: ``logprobs.content[j]``; completions:
``logprobs.tokens`` / ``token_logprobs`` / ``top_logprobs`` as dicts). ``max_tokens`` counts answer tokens.

REASONING. ``reasoning="field"`` adds ``message.reasoning_content = "Thinking about <prompt> (seed s)."``;
``reasoning="think"`` prefixes the content with ``<think>...</think>\\n`` instead.

FAULTS (:class:`Faults`). Each request gets one outcome: ``ok``, ``429`` (with ``Retry-After`` in whole
seconds and ``retry-after-ms``), ``500``, ``stall`` (no answer for ``stall_s`` seconds, then a normal answer
if the client still listens), ``drop`` (headers and half the body sent, then the connection is closed) or
``truncate`` (200 with a body cut in the middle of the JSON, ``Content-Length`` matching the cut body) or
``error200`` (a 200 whose body is an ``error`` object, :data:`ERROR_200_MESSAGE`; in ``schedule`` only).
While ``schedule`` lasts, the i-th request received gets ``schedule[i]``. Afterwards the outcome is drawn
from the rates with ``H(fault seed, request body, attempt)``, where ``attempt`` counts earlier arrivals of the
byte-identical body: deterministic whatever the arrival order, and at most ``max_per_request`` faulty
answers per body (so a client with enough retries always finishes; ``None`` = unlimited).

LOG ENTRIES (dicts): ``i`` (arrival index), ``t`` (seconds since start), ``method``, ``path``, ``body`` (the
parsed JSON body or ``None``), ``seed``, ``n``, ``prompt`` (the prompt text), ``attempt``, ``outcome`` (as
above, or ``"bad_request"``), ``choices`` (number of choices sent, 0 unless ``ok``/``stall``), ``auth`` (the
``Authorization`` header).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

DEFAULT_CANDIDATES: tuple[str, ...] = (
    "The answer is 18.",
    "The answer is 42.",
    "Let me compute: 6 * 7 = 42. The answer is 42.",
    "I am not sure. The answer is 7.",
)
OUTCOMES = ("ok", "429", "500", "stall", "drop", "truncate")
#: Outcomes that only a ``schedule`` gives (never drawn from the rates).
SCHEDULED_ONLY = ("error200",)
#: The message of the ``error200`` outcome (a 200 whose body is an error object, as some servers send).
ERROR_200_MESSAGE = "This model's maximum context length is 2048 tokens (context length exceeded)"
_TOKEN_RE = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class Faults:
    """Which faults the server injects, and how often.

    Attributes:
        rate_429: probability of a 429 with ``Retry-After``.
        rate_500: probability of a 500.
        rate_stall: probability of stalling ``stall_s`` seconds before answering.
        rate_drop: probability of closing the connection in the middle of the response.
        rate_truncate: probability of a 200 whose JSON body is cut in the middle.
        retry_after: seconds announced by a 429 (``retry-after-ms`` exact, ``Retry-After`` rounded up).
        stall_s: how long a stall lasts (make it longer than the client's timeout).
        seed: seed of the fault draws.
        max_per_request: at most this many faulty answers to the same request body; ``None`` = unlimited.
        schedule: outcomes (from :data:`OUTCOMES`) of the first ``len(schedule)`` requests, in arrival order.
    """

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_stall: float = 0.0
    rate_drop: float = 0.0
    rate_truncate: float = 0.0
    retry_after: float = 0.05
    stall_s: float = 30.0
    seed: int = 0
    max_per_request: int | None = 2
    schedule: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_500, self.rate_stall, self.rate_drop, self.rate_truncate)
        if any(r < 0 for r in rates) or sum(rates) > 1 + 1e-12:
            raise ValueError(f"fault rates must be >= 0 and sum to at most 1, got {rates}")
        bad = [s for s in self.schedule if s not in OUTCOMES + SCHEDULED_ONLY]
        if bad:
            raise ValueError(f"unknown outcome(s) {bad} in schedule; known: {OUTCOMES}")

    def draw(self, body: bytes, attempt: int) -> str:
        """The outcome for the ``attempt``-th arrival (0-based) of a request with this exact body."""
        if self.max_per_request is not None and attempt >= self.max_per_request:
            return "ok"
        h = hashlib.sha256(b"%d|%d|" % (self.seed, attempt) + body).digest()
        u = int.from_bytes(h[:8], "big") / 2.0**64
        for outcome, rate in zip(
            ("429", "500", "stall", "drop", "truncate"),
            (self.rate_429, self.rate_500, self.rate_stall, self.rate_drop, self.rate_truncate),
            strict=True,
        ):
            if u < rate:
                return outcome
            u -= rate
        return "ok"


def _hash_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


class _StubApp:
    """The request handlers and the shared state of one server (lives in the server's event loop)."""

    def __init__(
        self,
        *,
        model: str,
        honour_n: bool,
        faults: Faults,
        reasoning: str | None,
        table: Mapping[str, Sequence[str]] | None,
        answer_fn: Callable[[str, int, int], str] | None,
        latency_s: float,
        log: bool,
        log_path: str | None,
        max_n: int | None = None,
        top_k_min: int | None = None,
        owned_by: str = "capcal-stub",
    ):
        if reasoning not in (None, "field", "think"):
            raise ValueError(f"reasoning must be None, 'field' or 'think', got {reasoning!r}")
        self.model, self.honour_n, self.faults = model, honour_n, faults
        self.reasoning, self.table, self.answer_fn = reasoning, dict(table or {}), answer_fn
        self.latency_s, self.log_enabled = latency_s, log
        self.max_n, self.top_k_min, self.owned_by = max_n, top_k_min, owned_by
        self.log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._log_file = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
        self._attempts: dict[bytes, int] = {}
        self._arrivals = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.closing: asyncio.Event | None = None
        self.t0 = time.monotonic()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/stub/log", self.get_log)
        return app

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def _record(self, entry: dict[str, Any]) -> None:
        if not self.log_enabled:
            return
        with self._log_lock:
            self.log.append(entry)
        if self._log_file is not None:
            self._log_file.write(json.dumps(entry) + "\n")
            self._log_file.flush()

    def close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": self.owned_by}]}
        )

    async def get_log(self, request: web.Request) -> web.Response:
        with self._log_lock:
            return web.json_response(list(self.log))

    # -- answers ----------------------------------------------------------------------------------------------
    def _answer(self, prompt: str, seed: int, index: int) -> str:
        if self.answer_fn is not None:
            return self.answer_fn(prompt, seed, index)
        cands = self.table.get(prompt) or DEFAULT_CANDIDATES
        return cands[_hash_int(prompt, seed, index) % len(cands)]

    def _choice(self, prompt: str, seed: int, index: int, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        answer = self._answer(prompt, seed, index)
        tokens = _TOKEN_RE.findall(answer)
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        finish = "stop"
        if isinstance(max_tokens, int) and 0 <= max_tokens < len(tokens):
            tokens, finish = tokens[:max_tokens], "length"
        text = "".join(tokens)
        want_lp = body.get("logprobs")
        n_top = int(body.get("top_logprobs") or 0) if chat else int(want_lp or 0)
        thinking = f"Thinking about {prompt[:40]!r} (seed {seed})."
        if self.reasoning == "think":  # the think block is generated text: it has tokens and logprobs too
            tokens = _TOKEN_RE.findall(f"<think>{thinking}</think>\n{text}")
            text = "".join(tokens)
        lps = [-(_hash_int(prompt, seed, index, j) % 1000) / 500.0 for j in range(len(tokens))]
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if self.reasoning == "field":
                message["reasoning_content"] = thinking
            logprobs = None
            if want_lp:
                logprobs = {
                    "content": [
                        {
                            "token": t,
                            "logprob": lp,
                            "bytes": list(t.encode()),
                            "top_logprobs": [
                                {"token": t if r == 0 else f"{t}~{r}", "logprob": lp - r, "bytes": None}
                                for r in range(n_top)
                            ],
                        }
                        for t, lp in zip(tokens, lps, strict=True)
                    ]
                }
            return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish}
        logprobs = None
        if want_lp is not None and want_lp is not False:
            offsets = [0]
            for t in tokens[:-1]:
                offsets.append(offsets[-1] + len(t))
            logprobs = {
                "tokens": tokens,
                "token_logprobs": lps,
                "top_logprobs": [{(t if r == 0 else f"{t}~{r}"): lp - r for r in range(n_top)} for t, lp in
                                 zip(tokens, lps, strict=True)] if n_top else None,
                "text_offset": offsets,
            }
        return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}

    # -- handlers ---------------------------------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, chat=False)

    async def _handle(self, request: web.Request, chat: bool) -> web.StreamResponse:
        raw = await request.read()
        i = self._arrivals
        self._arrivals += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._respond(request, raw, i, chat)
        finally:
            self.in_flight -= 1

    async def _respond(self, request: web.Request, raw: bytes, i: int, chat: bool) -> web.StreamResponse:
        entry: dict[str, Any] = {
            "i": i, "t": round(time.monotonic() - self.t0, 6), "method": request.method, "path": request.path,
            "body": None, "seed": None, "n": None, "prompt": None, "attempt": 0, "outcome": "bad_request",
            "choices": 0, "auth": request.headers.get("Authorization"),
        }
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or "model" not in body:
                raise ValueError("body must be a JSON object with 'model'")
            if chat:
                msgs = body["messages"]
                prompt = next(m["content"] for m in reversed(msgs) if m.get("role") == "user")
            else:
                prompt = body["prompt"]
            if not isinstance(prompt, str):
                raise ValueError("prompt must be a string")
        except (ValueError, KeyError, TypeError, StopIteration) as e:
            entry["body"] = raw.decode("utf-8", "replace")
            self._record(entry)
            return web.json_response(
                {"error": {"message": f"bad request: {e!r}", "type": "invalid_request_error"}}, status=400
            )
        seed = body.get("seed")
        n = body.get("n") or 1
        top_k = body.get("top_k")
        if self.top_k_min is not None and isinstance(top_k, int) and top_k < self.top_k_min:
            # what llama-cpp-python's server does with a field that fails validation: HTTP 500, pydantic text
            entry.update(body=body, seed=seed, n=n, prompt=prompt, outcome="invalid")
            self._record(entry)
            detail = (f"1 validation error for CreateChatCompletionRequest\ntop_k\n  Input should be greater "
                      f"than or equal to {self.top_k_min} [type=greater_than_equal, input_value={top_k}]")
            return web.json_response({"error": {"message": detail, "type": "internal_server_error"}}, status=500)
        attempt = self._attempts.get(raw, 0)
        self._attempts[raw] = attempt + 1
        if i < len(self.faults.schedule):
            outcome = self.faults.schedule[i]
        else:
            outcome = self.faults.draw(raw, attempt)
        n_choices = n if self.honour_n else 1
        if self.max_n is not None:
            n_choices = min(n_choices, self.max_n)
        entry.update(body=body, seed=seed, n=n, prompt=prompt, attempt=attempt, outcome=outcome)
        if outcome in ("ok", "stall"):
            entry["choices"] = n_choices
        self._record(entry)

        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if outcome == "429":
            ra = self.faults.retry_after
            return web.json_response(
                {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                status=429,
                headers={"Retry-After": str(max(0, math.ceil(ra))), "retry-after-ms": str(int(ra * 1000))},
            )
        if outcome == "500":
            return web.json_response({"error": {"message": "internal error", "type": "server_error"}}, status=500)
        if outcome == "error200":
            return web.json_response({"error": {"message": ERROR_200_MESSAGE, "type": "invalid_request_error",
                                                "code": "context_length_exceeded"}}, status=200)
        if outcome == "stall":
            assert self.closing is not None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.closing.wait(), self.faults.stall_s)

        base_seed = seed if isinstance(seed, int) else -1 - i
        choices = [self._choice(prompt, base_seed, c, body, chat) for c in range(n_choices)]
        n_tok = sum(len(_TOKEN_RE.findall(ch["message"]["content"] if chat else ch["text"])) for ch in choices)
        payload = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-stub-{i}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
            "usage": {"prompt_tokens": len(_TOKEN_RE.findall(prompt)), "completion_tokens": n_tok,
                      "total_tokens": len(_TOKEN_RE.findall(prompt)) + n_tok},
        }
        data = json.dumps(payload).encode()
        if outcome == "truncate":
            return web.Response(body=data[: len(data) // 2], content_type="application/json")
        if outcome == "drop":
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[: len(data) // 2])
            if request.transport is not None:
                request.transport.close()
            return resp
        return web.Response(body=data, content_type="application/json")


class StubServer:
    """The stub server in a background thread of this process; a context manager.

    Args:
        faults: which faults to inject (default none).
        honour_n: return ``n`` choices (vLLM-like); ``False`` returns one choice whatever ``n`` is (llama.cpp).
        max_n: return at most this many choices per request (a server that caps ``n``); ``None``: no cap.
        top_k_min: reject a ``top_k`` below this with HTTP 500 and a pydantic validation message, as
            llama-cpp-python's server does for ``top_k: -1`` (``top_k_min=0``); ``None``: accept any.
        owned_by: the ``owned_by`` of the model in ``/v1/models`` (``"vllm"``, ``"llamacpp"``, ...).
        model: the model id reported by ``/v1/models``.
        reasoning: ``None``, ``"field"`` (``reasoning_content``) or ``"think"`` (a leading think block).
        table: prompt text -> candidate answers (else :data:`DEFAULT_CANDIDATES`).
        answer_fn: ``(prompt, seed, choice_index) -> answer``, overrides ``table`` (in-process only).
        latency_s: extra seconds before every answer.
        log: keep the request log (turn off for benchmarks).
        log_path: also append every log entry as a JSON line to this file.
        port: port to listen on (0 = a free one, read back from :attr:`port`).
    """

    def __init__(
        self,
        faults: Faults | None = None,
        honour_n: bool = True,
        *,
        model: str = "stub-model",
        reasoning: str | None = None,
        table: Mapping[str, Sequence[str]] | None = None,
        answer_fn: Callable[[str, int, int], str] | None = None,
        latency_s: float = 0.0,
        log: bool = True,
        log_path: str | None = None,
        port: int = 0,
        max_n: int | None = None,
        top_k_min: int | None = None,
        owned_by: str = "capcal-stub",
    ):
        self._state = _StubApp(
            model=model, honour_n=honour_n, faults=faults or Faults(), reasoning=reasoning, table=table,
            answer_fn=answer_fn, latency_s=latency_s, log=log, log_path=log_path, max_n=max_n,
            top_k_min=top_k_min, owned_by=owned_by,
        )
        self._want_port = port
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """A copy of the request log (see the module docstring for the entries)."""
        with self._state._log_lock:
            return list(self._state.log)

    @property
    def max_in_flight(self) -> int:
        """The largest number of requests handled at the same time so far."""
        return self._state.max_in_flight

    def clear_log(self) -> None:
        """Forget the logged requests (fault attempt counters are kept)."""
        with self._state._log_lock:
            self._state.log.clear()

    async def _start(self) -> None:
        self._state.closing = asyncio.Event()
        self._runner = web.AppRunner(self._state.make_app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._want_port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        assert self._state.closing is not None and self._runner is not None
        self._state.closing.set()
        await self._runner.cleanup()

    def start(self) -> StubServer:
        """Start listening (returns once the port is bound)."""
        ready = threading.Event()
        error: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start())
            except BaseException as e:  # reported to the starting thread
                error.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._thread = threading.Thread(target=main, name="capcal-stub-server", daemon=True)
        self._thread.start()
        ready.wait()
        if error:
            raise error[0]
        return self

    def stop(self) -> None:
        """Stop listening, end stalled requests, and join the thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self._state.close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- subprocess mode ---------------------------------------------------------------------------------------------
@dataclass
class SpawnedServer:
    """A stub server running in a child process (see :func:`spawn_server`)."""

    process: subprocess.Popen
    port: int
    log_path: str | None = None
    args: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """The request log, fetched from ``GET /stub/log``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stub/log", timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _faults_args(faults: Faults) -> list[str]:
    args = [
        "--rate-429", str(faults.rate_429), "--rate-500", str(faults.rate_500),
        "--rate-stall", str(faults.rate_stall), "--rate-drop", str(faults.rate_drop),
        "--rate-truncate", str(faults.rate_truncate), "--retry-after", str(faults.retry_after),
        "--stall-s", str(faults.stall_s), "--fault-seed", str(faults.seed),
        "--max-faults-per-request", "-1" if faults.max_per_request is None else str(faults.max_per_request),
    ]
    if faults.schedule:
        args += ["--schedule", ",".join(faults.schedule)]
    return args


@contextlib.contextmanager
def spawn_server(
    faults: Faults | None = None,
    honour_n: bool = True,
    *,
    reasoning: str | None = None,
    log: bool = True,
    log_path: str | None = None,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
):
    """Run the stub server in a child process (``python tests/stub_server.py --port 0 ...``).

    Yields:
        :class:`SpawnedServer` with ``base_url``, ``port``, ``process`` and ``request_log``.
    """
    args = [python, str(Path(__file__).resolve()), "--port", "0", *_faults_args(faults or Faults())]
    if not honour_n:
        args.append("--no-honour-n")
    if reasoning:
        args += ["--reasoning", reasoning]
    if not log:
        args.append("--no-log")
    if log_path:
        args += ["--log", log_path]
    args += list(extra_args)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"stub server did not start (exit code {proc.poll()}): {line!r}")
        srv = SpawnedServer(proc, int(line.split()[1]), log_path, args)
        yield srv
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: serve until SIGTERM or SIGINT."""
    p = argparse.ArgumentParser(description="OpenAI-compatible stub server with fault injection")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--model", default="stub-model")
    p.add_argument("--no-honour-n", dest="honour_n", action="store_false")
    p.add_argument("--max-n", type=int, default=None, help="return at most this many choices per request")
    p.add_argument("--top-k-min", type=int, default=None, help="reject a smaller top_k with a validation 500")
    p.add_argument("--owned-by", default="capcal-stub")
    p.add_argument("--reasoning", choices=["field", "think"])
    p.add_argument("--table", help="JSON file: {prompt: [candidate answers]}")
    p.add_argument("--latency-s", type=float, default=0.0)
    p.add_argument("--log", dest="log_path")
    p.add_argument("--no-log", dest="log", action="store_false")
    for name in ("429", "500", "stall", "drop", "truncate"):
        p.add_argument(f"--rate-{name}", type=float, default=0.0)
    p.add_argument("--retry-after", type=float, default=0.05)
    p.add_argument("--stall-s", type=float, default=30.0)
    p.add_argument("--fault-seed", type=int, default=0)
    p.add_argument("--max-faults-per-request", type=int, default=2, help="-1 = unlimited")
    p.add_argument("--schedule", default="", help="comma-separated outcomes of the first requests")
    a = p.parse_args(argv)
    faults = Faults(
        rate_429=a.rate_429, rate_500=a.rate_500, rate_stall=a.rate_stall, rate_drop=a.rate_drop,
        rate_truncate=a.rate_truncate, retry_after=a.retry_after, stall_s=a.stall_s, seed=a.fault_seed,
        max_per_request=None if a.max_faults_per_request < 0 else a.max_faults_per_request,
        schedule=tuple(s for s in a.schedule.split(",") if s),
    )
    table = json.loads(Path(a.table).read_text(encoding="utf-8")) if a.table else None
    srv = StubServer(
        faults, a.honour_n, model=a.model, reasoning=a.reasoning, table=table, latency_s=a.latency_s,
        log=a.log, log_path=a.log_path, port=a.port, max_n=a.max_n, top_k_min=a.top_k_min, owned_by=a.owned_by,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with srv:
        print(f"PORT {srv.port}", flush=True)
        while not stop.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
