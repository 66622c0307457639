"""YuNet (OpenCV's CNN face detector): boxes, scores and five landmarks; weights from the Hub.

The weights (about 230 kB, MIT licence) are not bundled: they come from a local ``.onnx``
path, the ``EMOFER_YUNET`` environment variable, or the Hugging Face Hub (cached after the
first download).
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

import cv2
import numpy as np

from ..errors import DetectorError, ModelLoadError
from .base import ScaledDetector

__all__ = ["YuNetDetector", "resolve_weights", "cached_weights", "DEFAULT_REPO", "DEFAULT_FILENAME", "ENV_VAR"]

DEFAULT_REPO = "opencv/face_detection_yunet"
DEFAULT_FILENAME = "face_detection_yunet_2023mar.onnx"
#: Environment variable holding a local path to the YuNet .onnx file (wins over the Hub).
ENV_VAR = "EMOFER_YUNET"
#: Images are scaled down so their longer side is at most this many pixels before detection.
MAX_SIDE = 640
#: Faces smaller than this many pixels (in the original image) may be missed: detection runs
#: on a copy scaled so that a face of this size is ``DETECTABLE`` pixels, the size YuNet still
#: finds reliably. 32 px scales a 640x480 frame to 320x240 (about 3x faster than full size).
MIN_FACE = 32
DETECTABLE = 16
#: ... but the copy's longer side is never scaled below this many pixels (small frames, e.g.
#: 320x240 video, are detected at full size).
MIN_SIDE = 320
SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3
TOP_K = 5000


class YuNetDetector(ScaledDetector):
    """Faces by ``cv2.FaceDetectorYN``: boxes, scores and five landmarks."""

    name = "yunet"
    max_side = MAX_SIDE
    _transient = ("_lock", "_net")

    def __init__(
        self,
        weights: str | PathLike[str] | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | PathLike[str] | None = None,
        local_files_only: bool = False,
        score_threshold: float = SCORE_THRESHOLD,
        nms_threshold: float = NMS_THRESHOLD,
        top_k: int = TOP_K,
        min_face: int = MIN_FACE,
        max_side: int = MAX_SIDE,
    ) -> None:
        if not (isinstance(min_face, (int, float)) and min_face > 0 and isinstance(max_side, int) and max_side > 0):
            raise DetectorError(f"min_face and max_side must be positive pixel counts, got {min_face!r} and {max_side!r}")
        self.weights = resolve_weights(weights, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        self.min_face = min_face
        self.max_side = max_side
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        super().__init__()

    def _load(self) -> None:
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(self.weights), "", (MAX_SIDE, MAX_SIDE), self.score_threshold, self.nms_threshold, self.top_k
            )
        except (cv2.error, AttributeError) as exc:
            raise DetectorError(
                f"OpenCV could not load YuNet weights from {self.weights} ({exc}); "
                f"pass the path of a YuNet .onnx file (e.g. {DEFAULT_FILENAME}) and OpenCV >= 4.8"
            ) from exc

    def working_scale(self, width: int, height: int) -> float:
        """Scale so a ``min_face`` face becomes ``DETECTABLE`` px, the longer side stays within
        ``MIN_SIDE``..``max_side`` px, and the image is never enlarged."""
        longest = max(width, height)
        factor = max(min(self.max_side, DETECTABLE * longest / self.min_face), min(MIN_SIDE, self.max_side))
        return min(1.0, factor / longest)

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        height, width = image.shape[:2]
        self._net.setInputSize((width, height))
        _, faces = self._net.detect(image)
        faces = np.empty((0, 15), np.float32) if faces is None else faces
        return faces[:, :4], faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2)

    def __repr__(self) -> str:
        return (f"YuNetDetector({str(self.weights)!r}, score_threshold={self.score_threshold}, "
                f"min_face={self.min_face}, max_side={self.max_side})")


def resolve_weights(
    weights: str | PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | PathLike[str] | None = None,
    local_files_only: bool = False,
) -> Path:
    """The local path of the YuNet weights: ``weights`` (a .onnx path or a Hub repo id), else
    ``$EMOFER_YUNET``, else the default file of the default Hub repo (downloaded once)."""
    from .. import hub

    if weights is None and os.environ.get(ENV_VAR):
        weights = os.environ[ENV_VAR]
        if not Path(weights).is_file():
            raise DetectorError(f"{ENV_VAR}={weights} is not a file; point it at a YuNet .onnx file or unset it")
    if weights is not None and str(weights).endswith(".onnx") and not Path(weights).is_file():
        raise DetectorError(f"YuNet weights {weights} not found; pass the path of an existing .onnx file")
    try:
        return hub.resolve_file(
            DEFAULT_REPO if weights is None else weights,
            DEFAULT_FILENAME,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
    except ModelLoadError as exc:
        raise DetectorError(
            f"{exc}\nThe YuNet face detector needs its weights once: run online once, set "
            f'{ENV_VAR} to a local {DEFAULT_FILENAME}, or use detector="haar" (no download)'
        ) from exc


def cached_weights(
    *, revision: str | None = None, cache_dir: str | PathLike[str] | None = None
) -> Path | None:
    """The YuNet weights if they are available without a network: ``$EMOFER_YUNET`` or the Hub cache."""
    from .. import hub

    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return hub.cached_file(DEFAULT_REPO, DEFAULT_FILENAME, revision=revision, cache_dir=cache_dir)
