"""expw-train: labelled web faces, framed the way ``EmotionRecognizer.predict`` frames a detection.

``../shared/data/expw-train.zip`` holds 160x160 colour crops of ExpW web photos, each twice the
dataset's face box around it, so that box is (40, 40, 80, 80) in every crop. A network trained
on the dataset's own boxes would learn a framing that ``predict`` never hands it, so each face
here goes the runtime's way:

1. the bundled YuNet (``emofer.detect.build_detector("yunet")``) runs on the crop and the
   detection with the highest IoU with the stored box (IoU >= 0.3) is the face; where YuNet
   finds none, the stored box is used and counted (``Framing.fallback``);
2. ``emofer.preprocess.crop_face`` cuts it with the crop policy the model will carry for YuNet
   (``docs/framing.json``'s, the one ``training.export`` writes into config.json);
3. ``emofer.preprocess.to_gray`` (a grey network; a colour one keeps the BGR crop) and
   ``resize_face`` bring it to the network's input: the exact operations ``to_tensor`` does at
   run time.

The validation part is carved by photo (a face's ``source``): every face of a photo is on the
same side, about one photo in ten (``VAL_EVERY``) by a hash of its name, so it never changes.
Labels are one annotator's, so recipes may smooth them (``training.mixing``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from emofer.boxes import iou_matrix
from emofer.detect import build_detector
from emofer.preprocess import CropPolicy, crop_face, resize_face, to_gray
from emofer.validate import to_bgr
from training.data import CACHE, DATA_ROOT, DatasetError, FaceSet, _Reader, check_channels, emotion_names

log = logging.getLogger("emofer.training")

ARCHIVE = "expw-train.zip"
#: The dataset's face box inside every 160x160 crop.
STORED_BOX = (40, 40, 80, 80)
#: ExpW's seven emotions, in emofer's vocabulary.
EXPW_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: One photo in this many goes to the validation part.
VAL_EVERY = 10
#: A detection frames the labelled face when its IoU with the stored box is at least this.
MATCH_IOU = 0.3
#: The expw-train parts under training.data's split names: Training and the carved validation.
PARTS = {"Training": "train", "PublicTest": "val"}


@dataclass(frozen=True)
class Framing:
    """How the faces of one part were framed: by YuNet, or by the stored box where it found none."""

    faces: int
    yunet: int
    fallback: int
    median_iou: float

    @property
    def fallback_rate(self) -> float:
        return self.fallback / max(1, self.faces)

    def to_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "fallback_rate": round(self.fallback_rate, 4)}


def is_val(source: str) -> bool:
    """Whether the photo ``source`` belongs to the validation part (stable: a hash of its name)."""
    return int(hashlib.sha1(source.encode()).hexdigest(), 16) % VAL_EVERY == 0


def frame(crop: np.ndarray, detector, policy: CropPolicy, size: tuple[int, int],
          channels: int = 1) -> tuple[np.ndarray, float | None]:
    """The face of one stored crop as the network sees it (grey, or BGR for ``channels`` 3), and the
    IoU of YuNet's box (None: fell back)."""
    found = detector.detect(crop)
    box, iou = STORED_BOX, None
    if found:
        ious = iou_matrix([STORED_BOX], [d.box for d in found])[0]
        best = int(ious.argmax())
        if ious[best] >= MATCH_IOU:
            box, iou = found[best].box, float(ious[best])
    face = crop_face(crop, box, policy)
    return resize_face(to_gray(face) if channels == 1 else to_bgr(face), size), iou


def read_rows(root: Path) -> list[dict[str, str]]:
    """faces.csv of expw-train (a folder or the zip), checked."""
    text = _Archive(root).read("faces.csv").decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    missing = {"file", "label", "source"} - set(rows[0] if rows else ())
    if missing:
        raise DatasetError(f"{root}/faces.csv: missing columns {sorted(missing)}")
    unknown = sorted({r["label"] for r in rows} - set(EXPW_CLASSES))
    if unknown:
        raise DatasetError(f"{root}/faces.csv: unknown labels {unknown}; expected {EXPW_CLASSES}")
    return rows


