"""Dataset loaders for the three layouts people have FER2013 in, plus FER+.

Every loader returns a :class:`FaceSet`: uint8 (N, 48, 48) grey faces, integer labels into
``classes``, and optional soft targets (FER+ vote distributions). Pixels go through
``emofer.preprocess`` (the same code that serves the model) and nothing else.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emofer.preprocess import resize_face, to_gray

log = logging.getLogger("emofer.training")

FER_SIZE = (48, 48)
#: FER2013's own label ids, in fer2013.csv order.
FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: The class subsets by name.
SUBSETS: dict[str, tuple[str, ...]] = {
    "fer5": ("angry", "disgust", "happy", "sad", "surprise"),
    "fer7": ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
    "ferplus8": ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"),
}
#: FER+'s label.csv vote columns, under FER+'s own names.
FERPLUS_VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                 "contempt", "unknown", "NF")
#: FER+'s names that differ from emofer's, which every model and FaceSet uses (one vocabulary:
#: a user switching from fer7 to ferplus8 still reads "happy"). Older run folders record FER+'s.
FERPLUS_NAMES = {"happiness": "happy", "sadness": "sad", "anger": "angry"}
#: The eight emotion vote columns under emofer's names, in column order.
FERPLUS_CLASSES = tuple(FERPLUS_NAMES.get(c, c) for c in FERPLUS_VOTES[:8])
SPLITS = ("Training", "PublicTest", "PrivateTest")
FERPLUS_FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid", "PrivateTest": "FER2013Test"}
_SPLIT_RE = re.compile(r"(Training|PublicTest|PrivateTest)_\d+")


class DatasetError(ValueError):
    """Bad training data: the message names the file or row and what is wrong."""


def emotion_names(classes: Sequence[str]) -> tuple[str, ...]:
    """``classes`` in emofer's vocabulary: FER+'s happiness, sadness, anger become happy, sad, angry."""
    return tuple(FERPLUS_NAMES.get(c, c) for c in classes)


@dataclass(frozen=True)
class FaceSet:
    """Faces of one split: pixels (N, h, w) grey or (N, h, w, 3) BGR uint8, labels (N,) int, classes,
    optional soft targets."""

    pixels: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    split: str
    soft: np.ndarray | None = None
    names: tuple[str, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.classes)}

    def targets(self) -> np.ndarray:
        """One-hot targets, or the vote distribution where the set carries one."""
        if self.soft is not None:
            return self.soft
        return np.eye(len(self.classes), dtype=np.float32)[self.labels]

    def take(self, index: np.ndarray) -> FaceSet:
        return FaceSet(self.pixels[index], self.labels[index], self.classes, self.split,
                       None if self.soft is None else self.soft[index],
                       tuple(np.asarray(self.names)[index]) if self.names else ())

    def resized(self, size: tuple[int, int]) -> FaceSet:
        """The same faces at ``size`` (height, width) through emofer's own resize, as ``to_tensor``
        would bring them there: a network with a larger input trains on 48x48 FER faces enlarged
        beside web faces framed at its own size (``expw.load``), so both can share one batch."""
        if self.pixels.shape[1:3] == tuple(size):
            return self
        pixels = np.stack([resize_face(face, size) for face in self.pixels]) if len(self) else \
            np.zeros((0, *size, *self.pixels.shape[3:]), np.uint8)
        return FaceSet(pixels, self.labels, self.classes, self.split, self.soft, self.names)

    def with_channels(self, channels: int) -> FaceSet:
        """The same faces as ``channels`` 1 (grey) or 3 (BGR), the way ``to_tensor`` makes them: a
        colour network trains on grey FER faces (their three channels equal) beside colour web faces."""
        if (self.pixels.ndim == 4) == (check_channels(channels) == 3):
            return self
        if channels == 3:
            pixels = np.repeat(self.pixels[..., None], 3, axis=-1)  # cv2's GRAY2BGR: the grey value thrice
        else:
            pixels = np.stack([to_gray(face) for face in self.pixels]) if len(self) else \
                np.zeros(self.pixels.shape[:3], np.uint8)
        return FaceSet(pixels, self.labels, self.classes, self.split, self.soft, self.names)


def check_channels(channels: int) -> int:
    """``channels`` if it is 1 (grey) or 3 (BGR), the two a face set can hold; else DatasetError."""
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 (grey) or 3 (BGR), got {channels!r}")
    return channels


def subset(faces: FaceSet, classes: Sequence[str]) -> FaceSet:
    """Keep only ``classes`` (by name), relabelled 0..k-1 in the given order."""
    unknown = [c for c in classes if c not in faces.classes]
    if unknown:
        raise DatasetError(f"classes {unknown} are not in this dataset (it has {faces.classes})")
    old = {c: i for i, c in enumerate(faces.classes)}
    remap = np.full(len(faces.classes), -1, np.int64)
    for new, c in enumerate(classes):
        remap[old[c]] = new
    keep = remap[faces.labels] >= 0
    soft = None
    if faces.soft is not None:
        soft = faces.soft[keep][:, [old[c] for c in classes]]
        soft = soft / np.maximum(soft.sum(1, keepdims=True), 1e-8)
    kept = FaceSet(faces.pixels[keep], remap[faces.labels[keep]], tuple(classes), faces.split,
                   soft, tuple(np.asarray(faces.names)[keep]) if faces.names else ())
    if len(kept) == 0:
        raise DatasetError(f"split {faces.split} has no faces of classes {list(classes)}")
    return kept


def _decode(data: bytes, where: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"{where}: not a readable image")
    face = to_gray(image)
    if face.shape != FER_SIZE:
        raise DatasetError(f"{where}: image is {face.shape[1]}x{face.shape[0]}, expected 48x48 "
                           "(FER2013 faces are 48x48 grey)")
    return face


def _finish(items: list[tuple[str, np.ndarray, int]], classes: tuple[str, ...], split: str,
            source: str) -> FaceSet:
    if not items:
        raise DatasetError(f"{source}: split {split} is empty")
    items.sort(key=lambda t: t[0])
    return FaceSet(np.stack([t[1] for t in items]), np.array([t[2] for t in items], np.int64),
                   classes, split, None, tuple(t[0] for t in items))


# --- Kaggle image folders: train/<class>/Training_<id>.jpg, test/<class>/PublicTest_<id>.jpg ---

def load_image_folders(root: str | os.PathLike, split: str) -> FaceSet:
    """Read one split from the Kaggle image-folder layout (a folder or its .zip).

    The split comes from each file name's prefix (Training_, PublicTest_, PrivateTest_);
    the class from its parent folder.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {SPLITS}")
    classes = tuple(sorted(FER2013_LABELS))
    index = {c: i for i, c in enumerate(FER2013_LABELS)}
    items: list[tuple[str, np.ndarray, int]] = []
    for name, read in _walk(Path(root)):
        match = _SPLIT_RE.search(name)
        if not match or match.group(1) != split:
            continue
        label = Path(name).parent.name
        if label not in index:
            raise DatasetError(f"{root}/{name}: unknown class folder {label!r}; expected one of {classes}")
        items.append((name, _decode(read(), f"{root}/{name}"), index[label]))
    return _finish(items, FER2013_LABELS, split, str(root))


