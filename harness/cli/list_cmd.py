"""``capcal list [tasks|graders|estimators|models]``: what is registered, and what failed to load."""

from __future__ import annotations

import argparse
import inspect
import re
from typing import Any

from ._help import add_command

KINDS = ("tasks", "graders", "estimators", "models")


HELP = "list registered tasks, graders, estimators and model backends"

DESCRIPTION = """\
List what the installed plugins register (capcal's built-ins included). Plugins that failed to load and task
specs that failed validation are listed at the end.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_command(subparsers, "list", HELP, DESCRIPTION)
    parser.add_argument("kind", nargs="?", choices=KINDS, help="list only this kind (default: all)")
    parser.set_defaults(func=run)
    return parser


_ROLE = re.compile(r":(?:class|func|meth|attr|mod):`~?([^`]+)`")


def _summary(obj: Any) -> str:
    """First line of an object's docstring (its class's for instances), or '', as plain text:
    Sphinx roles and double backquotes are dropped (``:class:`Foo``` -> ``Foo``)."""
    doc = inspect.getdoc(obj) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    return _ROLE.sub(r"\1", first).replace("``", "")


def _origin(obj: Any) -> str:
    module = getattr(obj, "__module__", "") or ""
    return f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}".strip(".")


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    if not rows:
        return [f"{indent}(none)"]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)] + [row[-1]]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def task_rows(registry: Any) -> list[tuple[str, ...]]:
    """One row per task: name, data set (path/config:split), grader, template, and source for non-built-ins."""
    from ..resources import resource_path

    try:
        builtin_dir = str(resource_path("tasks").resolve())
    except FileNotFoundError:
        builtin_dir = ""
    rows = []
    for name, spec in sorted(registry.task_specs.items()):
        ds = spec.dataset
        data = f"{ds.path}{'/' + ds.name if ds.name else ''}:{ds.split}"
        src = "" if builtin_dir and str(spec.source).startswith(builtin_dir) else f"(from {spec.source})"
        rows.append((name, data, f"grader={spec.grader}", f"template={spec.template}", src))
    return rows


def render_listing(registry: Any, kind: str | None = None) -> str:
    """The text ``capcal list`` prints (a library user can call it too)."""
    lines: list[str] = []
    kinds = [kind] if kind else list(KINDS)
    for k in kinds:
        if k == "tasks":
            rows = task_rows(registry)
        elif k == "graders":
            rows = [(n, _summary(getattr(f, "grader_class", f))) for n, f in sorted(registry.graders.items())]
        elif k == "estimators":
            rows = [(n, _origin(c), _summary(c)) for n, c in sorted(registry.estimators.items())]
        else:
            rows = [(n, _origin(f), _summary(f)) for n, f in sorted(registry.models.items())]
        lines.append(f"{k} ({len(rows)}):")
        lines.extend(_table(rows))
        lines.append("")
    if kind in (None, "tasks") and registry.task_errors:
        lines.append(f"task spec errors ({len(registry.task_errors)}):")
        lines.extend(f"  {err}" for err in registry.task_errors)
        lines.append("")
    if registry.plugin_errors:
        lines.append(f"plugin errors ({len(registry.plugin_errors)}):")
        lines.extend(f"  {err}" for err in registry.plugin_errors)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def run(args: argparse.Namespace) -> int:
    from ..registry import get_registry

    registry = get_registry()
    print(render_listing(registry, args.kind), end="")
    return 0
