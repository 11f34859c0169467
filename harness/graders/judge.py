"""The optional ``llm_judge`` grader: an OpenAI-compatible model decides CORRECT / INCORRECT / NOT_ATTEMPTED.

It is off by default: no built-in task uses it unless its spec (or the user) selects ``llm_judge`` with an
endpoint. It wraps a *fallback* grader (``short_answer`` by default) that does the extraction: a response
from which the fallback extracts nothing is unparseable and is not sent to the judge.

The judge sees the question (``fields["question"]``), the gold target (``fields["answer"]`` and any
``aliases``) and the whole response, and answers with one word in the style of SimpleQA's grader. Only
``CORRECT`` counts as correct; the verdict of every graded response is kept in :attr:`LLMJudgeGrader.verdicts`.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import ModelError
from ._base import Grader, GradeResult, GraderOptionError, gold_text

JUDGE_PROMPT = """You are grading an answer to a question against a gold target. Reply with exactly one word.

CORRECT: the predicted answer states the gold target (or an unambiguous equivalent: another spelling, a \
fuller name, extra context that does not contradict it) and commits to it.
INCORRECT: the predicted answer commits to something that contradicts the gold target, or lists several \
candidates without choosing the gold target.
NOT_ATTEMPTED: the predicted answer gives no answer (for example "I don't know") and contradicts nothing.

Numbers must agree to the precision of the gold target; names must identify the same entity.

Question: {question}
Gold target: {gold}
Predicted answer: {response}

Grade (CORRECT, INCORRECT or NOT_ATTEMPTED):"""

_VERDICT_RE = re.compile(r"\b(NOT[_ ]ATTEMPTED|INCORRECT|CORRECT)\b", re.IGNORECASE)


def parse_verdict(text: str) -> str | None:
    """The first verdict word in a judge reply (``"CORRECT"``, ``"INCORRECT"``, ``"NOT_ATTEMPTED"``).

    A bare ``A``/``B``/``C`` reply (SimpleQA's letter form) maps to the three verdicts in that order.
    Returns ``None`` when the reply holds none.
    """
    if not text:
        return None
    m = _VERDICT_RE.search(text)
    if m:
        return m.group(1).upper().replace(" ", "_")
    letter = text.strip().strip(".()").upper()
    return {"A": "CORRECT", "B": "INCORRECT", "C": "NOT_ATTEMPTED"}.get(letter)


class LLMJudgeGrader(Grader):
    """Grades with a judge model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        base_url: the endpoint's base URL (``http://host:port/v1``); required.
        model: the judge model's name; required.
        api_key_env: the environment variable holding the API key (default ``OPENAI_API_KEY``; a missing
            variable sends the placeholder key ``EMPTY``, which local servers accept).
        fallback: the registered grader used for :meth:`extract` and :meth:`normalize` (default
            ``short_answer``), built with ``fallback_options``.
        timeout: seconds per request (default 60).
        max_retries: retries of a failed request (default 2).
        max_tokens: judge reply length (default 16).
        registry: the registry the fallback grader is built from; the registry that builds this grader
            passes itself (default: the active registry, :func:`capcal.registry.get_registry`).

    Raises:
        GraderOptionError: when ``base_url`` or ``model`` is missing, or the fallback is unknown.
        ModelError: (from :meth:`grade`) when the endpoint cannot be reached or answers with an error.
    """

    name = "llm_judge"

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 fallback: str = "short_answer", fallback_options: dict | None = None, timeout: float = 60.0,
                 max_retries: int = 2, max_tokens: int = 16, registry: Any = None):
        if not base_url or not model:
            raise GraderOptionError("llm_judge grader needs options base_url and model (an OpenAI-compatible endpoint)")
        if fallback == "llm_judge":
            raise GraderOptionError("llm_judge grader: the fallback cannot be llm_judge itself")
        if registry is None:
            from ..registry import get_registry

            registry = get_registry()
        self.fallback = registry.grader(fallback, **(fallback_options or {}))
        self.base_url, self.model, self.api_key_env = str(base_url), str(model), api_key_env
        self.timeout, self.max_retries, self.max_tokens = float(timeout), int(max_retries), int(max_tokens)
        self.verdicts: dict[tuple[str, str, str], str | None] = {}
        self._client: Any = None

    def _get_client(self):
        if self._client is None:
            import openai

            self._client = openai.OpenAI(base_url=self.base_url, api_key=os.environ.get(self.api_key_env) or "EMPTY",
                                         timeout=self.timeout, max_retries=self.max_retries)
        return self._client

    def judge(self, question: str, gold: str, response: str) -> str | None:
        """Ask the judge once (cached per ``(question, gold, response)``); returns the verdict or ``None``."""
        key = (question, gold, response)
        if key in self.verdicts:
            return self.verdicts[key]
        import openai

        prompt = JUDGE_PROMPT.format(question=question, gold=gold, response=response)
        try:
            reply = self._get_client().chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": prompt}],
                temperature=0.0, max_tokens=self.max_tokens)
        except openai.OpenAIError as exc:
            raise ModelError(f"llm_judge: endpoint {self.base_url} failed: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        content = reply.choices[0].message.content if reply.choices else ""
        verdict = parse_verdict(content or "")
        self.verdicts[key] = verdict
        return verdict

    def extract(self, response: str) -> str | None:
        """The fallback grader's extraction."""
        return self.fallback.extract(response)

    def normalize(self, extracted: str):
        """The fallback grader's normalisation."""
        return self.fallback.normalize(extracted)

    def equivalent(self, a: str, b: str) -> bool:
        """The fallback grader's equivalence (no judge call)."""
        return self.fallback.equivalent(a, b)

    def check(self, extracted: str, fields: dict) -> bool:
        """Ask the judge about ``extracted`` alone (used when only the extracted answer is at hand)."""
        return self._ask(extracted, fields) == "CORRECT"

    def _ask(self, response: str, fields: dict) -> str | None:
        gold = gold_text(fields)
        aliases = [a for a in (fields.get("aliases") or []) if a and str(a) != gold]
        if aliases:
            gold = f"{gold} (also accepted: {'; '.join(map(str, aliases[:10]))})" if gold else "; ".join(aliases)
        return self.judge(str(fields.get("question", "")), gold, response)

    def grade(self, response: str, fields: dict) -> GradeResult:
        """Extract with the fallback grader; when something was extracted, the judge decides on the response."""
        response = response if isinstance(response, str) else ""
        extracted = self.extract(response)
        if extracted is None or not extracted.strip():
            return GradeResult(extracted, False)
        return GradeResult(extracted, self._ask(response, fields) == "CORRECT")
