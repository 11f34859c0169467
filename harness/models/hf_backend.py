"""Local transformers backend: batched seeded sampling with logprobs, hidden states and next-token scores.

Sampling is done by capcal itself, not by transformers' warpers: ``generate`` runs in its greedy mode with a
single logits processor (:class:`SeededSampler`) that applies temperature, top-k, top-p and min-p exactly as
given in :class:`~capcal.models.SamplingParams` and draws each row's token with that row's own
``torch.Generator`` (seeded with the sample's seed). The processor then returns a one-hot score row, so the
greedy ``argmax`` of ``generate`` picks exactly the drawn token. Consequences:

* no library default (transformers' ``top_k=50``) can sneak in: no warper is ever built;
* a sample depends only on its prompt and its seed, not on which other samples share its batch (up to float
  rounding of padded batched matmuls), so the same seeds reproduce the same texts;
* log-probabilities are recorded on the fly, so no (steps, batch, vocab) logits tensor is kept.

Reported log-probabilities (``token_logprobs``, ``top_logprobs``, :meth:`HFBackend.next_token_logprobs`) are
``log_softmax`` of the model's raw logits, i.e. the model's distribution at temperature 1 before any
truncation, whatever the sampling parameters.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ModelError
from .base import Completion, GenerationRequest, Messages, ModelBackend, ResultCallback, SamplingParams

_DTYPES = ("float32", "bfloat16", "float16", "auto")


def _prefer_passive_openmp() -> None:
    """Default ``OMP_WAIT_POLICY=PASSIVE`` while torch (and its OpenMP runtime) is not loaded yet."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_prefer_passive_openmp()  # importing this module is the usual first step towards torch


def _import_torch_transformers():
    """Import torch and transformers, or raise a one-line ModelError that says how to install them.

    When torch is not imported yet, ``OMP_WAIT_POLICY`` defaults to ``PASSIVE`` (a user's own setting wins):
    with OpenMP's default spin-waiting, a 2-core machine shared with other busy processes ran the embedded
    model 3-5x slower (6-11 vs 35-47 tokens/s measured at load average 7); idle threads must sleep, not spin.
    """
    _prefer_passive_openmp()
    try:
        import torch
        import transformers
    except ImportError as exc:  # pragma: no cover - exercised only where torch is missing
        raise ModelError(
            f"the local transformers backend needs {exc.name or 'torch/transformers'}: "
            "pip install torch==2.13.0 && pip install 'capcal[local]'") from None
    return torch, transformers


def split_reasoning(text: str) -> tuple[str | None, str]:
    """Separate a leading ``<think>...</think>`` block from the answer.

    Args:
        text: the decoded completion.

    Returns:
        ``(reasoning, answer)``. ``reasoning`` is ``None`` when there is no think block. An unclosed
        ``<think>`` makes everything after it reasoning and the answer empty. A lone ``</think>`` (templates
        that open the block in the prompt) splits at the tag.
    """
    open_tag, close_tag = "<think>", "</think>"
    start = text.find(open_tag)
    end = text.find(close_tag)
    if start == -1 and end == -1:
        return None, text
    if start != -1 and (end == -1 or start < end):
        if end == -1:
            return text[start + len(open_tag):].strip(), ""
        return text[start + len(open_tag):end].strip(), (text[:start] + text[end + len(close_tag):]).strip()
    return text[:end].strip(), text[end + len(close_tag):].strip()


def _logsumexp_merge(d: dict[str, float], key: str, value: float) -> None:
    """Add probability mass ``exp(value)`` under ``key`` (distinct token ids can decode to one string)."""
    old = d.get(key)
    d[key] = value if old is None else float(np.logaddexp(old, value))


