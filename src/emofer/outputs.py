"""The one output policy: where emofer may write, checked before the work starts, and how it writes.

Every writer follows it: ``emofer predict`` / ``video`` / ``cam``, tables, Ray's Parquet folders and
the Python API (:func:`emofer.video.write_video`, :func:`emofer.video.write_table`,
:func:`write_image`):

- an output never resolves to an input: not the same path, not a hard link or symlink to it;
- an output never lands inside a folder being read, unless that folder is skipped while reading
  (``emofer predict photos/ --out photos/annotated`` skips ``photos/annotated``);
- an existing file is never replaced unless the caller says so (``--overwrite``, ``overwrite=True``);
- names from different input folders never collide (:func:`copy_names` mirrors the input tree,
  then numbers what still clashes);
- files are written to a temporary name beside the target and renamed into place
  (:func:`atomic_path`), so an interrupted run leaves no half-written file.

Refusals are :class:`~emofer.errors.OutputError` with the reason and what to do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import cv2
import numpy as np

from .errors import OutputError

__all__ = [
    "Inputs",
    "as_inputs",
    "check_output_folder",
    "check_output_file",
    "check_new_folder",
    "copy_names",
    "atomic_path",
    "new_folder",
    "commit",
    "temporary_path",
    "open_text",
    "write_image",
    "write_bytes",
    "WRITABLE_SUFFIXES",
    "OVERWRITE_HINT",
]

#: Suffixes OpenCV can write an image as; annotated copies of other images are saved as PNG.
WRITABLE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
#: How to replace an existing file, from the command line and from Python.
OVERWRITE_HINT = "pass --overwrite (overwrite=True in Python) to replace it, or choose another name"
#: Marks the temporary files beside a target while it is written.
PART = ".emofer-part"

PathLike = str | os.PathLike[str]
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class Inputs:
    """What a run reads: files (matched by identity: same path, hard link or symlink) and the folders
    it searches, less the ``skipped`` folders it leaves out while searching."""

    def __init__(
        self, files: Iterable[PathLike] = (), folders: Iterable[PathLike] = (), skipped: Iterable[PathLike] = ()
    ) -> None:
        self.files = [Path(f) for f in files]
        self.folders = [Path(f) for f in folders]
        self.skipped = [_resolve(Path(f)) for f in skipped]
        self._ids = {key: path for path in self.files if (key := _identity(path)) is not None}
        self._paths = {_resolve(path): path for path in self.files}
        self._folders = {_resolve(folder): folder for folder in self.folders}

    def source(self, path: PathLike) -> Path | None:
        """The input that ``path`` is (the same file by path, link or inode), else None."""
        key = _identity(Path(path))
        if key is not None and key in self._ids:
            return self._ids[key]
        return self._paths.get(_resolve(Path(path)))

    def folder(self, path: PathLike) -> Path | None:
        """The input folder that ``path`` is, else None."""
        return self._folders.get(_resolve(Path(path)))

    def read_folder_around(self, path: PathLike) -> Path | None:
        """The input folder that holds ``path`` and is searched there (not skipped), else None."""
        resolved = _resolve(Path(path))
        if any(resolved.is_relative_to(skip) for skip in self.skipped):
            return None
        return next((given for folder, given in self._folders.items() if resolved.is_relative_to(folder)), None)

    def is_skipped(self, path: PathLike) -> bool:
        """Whether ``path`` lies in a folder left out while searching (an output folder)."""
        resolved = _resolve(Path(path))
        return any(resolved.is_relative_to(skip) for skip in self.skipped)


def as_inputs(inputs: Inputs | Iterable[PathLike] | None) -> Inputs:
    """``inputs`` as an :class:`Inputs`: one as is, an iterable of input files, or None (no inputs)."""
    if isinstance(inputs, Inputs):
        return inputs
    return Inputs([] if inputs is None else [p for p in inputs if os.path.exists(p)])


def check_output_file(
    path: PathLike,
    inputs: Inputs | None = None,
    *,
    overwrite: bool = False,
    make_parents: bool = False,
    probe: bool = True,
) -> Path:
    """Check that ``path`` may be written: not an input, not in a folder being read, not a folder,
    new unless ``overwrite``, in a folder that exists (or will: ``make_parents``) and takes files
    (``probe``: tried with a temporary file)."""
    path = Path(path)
    inputs = inputs or Inputs()
    source = inputs.source(path)
    if source is not None:
        same = "" if _resolve(source) == _resolve(path) and str(source) == str(path) else f" ({path} is {source})"
        raise OutputError(
            f"{path} is an input{same}: emofer never writes over its inputs; write the result to another file or folder"
        )
    around = inputs.read_folder_around(path)
    if around is not None:
        raise OutputError(f"{path} is inside {around}, which is being read; write the result outside it")
    if path.is_dir():
        raise OutputError(f"{path} is a folder; pass a file name inside it")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise OutputError(f"{path} already exists; {OVERWRITE_HINT}")
    folder = _existing_parent(path.parent) if make_parents else path.parent
    if not folder.is_dir():
        if make_parents:
            raise OutputError(f"cannot create the folder of {path}: {folder} is a file; pass another --out")
        raise OutputError(
            f"cannot write {path}: the folder {folder} does not exist; "
            f"create it first (mkdir -p {folder}) or pick another path"
        )
    if probe:
        _probe(folder)
    return path


def check_output_folder(path: PathLike, inputs: Inputs | None = None, *, create: bool = True) -> Path:
    """Check that ``path`` may receive output files (not an input, not an input folder), then create
    it with its parents (``create``) and check that files can be written in it."""
    path = Path(path)
    inputs = inputs or Inputs()
    if inputs.source(path) is not None:
        raise OutputError(f"the output folder {path} is an input file; pass a folder for the results")
    if inputs.folder(path) is not None:
        raise OutputError(
            f"the output folder {path} is the input folder {inputs.folder(path)}; "
            "write the results to another folder (e.g. --out annotated/)"
        )
    if path.exists() and not path.is_dir():
        raise OutputError(f"the output folder {path} is a file; pass a folder for the results")
    parent = _existing_parent(path)
    if not parent.is_dir():
        raise OutputError(
            f"cannot create the output folder {path} ({parent} is a file); pass a folder you can write to"
        )
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output folder {path} ({_reason(exc)}); pass a folder you can write to"
        ) from exc
    _probe(path)
    return path


def check_new_folder(path: PathLike, inputs: Inputs | None = None) -> Path:
    """Check that ``path`` (a folder of files to create, e.g. Parquet) does not exist yet, is no input
    and is outside every folder being read, in a parent folder that takes files."""
    path = Path(path)
    inputs = inputs or Inputs()
    if inputs.source(path) is not None or inputs.folder(path) is not None:
        raise OutputError(f"{path} is an input: emofer never writes over its inputs; pass a new folder name")
    around = inputs.read_folder_around(path)
    if around is not None:
        raise OutputError(f"{path} is inside {around}, which is being read; write the result outside it")
    if path.exists() or path.is_symlink():
        raise OutputError(f"{path} already exists; remove it or choose another --out (a new folder)")
    parent = _existing_parent(path.parent)
    if not parent.is_dir():
        raise OutputError(f"cannot create {path}: {parent} is a file; pass another --out")
    _probe(parent)
    return path


def copy_names(items: Sequence[tuple[PathLike | None, PathLike]]) -> list[Path]:
    """Distinct relative names for the annotated copies of ``items``: (the argument it came from, or None
    for a URL or stdin; the image) pairs, the image a path or a URL.

    A file named directly is named by its file name, a file found in a folder by its place below
    that folder's own name. When names of different images clash (case-insensitively), every local
    image is named by its place below the common folder of all the arguments instead (the input tree
    mirrored); what still clashes gets ``-2``, ``-3`` ... before its suffix. The same image twice keeps
    one name. Suffixes OpenCV cannot write become ``.png``.
    """
    names = [_writable(_plain_name(argument, image)) for argument, image in items]
    keys = [_identity_key(image) for _, image in items]
    if _clashes(names, keys):
        anchors = [os.path.dirname(os.path.abspath(argument)) for argument, _ in items if argument is not None]
        if anchors:
            common = os.path.commonpath(anchors)
            names = [
                name if argument is None else _writable(Path(os.path.relpath(os.path.abspath(image), common)))
                for (argument, image), name in zip(items, names)
            ]
    return _numbered(names, keys)


@contextlib.contextmanager
def atomic_path(path: PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) to write; renamed onto ``path`` when the block ends,
    removed when it raises. Without ``overwrite`` a file that appeared at ``path`` meanwhile stays."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    commit(temporary, path, overwrite=overwrite)


@contextlib.contextmanager
def new_folder(path: PathLike) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; renamed to ``path`` when the block ends (refused if
    ``path`` appeared meanwhile), removed with its files when the block raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name[:64]}.", suffix=PART))
    try:
        yield temporary
        if path.exists() or path.is_symlink():
            raise OutputError(f"{path} already exists; remove it or choose another --out (a new folder)")
        os.rename(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def commit(temporary: Path, path: Path, *, overwrite: bool) -> None:
    """Rename a finished ``temporary`` onto ``path`` (never over an existing file without ``overwrite``)."""
    try:
        if overwrite:
            os.replace(temporary, path)
            return
        try:
            os.link(temporary, path)  # fails if path exists: no window in which another file is replaced
        except FileExistsError as exc:
            raise OutputError(f"{path} already exists; {OVERWRITE_HINT}") from exc
        except OSError:  # no hard links on this file system
            if path.exists():
                raise OutputError(f"{path} already exists; {OVERWRITE_HINT}") from None
            os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path} ({_reason(exc)}); check that its folder is writable") from exc
    finally:
        temporary.unlink(missing_ok=True)


def temporary_path(path: Path) -> Path:
    """A new, empty, hidden file beside ``path`` that keeps its suffix (OpenCV picks the format by it)."""
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:64]}.", suffix=PART + path.suffix)
    except OSError as exc:
        raise OutputError(
            f"cannot write {path} ({_reason(exc)}); check that its folder exists and is writable"
        ) from exc
    os.close(handle)
    os.chmod(name, 0o666 & ~_UMASK)  # mkstemp's file is private; the result gets the usual permissions
    return Path(name)


def write_bytes(data: bytes, path: PathLike, *, overwrite: bool = False, inputs: Inputs | None = None) -> Path:
    """Write ``data`` to ``path`` under the policy (checked, temporary name, renamed)."""
    path = check_output_file(path, inputs, overwrite=overwrite)
    with atomic_path(path, overwrite=overwrite) as temporary:
        temporary.write_bytes(data)
    return path


def write_image(image: np.ndarray, path: PathLike, *, overwrite: bool = False, inputs: Inputs | None = None) -> Path:
    """Encode a BGR image by ``path``'s suffix (.jpg, .png, ...) and write it under the policy."""
    path = Path(path)
    if path.suffix.lower() not in WRITABLE_SUFFIXES:
        raise OutputError(
            f"cannot write an image as {path.name}; use a name ending in {', '.join(sorted(WRITABLE_SUFFIXES))}"
        )
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OutputError(f"OpenCV could not encode {path}")
    return write_bytes(encoded.tobytes(), path, overwrite=overwrite, inputs=inputs)


