"""The one small interface every model backend implements, and the types it exchanges.

A backend knows nothing about tasks, graders or the store: it turns chat messages plus explicit sampling
parameters into completions, and (optionally) returns hidden states.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..defaults import DEFAULT_MAX_TOKENS

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    import numpy as np

Messages = list[dict[str, str]]  # [{"role": "system"|"user"|"assistant", "content": str}, ...]

#: The optional capabilities a backend may declare (``ModelBackend.supports_<name>``).
CAPABILITIES = ("logprobs", "hidden_states", "next_token_logprobs")


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters, always sent explicitly to the backend and recorded with the run.

    The defaults are *untruncated* sampling (``top_p=1``, ``top_k=0`` = off, ``min_p=0``): servers and
    libraries truncate by default (llama.cpp top_k=40/min_p=0.05, transformers top_k=50), which silently
    changes the capability target.

    Attributes:
        temperature: softmax temperature, >= 0 (0 = greedy).
        top_p: nucleus mass in (0, 1]; 1 = off.
        top_k: keep the k most likely tokens; 0 = off.
        min_p: drop tokens below ``min_p * p_max``; 0 = off.
        max_tokens: maximum number of generated tokens.
        logprobs: return per-token log-probabilities of the sampled tokens.
        top_logprobs: also return this many alternatives per position (0 = none).
        stop: stop strings.
        grammar: a GBNF grammar (llama.cpp's format) that the WHOLE completion must match; ``None`` = free
            text. Backends that cannot constrain decoding raise ``ModelError`` rather than ignore it.
            It takes part in store keys only when set, so keys of unconstrained samples never change.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    logprobs: bool = False
    top_logprobs: int = 0
    stop: tuple[str, ...] = ()
    grammar: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the parameters (``stop`` as a list); ``grammar`` only when one is set."""
        d = asdict(self)
        d["stop"] = list(self.stop)
        if d["grammar"] is None:
            del d["grammar"]
        return d


@dataclass
class Completion:
    """One sampled response.

    Attributes:
        text: the final answer text (reasoning excluded when the backend separates it).
        reasoning: reasoning content kept apart from ``text`` (``reasoning_content`` of reasoning servers,
            or a leading ``<think>...</think>`` block), else ``None``.
        finish_reason: ``"stop"``, ``"length"``, ... as reported by the backend.
        tokens: the generated tokens of ``text`` (when logprobs were asked for), else ``None``.
        token_logprobs: natural-log probability of each token in ``tokens``.
        top_logprobs: per position, ``{token: logprob}`` of the top alternatives (``top_logprobs`` > 0).
        seed: the seed this sample was drawn with (``None`` when the backend ignores seeds).
        completion_tokens: how many tokens the backend generated for this sample (reasoning included),
            ``None`` when it does not say; the cost of an answer (``capcal route``'s default cost ratio).
    """

    text: str
    reasoning: str | None = None
    finish_reason: str | None = None
    tokens: list[str] | None = None
    token_logprobs: list[float] | None = None
    top_logprobs: list[dict[str, float]] | None = None
    seed: int | None = None
    completion_tokens: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict (lists and dicts in it are the completion's own, not copies: a shallow copy,
        ten times cheaper than :func:`dataclasses.asdict` for a completion with per-token logprobs)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Completion:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})


@dataclass
class GenerationRequest:
    """Ask for ``len(sample_ids)`` samples of one prompt.

    Attributes:
        messages: chat messages (rendered prompt).
        params: sampling parameters.
        sample_ids: opaque ids (the store's keys), one per wanted sample; results are reported under them.
        seeds: one seed per sample (same length as ``sample_ids``); a backend that draws several samples in
            one call seeds that call with ``seeds[0]`` and reports what it used in ``Completion.seed``.
    """

    messages: Messages
    params: SamplingParams
    sample_ids: list[str]
    seeds: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.seeds:
            self.seeds = list(range(len(self.sample_ids)))
        if len(self.seeds) != len(self.sample_ids):
            raise ValueError("seeds and sample_ids must have the same length")


# Called by a backend as soon as samples are done: list of (sample_id, completion) pairs. It runs in the
# thread that called ``generate`` and may raise to abort the whole generation.
ResultCallback = Callable[[list[tuple[str, Completion]]], None]


class ModelBackend(abc.ABC):
    """Base class of model backends.

    Subclasses set :attr:`backend` (the registered kind, e.g. ``"openai"``) and :attr:`model` (the model
    identifier that goes into the store key) and implement :meth:`generate`. What a backend can do beyond
    sampling is declared, not discovered: a subclass that implements :meth:`hidden_states` or
    :meth:`next_token_logprobs`, or fills per-token log-probabilities, sets the matching ``supports_*``
    attribute to ``True`` (:func:`capcal.testing.check_backend` checks that the declarations hold).

    Attributes:
        supports_logprobs: ``generate`` fills ``Completion.tokens`` / ``token_logprobs`` (and
            ``top_logprobs`` when asked) for ``SamplingParams(logprobs=True)``.
        supports_hidden_states: :meth:`hidden_states` works.
        supports_next_token_logprobs: :meth:`next_token_logprobs` works.
    """

    backend: str = "base"
    model: str = "unknown"
    supports_logprobs: bool = False
    supports_hidden_states: bool = False
    supports_next_token_logprobs: bool = False

    @property
    def capabilities(self) -> frozenset[str]:
        """The declared capabilities: a subset of ``{"logprobs", "hidden_states", "next_token_logprobs"}``."""
        return frozenset(name for name in CAPABILITIES if getattr(self, f"supports_{name}", False))

    @abc.abstractmethod
    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_result: ResultCallback,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Draw every sample of every request, reporting each batch of finished samples to ``on_result``.

        Args:
            requests: what to sample. Backends may reorder and batch them freely.
            on_result: receives ``[(sample_id, Completion), ...]`` as soon as they are finished, so the
                caller can store them durably before anything else happens.
            progress: called with the number of samples just finished (for progress bars).

        Raises:
            capcal.errors.ModelError: the backend cannot serve at all (unreachable server after retries).
        """

    def hidden_states(self, messages: Sequence[Messages], batch_size: int = 8) -> dict[str, np.ndarray]:
        """Hidden states of every layer for a batch of prompts, from one forward pass each (no generation).

        The prompt is the chat template applied to ``messages`` with the generation prompt appended.

        Returns:
            ``{"last": (B, L + 1, H), "mean": (B, L + 1, H)}`` float32 arrays: the state at the last prompt
            token and the mean over prompt tokens, for the embeddings plus each of the L layers.

        Raises:
            NotImplementedError: the backend has no access to hidden states (e.g. a remote API).
        """
        raise NotImplementedError(f"backend {self.backend!r} cannot return hidden states")

    def next_token_logprobs(self, messages: Sequence[Messages], top_k: int = 20) -> list[dict[str, float]]:
        """Log-probabilities of the first generated token of each prompt, from one forward pass (no sampling).

        Args:
            messages: (B,) chat prompts; the generation prompt is appended.
            top_k: how many of the most likely first tokens to return per prompt.

        Returns:
            (B,) dicts ``{decoded token: natural-log probability}`` at temperature 1.

        Raises:
            NotImplementedError: the backend has no access to the next-token distribution.
        """
        raise NotImplementedError(f"backend {self.backend!r} cannot return next-token log-probabilities")

    def describe(self) -> dict[str, Any]:
        """What identifies this backend in the run configuration (no secrets)."""
        return {"backend": self.backend, "model": self.model}

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        """Release resources (connections, threads). The default does nothing."""
