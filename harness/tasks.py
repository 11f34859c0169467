"""Tasks: a validated spec bound to its data, its prompt template and its grader.

>>> from capcal import get_registry
>>> task = get_registry().task("gsm8k", data_dir="../shared/data")   # doctest: +SKIP
>>> ex = task.examples(limit=1)[0]                                    # doctest: +SKIP
>>> task.render(ex)          # [{"role": "user", "content": "...The answer is N..."}]   # doctest: +SKIP
>>> task.grade("... The answer is 18", ex).correct                    # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data import fingerprint as data_fingerprint
from .data import load_rows, require_columns, source_of
from .errors import CapcalError, DataError, SpecError
from .prompts import (
    ExpressionError,
    PromptRenderer,
    compile_field_expression,
    evaluate_field,
    expression_columns,
)
from .taskspec import SPLIT_ROLES, TaskSpec, check_spec

if TYPE_CHECKING:  # annotations only: numpy loads when a function needs it
    pass

#: Option letters; ``letters`` in a template is the prefix as long as the example's ``choices``.
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class Example:
    """One question of a task.

    Attributes:
        index: row number in the split (0-based).
        id: stable question id: from ``id_field``, else the sha1 hex of the question text (the ``question``
            field, stripped of surrounding whitespace); a repeated id in
            a split gets ``-2``, ``-3``, ... appended on its later occurrences (in row order).
        doc: the raw row.
        fields: canonical fields: ``question`` (str), ``answer`` (str, the gold answer as text: the letter
            for multiple choice), ``aliases`` (list[str]), ``choices`` (list[str], in presented order), plus
            any other field the spec maps; with ``choices_shuffle``, also ``permutation`` (presented position
            i shows original option ``permutation[i]``) and ``shuffle_seed``.
    """

    index: int
    id: str
    doc: dict
    fields: dict = field(default_factory=dict)


def question_sha1(question: str) -> str:
    """The derived id of a question without one: sha1 hex digest of its UTF-8 text."""
    return hashlib.sha1(question.encode("utf-8")).hexdigest()


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


class Task:
    """A task: spec + data + prompt + grader.

    Args:
        spec: the task spec.
        registry: the :class:`capcal.registry.Registry` giving graders and template directories
            (``Registry.task(name)`` passes itself).
        data_dir: mirror directory (default ``$CAPCAL_DATA_DIR``, else the hub).

    Raises:
        SpecError: the spec names an unknown grader or template, its template uses an undefined variable, or
            the grader rejects ``grader.options``.
    """

    def __init__(self, spec: TaskSpec, registry: Any, data_dir: str | Path | None = None):
        check_spec(spec, registry)
        self.spec = spec
        self.name = spec.name
        self.registry = registry
        self.data_dir = data_dir
        self.renderer = PromptRenderer.for_spec(spec, registry)
        try:
            self.grader = registry.grader(spec.grader, **spec.grader_options)
        except SpecError:
            raise
        except (TypeError, ValueError, CapcalError) as exc:
            raise SpecError(spec.source, "grader.options", f"rejected by grader {spec.grader!r}: {exc}") from None
        self._compiled = {name: compile_field_expression(expr) for name, expr in spec.fields.items()}
        self._id_compiled = compile_field_expression(spec.id_field) if spec.id_field else None
        self._examples: dict[str, dict[str, Any]] = {}  # split name -> rows, and the examples built so far
        self._fewshot: list[dict] | None = None

    def __repr__(self) -> str:
        return f"Task({self.name!r}, grader={self.spec.grader!r}, source={self.spec.source!r})"

    # -- configuration ------------------------------------------------------------------------------
    @property
    def generation(self) -> dict[str, Any]:
        """Generation defaults (copy): ``temperature``, ``top_p``, ``max_tokens``, ``k``, ``stop`` and any
        other key the spec sets (``top_k``, ``min_p``)."""
        gen = dict(self.spec.generation)
        gen["stop"] = list(gen.get("stop") or [])
        return gen

    def split_name(self, split: str = "eval") -> str:
        """The data split behind a role.

        Raises:
            DataError: unknown role, or the spec declares no split for it.
        """
        if split not in SPLIT_ROLES:
            raise DataError(f"unknown split role {split!r} for task {self.name!r}; "
                            f"expected one of {', '.join(SPLIT_ROLES)}")
        name = self.spec.split_name(split)
        if name is None:
            raise DataError(f"task {self.name!r} has no {split} split (set dataset.{split}_split in "
                            f"{self.spec.source})")
        return name

    def source(self, split: str = "eval") -> str:
        """Where the split is read from (mirror file path or ``hf:...``)."""
        ds = self.spec.dataset
        return source_of(ds.path, ds.name, self.split_name(split), self.data_dir)

    def fingerprint(self, split: str = "eval") -> str:
        """sha256 hex of the mirror file, or the ``datasets`` fingerprint of the hub split."""
        ds = self.spec.dataset
        return data_fingerprint(ds.path, ds.name, self.split_name(split), self.data_dir)

    # -- documents ------------------------------------------------------------------------------------
    def _load(self, split_name: str):
        ds = self.spec.dataset
        dataset = load_rows(ds.path, ds.name, split_name, self.data_dir)
        where = source_of(ds.path, ds.name, split_name, self.data_dir)
        skip = {"doc"}
        for fname, expr in list(self.spec.fields.items()) + [("id_field", self.spec.id_field or "")]:
            if expr:
                key = fname if fname == "id_field" else f"fields.{fname}"
                require_columns(dataset, sorted(expression_columns(expr) - skip), where, why=key)
        return dataset, where

    def _fields(self, doc: dict, index: int, where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, expr in self.spec.fields.items():
            try:
                value = evaluate_field(expr, doc, self._compiled[name])
            except ExpressionError as exc:
                raise DataError(f"{where} row {index}: fields.{name}: {exc}") from None
            if name in ("question", "answer"):
                if value is None or _as_text(value) == "":
                    raise DataError(f"{where} row {index}: fields.{name} ({expr!r}) is empty")
                value = _as_text(value)
            elif name in ("aliases", "choices"):
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, (list, tuple)):
                    raise DataError(f"{where} row {index}: fields.{name} ({expr!r}) is not a list")
                value = [_as_text(v) for v in value if v is not None]
            out[name] = value
        if "choices" in out and self.spec.choices_shuffle:
            self._shuffle(out, index, where)
        return out

    def _shuffle(self, fields: dict, index: int, where: str) -> None:
        import numpy as np

        choices = fields["choices"]
        gold = fields["answer"].strip().upper()
        if len(gold) != 1 or LETTERS.find(gold) not in range(len(choices)):
            raise DataError(f"{where} row {index}: fields.answer must be the gold letter among "
                            f"{len(choices)} choices before shuffling, got {fields['answer']!r}")
        seed = int(self.spec.choices_shuffle["seed"])
        # the permutation depends on the seed and the question text only: stable under --limit and row order
        digest = hashlib.sha256(f"{seed}\x00{fields['question']}".encode()).digest()
        perm = np.random.default_rng(int.from_bytes(digest[:8], "little")).permutation(len(choices))
        fields["choices"] = [choices[i] for i in perm]
        fields["answer"] = LETTERS[int(np.flatnonzero(perm == LETTERS.index(gold))[0])]
        fields["permutation"] = [int(i) for i in perm]
        fields["shuffle_seed"] = seed

    def _id(self, doc: dict, fields: dict, index: int, where: str) -> str:
        if self._id_compiled is not None:
            try:
                value = evaluate_field(self.spec.id_field, doc, self._id_compiled)
            except ExpressionError as exc:
                raise DataError(f"{where} row {index}: id_field: {exc}") from None
            if value is not None and _as_text(value) != "":
                return _as_text(value)
        return question_sha1(fields["question"])

    def _build(self, rows: list[dict], where: str, start: int = 0) -> list[Example]:
        examples = []
        for i, doc in enumerate(rows, start):
            fields = self._fields(doc, i, where)
            examples.append(Example(index=i, id=self._id(doc, fields, i, where), doc=doc, fields=fields))
        return examples

    def _split_examples(self, split_name: str, limit: int | None = None) -> list[Example]:
        """The split's examples, built only as far as needed: the first ``limit`` rows (all with ``None``).

        Ids are de-duplicated in row order, so the first rows' ids do not depend on the rows after them and a
        prefix built for a small ``limit`` is the prefix of the whole split.
        """
        state = self._examples.get(split_name)
        if state is None:
            dataset, where = self._load(split_name)
            state = self._examples[split_name] = {"rows": dataset.to_list(), "where": where, "built": [], "seen": {}}
        rows, built = state["rows"], state["built"]
        want = len(rows) if limit is None else min(len(rows), max(int(limit), 0))
        if len(built) < want:
            seen: dict[str, int] = state["seen"]
            for ex in self._build(rows[len(built):want], state["where"], start=len(built)):
                count = seen.get(ex.id, 0) + 1
                seen[ex.id] = count
                if count > 1:
                    ex.id = f"{ex.id}-{count}"
                built.append(ex)
        return built[:want]

    def examples(self, split: str = "eval", limit: int | None = None) -> list[Example]:
        """The split's examples in row order.

        Args:
            split: ``"eval"``, ``"train"`` or ``"validation"`` (roles; the spec maps them to split names).
            limit: keep the first ``limit`` rows (``None``: all).

        Raises:
            DataError: no such split in the spec, missing file or column, or a row without a question/answer.
        """
        return self._split_examples(self.split_name(split), limit)

    def example_from_doc(self, doc: dict, index: int = 0) -> Example:
        """Build an :class:`Example` from a raw row given by the caller (e.g. a ``doc`` in ``capcal grade`` input).

        The id is derived as for a split row (without the de-duplication suffix, which needs the whole split).

        Raises:
            DataError: the row lacks something a field expression reads.
        """
        if not isinstance(doc, dict):
            raise DataError(f"task {self.name!r}: a document must be a JSON object, got {type(doc).__name__}")
        return self._build([doc], "document", start=index)[0]

    # -- prompts and grading --------------------------------------------------------------------------
    def fewshot_examples(self) -> list[dict]:
        """The few-shot examples (``fewshot.n`` rows of ``fewshot.split``, drawn with ``fewshot.seed``).

        Each is ``{"id", **fields}``; the same set is used for every question (a question never sees itself:
        one extra is drawn and the question's own row dropped at render time).
        """
        import numpy as np

        n = int(self.spec.fewshot.get("n", 0))
        if n <= 0:
            return []
        if self._fewshot is None:
            split = self.spec.fewshot["split"]
            name = self.split_name(split) if split in SPLIT_ROLES else split
            pool = self._split_examples(name)
            if len(pool) < n + 1:
                raise DataError(f"task {self.name!r}: fewshot.n = {n} but split {name!r} has {len(pool)} rows")
            rng = np.random.default_rng(int(self.spec.fewshot.get("seed", 0)))
            picks = rng.choice(len(pool), size=n + 1, replace=False)
            self._fewshot = [{"id": pool[i].id, **pool[i].fields} for i in picks]
        return self._fewshot

    def render_context(self, example: Example) -> dict[str, Any]:
        """The variables a template sees: the example's fields, ``doc``, ``id``, ``fewshot``, ``letters``."""
        n = int(self.spec.fewshot.get("n", 0))
        shots = [s for s in self.fewshot_examples() if s["id"] != example.id][:n]
        ctx: dict[str, Any] = {"doc": example.doc, "id": example.id, "fewshot": shots,
                               "letters": list(LETTERS[: len(example.fields.get("choices", []))])}
        ctx.update(example.fields)
        return ctx

    def render(self, example: Example) -> list[dict]:
        """Chat messages (``[{"role", "content"}]``) exactly as the model sees them.

        Raises:
            PromptError: the template fails on this example (an undefined variable is named).
        """
        return self.renderer.render(self.spec.template, self.render_context(example), system=self.spec.system)

    def grade(self, response: str, example: Example):
        """Grade one response with the task's grader (``GradeResult``: ``extracted``, ``correct``)."""
        return self.grader.grade(response, example.fields)
