"""No module of emofer imports a module that imports it back, directly or through others (issue #19).

What counts as an import: every ``import`` and ``from ... import`` statement in a module's source,
at module level, inside functions and under ``if TYPE_CHECKING:`` alike. An annotation-only
import still ties two modules together (the issue's own example, video.py naming the recognizer
that imports it, was one), so it counts; a module that needs only part of another types against
a small Protocol instead (``emofer.video.FacePredictor``).

What an import is an edge to: ``import emofer.a.b`` and ``from emofer.a import b`` (``b`` a
module) are edges to ``emofer.a.b``; ``from emofer.a import name`` (not a module) is an edge to
``emofer.a``. The parent packages that Python runs first are not edges of their own: else every
submodule of a package whose ``__init__`` imports its submodules would sit in a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import emofer

PACKAGE = Path(emofer.__file__).resolve().parent


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file below ``package`` (named as the package)."""
    modules = {}
    for file in sorted(package.rglob("*.py")):
        parts = [package.name, *file.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = file
    return modules


def imported_modules(name: str, file: Path, modules: Mapping[str, Path]) -> set[str]:
    """The modules of ``modules`` that ``name`` (its source in ``file``) imports anywhere in it."""
    root = name.split(".")[0]
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), filename=str(file))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: each level past the first goes one package up
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                targets.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source)
    return {target for target in targets if target.split(".")[0] == root and target in modules and target != name}


def import_graph(package: Path) -> dict[str, set[str]]:
    """Each module of ``package`` -> the modules of the package it imports."""
    modules = module_files(package)
    return {name: imported_modules(name, file, modules) for name, file in modules.items()}


def tangles(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """The groups of modules that import each other round (strongly connected, with a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                top = stack.pop()
                group.add(top)
                if top == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle per group of :func:`tangles` (its modules in import order, the first repeated
    at the end); [] when the graph has none."""
    return [cycle_in(graph, group) for group in tangles(graph)]


def cycle_in(graph: Mapping[str, set[str]], group: set[str]) -> list[str]:
    """A shortest cycle through the group's first module, staying inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & group):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")  # a strongly connected group has one


def test_no_emofer_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph(PACKAGE)
    found = [(cycle_in(graph, group), group) for group in tangles(graph)]
    assert not found, "import cycles in emofer:\n" + "\n".join(
        f"  {' -> '.join(cycle)}" + (f"\n    (the whole tangle: {', '.join(sorted(group))})" if len(group) > len(cycle) - 1 else "")
        for cycle, group in found)


def test_the_graph_sees_imports_in_functions_and_under_type_checking() -> None:
    graph = import_graph(PACKAGE)
    assert "emofer.video" in graph["emofer.recognizer"]  # imported inside predict_video and under TYPE_CHECKING
    assert "emofer.recognizer" in graph["emofer.options"]  # imported inside load_recognizer
    assert "emofer.hub" in graph["emofer.detect.yunet"]  # from .. import hub, inside a function
    assert "emofer.cam" in graph["emofer.cli"] and "emofer.cli" in graph["emofer.__main__"]
    assert "emofer.video" not in graph["emofer.results"]


def test_a_cycle_is_found_and_printed(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import A\n")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub import c\nA = 1\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("def f():\n    from ..b import B\n")
    (package / "b.py").write_text("import pkg.a\nB = 2\n")
    (package / "d.py").write_text("from . import a, b\n")  # imports the cycle, is not in it
    assert cycles(import_graph(package)) == [["pkg.a", "pkg.sub.c", "pkg.b", "pkg.a"]]
    assert cycles({"x": {"x"}, "y": set()}) == [["x", "x"]]
    assert cycles({"x": {"y"}, "y": set()}) == []
