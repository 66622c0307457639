"""YuNet (OpenCV's CNN face detector): boxes, scores and five landmarks; weights in the wheel.

The weights (about 230 kB, MIT licence) ship inside emofer (``detect/weights/``, checked
against their sha256 on load); ``EMOFER_YUNET`` or a path / Hub repo id passed to
:class:`YuNetDetector` picks another file.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

import cv2
import numpy as np

from ..errors import DetectorError, ModelLoadError
from ..validate import check_scalar
from .base import ScaledDetector

__all__ = [
    "YuNetDetector",
    "resolve_weights",
    "bundled_weights",
    "BUNDLED_WEIGHTS",
    "BUNDLED_SHA256",
    "HUB_REPO",
    "HUB_FILENAME",
    "ENV_VAR",
]

log = logging.getLogger("emofer")

#: The YuNet weights shipped in the package (see SOURCE.md beside them) and their sha256.
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "face_detection_yunet_2026may.onnx"
BUNDLED_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
#: OpenCV's YuNet on the Hugging Face Hub, used when a user passes this repo id as ``weights``.
HUB_REPO = "opencv/face_detection_yunet"
HUB_FILENAME = "face_detection_yunet_2023mar.onnx"
#: Environment variable holding a local path to a YuNet .onnx file (wins over the bundled one).
ENV_VAR = "EMOFER_YUNET"
#: Images are scaled down so their longer side is at most this many pixels for the first pass.
MAX_SIDE = 640
#: Faces smaller than this many pixels (in the original image) may be missed: detection runs
#: on a copy scaled so that a face of this size is ``DETECTABLE`` pixels, the size YuNet still
#: finds reliably. 32 px scales a 640x480 frame to 320x240 (about 3x faster than full size).
MIN_FACE = 32
DETECTABLE = 16
#: ... but the copy's longer side is never scaled below this many pixels (small frames, e.g.
#: 320x240 video, are detected at full size).
MIN_SIDE = 320
#: Where ``max_side`` shrinks a ``min_face`` face below ``DETECTABLE`` px (images larger than
#: 1280 px at min_face=32), a second pass runs at the ``min_face`` scale on a copy of at most
#: this many pixels: the time budget (a 6000x4000 photo's second pass is 3000x2000).
FINE_MAX_PIXELS = 6_000_000
SCORE_THRESHOLD = 0.6
NMS_THRESHOLD = 0.3
TOP_K = 5000


class YuNetDetector(ScaledDetector):
    """Faces by ``cv2.FaceDetectorYN``: boxes, scores and five landmarks.

    ``weights``: None for ``$EMOFER_YUNET`` or else the bundled file, a local .onnx path, or a
    Hub repo id (``revision``, ``cache_dir`` and ``local_files_only`` apply to that download).
    Faces from ``min_face`` px up are found: large images get a second, finer pass (see
    :meth:`pass_scales`).
    """

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
        pixels = "a positive number of pixels"
        check_scalar(min_face, "min_face", float, min_val=0, include_boundaries="neither", describe=pixels)
        check_scalar(max_side, "max_side", int, min_val=1, describe=pixels)
        for name, value in (("score_threshold", score_threshold), ("nms_threshold", nms_threshold)):
            check_scalar(value, name, float, min_val=0, max_val=1)
        check_scalar(top_k, "top_k", int, min_val=1)
        self.weights = resolve_weights(
            weights, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
        self.min_face = min_face
        self.max_side = max_side
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        super().__init__()

    def _load(self) -> None:
        try:
            with _opencv_warnings_muted():
                self._net = cv2.FaceDetectorYN.create(
                    str(self.weights), "", (MAX_SIDE, MAX_SIDE), self.score_threshold, self.nms_threshold, self.top_k
                )
        except (cv2.error, AttributeError) as exc:
            raise DetectorError(
                f"OpenCV could not load YuNet weights from {self.weights} ({exc}); "
                "pass the path of a YuNet .onnx file, or no weights for the bundled one, and OpenCV >= 4.8"
            ) from exc

    def working_scale(self, width: int, height: int) -> float:
        """Scale so a ``min_face`` face becomes ``DETECTABLE`` px, the longer side stays within
        ``MIN_SIDE``..``max_side`` px, and the image is never enlarged."""
        longest = max(width, height)
        factor = max(min(self.max_side, DETECTABLE * longest / self.min_face), min(MIN_SIDE, self.max_side))
        return min(1.0, factor / longest)

    def pass_scales(self, width: int, height: int) -> tuple[float, ...]:
        """The first pass at :meth:`working_scale`; where that shrinks a ``min_face`` face below
        ``DETECTABLE`` px, a second at the scale that keeps it ``DETECTABLE`` px, on a copy of at
        most ``FINE_MAX_PIXELS`` (the time budget: beyond it the smallest face found grows)."""
        coarse = self.working_scale(width, height)
        wanted = min(1.0, DETECTABLE / self.min_face)
        fine = min(wanted, math.sqrt(FINE_MAX_PIXELS / max(1, width * height)))
        if fine <= coarse:
            return (coarse,)
        if fine < wanted:
            log.debug(
                "yunet: %dx%d image searched at scale %.3f (faces from %.0f px, not %s px: FINE_MAX_PIXELS)",
                width,
                height,
                fine,
                DETECTABLE / fine,
                self.min_face,
            )
        return coarse, fine

    def _detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        height, width = image.shape[:2]
        self._net.setInputSize((width, height))
        _, faces = self._net.detect(image)
        faces = np.empty((0, 15), np.float32) if faces is None else faces
        return faces[:, :4], faces[:, 14], faces[:, 4:14].reshape(-1, 5, 2)

    def __repr__(self) -> str:
        return (
            f"YuNetDetector({str(self.weights)!r}, score_threshold={self.score_threshold}, "
            f"min_face={self.min_face}, max_side={self.max_side})"
        )


_log_level_lock = threading.Lock()


@contextmanager
def _opencv_warnings_muted() -> Iterator[None]:
    """OpenCV's own log at ERROR for the block, then as it was: OpenCV 5 prints a WARN line to
    stderr ("Targets are not supported by the new graph engine") for every YuNet it creates."""
    logging_api = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_api is None:
        yield
        return
    with _log_level_lock:
        level = logging_api.getLogLevel()
        logging_api.setLogLevel(min(level, logging_api.LOG_LEVEL_ERROR))
        try:
            yield
        finally:
            logging_api.setLogLevel(level)


def resolve_weights(
    weights: str | PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | PathLike[str] | None = None,
    local_files_only: bool = False,
) -> Path:
    """The local path of the YuNet weights: ``weights`` (a .onnx path or a Hub repo id), else
    ``$EMOFER_YUNET``, else the bundled file (its sha256 checked)."""
    from .. import hub

    if weights is None and os.environ.get(ENV_VAR):
        weights = os.environ[ENV_VAR]
        if not Path(weights).is_file():
            raise DetectorError(
                f"{ENV_VAR}={weights} is not a file; point it at a YuNet .onnx file or unset it "
                "(emofer then uses its bundled YuNet)"
            )
    if weights is None:
        return bundled_weights()
    if str(weights).endswith(".onnx") and not Path(weights).is_file():
        raise DetectorError(
            f"YuNet weights {weights} not found; pass the path of an existing .onnx file, "
            "or no weights for the bundled YuNet"
        )
    try:
        return hub.resolve_file(
            weights, HUB_FILENAME, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
    except ModelLoadError as exc:
        fetch = (
            f'python -c "from huggingface_hub import hf_hub_download; '
            f"print(hf_hub_download('{weights}', '{HUB_FILENAME}'))\""
        )
        raise DetectorError(
            f"could not get the YuNet weights {HUB_FILENAME} of Hub repo {weights} (offline, not cached, or no "
            f'such repo or file). The bundled YuNet needs no download: pass no weights (detector="yunet"). '
            f"To use this file, fetch it once while online with `{fetch}` and pass the path it prints"
        ) from exc


def bundled_weights() -> Path:
    """The YuNet weights shipped in the package, after checking their sha256."""
    try:
        digest = hashlib.sha256(BUNDLED_WEIGHTS.read_bytes()).hexdigest()
    except OSError as exc:
        raise DetectorError(
            f"the bundled YuNet weights {BUNDLED_WEIGHTS} cannot be read ({exc}); "
            "reinstall emofer (pip install --force-reinstall emofer)"
        ) from exc
    if digest != BUNDLED_SHA256:
        raise DetectorError(
            f"the bundled YuNet weights {BUNDLED_WEIGHTS} are damaged (sha256 {digest}, expected "
            f"{BUNDLED_SHA256}); reinstall emofer (pip install --force-reinstall emofer)"
        )
    return BUNDLED_WEIGHTS
