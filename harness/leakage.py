"""The leakage rule in code: learned estimators never fit on the questions they are scored on.

DESIGN.md section 1: estimators that learn are fitted on a training split, selected on a validation split
and scored on the evaluation split. Whatever the configuration (a suite with ``split: train``, a spec whose
training split holds duplicates of evaluation questions), the pipeline hands an estimator only fit
questions that are disjoint from the scored ones, by question id AND by normalised question text
(real data sets repeat questions across splits under different ids):

* :func:`question_keys` gives both keys of every question of a context;
* :func:`without_scored` drops the scored questions from a fit context and says how many it dropped (the
  recorded fallback); when nothing disjoint is left it raises :class:`LeakageError` (the clear error);
* :func:`check_disjoint` is the final check before ``fit``;
* :func:`check_estimator_leakage` is the test for third-party estimators (``capcal.testing`` calls it):
  an estimator's confidences on the evaluation split must not change when the evaluation split's own
  targets are permuted, unless it declares itself in-sample.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from .errors import CapcalError, DataError

__all__ = ["LeakageError", "question_text", "question_keys", "overlap", "without_scored", "check_disjoint",
           "declares_in_sample", "check_estimator_leakage"]


class LeakageError(DataError):
    """Fit questions and scored questions overlap and no disjoint remainder is left to fit on."""


def question_text(example: Any, messages: list[dict] | None = None) -> str:
    """The normalised question text of an example: ``fields["question"]`` (else the last user message),
    lower-cased, punctuation and articles dropped, whitespace squashed (``""`` when there is none)."""
    from .graders._normalize import normalize_text

    fields = getattr(example, "fields", None) or {}
    text = fields.get("question")
    if text is None and messages:
        users = [m.get("content", "") for m in messages if m.get("role") == "user"]
        text = users[-1] if users else ""
    return normalize_text(str(text or ""))


def question_keys(ctx: Any) -> tuple[list[str], list[str]]:
    """``(ids, normalised texts)`` of every question of an estimator context (aligned with ``ctx.ids``)."""
    ids = [str(i) for i in ctx.ids]
    examples = list(getattr(ctx, "examples", None) or [])
    messages = list(getattr(ctx, "messages", None) or [])
    texts = []
    for j in range(len(ids)):
        ex = examples[j] if j < len(examples) else None
        texts.append(question_text(ex, messages[j] if j < len(messages) else None))
    return ids, texts


def overlap(fit: Any, scored: Any) -> tuple[np.ndarray, int, int]:
    """Which questions of ``fit`` are also scored.

    Returns:
        ``(mask, by_id, by_text)``: a (Q_fit,) bool mask of the overlapping fit questions, how many match a
        scored question's id, and how many more match only its normalised text (empty texts never match).
    """
    scored_ids, scored_texts = question_keys(scored)
    ids, texts = question_keys(fit)
    sid, stext = set(scored_ids), {t for t in scored_texts if t}
    same_id = np.array([i in sid for i in ids], dtype=bool)
    same_text = np.array([bool(t) and t in stext for t in texts], dtype=bool)
    return same_id | same_text, int(same_id.sum()), int((same_text & ~same_id).sum())


def without_scored(fit: Any, scored: Any, what: str = "fit") -> tuple[Any, dict[str, Any]]:
    """``fit`` without the questions that are also in ``scored`` (by id or normalised text).

    Args:
        fit: the context of a training or validation split.
        scored: the context of the evaluation split.
        what: a name for messages (``"task gsm8k, split 'train'"``).

    Returns:
        ``(context, record)``: the disjoint context (``fit`` itself when nothing overlapped) and
        ``{"split", "n", "removed", "removed_by_id", "removed_by_text"}``.

    Raises:
        LeakageError: every question of ``fit`` is scored (nothing disjoint to fit on).
    """
    mask, by_id, by_text = overlap(fit, scored)
    record = {"split": getattr(fit, "split", None), "n": int(len(fit.ids) - mask.sum()), "removed": int(mask.sum()),
              "removed_by_id": by_id, "removed_by_text": by_text}
    if not mask.any():
        return fit, record
    if mask.all():
        raise LeakageError(f"{what}: all {len(mask)} questions are also scored questions ({by_id} by id, "
                           f"{by_text} more by question text); refusing to fit on them (leakage rule)")
    return fit.subset(np.flatnonzero(~mask)), record


def check_disjoint(fit: Any, scored: Any, what: str = "fit") -> None:
    """Raise :class:`LeakageError` when any question of ``fit`` is also scored (by id or normalised text)."""
    if fit is None or scored is None:
        return
    mask, by_id, by_text = overlap(fit, scored)
    if mask.any():
        raise LeakageError(f"{what}: {int(mask.sum())} of {len(mask)} fit questions are also scored "
                           f"({by_id} by id, {by_text} more by question text); refusing to fit (leakage rule)")


def _permuted_targets(ctx: Any, seed: int) -> Any:
    """``ctx`` with its per-question targets permuted across questions (same ids, same prompts)."""
    q = len(ctx.ids)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(q)
    if q > 1 and np.array_equal(perm, np.arange(q)):
        perm = np.roll(perm, 1)
    original = ctx.targets
    targets = original.take(perm)
    # same questions, same answers (extracted, reasons), other correctness
    targets.ids = np.asarray(original.ids)
    targets.extracted, targets.reasons = original.extracted, original.reasons
    targets.designated = np.minimum(np.asarray(original.designated), np.asarray(targets.n) - 1)
    # and flipped (correct <-> wrong), so that even a constant mu changes
    targets.labels = np.where(np.isnan(targets.labels), np.nan, 1.0 - targets.labels)
    targets.c = np.nansum(targets.labels, axis=1).astype(np.int64)
    return replace(ctx, targets=targets)


def declares_in_sample(meta: Any) -> bool:
    """Whether an estimator's meta declares its confidences in-sample: ``in_sample`` or
    ``samples_overlap_mu`` set, also in the meta of a wrapped base estimator (``base_meta``)."""
    if not isinstance(meta, dict):
        return False
    return bool(meta.get("in_sample") or meta.get("samples_overlap_mu")) or declares_in_sample(meta.get("base_meta"))


def check_estimator_leakage(make_estimator: Any, eval_ctx: Any, train: Any = None, validation: Any = None,
                            seed: int = 0, atol: float = 1e-9) -> dict[str, Any]:
    """Check that an estimator's confidences do not read the scored questions' targets.

    The estimator is built twice (``make_estimator()``), fitted the way the pipeline fits it (``fit(train,
    validation)`` when it ``learns``), and asked for confidences on ``eval_ctx`` and on a copy of
    ``eval_ctx`` whose targets are permuted across questions and flipped (correct <-> wrong). An estimator
    that learns only from held-out splits, or reads only the prompts and the model, gives the same
    confidences both times. One that fits on the evaluated questions (or computes them from the samples
    that define mu) changes them, and must then declare it in its meta (``"in_sample": true`` or
    ``"samples_overlap_mu": true``) so that the leaderboard marks the row.

    Args:
        make_estimator: a callable returning a fresh estimator (the class itself, or a lambda with
            parameters).
        eval_ctx: the evaluation split's :class:`capcal.estimators.EstimatorContext`; its ``split_context``
            may offer training and validation splits.
        train, validation: the held-out contexts passed to ``fit`` (default: from ``eval_ctx.split_context``).
        seed: seed of the permutation.
        atol: tolerance of the comparison of confidences.

    Returns:
        ``{"reads_scored_targets": bool, "declared_in_sample": bool, "max_change": float}``.

    Raises:
        LeakageError: the fit contexts overlap the scored questions, or the confidences depend on the scored
            targets while the estimator's meta does not declare it.
    """
    from .estimators import EstimatorOutput

    def held_out(split: str, given: Any) -> Any:
        if given is not None:
            return given
        fn = getattr(eval_ctx, "split_context", None)
        if fn is None:
            return None
        try:
            return fn(split)
        except CapcalError:
            return None

    train, validation = held_out("train", train), held_out("validation", validation)
    for name, ctx in (("train", train), ("validation", validation)):
        check_disjoint(ctx, eval_ctx, f"{name} split")

    def confidences(ctx: Any) -> tuple[np.ndarray, dict]:
        est = make_estimator()
        if getattr(est, "learns", False):
            est.fit(train, validation)
        out = est.predict(ctx)
        if not isinstance(out, EstimatorOutput):
            raise CapcalError(f"predict returned {type(out).__name__}, expected EstimatorOutput")
        return np.asarray(out.confidence, dtype=float), dict(out.meta or {})

    # the permuted copy keeps split_context: held-out splits are unchanged, only the scored targets move
    original, meta = confidences(eval_ctx)
    changed, meta_changed = confidences(_permuted_targets(eval_ctx, seed))
    both = np.isfinite(original) & np.isfinite(changed)
    diff = float(np.max(np.abs(original[both] - changed[both]))) if both.any() else 0.0
    reads = diff > atol or not np.array_equal(np.isfinite(original), np.isfinite(changed))
    declared = any(declares_in_sample(m) for m in (meta, meta_changed))
    if reads and not declared:
        raise LeakageError(f"estimator {getattr(make_estimator(), 'name', make_estimator)!r}: its confidences on "
                           f"the evaluation split change (by up to {diff:.3g}) when that split's own targets are "
                           "permuted, so it reads the scored questions' correctness; fit on held-out splits "
                           "only, or declare meta['in_sample'] = True")
    return {"reads_scored_targets": bool(reads), "declared_in_sample": declared, "max_change": diff}
