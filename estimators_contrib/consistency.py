"""Self-consistency: how often m sampled answers to the same question agree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from capcal.defaults import DEFAULT_MAX_TOKENS
from capcal.errors import CapcalError
from capcal.estimators import Estimator, EstimatorContext, EstimatorOutput
from capcal.generation import CompletionCache, derived_seeds, generate_many
from capcal.models.base import SamplingParams

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    pass


def cluster_sizes(answers: Sequence[str | None], grader: Any) -> tuple[list[int], int]:
    """Group extracted answers into clusters of equivalent answers.

    Two answers share a cluster when ``grader.normalize`` maps them to the same value, or, failing that,
    when ``grader.equivalent(a, b)`` says so (math by equivalence). A failed extraction (``None`` or
    empty) joins no cluster.

    Args:
        answers: (m,) extracted answers.
        grader: the task's grader (``normalize`` and ``equivalent``; either may be missing, then the raw
            string, stripped, is the key).

    Returns:
        ``(sizes, n_failed)``: cluster sizes in order of first appearance, and the number of failures.
    """
    normalize = getattr(grader, "normalize", None)
    equivalent = getattr(grader, "equivalent", None)
    keys: list[Any] = []
    reps: list[str] = []
    sizes: list[int] = []
    failed = 0
    for answer in answers:
        if answer is None or not str(answer).strip():
            failed += 1
            continue
        answer = str(answer)
        try:
            key = normalize(answer) if normalize else answer.strip()
        except Exception:  # noqa: BLE001 - an answer the normaliser cannot read keeps its raw form
            key = answer.strip()
        hit = next((j for j, k in enumerate(keys) if k == key), None)
        if hit is None and equivalent is not None:
            hit = next((j for j, rep in enumerate(reps) if _safe_equivalent(equivalent, rep, answer)), None)
        if hit is None:
            keys.append(key)
            reps.append(answer)
            sizes.append(1)
        else:
            sizes[hit] += 1
    return sizes, failed


def _safe_equivalent(equivalent: Any, a: str, b: str) -> bool:
    try:
        return bool(equivalent(a, b))
    except Exception:  # noqa: BLE001
        return False


def agreement_share(sizes: Sequence[int], m: int) -> float:
    """Share of the m answers in the largest cluster (failed extractions count in ``m``); 0 when none."""
    return max(sizes) / m if m and sizes else 0.0


def agreement_entropy(sizes: Sequence[int], n_failed: int) -> float:
    """1 - H / log(m): answer-entropy consistency in [0, 1].

    H is the entropy (natural log) of the answer distribution in which every failed extraction is its own
    singleton (a failure agrees with nothing). 1 = all m answers equal, 0 = all different (or all failed).
    For m = 1 the value is 1 when the answer was extracted and 0 when it failed.
    """
    import numpy as np

    m = int(sum(sizes)) + int(n_failed)
    if m == 0:
        return float("nan")
    if m == 1:
        return 1.0 if sizes else 0.0
    counts = np.array(list(sizes) + [1] * int(n_failed), dtype=float)
    p = counts / m
    h = float(-(p * np.log(p)).sum())
    return float(min(1.0, max(0.0, 1.0 - h / np.log(m))))


class Consistency(Estimator):
    """Self-consistency over m answers: the most-frequent-answer share, or answer-entropy consistency.

    Which samples are used:
      * by default m *extra* samples per question, drawn through the backend with the run's sampling
        parameters (``ctx.sampling``, else the task's generation defaults) and seeds from a separate seed
        stream, so they are disjoint from the samples that define mu (``meta["samples_overlap_mu"] = False``).
        They are cached in the run's cache folder, so a re-run does not draw them again.
      * with ``reuse_samples=True`` (or when the run has no backend) the first m stored samples, whose
        extracted answers are already graded; they also define mu, which is flagged as
        ``meta["samples_overlap_mu"] = True``.

    Args:
        m: number of answers per question (5, 10 or 20 in the paper; any m >= 1 works).
        mode: ``"share"`` (largest cluster / m) or ``"entropy"`` (:func:`agreement_entropy`).
        reuse_samples: use the stored samples instead of drawing new ones.
    """

    name = "consistency"
    needs_model = True

    def __init__(self, m: int = 10, mode: str = "share", reuse_samples: bool = False):
        if int(m) < 1:
            raise CapcalError(f"consistency: m must be >= 1, got {m}")
        if mode not in ("share", "entropy"):
            raise CapcalError(f"consistency: mode must be 'share' or 'entropy', got {mode!r}")
        self.m = int(m)
        self.mode = mode
        self.reuse_samples = bool(reuse_samples)

    def _params(self, ctx: EstimatorContext) -> SamplingParams:
        if ctx.sampling is not None:
            return SamplingParams(**{**ctx.sampling.to_dict(), "stop": tuple(ctx.sampling.stop),
                                     "logprobs": False, "top_logprobs": 0})
        gen = dict(getattr(ctx.task, "generation", None) or {})
        return SamplingParams(temperature=float(gen.get("temperature", 1.0)), top_p=float(gen.get("top_p", 1.0)),
                              top_k=int(gen.get("top_k", 0)), min_p=float(gen.get("min_p", 0.0)),
                              max_tokens=int(gen.get("max_tokens", DEFAULT_MAX_TOKENS)))

    def answers(self, ctx: EstimatorContext) -> tuple[list[list[str | None]], bool]:
        """The m extracted answers per question and whether they overlap the samples that define mu."""
        if self.reuse_samples or ctx.backend is None:
            return [list(ex[: self.m]) for ex in ctx.targets.extracted], True
        task = ctx.task
        seeds = [derived_seeds(ctx.seed, "consistency", i, self.m) for i in range(len(ctx))]
        cache = CompletionCache(ctx.cache_dir / "consistency_samples.jsonl")
        completions = generate_many(ctx.backend, ctx.messages, seeds, self._params(ctx), cache,
                                    desc=f"consistency (m={self.m})")
        # graded exactly like the stored samples (the task's own extraction, with the example's choices)
        return [[task.grade(c.text, ex).extracted if c.text else None for c in row]
                for row, ex in zip(completions, ctx.examples, strict=True)], False

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        import numpy as np

        answers, overlap = self.answers(ctx)
        grader = getattr(ctx.task, "grader", None)
        conf = np.full(len(ctx), np.nan)
        reasons: list[str | None] = [None] * len(ctx)
        m_used = np.zeros(len(ctx), dtype=np.int64)
        for i, row in enumerate(answers):
            m_used[i] = len(row)
            if not row:
                reasons[i] = "no samples"
                continue
            sizes, failed = cluster_sizes(row, grader)
            conf[i] = agreement_share(sizes, len(row)) if self.mode == "share" else agreement_entropy(sizes, failed)
        meta = {"samples_overlap_mu": overlap, "m": self.m, "mode": self.mode,
                "m_used_min": int(m_used.min()) if len(m_used) else 0,
                "m_used_max": int(m_used.max()) if len(m_used) else 0,
                "extraction_rate": float(np.mean([a is not None for row in answers for a in row]))
                if any(answers) else 0.0,
                "params": self.get_params()}
        return EstimatorOutput(conf, reasons, meta)


class ConsistencyEntropy(Consistency):
    """:class:`Consistency` with ``mode="entropy"`` by default (1 - normalised answer entropy)."""

    name = "consistency_entropy"

    def __init__(self, m: int = 10, mode: str = "entropy", reuse_samples: bool = False):
        super().__init__(m=m, mode=mode, reuse_samples=reuse_samples)
