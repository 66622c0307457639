"""The documentation site builds with warnings as errors (mkdocs build --strict)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

TIMEOUT_S = 300
DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def test_site_builds_strict(tmp_path: Path) -> None:
    missing = [name for name in DOCS_PACKAGES if not installed(name)]
    if missing:
        pytest.skip(f"docs tools not installed ({', '.join(missing)}): pip install -e \".[docs]\"")
    process = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert process.returncode == 0, process.stdout + process.stderr
    site = tmp_path / "site"
    for page in ("index.html", "quickstart/index.html", "api/recognizer/index.html", "cli/index.html"):
        assert (site / page).is_file(), page
    assert "from_pretrained" in (site / "api" / "recognizer" / "index.html").read_text(encoding="utf-8")


def test_reproduce_commands_name_runs_beside_each_other() -> None:
    """The training page's commands put --out, --init-from and --teacher in one runs/ folder."""
    pytest.importorskip("mkdocs", reason='docs extras not installed: pip install -e ".[docs]"')  # docs/hooks.py
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    local = ("python -m training.train --recipe d --out /data/runs/d --init-from /data/runs/b/best.keras "
             "--teacher /data/runs/t --teacher /elsewhere/t2")
    assert hooks._with_out(local, "runs/d") == (
        "python -m training.train --recipe d --out runs/d --init-from runs/b/best.keras "
        "--teacher runs/t --teacher /elsewhere/t2")
    assert hooks._with_out("python -m training.train --recipe d", "runs/d") == "python -m training.train --recipe d"
