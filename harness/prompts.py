"""Sandboxed Jinja rendering of prompt templates into chat messages, and field expressions of task specs.

Templates are looked up by file name in a list of directories (a spec's own folder, then plugins'
template directories, then capcal's ``templates/``). Rendering runs in
:class:`jinja2.sandbox.SandboxedEnvironment` with :class:`jinja2.StrictUndefined`, so a template cannot reach
Python internals and an undefined variable is an error instead of an empty string.

A template yields chat messages through two optional blocks::

    {% block system %}You are a careful mathematician.{% endblock %}
    {% block user %}Solve: {{ question }}{% endblock %}

``system`` becomes a ``{"role": "system"}`` message (left out when it renders empty), ``user`` the user
message. A template without blocks renders whole into the user message. Blocks are rendered on their own,
so variables a block needs must come from the render context (``{% set %}`` outside a block is not seen);
macros and ``{% include %}`` work as usual.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from .errors import CapcalError, UnknownNameError

Messages = list[dict[str, str]]


class PromptError(CapcalError):
    """A template is missing, has a syntax error, or uses an undefined variable (the message names it)."""


class ExpressionError(CapcalError):
    """A field expression of a task spec does not compile, or fails on a row."""


def _environment(loader: jinja2.BaseLoader | None = None, trim: bool = True) -> SandboxedEnvironment:
    return SandboxedEnvironment(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=trim,
                                lstrip_blocks=trim, keep_trailing_newline=False, autoescape=False)


@lru_cache(maxsize=8)
def _estimator_environment(dirs: tuple[str, ...]) -> SandboxedEnvironment:
    # estimator prompts render whole, without block trimming (their text is part of cached completions' keys)
    return _environment(jinja2.FileSystemLoader(list(dirs)), trim=False)


def render_user_prompt(template: str, *, template_dirs: Sequence[str | Path], **variables: Any) -> Messages:
    """Render an estimator's template (sandboxed, undefined variables are errors) to one user message.

    Estimators call it through :meth:`capcal.estimators.EstimatorContext.render_prompt`, which passes the
    run's template folders.

    Args:
        template: file name relative to a template folder (``"estimators/verbalized.jinja"``).
        template_dirs: folders searched in order (a registry's ``template_dirs``); capcal's own
            ``templates/`` is always searched last.
        **variables: the template's variables.

    Returns:
        ``[{"role": "user", "content": text}]`` with surrounding whitespace stripped.

    Raises:
        UnknownNameError: no folder holds ``template`` (the message lists the templates there are).
        CapcalError: the template uses a variable that was not given.
    """
    from .resources import resource_path

    dirs = [str(d) for d in template_dirs]
    own = str(resource_path("templates"))
    if own not in dirs:
        dirs.append(own)
    try:
        text = _estimator_environment(tuple(dirs)).get_template(template).render(**variables)
    except jinja2.TemplateNotFound:
        known = sorted(str(p.relative_to(d)) for d in map(Path, dirs) for p in d.rglob("*.jinja"))
        raise UnknownNameError("template", template, known) from None
    except jinja2.UndefinedError as exc:
        raise CapcalError(f"template {template!r}: {exc.message}") from None
    return [{"role": "user", "content": text.strip()}]


_EXPR_ENV = _environment()


def _undefined_name(exc: jinja2.UndefinedError) -> str:
    m = re.match(r"'([^']+)' is undefined", str(exc))
    return m.group(1) if m else str(exc)


def compile_field_expression(expr: str):
    """Compile a spec field expression (``answer.split('####')[-1] | trim``, ``"ABCD"[answer]``, ``question``).

    Returns:
        A callable taking the row's columns as keyword arguments and returning a native Python value.

    Raises:
        ExpressionError: on a syntax error.
    """
    try:
        return _EXPR_ENV.compile_expression(expr, undefined_to_none=False)
    except jinja2.TemplateSyntaxError as exc:
        raise ExpressionError(f"syntax error in {expr!r}: {exc.message}") from None


def expression_columns(expr: str) -> set[str]:
    """Top-level names an expression reads: its row columns, plus ``doc`` if it uses it (Jinja globals such
    as ``range`` are left out)."""
    try:
        names = set(meta.find_undeclared_variables(_EXPR_ENV.parse("{{ " + expr + " }}")))
        return names - set(_EXPR_ENV.globals)
    except jinja2.TemplateSyntaxError as exc:
        raise ExpressionError(f"syntax error in {expr!r}: {exc.message}") from None


#: Names that Jinja reads as literals, not as columns.
_LITERALS = frozenset({"true", "false", "none", "True", "False", "None"})


def evaluate_field(expr: str, doc: Mapping[str, Any], compiled: Any = None) -> Any:
    """Evaluate a field expression on one row.

    Args:
        expr: the expression text (used in messages).
        doc: the row; its columns are variables, and ``doc`` is the whole row (for column names with spaces:
            ``doc['Correct Answer']``).
        compiled: the result of :func:`compile_field_expression` (compiled here when ``None``).

    Returns:
        The native value (str, int, list, ...). ``None`` when the row holds null.

    Raises:
        ExpressionError: the expression reads something the row does not have, or raised.
    """
    name = expr.strip()
    if name.isidentifier() and name not in _EXPR_ENV.globals and name not in _LITERALS:
        # a bare column name (most fields): the row's value, without a Jinja context per row
        if name == "doc":
            return doc
        if name in doc:
            return doc[name]
        raise ExpressionError(f"{expr!r}: {name!r} is undefined")
    fn = compiled if compiled is not None else compile_field_expression(expr)
    try:
        value = fn(**{k: v for k, v in doc.items() if isinstance(k, str) and k.isidentifier()}, doc=doc)
    except jinja2.UndefinedError as exc:
        raise ExpressionError(f"{expr!r}: {exc}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise ExpressionError(f"{expr!r}: not allowed in the sandbox: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a user expression may raise anything (IndexError, TypeError)
        raise ExpressionError(f"{expr!r}: {type(exc).__name__}: {exc}") from None
    if isinstance(value, jinja2.Undefined):
        try:
            str(value)
        except jinja2.UndefinedError as exc:
            raise ExpressionError(f"{expr!r}: {exc}") from None
    return value


class PromptRenderer:
    """Renders templates found in ``template_dirs`` (earlier directories win) into chat messages.

    Args:
        template_dirs: directories searched in order for a template file name.
    """

    def __init__(self, template_dirs: Sequence[str | Path]):
        self.template_dirs = [Path(d) for d in template_dirs]
        self.env = _environment(jinja2.FileSystemLoader([str(d) for d in self.template_dirs]))

    @classmethod
    def for_spec(cls, spec: Any, registry: Any) -> PromptRenderer:
        """A renderer for a task spec: the spec's own folder first, then the registry's template dirs."""
        dirs = ([spec.source_dir] if spec.source_dir is not None else []) + list(registry.template_dirs)
        return cls(dirs)

    def _where(self) -> str:
        return ", ".join(str(d) for d in self.template_dirs) or "(no template directories)"

    def get_template(self, name: str) -> jinja2.Template:
        """Load a template by file name.

        Raises:
            PromptError: not found (the searched directories are named) or a syntax error (with its line).
        """
        try:
            return self.env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            missing = exc.name if exc.name != name else name
            raise PromptError(f"template {missing!r} not found in: {self._where()}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(f"template {exc.name or name!r} line {exc.lineno}: syntax error: {exc.message}") from None

    def undeclared_variables(self, name: str) -> set[str]:
        """Variables ``name`` (and every template it includes, imports or extends) reads from the context.

        Raises:
            PromptError: a template is missing or has a syntax error.
        """
        seen: set[str] = set()
        out: set[str] = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            try:
                source = self.env.loader.get_source(self.env, current)[0]
                ast = self.env.parse(source)
            except jinja2.TemplateNotFound:
                raise PromptError(f"template {current!r} not found in: {self._where()}") from None
            except jinja2.TemplateSyntaxError as exc:
                raise PromptError(f"template {current!r} line {exc.lineno}: syntax error: {exc.message}") from None
            out |= meta.find_undeclared_variables(ast)
            todo.extend(ref for ref in meta.find_referenced_templates(ast) if ref is not None)
        return out

    def undeclared_variables_in_string(self, source: str) -> set[str]:
        """Like :meth:`undeclared_variables` for a template given as a string (a spec's ``system``)."""
        try:
            return set(meta.find_undeclared_variables(self.env.parse(source)))
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(f"line {exc.lineno}: syntax error: {exc.message}") from None

    def render(self, name: str, variables: Mapping[str, Any], system: str | None = None) -> Messages:
        """Render template ``name`` into chat messages.

        Args:
            name: template file name.
            variables: the render context.
            system: a system prompt (itself a Jinja template string) that replaces the template's ``system``
                block; ``None`` keeps the block.

        Returns:
            ``[{"role": "system", ...}, {"role": "user", ...}]``, the system message left out when empty.
            Each content is stripped of leading and trailing whitespace.

        Raises:
            PromptError: missing template, or an undefined variable (named, with the template's name).
        """
        template = self.get_template(name)
        try:
            if "user" in template.blocks or "system" in template.blocks:
                ctx = template.new_context(dict(variables))
                sys_text = "".join(template.blocks["system"](ctx)) if "system" in template.blocks else ""
                user = "".join(template.blocks["user"](ctx)) if "user" in template.blocks else ""
            else:
                sys_text, user = "", template.render(dict(variables))
            if system is not None:
                sys_text = self.env.from_string(system).render(dict(variables))
        except jinja2.UndefinedError as exc:
            raise PromptError(f"template {name!r}: undefined variable {_undefined_name(exc)!r}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise PromptError(f"template {name!r}: not allowed in the sandbox: {exc}") from None
        messages: Messages = []
        if sys_text.strip():
            messages.append({"role": "system", "content": sys_text.strip()})
        if not user.strip():
            raise PromptError(f"template {name!r} rendered an empty user message")
        messages.append({"role": "user", "content": user.strip()})
        return messages
