"""The house, measured from the code: a package per pipeline step, imports at the top that form no
cycle between packages, and functions and classes a reader can hold in their head (issue 23)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1] / "trtprune"
TOP = {"__init__", "cli", "errors", "records", "registry"}  # what may sit in trtprune/ besides packages


def modules() -> dict[str, ast.Module]:
    return {
        ".".join(p.relative_to(ROOT.parent).with_suffix("").parts): ast.parse(p.read_text(), str(p))
        for p in sorted(ROOT.rglob("*.py"))
    }


def own_imports(node: ast.AST) -> list[str]:
    """trtprune modules that ``node`` imports (``from trtprune.x import y`` and ``import trtprune.x``)."""
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module] if node.module.split(".")[0] == "trtprune" else []
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "trtprune"]
    return []


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else parts[-1]


def module_level_imports(tree: ast.Module) -> list[str]:
    """Own imports executed at import time (TYPE_CHECKING blocks are not)."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.ClassDef) else ():
            found += own_imports(inner)
    return found


def in_function_imports(tree: ast.Module) -> list[str]:
    found = []
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
        for node in ast.walk(fn):
            found += own_imports(node)
    return found


def test_few_modules_sit_loose_in_the_package():
    loose = sorted(p.stem for p in ROOT.glob("*.py") if p.stem not in TOP)
    assert len(loose) <= 8, loose


def test_no_import_cycle_between_packages_at_module_level():
    graph = defaultdict(set)
    for name, tree in modules().items():
        for target in module_level_imports(tree):
            if package(target) != package(name) and target != "trtprune":
                graph[package(name)].add(package(target))

    def cycle_from(start: str, node: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                return (*seen, nxt)
            if nxt not in seen:
                found = cycle_from(start, nxt, (*seen, nxt))
                if found:
                    return found
        return None

    cycles = [c for p in sorted(graph) if (c := cycle_from(p, p, (p,)))]
    assert not cycles, cycles


def test_own_imports_sit_at_the_top():
    """The CLI too: it reaches the library through ``trtprune``'s lazy public API (``tp.run_prune``),
    so `--help` stays torch-free without an import inside a command."""
    inside = {n: i for n, t in modules().items() if (i := in_function_imports(t))}
    assert sum(map(len, inside.values())) <= 20, inside


def test_the_public_api_resolves_every_name():
    import trtprune

    for name in trtprune.__all__:
        assert getattr(trtprune, name) is not None, name


@pytest.mark.parametrize("limit,kind", [(60, ast.FunctionDef), (200, ast.ClassDef)])
def test_functions_and_classes_are_short(limit, kind):
    long = []
    for name, tree in modules().items():
        if name == "trtprune.cli" and kind is ast.FunctionDef:
            continue
        for node in ast.walk(tree):
            if isinstance(node, kind) and node.end_lineno - node.lineno + 1 > limit:
                long.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long, long