class SeededSampler:
    """Logits processor that samples each row with its own generator and records log-probabilities.

    Called by ``generate`` once per step with ``scores`` of shape (B, V) (raw logits: no other processor
    runs before it). Returns scores that are 0 at the chosen token and -inf elsewhere, so greedy decoding
    selects the chosen token.

    Args:
        params: the sampling parameters (temperature 0 = greedy, top_k 0 = off, top_p 1 = off, min_p 0 = off).
        seeds: (B,) one seed per row.
        record: keep per-step log-probabilities of the chosen token and the ``top_logprobs`` alternatives.
    """

    def __init__(self, params: SamplingParams, seeds: Sequence[int], record: bool):
        import torch

        self.params = params
        self.record = record
        self.generators = [torch.Generator().manual_seed(int(s) % (2**63)) for s in seeds]
        self.chosen_logprobs: list[Any] = []  # per step (B,)
        self.top_values: list[Any] = []  # per step (B, top_logprobs)
        self.top_ids: list[Any] = []  # per step (B, top_logprobs)

    def warp(self, logits):
        """Apply temperature, top-k, top-p and min-p to (B, V) logits; returns (B, V) log-weights."""
        import torch

        p = self.params
        x = logits.float() / p.temperature
        vocab = x.shape[-1]
        if p.top_k and 0 < p.top_k < vocab:
            kth = torch.topk(x, p.top_k, dim=-1).values[:, -1:]
            x = x.masked_fill(x < kth, -math.inf)
        if p.top_p < 1.0:
            sorted_x, order = torch.sort(x, dim=-1, descending=True)
            probs = torch.softmax(sorted_x, dim=-1)
            mass_before = torch.cumsum(probs, dim=-1) - probs  # mass of strictly better tokens
            drop_sorted = mass_before >= p.top_p  # the best token is always kept (mass_before = 0)
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            x = x.masked_fill(drop, -math.inf)
        if p.min_p > 0.0:
            probs = torch.softmax(x, dim=-1)
            x = x.masked_fill(probs < p.min_p * probs.max(dim=-1, keepdim=True).values, -math.inf)
        return x

    def __call__(self, input_ids, scores):
        import torch

        if self.params.temperature == 0:
            chosen = scores.argmax(dim=-1)
        else:
            probs = torch.softmax(self.warp(scores), dim=-1)
            cdf = torch.cumsum(probs, dim=-1)
            u = torch.stack([torch.rand((), generator=g) for g in self.generators]).to(cdf.device)
            u = u.to(cdf.dtype) * cdf[:, -1]
            chosen = torch.searchsorted(cdf, u.unsqueeze(-1)).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)
            # searchsorted may land on a zero-probability token only through float ties: step back to the
            # nearest kept token
            bad = probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1) <= 0
            if bool(bad.any()):
                chosen[bad] = probs[bad].argmax(dim=-1)
        if self.record:
            logp = torch.log_softmax(scores.float(), dim=-1)
            self.chosen_logprobs.append(logp.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).cpu())
            if self.params.top_logprobs > 0:
                top = torch.topk(logp, self.params.top_logprobs, dim=-1)
                self.top_values.append(top.values.cpu())
                self.top_ids.append(top.indices.cpu())
        out = torch.full_like(scores, -math.inf)
        out.scatter_(-1, chosen.unsqueeze(-1), 0.0)
        return out


