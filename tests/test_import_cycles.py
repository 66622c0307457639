"""No import cycle anywhere in the tree: src/emofer, training/ and benchmarks/, across them too.

Static, over the files' source with ast (the rules of tests/test_imports.py: every import
statement counts, at module level, in functions and under TYPE_CHECKING), so training modules
that need TensorFlow are read, never imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT
from .test_imports import imported_modules, module_files, tangles

PACKAGES = (ROOT / "src" / "emofer", ROOT / "training", ROOT / "benchmarks")
#: Known import cycles (none now): a new one fails the test.
KNOWN: list[set[str]] = []


def package_graph(package: Path) -> dict[str, set[str]]:
    """Each module of ``package`` -> the modules of the same package it imports (tests/test_imports.py's rules)."""
    modules = module_files(package)
    return {name: imported_modules(name, file, modules) for name, file in modules.items()}


def packages_imported(package: Path) -> set[str]:
    """The other packages of the tree that any module of ``package`` imports."""
    roots = {p.name for p in PACKAGES} - {package.name}
    found = set()
    for file in package.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), filename=str(file))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            found.update(name.split(".")[0] for name in names if name.split(".")[0] in roots)
    return found


def test_no_package_of_the_tree_has_an_import_cycle():
    graphs = {package.name: package_graph(package) for package in PACKAGES}
    assert {"emofer.recognizer", "emofer.detect.registry"} <= set(graphs["emofer"])
    assert "training.data" in graphs["training"]["training.framing"]  # training is read, never imported
    new = [group for graph in graphs.values() for group in tangles(graph) if group not in KNOWN]
    assert new == [], f"import cycles: {new}"


def test_the_packages_import_each_other_one_way():
    """emofer imports neither training nor benchmarks; those two never import each other round, so no cycle
    crosses packages."""
    graph = {package.name: packages_imported(package) for package in PACKAGES}
    assert graph["emofer"] == set() and "emofer" in graph["training"] and "emofer" in graph["benchmarks"]
    assert tangles(graph) == []


def test_a_cycle_would_be_found(tmp_path):
    for name, text in {"a.py": "from pkg import b\n", "b.py": "def f():\n    from pkg.a import x\n"}.items():
        (tmp_path / "pkg").mkdir(exist_ok=True)
        (tmp_path / "pkg" / name).write_text(text)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    assert tangles(package_graph(tmp_path / "pkg")) == [{"pkg.a", "pkg.b"}]
