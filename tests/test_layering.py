"""The packages layer as docs/architecture.md says: each imports only the packages below it,
and no module imports another that imports it back. Every import counts, those inside
functions included, so an import cannot be moved into a function to hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("common", "sim", "datagen", "agents", "eval", "training")
"""Lowest first: a package may import the packages before it, never those after it."""

DEFERRED = {("sim.env", "sim.render"), ("agents.mapper", "sim.render")}
"""The only project imports made inside a function: the renderer's kernels are compiled (or
loaded from numba's cache) on first import, so modules that only sometimes render defer it.
Neither hides a cycle (the graph test below counts them)."""

ACTING = ("common", "sim", "datagen", "agents", "eval")
"""What acts and evaluates: none of it may import Lightning (what fits, ``training``)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p))
            for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))}


MODULES = project_modules()


def resolve(name: str) -> str:
    """The project module an imported dotted name is (its longest known prefix)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """(imported dotted name, inside a function) of every import statement of a module."""
    inner = {id(node) for fn in ast.walk(tree)
             if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
             for node in ast.walk(fn)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) in inner) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from pkg import module`` imports the module, ``from module import name`` not
            out += [(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES
                     else node.module, id(node) in inner) for alias in node.names]
    return out


def project_edges() -> list[tuple[str, str, bool]]:
    """(importer, imported project module, inside a function)."""
    return [(mod, resolve(name), deferred) for mod, tree in MODULES.items()
            for name, deferred in imports(tree) if name.split(".")[0] in LAYERS]


def test_every_package_is_found():
    assert {m.split(".")[0] for m in MODULES} == set(LAYERS)
    assert len(MODULES) > 60


def test_packages_import_only_the_layers_below():
    upward = sorted({(a, b) for a, b, _ in project_edges()
                     if LAYERS.index(b.split(".")[0]) > LAYERS.index(a.split(".")[0])})
    assert not upward, f"imports against the layering {' < '.join(LAYERS)}: {upward}"


def test_no_module_imports_one_that_imports_it_back():
    graph = nx.DiGraph((a, b) for a, b, _ in project_edges() if a != b)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_imports_inside_functions_are_only_the_documented_ones():
    deferred = {(a, b) for a, b, inside in project_edges() if inside}
    assert deferred == DEFERRED


@pytest.mark.parametrize("layer", ACTING)
def test_what_acts_never_imports_lightning(layer):
    found = sorted({(mod, name) for mod, tree in MODULES.items() if mod.split(".")[0] == layer
                    for name, _ in imports(tree)
                    if name.split(".")[0] in ("lightning", "pytorch_lightning")})
    assert not found, f"{layer} imports Lightning: {found}"


def test_the_checks_see_an_upward_import_and_a_cycle():
    """The graph code itself: a made-up upward import and cycle are found."""
    tree = ast.parse("def f():\n    from training.cli import main\n")
    assert imports(tree) == [("training.cli", True)]
    graph = nx.DiGraph([("sim.env", "datagen.tasks"), ("datagen.tasks", "sim.env")])
    assert list(nx.simple_cycles(graph))
