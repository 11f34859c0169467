"""Few-shot verbalized confidence: the verbalized question preceded by m worked examples from the training split."""

from __future__ import annotations

from typing import TYPE_CHECKING

from capcal.errors import CapcalError
from capcal.estimators import EstimatorContext, EstimatorOutput

from ._common import LETTERS, question_of, render_user_prompt, usable_targets
from .verbalized import Verbalized

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    import numpy as np


def select_shots(mu: np.ndarray, m: int, seed: int, selection: str = "random") -> np.ndarray:
    """Positions of the m worked examples among training questions with capability targets ``mu``.

    Args:
        mu: (T,) capability targets of the training questions; NaN (no graded sample) is never chosen.
        m: how many examples (<= the number of usable questions).
        seed: the selection seed (numpy ``default_rng``).
        selection: ``"random"`` (m distinct questions, uniformly) or ``"stratified"`` (one question from
            each of m equal-width bins of mu over [0, 1], last bin closed, where the bin has any; the
            remaining slots drawn uniformly from the rest).

    Returns:
        (m,) positions into ``mu``, in the order the examples are shown.

    Raises:
        CapcalError: fewer than m usable questions, or an unknown selection.
    """
    import numpy as np

    mu = np.asarray(mu, dtype=float)
    usable = np.flatnonzero(np.isfinite(mu))
    if len(usable) < m:
        raise CapcalError(f"verbalized_fewshot: m = {m} worked examples wanted but the training split has "
                          f"{len(usable)} graded questions (raise --train-limit or lower m)")
    rng = np.random.default_rng(seed)
    if selection == "random":
        return rng.choice(usable, size=m, replace=False)
    if selection != "stratified":
        raise CapcalError(f"verbalized_fewshot: selection must be 'random' or 'stratified', got {selection!r}")
    bins = np.minimum(np.floor(np.round(mu[usable] * m, 9)).astype(np.int64), m - 1)
    chosen = [int(rng.choice(usable[bins == b])) for b in range(m) if (bins == b).any()]
    rest = np.setdiff1d(usable, chosen)
    if len(chosen) < m:
        chosen += [int(i) for i in rng.choice(rest, size=m - len(chosen), replace=False)]
    return np.array(chosen, dtype=np.int64)


class FewShotVerbalized(Verbalized):
    """Verbalized confidence with m worked examples: training questions shown with the model's measured mu.

    ``fit(train)`` takes the training split that the pipeline sampled and graded first (``--train-limit``
    questions, k samples each), picks m of its questions with :func:`select_shots` and keeps, for each,
    the question and its capability target mu = c / n from that split's graded samples. Every prompt then
    shows these m examples, each ending in ``\\boxed{mu}`` (two decimals), before the question to estimate
    (``templates/estimators/verbalized_fewshot.jinja``). Parsing and retries are those of ``verbalized``.
    The examples never come from the evaluation split; a task without a training split gets NaN with the
    reason.

    Args:
        m: number of worked examples (>= 1).
        seed: the selection seed.
        selection: ``"random"`` or ``"stratified"`` (over mu bins).
        template: template file, relative to a registered template folder.
        temperature, retry_temperature, retries, max_tokens, forced: as for ``verbalized``.

    Meta (besides verbalized's): ``shots`` (``[{"id", "mu", "n", "split"}]``), ``m``, ``selection``.
    """

    name = "verbalized_fewshot"
    learns = True
    _cache_file = "verbalized_fewshot_replies.jsonl"
    _seed_stream = "verbalized_fewshot"

    def __init__(self, m: int = 5, seed: int = 0, selection: str = "random",
                 template: str = "estimators/verbalized_fewshot.jinja", temperature: float = 0.0,
                 retry_temperature: float = 1.0, retries: int = 2, max_tokens: int = 20,
                 forced: bool | None = None):
        super().__init__(template=template, temperature=temperature, retry_temperature=retry_temperature,
                         retries=retries, max_tokens=max_tokens, forced=forced)
        if isinstance(m, bool) or int(m) < 1:
            raise CapcalError(f"verbalized_fewshot: m must be >= 1, got {m}")
        if selection not in ("random", "stratified"):
            raise CapcalError(f"verbalized_fewshot: selection must be 'random' or 'stratified', got {selection!r}")
        self.m = int(m)
        self.seed = int(seed)
        self.selection = selection
        self.shots_: list[dict] | None = None

    def fit(self, train: EstimatorContext | None, validation: EstimatorContext | None = None) -> FewShotVerbalized:
        if train is None or len(train) == 0:
            raise CapcalError("verbalized_fewshot: the task has no training split to take worked examples from")
        if train.split != "train":
            raise CapcalError(f"verbalized_fewshot: worked examples come from the training split only, got "
                              f"{train.split!r}")
        mu, _ = usable_targets(train)
        picks = select_shots(mu, self.m, self.seed, self.selection)
        shots = []
        for i in picks:
            question, choices = question_of(train.examples[i], train.messages[i])
            shots.append({"id": str(train.ids[i]), "question": question, "choices": choices,
                          "mu": float(mu[i]), "n": int(train.targets.n[i]), "split": train.split,
                          "p": f"{float(mu[i]):.2f}"})
        self.shots_ = shots
        return self

    def prompts(self, ctx: EstimatorContext) -> list[list[dict[str, str]]]:
        if self.shots_ is None:
            raise CapcalError("verbalized_fewshot: predict called before fit (no worked examples)")
        if ctx.split == "eval":
            leaked = set(map(str, ctx.ids)) & {s["id"] for s in self.shots_}
            if leaked:
                raise CapcalError(f"verbalized_fewshot: worked example {sorted(leaked)[0]!r} is an evaluation "
                                  "question (the training and evaluation splits overlap)")
        shots = [{"question": s["question"], "choices": s["choices"], "p": s["p"]} for s in self.shots_]
        out = []
        for example, messages in zip(ctx.examples, ctx.messages, strict=True):
            question, choices = question_of(example, messages)
            out.append(render_user_prompt(self.template, shots=shots, question=question, choices=choices,
                                          letters=LETTERS))
        return out

    def predict(self, ctx: EstimatorContext) -> EstimatorOutput:
        out = super().predict(ctx)
        out.meta.update({"m": self.m, "selection": self.selection, "selection_seed": self.seed,
                         "shots": [{k: s[k] for k in ("id", "mu", "n", "split")} for s in self.shots_ or []]})
        return out