class HFBackend(ModelBackend):
    """A transformers causal LM run in-process (CPU or GPU).

    Args:
        model: HF model id or local directory.
        gguf_file: a GGUF file name inside ``model`` (dequantized on load; needs ``gguf`` and ``accelerate``).
        dtype: ``"float32"`` (default), ``"bfloat16"``, ``"float16"`` or ``"auto"``.
        device: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (cuda when available).
        batch_size: maximum number of sequences (samples, across prompts) decoded together. A prompt's k
            samples are rows of the same batch when they fit. Also the default number of prompts per forward
            pass in :meth:`hidden_states` and :meth:`next_token_logprobs`.
        name: the model name recorded in store keys (default: ``model``).
        revision: HF revision (branch, tag or commit) when ``model`` is a hub id.
        num_threads: torch CPU threads (default: torch's own choice).
        local_files_only: never contact the hub (``HF_HUB_OFFLINE=1`` does the same process-wide).

    Raises:
        capcal.errors.ModelError: torch/transformers missing, bad option, or the model cannot be loaded.
    """

    backend = "hf"
    supports_logprobs = True
    supports_hidden_states = True
    supports_next_token_logprobs = True

    def __init__(self, model: str, gguf_file: str | None = None, dtype: str = "float32", device: str = "cpu",
                 batch_size: int = 32, name: str | None = None, revision: str | None = None,
                 num_threads: int | None = None, local_files_only: bool = False):
        torch, transformers = _import_torch_transformers()
        if dtype not in _DTYPES:
            raise ModelError(f"hf backend: dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ModelError(f"hf backend: batch_size must be a positive integer, got {batch_size!r}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"hf backend: device {device!r} asked for but torch sees no CUDA device")
        if str(device) != "cpu" and not str(device).startswith("cuda"):
            raise ModelError(f"hf backend: device must be cpu, cuda, cuda:N or auto, got {device!r}")
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.model = name or str(model)
        self.model_path = str(model)
        self.gguf_file = gguf_file
        self.dtype = dtype
        self.device = str(device)
        self.batch_size = batch_size
        self.revision = revision
        kwargs: dict[str, Any] = {}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        if revision:
            kwargs["revision"] = revision
        if local_files_only:
            kwargs["local_files_only"] = True
        try:
            tok = transformers.AutoTokenizer.from_pretrained(self.model_path, **kwargs)
            torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
            lm = transformers.AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch_dtype, **kwargs)
        except (OSError, ValueError, ImportError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"hf backend: cannot load model {self.model_path!r}: {first}") from None
        lm.to(self.device).eval()
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self.tokenizer = tok
        self.lm = lm
        eos = lm.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else ([eos] if eos is not None else []))
        if tok.eos_token_id is not None:
            eos_ids.add(tok.eos_token_id)
        self.eos_token_ids = sorted(eos_ids)
        self._torch = torch
        self._transformers = transformers
        self._pieces: dict[int, str] = {}

    def piece(self, token_id: int) -> str:
        """The text of one token id (decoded alone; cached, since logprob reports decode many ids)."""
        text = self._pieces.get(token_id)
        if text is None:
            text = self._pieces[token_id] = self.tokenizer.decode([token_id])
        return text

    # -- prompt encoding ------------------------------------------------------------------------
    def render(self, messages: Messages) -> str:
        """The prompt text: the chat template applied with the generation prompt appended."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return "\n\n".join(m["content"] for m in messages)  # base models: plain concatenation

    def _encode(self, prompts: Sequence[str]):
        """Left-padded batch: ``input_ids``, ``attention_mask`` and ``position_ids`` (B, T) on the device."""
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        mask = enc["attention_mask"]
        position_ids = (mask.cumsum(-1) - 1).clamp_(min=0)
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": mask.to(self.device),
                "position_ids": position_ids.to(self.device)}

    # -- generation -----------------------------------------------------------------------------
    def _generation_config(self, params: SamplingParams):
        """A fresh GenerationConfig: greedy mode (capcal's processor samples), nothing inherited."""
        return self._transformers.GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=int(params.max_tokens),
            eos_token_id=self.eos_token_ids, pad_token_id=self.tokenizer.pad_token_id,
            stop_strings=list(params.stop) or None, temperature=None, top_k=None, top_p=None,
            return_dict_in_generate=True)

    def _decode_row(self, ids: np.ndarray, params: SamplingParams, sampler: SeededSampler, row: int,
                    seed: int) -> Completion:
        """Turn one row of generated ids (padded after the end) into a Completion."""
        eos = np.isin(ids, self.eos_token_ids)
        if eos.any():
            n = int(np.argmax(eos))
            finish = "stop"
        else:
            n = len(ids)
            finish = "length"
        kept = ids[:n].tolist()
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in params.stop if s) if i != -1), default=-1)
        if cut != -1:
            text = text[:cut]
            finish = "stop"
        tokens = logprobs = tops = None
        if params.logprobs or params.top_logprobs:
            pieces = [self.piece(t) for t in kept]
            if cut != -1:  # keep the tokens that make up the text before the stop string
                lengths = np.cumsum([len(piece) for piece in pieces])
                pieces = pieces[:int(np.searchsorted(lengths, cut)) + 1]
            m = len(pieces)
            tokens = pieces
            logprobs = [float(sampler.chosen_logprobs[s][row]) for s in range(m)]
            if params.top_logprobs > 0:
                tops = []
                for s in range(m):
                    d: dict[str, float] = {}
                    vals, idx = sampler.top_values[s][row].tolist(), sampler.top_ids[s][row].tolist()
                    for v, i in zip(vals, idx, strict=True):
                        _logsumexp_merge(d, self.piece(i), v)
                    if kept[s] not in idx:  # the sampled token is always listed
                        _logsumexp_merge(d, pieces[s], logprobs[s])
                    tops.append(d)
        reasoning, answer = split_reasoning(text)
        return Completion(text=answer, reasoning=reasoning, finish_reason=finish, tokens=tokens,
                          token_logprobs=logprobs, top_logprobs=tops, seed=int(seed), completion_tokens=n)

    def generate_batch(self, prompts: Sequence[str], seeds: Sequence[int], params: SamplingParams
                       ) -> list[Completion]:
        """Decode one batch of rows (one sample each) with the same parameters.

        Args:
            prompts: (B,) rendered prompt texts (a prompt repeated once per wanted sample).
            seeds: (B,) the seed of each row.
            params: the sampling parameters, applied exactly (see :class:`SeededSampler`).

        Returns:
            (B,) completions in row order.
        """
        torch = self._torch
        if params.temperature < 0:
            raise ModelError(f"temperature must be >= 0, got {params.temperature}")
        if params.grammar is not None:
            raise ModelError(f"backend {self.backend!r} cannot constrain decoding to a grammar; "
                             "use --model llamacpp (GBNF) or a server with structured outputs")
        enc = self._encode(prompts)
        sampler = SeededSampler(params, seeds, record=bool(params.logprobs or params.top_logprobs))
        processors = self._transformers.LogitsProcessorList([sampler])
        with torch.inference_mode():
            out = self.lm.generate(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                generation_config=self._generation_config(params), logits_processor=processors,
                tokenizer=self.tokenizer if params.stop else None)
        new = out.sequences[:, enc["input_ids"].shape[1]:].cpu().numpy()
        return [self._decode_row(new[i], params, sampler, i, seeds[i]) for i in range(len(prompts))]

    def generate(self, requests: Sequence[GenerationRequest], on_result: ResultCallback,
                 progress: Callable[[int], None] | None = None) -> None:
        """Draw every sample of every request in batches of up to ``batch_size`` rows.

        Requests with identical sampling parameters share batches, ordered by prompt length so that a batch
        holds prompts of similar length (a prompt's samples stay together). Each sample is one row, seeded
        with its own seed (recorded in ``Completion.seed``). ``on_result`` receives each batch's samples as
        soon as the batch is decoded; ``progress`` the number of samples in it.
        """
        if not requests:
            return
        groups: dict[SamplingParams, list[tuple[str, str, int, int]]] = {}
        rendered: dict[int, str] = {}
        for req in requests:
            key = id(req.messages)
            if key not in rendered:
                rendered[key] = self.render(req.messages)
            rows = groups.setdefault(req.params, [])
            rows.extend((rendered[key], sid, seed, key) for sid, seed in zip(req.sample_ids, req.seeds, strict=True))
        lengths = dict(zip(rendered, (len(ids) for ids in self.tokenizer(
            list(rendered.values()), add_special_tokens=False)["input_ids"]), strict=True))
        for params, rows in groups.items():
            rows.sort(key=lambda r: lengths[r[3]])  # similar lengths share a batch; k rows stay together
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start:start + self.batch_size]
                completions = self.generate_batch([r[0] for r in chunk], [r[2] for r in chunk], params)
                on_result([(r[1], c) for r, c in zip(chunk, completions, strict=True)])
                if progress is not None:
                    progress(len(chunk))

    # -- forward-only features ------------------------------------------------------------------
    def _length_batches(self, prompts: Sequence[str], batch_size: int) -> list[list[int]]:
        """Indices of ``prompts`` grouped into batches of similar token length (less padding)."""
        lengths = [len(ids) for ids in self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: lengths[i])
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    def hidden_states(self, messages: Sequence[Messages], batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Hidden states of every layer at the last prompt token and mean-pooled over the prompt.

        One forward pass of the decoder (no language-model head, no KV cache, no generation) per batch of
        ``batch_size`` prompts (default: the backend's), batched by similar length. The prompt is the chat
        template with the generation prompt appended, so "last" is the last token the model reads before
        answering. Padding is on the left and excluded from the mean; position ids follow the real tokens,
        so a padded prompt gets the same states as alone (up to float rounding).

        Returns:
            ``{"last": (B, L + 1, H), "mean": (B, L + 1, H)}`` float32 arrays (embeddings + L layers), in
            the order of ``messages``.
        """
        torch = self._torch
        bs = batch_size or self.batch_size
        prompts = [self.render(m) for m in messages]
        n_states = self.lm.config.num_hidden_layers + 1
        last = np.zeros((len(prompts), n_states, self.lm.config.hidden_size), dtype=np.float32)
        mean = np.zeros_like(last)
        decoder = self.lm.get_decoder() if hasattr(self.lm, "get_decoder") else None
        for idx in self._length_batches(prompts, bs):
            enc = self._encode([prompts[i] for i in idx])
            with torch.inference_mode():
                if decoder is not None:
                    out = decoder(**enc, output_hidden_states=True, use_cache=False)
                else:
                    out = self.lm(**enc, output_hidden_states=True, use_cache=False, logits_to_keep=1)
                mask = enc["attention_mask"].float()
                weights = mask / mask.sum(dim=1, keepdim=True)  # (b, T): 1/len on real tokens, 0 on padding
                states = out.hidden_states
                last[idx] = torch.stack([h[:, -1, :] for h in states], dim=1).float().cpu().numpy()
                mean[idx] = torch.stack([torch.bmm(weights[:, None, :], h.float())[:, 0] for h in states],
                                        dim=1).cpu().numpy()
        return {"last": last, "mean": mean}

    def next_token_logprobs(self, messages: Sequence[Messages], top_k: int = 20,
                            batch_size: int | None = None) -> list[dict[str, float]]:
        """Log-probabilities of the first answer token, from one forward pass per batch.

        Args:
            messages: (B,) chat prompts; the generation prompt is appended.
            top_k: how many of the most likely tokens to return per prompt.
            batch_size: prompts per forward pass (default: the backend's).

        Returns:
            (B,) dicts ``{decoded token: natural-log probability}`` of the ``top_k`` most likely first tokens
            at temperature 1 (ids that decode to the same string have their probabilities added).
        """
        torch = self._torch
        bs = batch_size or self.batch_size
        prompts = [self.render(m) for m in messages]
        result: list[dict[str, float]] = [{} for _ in prompts]
        for idx in self._length_batches(prompts, bs):
            enc = self._encode([prompts[i] for i in idx])
            with torch.inference_mode():
                logits = self.lm(**enc, use_cache=False, logits_to_keep=1).logits[:, -1, :]
            logp = torch.log_softmax(logits.float(), dim=-1)
            top = torch.topk(logp, min(top_k, logp.shape[-1]), dim=-1)
            for row, vals, ids in zip(idx, top.values.tolist(), top.indices.tolist(), strict=True):
                for v, i in zip(vals, ids, strict=True):
                    _logsumexp_merge(result[row], self.piece(i), v)
        return result

    def describe(self) -> dict[str, Any]:
        """Backend, model, and how it was loaded (no secrets, no local paths beyond what the user gave)."""
        return {"backend": self.backend, "model": self.model, "gguf_file": self.gguf_file, "dtype": self.dtype,
                "device": self.device, "batch_size": self.batch_size, "revision": self.revision,
                "torch_threads": self._torch.get_num_threads() if self.device == "cpu" else None}
