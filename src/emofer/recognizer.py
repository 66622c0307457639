"""EmotionRecognizer: image -> faces -> crops -> tensor -> probabilities -> Face results."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import hub
from .config import ModelConfig
from .errors import EmoferError, ImageReadError
from .io import ImageInput, as_uint8, load_image
from .model import DEFAULT_BATCH_SIZE, OnnxClassifier
from .preprocess import crop_face, to_tensor
from .boxes import Box, clip_boxes
from .results import Face

if TYPE_CHECKING:
    from .detect import Detection, Detector, DetectorSpec
    from .video import FrameResult

__all__ = ["EmotionRecognizer"]

log = logging.getLogger("emofer")


class EmotionRecognizer:
    """Finds faces and tells their emotions. Build one with :meth:`from_pretrained`.

    A recognizer is stateless between calls and safe to share between threads: ``predict``
    from several threads gives the same results as sequential calls.
    """

    def __init__(self, classifier: OnnxClassifier, detector: Detector, *, detector_spec: DetectorSpec = None,
                 cache_dir: str | os.PathLike | None = None, local_files_only: bool = False,
                 min_face: int | None = None, min_confidence: float = 0.0) -> None:
        self.min_confidence = check_min_confidence(min_confidence)
        self.classifier = classifier
        self.detector = detector
        self._detector_spec = detector_spec if detector_spec is not None else detector
        self._cache_dir = cache_dir
        self._local_files_only = local_files_only
        self._min_face = min_face

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike | None = None,
        *,
        revision: str | None = None,
        detector: DetectorSpec = "auto",
        providers: Sequence[str] | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        threads: int | None = None,
        allow_spinning: bool = False,
        min_face: int | None = None,
        min_confidence: float = 0.0,
    ) -> EmotionRecognizer:
        """Load a model (bundled default, local folder / .onnx, or Hub repo id) and a detector.

        ``detector``: "auto" or "yunet" (the bundled YuNet), "haar" (opencv-python < 5),
        "none" (the whole image is one face), a Detector, or a callable returning boxes.
        ``threads`` sets onnxruntime's intra-op threads (None: onnxruntime's default);
        ``allow_spinning`` lets its idle threads busy-wait (off: they would hold a core the
        detector needs). ``min_face`` is the smallest face in pixels that YuNet looks for
        (default 32; smaller finds smaller faces, slower). ``min_confidence`` is the abstain
        threshold: faces whose top probability is below it come back with ``abstained`` set
        (default 0: never; the bundled models' probabilities are calibrated, see docs/models.md).
        """
        check_min_confidence(min_confidence)  # before the slow part
        config_path, onnx_path = hub.resolve_model(
            model, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
        config = ModelConfig.load(config_path)
        classifier = OnnxClassifier(onnx_path, config, providers=providers, threads=threads,
                                    allow_spinning=allow_spinning)
        from .detect import build_detector

        built = build_detector(detector, min_face=min_face)
        log.info("loaded %s from %s with detector %s", config.name, onnx_path, built.name)
        return cls(classifier, built, detector_spec=detector, cache_dir=cache_dir,
                   local_files_only=local_files_only, min_face=min_face, min_confidence=min_confidence)

    # -- what the model is ---------------------------------------------------------------

    @property
    def config(self) -> ModelConfig:
        """The model's config.json."""
        return self.classifier.config

    @property
    def labels(self) -> tuple[str, ...]:
        """Emotion labels in the model's output order."""
        return self.classifier.config.labels

    # -- the pipeline ---------------------------------------------------------------------

    def classify(self, crops: Sequence[np.ndarray] | np.ndarray, *, color: str = "bgr",
                 batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Probabilities (N, len(labels)) for already-cropped faces; rows sum to 1.

        ``crops`` is a list of arrays of any size and channel count, or one array of shape
        (N, H, W) (grey) or (N, H, W, C). Pixels follow :func:`emofer.io.as_uint8`'s rules.
        """
        if isinstance(crops, np.ndarray):
            if crops.ndim not in (3, 4):
                raise ImageReadError(
                    f"classify takes a list of crops or one (N, H, W[, C]) array, got shape {crops.shape}; "
                    "wrap a single crop in a list"
                )
            crops = list(crops)
        elif not isinstance(crops, (list, tuple)):
            raise ImageReadError(f"classify takes a list of crops or an array, got {type(crops).__name__}")
        faces = [as_uint8(crop, color) for crop in crops]
        spec = self.config.input
        tensor = to_tensor(faces, spec.size, spec.channels, self.config.normalize)
        return self.classifier.run(tensor, batch_size)

    def detect(self, image: ImageInput, *, color: str = "bgr") -> list[Detection]:
        """Face boxes only (no emotions), from the recognizer's detector."""
        return self.detector.detect(load_image(image, color))

    def predict(self, image: ImageInput, *, boxes: Iterable[Sequence[float]] | None = None,
                color: str = "bgr") -> list[Face]:
        """Faces with emotion probabilities; [] when no face is found.

        ``boxes`` (x, y, w, h) skips detection; they are clipped to the image, and a box with
        no area inside the image raises :class:`EmoferError`.
        """
        return self._predict_pixels([load_image(image, color)], [boxes])[0]

    def predict_batch(self, images: Iterable[ImageInput], *, color: str = "bgr") -> list[list[Face]]:
        """``predict`` for many images, with one network call for all their faces."""
        pixels = [load_image(image, color) for image in images]
        return self._predict_pixels(pixels, [None] * len(pixels))

    def predict_video(self, source: int | str | os.PathLike | Iterable[np.ndarray], **kwargs: Any) -> Iterator[FrameResult]:
        """Per-frame results over a video file, camera or iterable of frames; see :func:`emofer.video.analyze_video`."""
        from .video import analyze_video

        return analyze_video(self, source, **kwargs)

    def _predict_pixels(self, images: list[np.ndarray], boxes: list[Iterable[Sequence[float]] | None]) -> list[list[Face]]:
        found = [self._locate(image, given) for image, given in zip(images, boxes)]
        policy = self.config.crop_for(self.detector.name if all(b is None for b in boxes) else "given")
        crops = [crop_face(image, det[0], policy) for image, dets in zip(images, found) for det in dets]
        probabilities = self.classify(crops) if crops else np.zeros((0, len(self.labels)), np.float32)
        results, row = [], 0
        for dets in found:
            faces = []
            for box, score, landmarks in dets:
                faces.append(Face(box=box, probabilities=dict(zip(self.labels, probabilities[row].tolist())),
                                  score=score, landmarks=landmarks, min_confidence=self.min_confidence))
                row += 1
            results.append(faces)
        return results

    def _locate(self, image: np.ndarray, given: Iterable[Sequence[float]] | None) -> list[tuple]:
        if given is None:
            return [(d.box, d.score, d.landmarks) for d in self.detector.detect(image)]
        try:
            given = list(given)
        except TypeError as exc:
            raise EmoferError(f"boxes must be a list of (x, y, w, h) boxes, got {type(given).__name__}") from exc
        return [(clip_box(box, image.shape[1], image.shape[0]), None, None) for box in given]

    # -- pickling: rebuild the onnxruntime session and detector in the worker -------------

    def __reduce__(self) -> tuple[Callable[..., EmotionRecognizer], tuple]:
        return (_rebuild, (str(self.classifier.model_path), self.config, self.classifier.providers,
                           self.classifier.threads, self._detector_spec, self._cache_dir, self._local_files_only,
                           self.classifier.allow_spinning, self._min_face, self.min_confidence))

    def __repr__(self) -> str:
        abstain = f", min_confidence={self.min_confidence}" if self.min_confidence else ""
        return (f"EmotionRecognizer(model={self.config.name!r}, labels={len(self.labels)}, "
                f"detector={self.detector.name!r}{abstain})")


def check_min_confidence(value: float) -> float:
    """``value`` as a float if it is a probability (0..1); EmoferError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise EmoferError(f"min_confidence is a probability between 0 and 1, got {value!r}; "
                          "0 (the default) never abstains")
    return float(value)


def clip_box(box: Sequence[float], width: int, height: int) -> Box:
    """A caller's (x, y, w, h) box clipped to the image; EmoferError if nothing is left."""
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise EmoferError(f"a box must be four numbers (x, y, w, h), got {box!r}") from exc
    if not all(np.isfinite((x, y, w, h, x + w, y + h))) or w <= 0 or h <= 0:
        raise EmoferError(f"box {tuple(box)} must have finite values and positive width and height")
    clipped, keep = clip_boxes((x, y, w, h), width, height)
    if not keep[0]:
        raise EmoferError(f"box {tuple(box)} lies outside the {width}x{height} image; "
                          "boxes are (x, y, w, h) in the image's pixels")
    return tuple(int(v) for v in clipped[0])


def _rebuild(model_path: str, config: ModelConfig, providers: list[str], threads: int | None,
             detector_spec: DetectorSpec, cache_dir: Any, local_files_only: bool,
             allow_spinning: bool = False, min_face: int | None = None,
             min_confidence: float = 0.0) -> EmotionRecognizer:
    from .detect import build_detector

    classifier = OnnxClassifier(model_path, config, providers=providers, threads=threads,
                                allow_spinning=allow_spinning)
    detector = build_detector(detector_spec, min_face=min_face)
    return EmotionRecognizer(classifier, detector, detector_spec=detector_spec, cache_dir=cache_dir,
                             local_files_only=local_files_only, min_face=min_face, min_confidence=min_confidence)
