"""Face detectors: find the face boxes that the emotion model then classifies.

``build_detector`` turns what a user passes as ``detector=`` into a :class:`Detector`:

- ``"auto"`` (the default) and ``"yunet"``: OpenCV's YuNet CNN, its weights bundled in the
  package (or ``$EMOFER_YUNET``), offline,
- ``"haar"``: OpenCV's Haar cascade (misses more faces; opencv-python < 5 only),
- ``"none"``: the whole image is one face (for ready-made face crops),
- a Detector instance, or a function ``image -> [(x, y, w, h[, score]), ...]``.

The names are those of :mod:`emofer.detect.registry`, the one list of detectors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..errors import ParameterError
from ..validate import check_min_face
from .base import Detection, Detector
from .custom import CallableDetector
from .haar import HaarDetector
from .registry import DETECTORS, NAMES, entry
from .whole_image import WholeImageDetector
from .yunet import MIN_FACE, YuNetDetector

__all__ = [
    "Detection",
    "Detector",
    "DetectorSpec",
    "build_detector",
    "HaarDetector",
    "YuNetDetector",
    "WholeImageDetector",
    "CallableDetector",
    "NAMES",
    "DETECTORS",
]

log = logging.getLogger("emofer")

DetectorSpec = str | Detector | Callable[[Any], Any]


def build_detector(spec: DetectorSpec = "auto", *, min_face: int | None = None) -> Detector:
    """The Detector for ``spec`` (a name from NAMES, the registry's, a Detector, or a box function).

    ``min_face`` (pixels, default 32) is the smallest face YuNet looks for; other detectors, and
    Detector instances or functions (already built), ignore it with a warning.
    """
    check_min_face(min_face)
    detector = _build(spec, min_face=MIN_FACE if min_face is None else min_face)
    if min_face is not None and not isinstance(spec, str):
        log.warning(
            "min_face applies to detectors emofer builds by name; pass it to your %s's "
            "constructor instead (e.g. YuNetDetector(min_face=...))",
            type(detector).__name__,
        )
    elif min_face is not None and not isinstance(detector, YuNetDetector):
        log.warning("min_face applies to the yunet detector only; %s ignores it", detector.name)
    return detector


def _build(spec: DetectorSpec, *, min_face: int) -> Detector:
    if isinstance(spec, str):
        return entry(spec).build(min_face)
    if isinstance(spec, Detector):
        return spec
    if callable(spec):
        return CallableDetector(spec)
    raise ParameterError(
        f"detector must be one of {', '.join(NAMES)}, an object with name and detect(image), "
        f"or a function image -> boxes; got {type(spec).__name__}"
    )
