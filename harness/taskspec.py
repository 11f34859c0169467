"""Task specs: YAML files that declare a task, loaded with ``yaml.safe_load`` and validated against a schema.

A spec names the data set (Hugging Face id, config, splits), maps the data's columns to the canonical
fields (``question``, ``answer``, ``aliases``, ``choices``), and names the prompt template, the grader and
the generation defaults. Every problem is reported as one :class:`~capcal.errors.SpecError` that names the
file, the dotted key and what was expected. The full key reference is ``docs/task-spec.md``.

Checks that need the registry (is the grader registered, does the template exist, does it only use
variables the task provides) live in :func:`check_spec`; :func:`load_spec` checks the file on its own.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .defaults import DEFAULT_K, DEFAULT_MAX_TOKENS
from .errors import SpecError
from .schema_cache import accepted_before, fingerprint, remember_accepted

#: Split roles accepted by ``Task.examples`` and ``fewshot.split``.
SPLIT_ROLES = ("eval", "train", "validation")

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

_GENERATION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "temperature": {"type": "number", "minimum": 0},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "top_k": {"type": "integer", "minimum": 0},
        "min_p": {"type": "number", "minimum": 0, "maximum": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "k": {"type": "integer", "minimum": 1},
        "stop": {"type": "array", "items": {"type": "string", "minLength": 1}},
    },
}

#: JSON schema (draft 2020-12) of a task spec. ``docs/task-spec.md`` documents every key.
SPEC_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["task", "dataset", "fields", "template", "grader"],
    "properties": {
        "task": {"type": "string", "pattern": _NAME},
        "dataset": {
            "type": "object",
            "additionalProperties": False,
            "required": ["path", "split"],
            "properties": {
                "path": {"type": "string", "minLength": 1},
                "name": {"type": ["string", "null"], "minLength": 1},
                "split": {"type": "string", "minLength": 1},
                "train_split": {"type": ["string", "null"], "minLength": 1},
                "validation_split": {"type": ["string", "null"], "minLength": 1},
            },
        },
        "fields": {
            "type": "object",
            "required": ["question", "answer"],
            "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
            "additionalProperties": {"type": "string", "minLength": 1},
        },
        "id_field": {"type": ["string", "null"], "minLength": 1},
        "template": {"type": "string", "pattern": r"^[^/\\].*\.jinja$"},
        "system": {"type": ["string", "null"]},
        "grader": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "options": {"type": ["object", "null"]},
            },
        },
        "generation": _GENERATION,
        "fewshot": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "n": {"type": "integer", "minimum": 0},
                "split": {"type": "string", "minLength": 1},
                "seed": {"type": "integer"},
            },
        },
        "choices_shuffle": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["seed"],
            "properties": {"seed": {"type": "integer"}},
        },
        "metadata": {
            "type": ["object", "null"],
            "properties": {
                "version": {"type": ["string", "integer", "number"]},
                "citation": {"type": "string"},
            },
        },
    },
}

_TYPE_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "object": "a mapping",
               "array": "a list", "null": "null", "boolean": "true or false"}

#: Generation defaults used when a spec leaves a key out (untruncated sampling).
DEFAULT_GENERATION: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "max_tokens": DEFAULT_MAX_TOKENS, "k": DEFAULT_K,
                                      "stop": []}


@dataclass(frozen=True)
class DatasetSpec:
    """Where a task's documents come from.

    Attributes:
        path: Hugging Face data set id (``"openai/gsm8k"``).
        name: configuration (``"main"``), or ``None`` for the default one (mirror folder ``default``).
        split: the evaluation split.
        train_split: split for fitting learned estimators, or ``None``.
        validation_split: split for selecting their hyper-parameters, or ``None``.
    """

    path: str
    name: str | None
    split: str
    train_split: str | None = None
    validation_split: str | None = None


@dataclass
class TaskSpec:
    """A validated task spec.

    Attributes:
        name: the task's name (``task`` key); unique in a registry.
        dataset: where the documents come from.
        fields: ``{canonical field: Jinja expression over the row's columns}``; a bare column name is the
            simplest expression. ``question`` and ``answer`` are always present.
        template: file name of the answer-prompt template (looked up beside the spec, then in the registry's
            template directories).
        grader: registered grader name; ``grader_options`` are passed to its factory as keyword arguments.
        generation: generation defaults, :data:`DEFAULT_GENERATION` filled in for missing keys.
        system: a system prompt that replaces the template's ``system`` block, or ``None``.
        fewshot: ``{"n", "split", "seed"}`` (``n`` = 0: zero-shot).
        choices_shuffle: ``{"seed": int}`` to present the ``choices`` in a seeded per-question order, or
            ``None``.
        id_field: expression giving a stable question id; ``None`` (or a null value in a row) means the id is
            the sha1 of the question text.
        metadata: free-form, at least ``version`` and ``citation`` where known.
        source: the YAML file (``"<object>"`` for specs built in code).
        raw: the parsed YAML mapping.
    """

    name: str
    dataset: DatasetSpec
    fields: dict[str, str]
    template: str
    grader: str
    grader_options: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_GENERATION))
    system: str | None = None
    fewshot: dict[str, Any] = field(default_factory=lambda: {"n": 0, "split": "train", "seed": 0})
    choices_shuffle: dict[str, Any] | None = None
    id_field: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "<object>"
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def source_dir(self) -> Path | None:
        """Folder of the spec file (searched first for its template), ``None`` for specs built in code."""
        return Path(self.source).parent if self.source != "<object>" else None

    def split_name(self, role: str) -> str | None:
        """The split name for a role (``"eval"``, ``"train"``, ``"validation"``); ``None`` if the spec has none.

        Raises:
            ValueError: for an unknown role.
        """
        if role == "eval":
            return self.dataset.split
        if role == "train":
            return self.dataset.train_split
        if role == "validation":
            return self.dataset.validation_split
        raise ValueError(f"unknown split role {role!r}; expected one of {', '.join(SPLIT_ROLES)}")

    @classmethod
    def from_dict(cls, data: Any, source: str | Path = "<object>") -> TaskSpec:
        """Validate a parsed YAML mapping and build the spec.

        Raises:
            SpecError: naming ``source``, the first offending key and what was expected.
        """
        source = str(source)
        _validate(data, source)
        ds = data["dataset"]
        gen = dict(DEFAULT_GENERATION)
        gen.update(data.get("generation") or {})
        gen["stop"] = list(gen.get("stop") or [])
        fewshot = {"n": 0, "split": "train", "seed": 0}
        fewshot.update(data.get("fewshot") or {})
        if fewshot["split"] in ("eval",):
            fewshot["split"] = ds["split"]
        spec = cls(
            name=data["task"],
            dataset=DatasetSpec(path=ds["path"], name=ds.get("name"), split=ds["split"],
                                train_split=ds.get("train_split"), validation_split=ds.get("validation_split")),
            fields=dict(data["fields"]),
            template=data["template"],
            grader=data["grader"]["name"],
            grader_options=dict(data["grader"].get("options") or {}),
            generation=gen,
            system=data.get("system"),
            fewshot=fewshot,
            choices_shuffle=dict(data["choices_shuffle"]) if data.get("choices_shuffle") else None,
            id_field=data.get("id_field"),
            metadata=dict(data.get("metadata") or {}),
            source=source,
            raw=data,
        )
        _check_semantics(spec)
        return spec


def _key(path: Any) -> str | None:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else None


def _type_words(types: Any) -> str:
    types = [types] if isinstance(types, str) else list(types)
    return " or ".join(_TYPE_WORDS.get(t, t) for t in types)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _error_to_spec_error(err: Any, source: str) -> SpecError:
    """One :class:`SpecError` from a ``jsonschema.ValidationError``."""
    key = _key(err.absolute_path)
    v = err.validator
    if v == "required":
        missing = re.search(r"'([^']+)' is a required property", err.message)
        name = missing.group(1) if missing else "?"
        key = f"{key}.{name}" if key else name
        expected = err.schema.get("properties", {}).get(name, {}).get("type", "a value")
        return SpecError(source, key, f"missing; expected {_type_words(expected)}")
    if v == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        name = extra[0] if extra else "?"
        known = ", ".join(sorted(err.schema.get("properties", {})))
        return SpecError(source, f"{key}.{name}" if key else name, f"unknown key; expected one of: {known}")
    if v == "type":
        return SpecError(source, key, f"expected {_type_words(err.validator_value)}, got {_describe(err.instance)}")
    if v == "pattern" and "propertyNames" in err.schema_path:
        return SpecError(source, f"{key}.{err.instance}" if key else str(err.instance),
                         "expected a field name that is an identifier (letters, digits, _; not first a digit)")
    if v == "pattern":
        if key == "template":
            return SpecError(source, key, f"expected a template file name ending in .jinja, got {err.instance!r}")
        return SpecError(source, key, f"expected a name matching {err.validator_value}, got {err.instance!r}")
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        words = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[v]
        return SpecError(source, key, f"expected a value {words} {err.validator_value}, got {err.instance!r}")
    if v == "minLength":
        return SpecError(source, key, "expected a non-empty string")
    return SpecError(source, key, f"invalid value {_describe(err.instance)}: {err.message}")


#: libyaml's loader where PyYAML was built with it (same documents, several times faster)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_SCHEMA_ID = "task-spec/Draft202012/" + fingerprint(SPEC_SCHEMA)


def _validate(data: Any, source: str) -> None:
    if not isinstance(data, dict):
        raise SpecError(source, None, f"expected a YAML mapping at the top level, got {_describe(data)}")
    if accepted_before(_SCHEMA_ID, data):  # an unchanged spec: no jsonschema import (capcal.schema_cache)
        return
    import jsonschema

    validator = jsonschema.Draft202012Validator(SPEC_SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if errors:
        # the shallowest error first: a missing top-level key explains everything below it
        raise _error_to_spec_error(errors[0], source)
    remember_accepted(_SCHEMA_ID, data)


def _check_semantics(spec: TaskSpec) -> None:
    """Rules the schema cannot express (cross-key consistency, expression syntax)."""
    from .prompts import ExpressionError, compile_field_expression

    for name, expr in list(spec.fields.items()) + ([("id_field", spec.id_field)] if spec.id_field else []):
        key = "id_field" if name == "id_field" else f"fields.{name}"
        try:
            compile_field_expression(expr)
        except ExpressionError as exc:
            raise SpecError(spec.source, key, f"expected a Jinja expression over the row's columns: {exc}") from None
    if spec.choices_shuffle and "choices" not in spec.fields:
        raise SpecError(spec.source, "choices_shuffle", "needs 'fields.choices' (the options to shuffle)")
    ds = spec.dataset
    for role in ("train_split", "validation_split"):  # leakage rule: never fit or select on the scored split
        if getattr(ds, role) is not None and getattr(ds, role) == ds.split:
            raise SpecError(spec.source, f"dataset.{role}",
                            f"{role} {getattr(ds, role)!r} is the evaluation split (dataset.split); learned "
                            "estimators would fit on the questions they are scored on. Name a different split, "
                            "or remove the key")
    if ds.train_split is not None and ds.train_split == ds.validation_split:
        raise SpecError(spec.source, "dataset.validation_split",
                        f"validation_split {ds.validation_split!r} is also the train_split; hyper-parameters "
                        "would be selected on the training questions. Name a different split, or remove the key")
    split = spec.fewshot["split"]
    if spec.fewshot["n"] > 0 and split in ("train", "validation") and spec.split_name(split) is None:
        raise SpecError(spec.source, "fewshot.split",
                        f"expected a split the spec declares; dataset.{split}_split is not set")


def load_spec(path: str | Path) -> TaskSpec:
    """Read and validate one task spec file.

    Args:
        path: a ``.yaml`` / ``.yml`` file.

    Returns:
        The :class:`TaskSpec` (registry-dependent checks are :func:`check_spec`'s job).

    Raises:
        SpecError: unreadable file, YAML syntax error (with line and column), or a schema violation.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(str(path), None, f"cannot read the spec: {exc.strerror or exc}") from None
    try:
        try:
            data = yaml.load(text, Loader=_LOADER)
        except yaml.YAMLError:  # the error as the pure-Python loader words it (its messages are the documented ones)
            data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(str(path), None, f"YAML syntax error{where}: {problem}") from None
    return TaskSpec.from_dict(data, source=path)


def find_spec_files(directory: str | Path) -> list[Path]:
    """Task spec files under ``directory`` (recursively), sorted; a single file is returned as is.

    Files ending in ``.yaml`` or ``.yml`` are specs; a missing directory yields an empty list.
    """
    directory = Path(directory)
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def check_spec(spec: TaskSpec, registry: Any) -> None:
    """Check a spec against a registry: the grader exists, the template exists and uses only known variables.

    Args:
        spec: the loaded spec.
        registry: a :class:`capcal.registry.Registry` (for graders and template directories).

    Raises:
        SpecError: ``grader.name`` unknown, ``template`` not found, or the template (or a template it
            includes) using a variable the task does not provide; the message names the variable.
    """
    from .prompts import PromptError, PromptRenderer

    if spec.grader not in registry.graders:
        known = ", ".join(sorted(registry.graders)) or "(none registered)"
        raise SpecError(spec.source, "grader.name",
                        f"unknown grader {spec.grader!r}{_did_you_mean(spec.grader, registry.graders)}; "
                        f"expected one of: {known}")
    renderer = PromptRenderer.for_spec(spec, registry)
    try:
        undefined = renderer.undeclared_variables(spec.template) - template_variables(spec)
    except PromptError as exc:
        hint = ""
        if "not found" in str(exc):
            hint = _did_you_mean(spec.template, renderer.env.list_templates(extensions=["jinja"]))
        raise SpecError(spec.source, "template", f"{exc}{hint}") from None
    if undefined:
        names = ", ".join(sorted(undefined))
        raise SpecError(spec.source, "template",
                        f"template {spec.template!r} uses undefined variable(s) {names}; "
                        f"expected only: {', '.join(sorted(template_variables(spec)))}")
    if spec.system:
        try:
            undefined = renderer.undeclared_variables_in_string(spec.system) - template_variables(spec)
        except PromptError as exc:
            raise SpecError(spec.source, "system", str(exc)) from None
        if undefined:
            raise SpecError(spec.source, "system", f"uses undefined variable(s) {', '.join(sorted(undefined))}")


def _did_you_mean(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def template_variables(spec: TaskSpec) -> set[str]:
    """Names a template of ``spec`` may use: the mapped fields plus ``doc``, ``id``, ``fewshot``, ``letters``."""
    extra = {"doc", "id", "fewshot", "letters"}
    if spec.choices_shuffle:
        extra |= {"permutation", "shuffle_seed"}
    return set(spec.fields) | extra
