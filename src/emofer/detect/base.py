"""What every face detector returns, and the one place large images are scaled down for one."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from ..boxes import Box, clip_boxes, coverage_matrix
from ..validate import check_bgr

__all__ = ["Detection", "Detector", "ScaledDetector", "check_image", "to_detections", "uncovered", "COVERED"]

Landmarks = tuple[tuple[float, float], ...]
#: A later pass's face is dropped when more than this fraction of its box lies inside a face an
#: earlier pass found (the same face again, or a part of a large face the finer scale cannot
#: see whole).
COVERED = 0.3
#: What detectors check their image with (:func:`emofer.validate.check_bgr`), by its older name.
check_image = check_bgr


@dataclass(frozen=True)
class Detection:
    """One face found in an image: its box in the image's own pixels, a score, landmarks.

    ``score`` is the detector's confidence (None where the detector has none, e.g. Haar);
    ``landmarks`` are (x, y) points (YuNet: right eye, left eye, nose tip, right and left
    mouth corners) or None.
    """

    box: Box
    score: float | None = None
    landmarks: Landmarks | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists, floats) for JSON."""
        return {
            "box": list(self.box),
            "score": self.score,
            "landmarks": None if self.landmarks is None else [list(p) for p in self.landmarks],
        }


@runtime_checkable
class Detector(Protocol):
    """Anything with a ``name`` and ``detect(image) -> list[Detection]`` on uint8 BGR (H, W, 3)."""

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


def to_detections(
    boxes: np.ndarray,
    scores: np.ndarray | None,
    landmarks: np.ndarray | None,
    width: int,
    height: int,
    scale: tuple[float, float] = (1.0, 1.0),
) -> list[Detection]:
    """Turn float detector output on an image scaled by ``scale`` = (sx, sy) into Detections.

    Boxes (N, 4) and landmarks (N, K, 2) are divided by the scale back to the original
    ``width`` x ``height`` image; boxes are clipped to it and empty ones dropped.
    """
    sx, sy = scale
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / np.array([sx, sy, sx, sy])
    clipped, keep = clip_boxes(boxes, width, height)
    kept = np.flatnonzero(keep)
    out = []
    for row, i in zip(clipped, kept):
        points = None
        if landmarks is not None:
            points = tuple((float(x / sx), float(y / sy)) for x, y in np.asarray(landmarks[i]).reshape(-1, 2))
        score = None if scores is None else float(scores[i])
        out.append(Detection(box=(int(row[0]), int(row[1]), int(row[2]), int(row[3])), score=score, landmarks=points))
    return out


def uncovered(new: list[Detection], found: list[Detection], covered: float = COVERED) -> list[Detection]:
    """The Detections of ``new`` with at most ``covered`` of their box inside any box of ``found``."""
    if not new or not found:
        return new
    inside = coverage_matrix([d.box for d in new], [d.box for d in found]).max(axis=1)
    return [d for d, share in zip(new, inside) if share <= covered]


class ScaledDetector:
    """Base for OpenCV detectors that run on a copy of the image no larger than ``max_side`` pixels.

    Subclasses set ``name`` and ``max_side``, build their OpenCV object in :meth:`_load` and
    implement :meth:`_detect` on the (possibly scaled-down) image; :meth:`detect` maps the
    results back to the original pixels. Calls are serialised by a lock (OpenCV detector
    objects are not thread-safe), and pickling keeps the settings and rebuilds the rest.
    """

    name: str = "scaled"
    max_side: int = 640
    #: Attributes that are rebuilt by ``_load`` after unpickling instead of being pickled.
    _transient: tuple[str, ...] = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        """Create the OpenCV objects from the settings (called on init and after unpickling)."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in self._transient}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._lock = threading.Lock()
        self._load()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a uint8 BGR (H, W, 3) image, boxes in its own pixels, most confident first."""
        image = check_bgr(image)
        height, width = image.shape[:2]
        found: list[Detection] = []
        if image.size == 0:
            return found
        for factor in self.pass_scales(width, height):
            found += uncovered(self._detect_scaled(image, factor), found)
        # A fixed order (OpenCV's multithreaded search returns boxes in varying order):
        # most confident first, and left to right (then top to bottom) without scores.
        return sorted(found, key=lambda d: (-(d.score or 0.0), d.box[0], d.box[1]))

    def _detect_scaled(self, image: np.ndarray, factor: float) -> list[Detection]:
        """One pass on a copy of ``image`` scaled by ``factor`` (<= 1), boxes in ``image``'s pixels."""
        height, width = image.shape[:2]
        if factor < 1.0:
            small_w = max(1, round(width * factor))
            small_h = max(1, round(height * factor))
            small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
            scale = (small_w / width, small_h / height)
        else:
            small, scale = image, (1.0, 1.0)
        with self._lock:
            boxes, scores, landmarks = self._detect(small)
        return to_detections(boxes, scores, landmarks, width, height, scale)

    def working_scale(self, width: int, height: int) -> float:
        """The factor (<= 1) a ``width`` x ``height`` image is scaled by before detection."""
        return min(1.0, self.max_side / max(width, height))

    def pass_scales(self, width: int, height: int) -> tuple[float, ...]:
        """The factors of the passes run on a ``width`` x ``height`` image: one pass at
        :meth:`working_scale` here; later passes add only faces the earlier ones did not find."""
        return (self.working_scale(width, height),)

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Float boxes (N, 4), scores (N,) or None, landmarks (N, K, 2) or None on ``image``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_side={self.max_side})"
