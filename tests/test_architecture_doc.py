"""docs/architecture.md names every module of the library, training and benchmarks (one line each, or a row)."""

from __future__ import annotations

from .conftest import ROOT

DOC = ROOT / "docs" / "architecture.md"


def test_every_module_is_named():
    text = DOC.read_text(encoding="utf-8")
    files = [*(ROOT / "src" / "emofer").rglob("*.py"), *(ROOT / "training").glob("*.py"),
             *(ROOT / "benchmarks").glob("*.py")]
    assert len(files) > 60
    missing = sorted(str(f.relative_to(ROOT)) for f in files
                     if "models" not in f.parts and f.name != "__init__.py" and f.name not in text)
    assert missing == [], f"docs/architecture.md does not name {missing}"
    assert "detect/__init__.py" in text and "detect/registry.py" in text
