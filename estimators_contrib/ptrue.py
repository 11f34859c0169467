"""P(True): the probability the model puts on "Yes" when asked whether an answer is correct."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from capcal.errors import CapcalError
from capcal.estimators import Estimator, EstimatorContext, EstimatorOutput
from capcal.generation import CompletionCache, derived_seeds, generate_many
from capcal.models.base import Completion, SamplingParams
from capcal.tasks import LETTERS

from ._common import question_of

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    pass

_MARKERS = " \t\r\n\u0120\u2581\u010a"  # whitespace and the BPE / SentencePiece space and newline markers
_PUNCT = ".,!:;\"'*()[]"


def token_vote(token: str) -> str | None:
    """``"yes"`` or ``"no"`` when ``token`` is a Yes- or No-variant, else ``None``.

    Variants differ only in case, surrounding whitespace, the tokenizer's space marker (``Ġ``, ``▁``) and
    surrounding punctuation: ``Yes``, `` Yes``, ``yes``, ``YES``, ``ĠYes``, ``▁yes``, ``Yes.``, ``No``,
    `` no``, ``NO``. ``Yesterday``, ``Y``, ``Nope`` or ``Not`` are not variants.
    """
    word = token.strip(_MARKERS).strip(_PUNCT).strip(_MARKERS).lower()
    return word if word in ("yes", "no") else None


def yes_no_mass(top_logprobs: Mapping[str, float]) -> tuple[float, float]:
    """Probability mass of every Yes-variant and every No-variant in one position's top logprobs.

    Args:
        top_logprobs: ``{token: natural-log probability}`` of the top alternatives at one position.

    Returns:
        ``(yes, no)``: sums of ``exp(logprob)`` over the variants (0.0 where none is listed).
    """
    yes = no = 0.0
    for token, logprob in top_logprobs.items():
        vote = token_vote(str(token))
        if vote is None or logprob is None or not math.isfinite(float(logprob)):
            continue
        if vote == "yes":
            yes += math.exp(float(logprob))
        else:
            no += math.exp(float(logprob))
    return yes, no


def first_answer_position(tokens: Sequence[str] | None, n_positions: int) -> tuple[int | None, str | None]:
    """Index of the first answer token: after the last ``</think>`` and after whitespace-only tokens.

    Args:
        tokens: the generated tokens (``None``: no token texts, the first position is the answer).
        n_positions: how many positions have top logprobs.

    Returns:
        ``(index, None)``, or ``(None, reason)`` when the reasoning never closed or no answer token follows.
    """
    if tokens is None:
        return (0, None) if n_positions > 0 else (None, "no logprobs returned")
    text = "".join(tokens)
    start = 0
    close = text.lower().rfind("</think>")
    if close >= 0:
        end_of_close = close + len("</think>")
        pos = 0
        for idx, tok in enumerate(tokens):
            pos += len(tok)
            if pos >= end_of_close:
                start = idx + 1
                break
    elif "<think>" in text.lower():
        return None, "reasoning did not finish (no </think>): raise max_tokens"
    limit = min(len(tokens), n_positions)
    for idx in range(start, limit):
        if tokens[idx].strip(_MARKERS):
            return idx, None
    return None, "no answer token after the reasoning"


def ptrue_from_top_logprobs(
    top_logprobs: Sequence[Mapping[str, float]] | None,
    tokens: Sequence[str] | None = None,
) -> tuple[float, str | None]:
    """P(True) = Yes / (Yes + No) at the first answer token of a reply.

    Args:
        top_logprobs: per generated position, ``{token: logprob}`` of the top alternatives.
        tokens: the generated tokens, aligned with ``top_logprobs``; used to skip a ``<think>...</think>``
            block and leading whitespace tokens. ``None``: position 0 is the answer token (the local
            backend's next-token distribution).

    Returns:
        ``(confidence, reason)``: confidence in [0, 1] with ``reason=None``; ``(nan, reason)`` when there
        are no logprobs, the reasoning did not finish, or neither a Yes- nor a No-variant is listed.
    """
    if not top_logprobs:
        return math.nan, "no logprobs returned"
    idx, why = first_answer_position(tokens, len(top_logprobs))
    if idx is None:
        return math.nan, why
    yes, no = yes_no_mass(top_logprobs[idx])
    if yes + no <= 0.0:
        return math.nan, "neither Yes nor No among the top logprobs"
    return yes / (yes + no), None


class PTrue(Estimator):
    """P(True) of the designated response (or, with ``proposed="none"``, of being able to answer at all).

    The prompt (``templates/estimators/ptrue.jinja``) shows the question, the designated sample's extracted
    answer as the proposed answer, and asks "Is the proposed answer correct? Answer Yes or No." The
    confidence is Yes / (Yes + No) summed over every Yes- and No-variant in the top logprobs of the first
    answer token (:func:`ptrue_from_top_logprobs`).

    Two ways to read the token distribution (``method``):
      * ``"next_token"``: ``backend.next_token_logprobs(messages_list, top_k=top_logprobs)`` (local
        backends; one forward pass, no sampling);
      * ``"generate"``: a greedy generation with ``logprobs=True, top_logprobs=...`` (OpenAI-compatible
        servers), skipping a reasoning block; raise ``max_tokens`` for reasoning models.
      * ``"auto"`` (default): ``next_token`` when the backend declares it
        (``supports_next_token_logprobs``), else ``generate``.

    Args:
        proposed: ``"designated"`` (the designated sample's extracted answer; when extraction failed, the
            last 300 characters of its text) or ``"none"`` (ask whether the model can answer).
        method: ``"auto"``, ``"next_token"`` or ``"generate"``.
        top_logprobs: how many alternatives to read (OpenAI allows at most 20).
        max_tokens: token limit of the ``generate`` path.
        template: template file, relative to a registered template folder.

    Meta: ``method`` used, ``mean_yes_no_mass`` (how much probability Yes+No carry), ``n_nan``,
    ``n_proposed_from_text`` (designated samples with no extracted answer).
    """

    name = "ptrue"
    needs_model = True

    def __init__(self, proposed: str = "designated", method: str = "auto", top_logprobs: int = 20,
                 max_tokens: int = 8, template: str = "estimators/ptrue.jinja"):
        if proposed not in ("designated", "none"):
            raise CapcalError(f"ptrue: proposed must be 'designated' or 'none', got {proposed!r}")
        if method not in ("auto", "next_token", "generate"):
            raise CapcalError(f"ptrue: method must be 'auto', 'next_token' or 'generate', got {method!r}")
        self.proposed = proposed
        self.method = method
        self.top_logprobs = int(top_logprobs)
        self.max_tokens = int(max_tokens)
        self.template = template

    def _proposed_answers(self, ctx: EstimatorContext) -> tuple[list[str | None], int]:
        if self.proposed == "none":
            return [None] * len(ctx), 0
        out: list[str | None] = []
        from_text = 0
        for i in range(len(ctx)):
            d = int(ctx.targets.designated[i])
            extracted = ctx.targets.extracted[i] if i < len(ctx.targets.extracted) else []
            answer = extracted[d] if d < len(extracted) else None
            if answer is None or not str(answer).strip():
                samples = ctx.samples[i] if i < len(ctx.samples) else []
                text = samples[d].text if d < len(samples) else ""
                answer = re.sub(r"\s+", " ", text).strip()[-300:]
                from_text += 1
            out.append(str(answer))
        return out, from_text

    def prompts(self, ctx: EstimatorContext) -> tuple[list[list[dict[str, str]]], int]:
        """The rendered Yes/No prompts (one per question) and how many proposed answers came from raw text."""
        answers, from_text = self._proposed_answers(ctx)
        prompts = []
        for example, messages, answer in zip(ctx.examples, ctx.messages, answers, strict=True):
            question, choices = question_of(example, messages)
            prompts.append(ctx.render_prompt(self.template, question=question, choices=choices,
                                             letters=LETTERS, proposed_answer=answer))
        return prompts, from_text

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        import numpy as np

        q = len(ctx)
        if ctx.backend is None:
            return EstimatorOutput(np.full(q, np.nan), ["no model backend in this run"] * q, {})
        prompts, from_text = self.prompts(ctx)
        method = self.method
        can_score = bool(getattr(ctx.backend, "supports_next_token_logprobs", False))
        if method == "auto":
            method = "next_token" if can_score else "generate"
        if method == "next_token":
            if not can_score:
                raise CapcalError(f"ptrue: backend {ctx.backend.backend!r} has no next_token_logprobs; "
                                  "use method=generate")
            dists = ctx.backend.next_token_logprobs(prompts, top_k=self.top_logprobs)
            readings = [ptrue_from_top_logprobs([d]) for d in dists]
            firsts = list(dists)
        else:
            params = SamplingParams(temperature=0.0, top_p=1.0, top_k=0, min_p=0.0, max_tokens=self.max_tokens,
                                    logprobs=True, top_logprobs=self.top_logprobs)
            seeds = [[derived_seeds(ctx.seed, "ptrue", i, 1)[0]] for i in range(q)]
            cache = CompletionCache(ctx.cache_dir / "ptrue_replies.jsonl")
            replies: list[Completion] = [r[0] for r in generate_many(ctx.backend, prompts, seeds, params, cache,
                                                                      desc="ptrue")]
            readings, firsts = [], []
            for c in replies:
                if c.reasoning and not (c.text or "").strip():  # reasoning kept apart, cut before the answer
                    readings.append((math.nan, "reasoning did not finish (no answer): raise max_tokens"))
                    firsts.append({})
                    continue
                readings.append(ptrue_from_top_logprobs(c.top_logprobs, c.tokens))
                idx, _ = first_answer_position(c.tokens, len(c.top_logprobs or []))
                firsts.append(c.top_logprobs[idx] if idx is not None and c.top_logprobs else {})
        conf = np.array([p for p, _ in readings], dtype=float)
        reasons = [why for _, why in readings]
        mass = [sum(yes_no_mass(d)) for d in firsts]
        meta = {"method": method, "mean_yes_no_mass": float(np.mean(mass)) if mass else None,
                "n_nan": int(np.isnan(conf).sum()), "n_proposed_from_text": from_text,
                "params": self.get_params()}
        return EstimatorOutput(conf, reasons, meta)