def load_expw(root: str | os.PathLike, split: str, classes: Sequence[str], policy: CropPolicy,
              size: tuple[int, int] = (48, 48), detector=None, channels: int = 1) -> tuple[FaceSet, Framing]:
    """One part of expw-train (``split`` Training or PublicTest = the carved validation) framed by YuNet.

    Faces whose label is not in ``classes`` are left out; ``classes`` may name emotions ExpW lacks
    (contempt): they get no faces. Returns the faces (``size``; grey, or BGR for ``channels`` 3) and
    how they were framed.
    """
    check_channels(channels)
    if split not in PARTS:
        raise DatasetError(f"expw-train has parts {tuple(PARTS)} (train, carved validation); got {split!r}. "
                           "It has no test split: expw-dev is the set to report on, and it is never trained on")
    classes = emotion_names(classes)
    archive = _Archive(Path(root))
    detector = detector or build_detector("yunet")
    want_val = split == "PublicTest"
    pixels, labels, names, ious = [], [], [], []
    for row in read_rows(Path(root)):
        if is_val(row["source"]) != want_val or row["label"] not in classes:
            continue
        crop = cv2.imdecode(np.frombuffer(archive.read(row["file"]), np.uint8), cv2.IMREAD_COLOR)
        if crop is None:
            raise DatasetError(f"{root}/{row['file']}: not a readable image")
        face, iou = frame(crop, detector, policy, size, channels)
        pixels.append(face)
        labels.append(classes.index(row["label"]))
        names.append(row["file"])
        ious.append(iou)
    if not labels:
        raise DatasetError(f"{root}: expw-train part {split} has no faces of classes {list(classes)}")
    found = [i for i in ious if i is not None]
    framing = Framing(len(ious), len(found), len(ious) - len(found), round(float(np.median(found)), 3) if found else 0.0)
    return FaceSet(np.stack(pixels), np.array(labels, np.int64), tuple(classes), split, None, tuple(names)), framing


def load(split: str, classes: Sequence[str], policy: CropPolicy, size: tuple[int, int] = (48, 48),
         root: str | os.PathLike | None = None, channels: int = 1) -> tuple[FaceSet, Framing]:
    """:func:`load_expw` of ``../shared/data/expw-train.zip`` (or ``root``), cached outside the checkout.

    The cache key holds the archive's size and mtime, the part, classes, policy, size, channels and
    YuNet's weights, so a change to any of them frames the faces again.
    """
    from emofer.detect.yunet import bundled_weights

    source = Path(root) if root else DATA_ROOT / ARCHIVE
    if not source.exists():
        raise DatasetError(f"{source} not found; set EMOFER_DATA to the folder holding {ARCHIVE}")
    stat = source.stat()
    weights = bundled_weights()
    key = hashlib.sha1(json.dumps([str(source.resolve()), stat.st_size, stat.st_mtime, split, list(classes),
                                   asdict(policy), list(size), weights.stat().st_size]
                                  + ([channels] if channels != 1 else [])).encode()).hexdigest()[:16]
    cached = CACHE / f"expw-{split}-{key}.npz"
    if cached.exists():
        z = np.load(cached, allow_pickle=False)
        faces = FaceSet(z["pixels"], z["labels"], tuple(str(c) for c in z["classes"]), split, None,
                        tuple(str(n) for n in z["names"]))
        return faces, Framing(**json.loads(str(z["framing"])))
    log.info("framing expw-train %s with YuNet from %s", split, source)
    faces, framing = load_expw(source, split, classes, policy, size, channels=channels)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp.npz")
    np.savez(tmp, pixels=faces.pixels, labels=faces.labels, classes=np.array(faces.classes),
             names=np.array(faces.names), framing=np.array(json.dumps(asdict(framing))))
    os.replace(tmp, cached)
    log.info("expw-train %s: %d faces, YuNet framed %d, stored box %d (%.1f %%)", split, framing.faces,
             framing.yunet, framing.fallback, 100 * framing.fallback_rate)
    return faces, framing


class _Archive:
    """expw-train as the zip (its files under ``expw-train/``) or the unpacked ``expw-train`` folder."""

    def __init__(self, root: Path):
        self.reader = _Reader(root)
        self.prefix = "expw-train/" if self.reader.archive is not None else ""

    def read(self, name: str) -> bytes:
        return self.reader.read(self.prefix + name)
