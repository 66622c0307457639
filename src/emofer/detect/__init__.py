"""Face detectors: find the face boxes that the emotion model then classifies.

``build_detector`` turns what a user passes as ``detector=`` into a :class:`Detector`:

- ``"yunet"``: OpenCV's YuNet CNN (best; weights fetched once from the Hugging Face Hub),
- ``"haar"``: OpenCV's Haar cascade (no download; misses more faces),
- ``"none"``: the whole image is one face (for ready-made face crops),
- ``"auto"``: YuNet if its weights are available offline, else Haar (with one warning),
- a Detector instance, or a function ``image -> [(x, y, w, h[, score]), ...]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from os import PathLike
from typing import Any, Union

from ..errors import DetectorError
from .base import Detection, Detector
from .custom import CallableDetector
from .haar import HaarDetector
from .whole_image import WholeImageDetector
from .yunet import MIN_FACE, YuNetDetector, cached_weights

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
]

log = logging.getLogger("emofer")

NAMES = ("auto", "yunet", "haar", "none")
DetectorSpec = Union[str, Detector, Callable[[Any], Any]]

_warned_haar_fallback = False


def build_detector(
    spec: DetectorSpec = "auto",
    *,
    revision: str | None = None,
    cache_dir: str | PathLike[str] | None = None,
    local_files_only: bool = False,
    min_face: int | None = None,
) -> Detector:
    """The Detector for ``spec`` (a name from NAMES, a Detector, or a box function).

    ``revision``, ``cache_dir`` and ``local_files_only`` apply to the YuNet weights download;
    ``min_face`` (pixels, default 32) is the smallest face YuNet looks for; other detectors, and
    Detector instances or functions (already built), ignore it with a warning.
    """
    if min_face is not None and not (isinstance(min_face, int) and min_face > 0):
        raise DetectorError(f"min_face must be a positive number of pixels, got {min_face!r}")
    detector = _build(spec, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                      min_face=MIN_FACE if min_face is None else min_face)
    if min_face is not None and not isinstance(spec, str):
        log.warning("min_face applies to detectors emofer builds by name; pass it to your %s's "
                    "constructor instead (e.g. YuNetDetector(min_face=...))", type(detector).__name__)
    elif min_face is not None and not isinstance(detector, YuNetDetector):
        log.warning("min_face applies to the yunet detector only; %s ignores it", detector.name)
    return detector


def _build(spec: DetectorSpec, *, revision: str | None, cache_dir: str | PathLike[str] | None,
           local_files_only: bool, min_face: int) -> Detector:
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name == "auto":
            return _auto(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, min_face=min_face)
        if name == "yunet":
            return YuNetDetector(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                                 min_face=min_face)
        if name == "haar":
            return HaarDetector()
        if name == "none":
            return WholeImageDetector()
        raise DetectorError(f"unknown detector {spec!r}; use one of {', '.join(NAMES)}, a Detector or a box function")
    if isinstance(spec, Detector):
        return spec
    if callable(spec):
        return CallableDetector(spec)
    raise DetectorError(
        f"detector must be one of {', '.join(NAMES)}, an object with name and detect(image), "
        f"or a function image -> boxes; got {type(spec).__name__}"
    )


def _auto(*, revision: str | None, cache_dir: str | PathLike[str] | None, local_files_only: bool,
          min_face: int) -> Detector:
    """YuNet when its weights are here already (no network), else Haar, else YuNet from the Hub."""
    global _warned_haar_fallback
    if cached_weights(revision=revision, cache_dir=cache_dir) is not None:
        return YuNetDetector(revision=revision, cache_dir=cache_dir, local_files_only=True, min_face=min_face)
    try:
        detector = HaarDetector()
    except DetectorError as haar_error:
        if local_files_only:
            raise DetectorError(
                f"{haar_error}; and the YuNet weights are not cached (local_files_only=True): "
                'run once online with detector="yunet" or set EMOFER_YUNET to a local .onnx file'
            ) from haar_error
        return YuNetDetector(revision=revision, cache_dir=cache_dir, min_face=min_face)
    if not _warned_haar_fallback:
        _warned_haar_fallback = True
        log.warning(
            "face detector: YuNet weights are not cached, so detector='auto' uses OpenCV's Haar "
            "cascade, which misses more faces. Use detector='yunet' once online (it downloads "
            "about 230 kB and is cached; `emofer download --yunet` does it too) or set EMOFER_YUNET "
            "to a local YuNet .onnx file."
        )
    return detector
