"""Image sources from command-line style inputs: files and URLs as given, folders searched recursively.

The one definition of which files a folder contributes, shared by ``emofer predict`` and
:func:`emofer.ray.image_paths`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from .fetch import is_url

__all__ = ["IMAGE_SUFFIXES", "image_sources"]

#: Files picked up inside folders (files named directly are always tried).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".jp2", ".pgm", ".ppm"})


def image_sources(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[str | Path, Path]]:
    """(image path or URL, its name under an output folder) for each image the inputs name.

    A URL string is yielded as given, named after the last part of its path; a folder yields
    its files with an image suffix, sorted, named by their place below the folder's own name;
    anything else is yielded as a path (whether it exists is the reader's business).
    """
    for text in paths:
        if isinstance(text, str) and is_url(text):
            yield text, Path(Path(urlsplit(text).path).name or "image")
            continue
        path = Path(text)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
                yield file, Path(path.name) / file.relative_to(path)
        else:
            yield path, Path(path.name)
