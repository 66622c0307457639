"""The "none" detector: the whole image is one face (for images that are already face crops)."""

from __future__ import annotations

import numpy as np

from ..validate import check_bgr
from .base import Detection

__all__ = ["WholeImageDetector"]


class WholeImageDetector:
    """One Detection covering the whole image, score None."""

    name = "none"

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = check_bgr(image).shape[:2]
        return [Detection(box=(0, 0, width, height))]

    def __repr__(self) -> str:
        return "WholeImageDetector()"
