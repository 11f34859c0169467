"""The layering rule of docs/architecture.md, read from the source: every import of every module of
``harness/`` and ``estimators_contrib/``, function-level imports included (``if TYPE_CHECKING:`` blocks,
which never run, left out).

Fails on an import cycle; on the numeric core importing models, the store, the run directory, the pipeline,
results or the registry; on a model backend importing tasks, graders or the pipeline; on the estimator
interface importing the run directory, results or the store.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"harness": "capcal", "estimators_contrib": "capcal.estimators_contrib"}

NUMERIC_CORE = ["capcal.metrics", "capcal.bootstrap", "capcal.passk", "capcal.budget", "capcal.selective",
                "capcal.routing", "capcal.study_stats", "capcal.validate", "capcal.resampling", "capcal.analysis",
                "capcal.paired", "capcal.metric_catalogue", "capcal.targets"]
IO_AND_ABOVE = ["capcal.models", "capcal.store", "capcal.rundir", "capcal.pipeline", "capcal.results",
                "capcal.registry", "capcal.compare", "capcal.report", "capcal.cli", "capcal.grading"]
BACKEND_MUST_NOT = ["capcal.tasks", "capcal.taskspec", "capcal.graders", "capcal.grading", "capcal.targets",
                    "capcal.pipeline", "capcal.estimators", "capcal.data"]
ESTIMATOR_INTERFACE_MUST_NOT = ["capcal.rundir", "capcal.results", "capcal.store", "capcal.pipeline"]


def _modules() -> dict[str, tuple[Path, bool]]:
    """``{dotted name inside capcal: (file, is_package)}`` for every module of the two folders."""
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            out[".".join([package, *parts])] = (path, is_package)
    return out


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def imports_of(name: str) -> list[tuple[str, int, bool]]:
    """``(imported capcal module, line, at function level)`` for every import in module ``name``."""
    path, is_package = MODULES[name]
    found: list[tuple[str, int, bool]] = []

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def walk(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    walk_one(stmt, deferred)
                continue
            walk_one(child, deferred)

    def walk_one(child: ast.AST, deferred: bool) -> None:
        inner = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(child, ast.Import):
            found.extend((a.name, child.lineno, inner) for a in child.names)
        elif isinstance(child, ast.ImportFrom):
            module = resolve(child)
            for alias in child.names:
                full = f"{module}.{alias.name}"
                found.append((full if full in MODULES else module, child.lineno, inner))
        walk(child, inner)

    walk(ast.parse(path.read_text(encoding="utf-8")), False)
    return [(m, line, deferred) for m, line, deferred in found if m == "capcal" or m.startswith("capcal.")]


def _within(module: str, prefixes: list[str]) -> str | None:
    return next((p for p in prefixes if module == p or module.startswith(p + ".")), None)


def test_the_reader_sees_function_level_imports():
    """The reader itself: a function-level import must be found (else every rule below is vacuous)."""
    found = imports_of("capcal.results")
    assert ("capcal.analysis", True) in {(m, d) for m, _, d in found}
    assert ("capcal.rundir", False) in {(m, d) for m, _, d in found}
    assert len(MODULES) > 50


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for name in MODULES:
        for target, _line, _deferred in imports_of(name):
            if target in MODULES and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    nodes = sorted(set(graph) | {t for ts in graph.values() for t in ts})
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(graph.get(root, ()))))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_detection_on_small_graphs():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"b"}}) == []


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, f"import cycles (function-level imports included): {found}"


RULES = {
    "numeric core reads no run directories": (NUMERIC_CORE, IO_AND_ABOVE),
    "a backend knows no tasks or graders": (["capcal.models"], BACKEND_MUST_NOT),
    "the estimator interface imports no I/O": (["capcal.estimators"], ESTIMATOR_INTERFACE_MUST_NOT),
}


def _violations(sources: list[str], forbidden: list[str]) -> list[str]:
    """``file:line imports X`` for every import from a module in ``sources`` of a module in ``forbidden``
    (imports inside the source's own group, such as models.base by models.hf_backend, are fine)."""
    bad = []
    for name in MODULES:
        group = _within(name, sources)
        if not group:
            continue
        for target, line, _deferred in imports_of(name):
            if _within(target, forbidden) and not _within(target, [group]):
                bad.append(f"{name} (line {line}) imports {target}")
    return bad


@pytest.mark.parametrize("rule", sorted(RULES))
def test_layering_rule(rule):
    assert not _violations(*RULES[rule])


@pytest.mark.parametrize("rule, source, planted", [
    ("numeric core reads no run directories", "capcal.analysis", "from .rundir import RunDir"),
    ("numeric core reads no run directories", "capcal.metrics", "def f():\n    from .models.base import Completion\n"),
    ("numeric core reads no run directories", "capcal.passk", "import capcal.results"),
    ("a backend knows no tasks or graders", "capcal.models.base", "from ..graders import Grader"),
    ("a backend knows no tasks or graders", "capcal.models.openai_backend", "def g():\n    from capcal.tasks import Task\n"),
    ("the estimator interface imports no I/O", "capcal.estimators", "from .rundir import RunDir"),
])
def test_each_rule_catches_a_planted_import(monkeypatch, tmp_path, rule, source, planted):
    """A rule fails as soon as the forbidden import is added (to a copy of the module)."""
    path, is_package = MODULES[source]
    copy = tmp_path / path.name
    copy.write_text(path.read_text(encoding="utf-8") + "\n" + planted + "\n", encoding="utf-8")
    monkeypatch.setitem(MODULES, source, (copy, is_package))
    assert _violations(*RULES[rule])
