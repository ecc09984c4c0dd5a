"""The package's shape: no import cycle, and no arrow that runs up the layers (commands on top of the library)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "faithfusion"

LAYERS: list[set[str]] = [
    {"errors", "utils", "cameras"},
    {"data", "gaussians"},
    {"synth", "render", "scene_graph"},
    {"eval"},
    {"train"},
    {"eig"},
    {"fixers"},
    {"fusion"},
    {"curation", "protocols"},
    {"batch"},
    {"bench"},
    {"viewer"},
    {"commands", "cli"},
]
"""Bottom to top: a module may import its own layer or lower ones (the root `faithfusion` package is free)."""
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
SIBLINGS_APART = [("synth", "render"), ("render", "synth")]
"""Pairs on one layer that must not import each other."""


def module_names() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def import_edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its body (lazy imports inside functions count)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        base = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = base.split(".")
                    anchor = ".".join(parts[: len(parts) - node.level + 1])
                    module = f"{anchor}.{node.module}" if node.module else anchor
                else:
                    module = node.module or ""
                targets = [module] + [f"{module}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in mods:
                    target = target.rsplit(".", 1)[0] if "." in target else ""
                if target and target != name and not name.startswith(target + "."):
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def top_level(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_subpackage_has_a_layer():
    names = {top_level(m) for m in module_names()} - {None}
    assert names <= set(RANK), f"place these in LAYERS: {sorted(names - set(RANK))}"


def test_no_import_cycle():
    assert cycles(import_edges(module_names())) == []


def test_no_import_runs_up_the_layers():
    upward = []
    for name, targets in import_edges(module_names()).items():
        src = top_level(name)
        for target in targets:
            dst = top_level(target)
            if src is None or dst is None or src == dst:
                continue
            if RANK[dst] > RANK[src] or (src, dst) in SIBLINGS_APART:
                upward.append(f"{name} -> {target}")
    assert upward == []


def test_the_checks_see_a_cycle_and_an_upward_arrow():
    """The two checks above can fail: a cycle and an upward import in a made-up graph are found."""
    edges = {"faithfusion.render.a": {"faithfusion.train.b"}, "faithfusion.train.b": {"faithfusion.render.a"}}
    assert cycles(edges) == [["faithfusion.render.a", "faithfusion.train.b"]]
    assert RANK["train"] > RANK["render"]


@pytest.mark.parametrize("module", ["faithfusion.cli", "faithfusion.commands"])
def test_nothing_imports_the_entry_points(module):
    users = [name for name, targets in import_edges(module_names()).items()
             if any(t == module or t.startswith(module + ".") for t in targets)
             and not (name == module or name.startswith(module + ".") or name == "faithfusion.cli")]
    assert users == []
