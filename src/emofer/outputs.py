"""Output locations, checked before long work starts: a folder to fill, a file to write.

The CLI calls these before it loads a model or reads a frame, so a typo in ``--out`` or
``--table`` costs a second, not a whole video. Failures are :class:`~emofer.errors.OutputError`
with the reason and what to do.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TextIO

from .errors import OutputError

__all__ = ["check_output_folder", "check_output_file", "open_text"]


def check_output_folder(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (with its parents) if needed and check that files can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {path} ({_reason(exc)}); "
                          "pass a folder you can write to") from exc
    _probe(path)
    return path


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` can be written: not a folder, in an existing folder that takes new files."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; pass a file name inside it")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: the folder {folder} does not exist; "
                          f"create it first (mkdir -p {folder}) or pick another path")
    _probe(folder)
    return path


def open_text(path: str | os.PathLike[str]) -> TextIO:
    """``path`` opened for writing UTF-8 text (newlines as written); OutputError when it cannot be."""
    try:
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {path} ({_reason(exc)}); "
                          "check that its folder exists and is writable") from exc


def _probe(folder: Path) -> None:
    """Create and delete a temporary file in ``folder`` (permission bits alone say nothing for root)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write in the folder {folder} ({_reason(exc)}); "
                          "pass a folder you can write to") from exc


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