def _walk(root: Path) -> Iterable[tuple[str, callable]]:
    if root.is_file() and zipfile.is_zipfile(root):
        archive = zipfile.ZipFile(root)
        for info in archive.infolist():
            if not info.is_dir() and info.filename.lower().endswith((".jpg", ".jpeg", ".png")):
                yield info.filename, (lambda i=info: archive.read(i))
    elif root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                yield str(path.relative_to(root)), path.read_bytes
    else:
        raise DatasetError(f"{root}: neither a folder nor a zip archive of FER2013 images")


# --- The Kaggle challenge file: fer2013.csv with emotion,pixels,Usage ---

def load_fer2013_csv(path: str | os.PathLike, split: str) -> FaceSet:
    """Read one split (the Usage column) of the challenge's fer2013.csv."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; use one of {SPLITS}")
    items: list[tuple[str, np.ndarray, int]] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
        if missing:
            raise DatasetError(f"{path}: missing columns {sorted(missing)}; expected emotion,pixels,Usage")
        for row_number, row in enumerate(reader, start=2):
            if row["Usage"] != split:
                continue
            where = f"{path}, row {row_number}"
            try:
                label = int(row["emotion"])
                values = np.array(row["pixels"].split(), dtype=np.int64)
            except ValueError as exc:
                raise DatasetError(f"{where}: {exc}") from exc
            if not 0 <= label < len(FER2013_LABELS):
                raise DatasetError(f"{where}: unknown emotion id {label}; FER2013 has 0..6")
            if values.size != 48 * 48 or values.min() < 0 or values.max() > 255:
                raise DatasetError(f"{where}: expected 2304 grey values 0-255, got {values.size}")
            items.append((f"row{row_number:06d}", values.reshape(FER_SIZE).astype(np.uint8), label))
    return _finish(items, FER2013_LABELS, split, str(path))


# --- FER+: FER2013{Train,Valid,Test}/label.csv + PNGs, 10 annotator votes ---

def load_ferplus(root: str | os.PathLike, split: str, classes: Sequence[str] = SUBSETS["ferplus8"],
                 soft: bool = False) -> FaceSet:
    """Read one FER+ split; majority-vote labels, and vote distributions when ``soft``.

    Rows whose majority is 'unknown' or 'NF' (not a face), or whose winning votes tie between
    kept classes, are dropped, as in the FER+ majority protocol.
    """
    folder = FERPLUS_FOLDERS.get(split)
    if folder is None:
        raise DatasetError(f"unknown split {split!r}; use one of {SPLITS}")
    classes = emotion_names(classes)
    unknown = [c for c in classes if c not in FERPLUS_CLASSES]
    if unknown:
        raise DatasetError(f"classes {unknown} are not FER+ emotions; use some of {FERPLUS_CLASSES}")
    reader = _Reader(Path(root))
    keep = [FERPLUS_CLASSES.index(c) for c in classes]
    pixels, labels, dists, names = [], [], [], []
    text = reader.read(f"{folder}/label.csv").decode("utf-8")
    for row_number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row:
            continue
        where = f"{root}/{folder}/label.csv, row {row_number}"
        if len(row) != 12:
            raise DatasetError(f"{where}: expected 12 columns (file, box, 10 votes), got {len(row)}")
        try:
            votes = np.array([float(v) for v in row[2:]], np.float32)
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from exc
        if votes.argmax() >= 8 or votes.sum() == 0:
            continue  # majority 'unknown' or 'not a face'
        emotions = votes[:8]
        winner = int(emotions.argmax())
        if (emotions == emotions[winner]).sum() > 1 or winner not in keep:
            continue  # a tie, or a majority outside the requested classes
        kept = votes[keep]
        pixels.append(_decode(reader.read(f"{folder}/{row[0]}"), f"{root}/{folder}/{row[0]}"))
        labels.append(keep.index(winner))
        dists.append(kept / kept.sum())
        names.append(row[0])
    if not labels:
        raise DatasetError(f"{root}/{folder}: split {split} is empty")
    return FaceSet(np.stack(pixels), np.array(labels, np.int64), tuple(classes), split,
                   np.stack(dists) if soft else None, tuple(names))


class _Reader:
    def __init__(self, root: Path):
        self.root = root
        self.archive = zipfile.ZipFile(root) if root.is_file() else None
        if self.archive is None and not root.is_dir():
            raise DatasetError(f"{root}: neither a FER+ folder nor ferplus.zip")

    def read(self, name: str) -> bytes:
        try:
            if self.archive is not None:
                return self.archive.read(name)
            return (self.root / name).read_bytes()
        except (KeyError, FileNotFoundError) as exc:
            raise DatasetError(f"{self.root}: missing {name}") from exc


# --- one entry point with a cache outside the checkout ---

DATA_ROOT = Path(os.environ.get("EMOFER_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CACHE = Path(os.environ.get("EMOFER_CACHE", Path.home() / ".cache" / "emofer-training"))
#: A folder of decoded splits, ``{dataset}-{split}.npz`` in the cache's format, read instead of the
#: archives when set (a GPU machine gets the data this way: ``python -m training.device``).
PACKED = os.environ.get("EMOFER_PACKED")
ARCHIVES = {"fer2013": "fer2013-images.zip", "ferplus": "ferplus.zip"}  # each dataset's archive in DATA_ROOT


def load(dataset: str, split: str, classes: Sequence[str], soft: bool = False,
         root: str | os.PathLike | None = None) -> FaceSet:
    """Load ``split`` of ``dataset`` ('fer2013' or 'ferplus') restricted to ``classes``, cached."""
    if dataset not in ARCHIVES:
        raise DatasetError(f"unknown dataset {dataset!r}; use 'fer2013' or 'ferplus'")
    if PACKED and not root:
        cached = Path(PACKED) / f"{dataset}-{split}.npz"
        if not cached.is_file():
            raise DatasetError(f"{cached} not found; EMOFER_PACKED names a folder without {dataset} {split}")
    else:
        source = Path(root) if root else DATA_ROOT / ARCHIVES[dataset]
        if not source.exists():
            raise DatasetError(f"{source} not found; set EMOFER_DATA to the folder holding the archives")
        stat = source.stat()
        key = hashlib.sha1(f"{dataset}|{source.resolve()}|{stat.st_size}|{stat.st_mtime}|{split}".encode()).hexdigest()[:16]
        cached = CACHE / f"{dataset}-{split}-{key}.npz"
    if cached.exists():
        z = np.load(cached, allow_pickle=False)
        faces = FaceSet(z["pixels"], z["labels"], emotion_names(z["classes"]), split,
                        z["soft"] if "soft" in z else None, tuple(z["names"]))
    else:
        log.info("decoding %s %s from %s", dataset, split, source)
        if dataset == "fer2013":
            faces = load_image_folders(source, split)
        else:
            faces = load_ferplus(source, split, SUBSETS["ferplus8"], soft=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        arrays = dict(pixels=faces.pixels, labels=faces.labels, classes=np.array(faces.classes),
                      names=np.array(faces.names))
        if faces.soft is not None:
            arrays["soft"] = faces.soft
        np.savez(cached, **arrays)
    faces = subset(faces, emotion_names(classes))
    if not soft and faces.soft is not None:
        faces = FaceSet(faces.pixels, faces.labels, faces.classes, split, None, faces.names)
    return faces


def fit_size(face: np.ndarray) -> np.ndarray:
    """Any grey face to the 48x48 FER framing (through emofer's own resize)."""
    return resize_face(to_gray(face), FER_SIZE)