@contextlib.contextmanager
def open_text(path: PathLike, *, overwrite: bool = False, inputs: Inputs | None = None) -> Iterator[TextIO]:
    """``path`` opened for writing UTF-8 text (newlines as written) under the policy: checked first,
    written to a temporary name and renamed when the block ends; OutputError when it cannot be."""
    path = check_output_file(path, inputs, overwrite=overwrite)
    with atomic_path(path, overwrite=overwrite) as temporary:
        with open(temporary, "w", newline="", encoding="utf-8") as stream:
            yield stream


def _plain_name(argument: PathLike | None, image: PathLike) -> Path:
    if argument is None:  # a URL, or the name given to standard input
        return Path(Path(urlsplit(str(image)).path).name or "image")
    if os.path.isdir(argument):
        folder = os.path.abspath(argument)
        return Path(os.path.basename(folder)) / os.path.relpath(os.path.abspath(image), folder)
    return Path(Path(image).name)


def _writable(name: Path) -> Path:
    return name if name.suffix.lower() in WRITABLE_SUFFIXES else name.with_suffix(".png")


def _identity_key(image: PathLike) -> str:
    text = str(image)
    return text if "://" in text else str(_resolve(Path(text)))


def _clashes(names: Sequence[Path], keys: Sequence[str]) -> bool:
    seen: dict[str, str] = {}
    for name, key in zip(names, keys):
        if seen.setdefault(name.as_posix().lower(), key) != key:
            return True
    return False


def _numbered(names: Sequence[Path], keys: Sequence[str]) -> list[Path]:
    taken: dict[str, str] = {}
    result = []
    for name, key in zip(names, keys):
        candidate, number = name, 1
        while taken.setdefault(candidate.as_posix().lower(), key) != key:
            number += 1
            candidate = name.with_name(f"{name.stem}-{number}{name.suffix}")
        result.append(candidate)
    return result


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except (OSError, ValueError):
        return None
    return (stat.st_dev, stat.st_ino)


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: its absolute path is the best name
        return Path(os.path.abspath(path))


def _existing_parent(folder: Path) -> Path:
    """``folder``, or its nearest ancestor that exists (what ``mkdir -p`` would start from)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _probe(folder: Path) -> None:
    """Create and delete a temporary file in ``folder`` (permission bits alone say nothing for root)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(
            f"cannot write in the folder {folder} ({_reason(exc)}); pass a folder you can write to"
        ) from exc


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
