"""A user's function ``image -> boxes`` turned into a Detector (boxes checked and clipped)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..errors import DetectorError
from ..validate import check_bgr, parse_box
from .base import Detection, to_detections

__all__ = ["CallableDetector"]

BoxFunction = Callable[[np.ndarray], Iterable[Sequence[float]]]


class CallableDetector:
    """Wraps ``function(image) -> iterable of (x, y, w, h) or (x, y, w, h, score)``."""

    name = "custom"

    def __init__(self, function: BoxFunction) -> None:
        self.function = function

    def detect(self, image: np.ndarray) -> list[Detection]:
        height, width = check_bgr(image).shape[:2]
        rows = [parse_box(row, source=_name(self.function)) for row in self.function(image)]
        if not rows:
            return []
        scored = [len(row) == 5 for row in rows]
        if any(scored) and not all(scored):
            raise DetectorError(
                f"{_name(self.function)} returned boxes with and without scores; return all 4 or all 5 numbers"
            )
        table = np.array(rows, dtype=np.float64)
        return to_detections(table[:, :4], table[:, 4] if all(scored) else None, None, width, height)

    def __repr__(self) -> str:
        return f"CallableDetector({_name(self.function)})"


def _name(function: BoxFunction) -> str:
    return getattr(function, "__qualname__", None) or repr(function)
