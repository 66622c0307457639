"""OpenCV's frontal-face Haar cascade: ships with opencv-python < 5 only (5.x removed it)."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import DetectorError
from .base import ScaledDetector

__all__ = ["HaarDetector", "haar_available"]

CASCADE_FILE = "haarcascade_frontalface_default.xml"
#: Images are scaled down so their longer side is at most this many pixels before detection.
MAX_SIDE = 800
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
#: Smallest face searched for, as a fraction of the image's shorter side ...
MIN_FACE_FRACTION = 0.05
#: ... but never below the cascade's own 24 x 24 window.
MIN_FACE_PIXELS = 24

_NO_CASCADES = (
    f'detector="haar" needs cv2.CascadeClassifier, which OpenCV {cv2.__version__} does not have '
    '(opencv-python 5 removed it and its Haar cascades). Use detector="yunet" (the default, bundled), '
    'or install OpenCV 4 for Haar: pip install "opencv-python>=4.13,<5"'
)


def _cascade_parts() -> tuple[type | None, str | None]:
    """OpenCV's cascade class and its folder of cascade files; None for what this install lacks."""
    return getattr(cv2, "CascadeClassifier", None), getattr(getattr(cv2, "data", None), "haarcascades", None)


def haar_available() -> bool:
    """Whether this OpenCV install can run ``detector="haar"``: it has ``cv2.CascadeClassifier`` and
    its cascade files (opencv-python 4.x; 5.x removed both)."""
    classifier, folder = _cascade_parts()
    return classifier is not None and folder is not None


class HaarDetector(ScaledDetector):
    """Frontal faces by Viola-Jones cascade on the equalised grey image; no scores, no landmarks."""

    name = "haar"
    max_side = MAX_SIDE
    _transient = ("_lock", "_cascade")

    def __init__(
        self,
        *,
        scale_factor: float = SCALE_FACTOR,
        min_neighbors: int = MIN_NEIGHBORS,
        min_face_fraction: float = MIN_FACE_FRACTION,
    ) -> None:
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face_fraction = min_face_fraction
        super().__init__()

    def _load(self) -> None:
        classifier, folder = _cascade_parts()
        if classifier is None or folder is None:
            raise DetectorError(_NO_CASCADES)
        self._cascade = classifier(folder + CASCADE_FILE)
        if self._cascade.empty():
            raise DetectorError(
                f"OpenCV could not load its Haar cascade {folder + CASCADE_FILE}; "
                'reinstall opencv-python or use detector="yunet"'
            )

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, None, None]:
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        side = max(MIN_FACE_PIXELS, round(self.min_face_fraction * min(gray.shape)))
        boxes = self._cascade.detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), None, None
