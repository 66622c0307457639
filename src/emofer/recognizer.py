"""EmotionRecognizer: image -> faces -> crops -> tensor -> probabilities -> Face results.

Inputs are checked once, at the public methods (:mod:`emofer.validate`); the steps behind them
(detect -> crop -> tensor -> model) trust what they are handed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import hub
from .config import ModelConfig
from .errors import ParameterError
from .io import ImageInput, load_image
from .model import DEFAULT_BATCH_SIZE, OnnxClassifier
from .preprocess import crop_face, to_tensor
from .results import Face
from .validate import as_crops, check_min_face, check_scalar, image_boxes

if TYPE_CHECKING:
    from .detect import Detection, Detector, DetectorSpec
    from .video import FrameResult

__all__ = ["EmotionRecognizer", "LoadSpec"]

log = logging.getLogger("emofer")


@dataclass(frozen=True)
class LoadSpec:
    """Every option of :meth:`EmotionRecognizer.from_pretrained`, held once.

    The one carrier of load options: ``from_pretrained`` builds one, the command line builds one
    from its options (:func:`emofer.options.load_spec`), and :meth:`EmotionRecognizer.from_spec`
    loads it; a recognizer keeps its own (:attr:`EmotionRecognizer.spec`). A new option is a field
    here, the keyword of the same name and default in ``from_pretrained`` (a test holds the two
    together) and, for the command line, one ``add_argument`` whose ``dest`` is the field's name.
    The options are checked when the spec is made (ParameterError naming the option). A spec
    pickles (for Ray actors and other processes) without ``token``, which is also left out of
    the repr: a worker reads the token from its own login or ``HF_TOKEN``.
    """

    model: str | os.PathLike | None = None
    revision: str | None = None
    detector: DetectorSpec = "auto"
    providers: Sequence[str] | None = None
    cache_dir: str | os.PathLike | None = None
    local_files_only: bool = False
    threads: int | None = None
    allow_spinning: bool = False
    min_face: int | None = None
    min_confidence: float = 0.0
    token: str | bool | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_scalar(self.model, "model", (str, os.PathLike), allow_none=True, hint="a folder, .onnx file or Hub id")
        check_scalar(self.revision, "revision", str, allow_none=True, hint="a tag, branch or commit of a Hub repo")
        for name in ("local_files_only", "allow_spinning"):
            check_scalar(getattr(self, name), name, bool)
        check_scalar(self.threads, "threads", int, min_val=1, allow_none=True, hint="None lets onnxruntime choose")
        check_min_face(self.min_face)
        object.__setattr__(self, "min_confidence", check_min_confidence(self.min_confidence))
        if self.providers is not None:
            if isinstance(self.providers, str):
                raise ParameterError(
                    f"providers must be a list of names, got {self.providers!r}; "
                    f"wrap one in a list: [{self.providers!r}]"
                )
            object.__setattr__(self, "providers", tuple(self.providers))

    def __reduce__(self) -> tuple[Callable[..., LoadSpec], tuple]:
        # Pickles (Ray's object store, process pools) never hold the Hub token.
        return (type(self), tuple(getattr(replace(self, token=None), f.name) for f in fields(self)))


class EmotionRecognizer:
    """Finds faces and tells their emotions. Build one with :meth:`from_pretrained`.

    A recognizer is stateless between calls and safe to share between threads: ``predict``
    from several threads gives the same results as sequential calls.
    """

    def __init__(self, classifier: OnnxClassifier, detector: Detector, *, spec: LoadSpec | None = None) -> None:
        self.classifier = classifier
        self.detector = detector
        self._spec = (
            spec
            if spec is not None
            else LoadSpec(
                str(classifier.model_path),
                detector=detector,
                providers=classifier.providers,
                threads=classifier.threads,
                allow_spinning=classifier.allow_spinning,
            )
        )

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
        token: str | bool | None = None,
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
        ``token`` is a Hugging Face access token for a private or gated Hub repo (None: the
        saved login or ``HF_TOKEN``; False: send none); it is never logged, shown or pickled.
        """
        arguments = dict(locals())  # the keywords above, which are LoadSpec's fields
        del arguments["cls"]
        return cls.from_spec(LoadSpec(**arguments))  # the spec checks every option before the slow part

    @classmethod
    def from_spec(cls, spec: LoadSpec) -> EmotionRecognizer:
        """The recognizer a :class:`LoadSpec` describes (what ``from_pretrained`` loads with the same options)."""
        if not isinstance(spec, LoadSpec):
            raise ParameterError(f"spec must be an emofer LoadSpec, got {type(spec).__name__}")
        config_path, onnx_path = hub.resolve_model(
            spec.model,
            revision=spec.revision,
            cache_dir=spec.cache_dir,
            local_files_only=spec.local_files_only,
            token=spec.token,
        )
        return cls._build(spec, onnx_path, ModelConfig.load(config_path))

    @classmethod
    def _build(cls, spec: LoadSpec, model_path: str | os.PathLike, config: ModelConfig) -> EmotionRecognizer:
        """The recognizer ``spec`` describes, its model already found at ``model_path``."""
        from .detect import build_detector
        from .detect.registry import FRAMING_COMMAND, needs_crop

        classifier = OnnxClassifier(
            model_path, config, providers=spec.providers, threads=spec.threads, allow_spinning=spec.allow_spinning
        )
        detector = build_detector(spec.detector, min_face=spec.min_face)
        log.info("loaded %s from %s with detector %s", config.name, model_path, detector.name)
        if needs_crop(detector.name, config.crop_by_detector):
            log.warning(
                "%s has no crop measured for the %s detector: its faces get the model's generic crop, which "
                "may cost accuracy; measure one with %s and re-export the model",
                config.name,
                detector.name,
                FRAMING_COMMAND,
            )
        return cls(classifier, detector, spec=spec)

    @property
    def spec(self) -> LoadSpec:
        """The options this recognizer was loaded with (its ``token`` None once unpickled)."""
        return self._spec

    @property
    def min_confidence(self) -> float:
        """Faces whose top probability is below this come back with ``abstained`` set."""
        return self._spec.min_confidence

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

    def classify(
        self, crops: Sequence[np.ndarray] | np.ndarray, *, color: str = "bgr", batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray:
        """Probabilities (N, len(labels)) for already-cropped faces; rows sum to 1.

        ``crops`` is a list of arrays of any size and channel count, or one array of shape
        (N, H, W) (grey) or (N, H, W, C). Pixels follow :func:`emofer.io.as_uint8`'s rules.
        """
        check_scalar(batch_size, "batch_size", int, min_val=1)
        return self._classify(as_crops(crops, color), batch_size)

    def detect(self, image: ImageInput, *, color: str = "bgr") -> list[Detection]:
        """Face boxes only (no emotions), from the recognizer's detector."""
        return self.detector.detect(load_image(image, color))

    def predict(
        self, image: ImageInput, *, boxes: Iterable[Sequence[float]] | None = None, color: str = "bgr"
    ) -> list[Face]:
        """Faces with emotion probabilities; [] when no face is found.

        ``boxes`` (x, y, w, h) skips detection; they are clipped to the image, and a box with
        no area inside the image raises :class:`ParameterError`.
        """
        return self._predict_pixels([load_image(image, color)], [boxes])[0]

    def predict_batch(self, images: Iterable[ImageInput], *, color: str = "bgr") -> list[list[Face]]:
        """``predict`` for many images, with one network call for all their faces."""
        pixels = [load_image(image, color) for image in images]
        return self._predict_pixels(pixels, [None] * len(pixels))

    def predict_video(
        self, source: int | str | os.PathLike | Iterable[np.ndarray], **kwargs: Any
    ) -> Iterator[FrameResult]:
        """Per-frame results over a video file, camera or iterable of frames; see :func:`emofer.video.analyze_video`."""
        from .video import analyze_video

        return analyze_video(self, source, **kwargs)

    # -- the inner steps: inputs already checked, nothing checked or copied again ------------

    def _predict_pixels(
        self, images: list[np.ndarray], boxes: list[Iterable[Sequence[float]] | None]
    ) -> list[list[Face]]:
        """Faces in decoded BGR images (from load_image); ``boxes[i]`` None detects them."""
        found = [self._locate(image, given) for image, given in zip(images, boxes)]
        policy = self.config.crop_for(self.detector.name if all(b is None for b in boxes) else "given")
        crops = [
            crop_face(image, det[0], policy, check_input=False) for image, dets in zip(images, found) for det in dets
        ]
        probabilities = self._classify(crops)
        results, row = [], 0
        for dets in found:
            faces = []
            for box, score, landmarks in dets:
                faces.append(
                    Face(
                        box=box,
                        probabilities=dict(zip(self.labels, probabilities[row].tolist())),
                        score=score,
                        landmarks=landmarks,
                        min_confidence=self.min_confidence,
                    )
                )
                row += 1
            results.append(faces)
        return results

    def _locate(self, image: np.ndarray, given: Iterable[Sequence[float]] | None) -> list[tuple]:
        if given is None:
            return [(d.box, d.score, d.landmarks) for d in self.detector.detect(image)]
        return [(box, None, None) for box in image_boxes(given, image.shape[1], image.shape[0])]

    def _classify(self, crops: list[np.ndarray], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Probabilities for checked uint8 crops."""
        shape = self.config.input
        tensor = to_tensor(crops, shape.size, shape.channels, self.config.normalize, check_input=False)
        return self.classifier.run(tensor, batch_size)

    # -- pickling: rebuild the onnxruntime session and detector in the worker -------------

    def __reduce__(self) -> tuple[Callable[..., EmotionRecognizer], tuple]:
        # The worker loads the model file this recognizer runs: no Hub lookup, so no token (a
        # secret in every pickle, e.g. Ray's object store, would serve nothing).
        return (type(self)._build, (replace(self._spec, token=None), str(self.classifier.model_path), self.config))

    def __repr__(self) -> str:
        abstain = f", min_confidence={self.min_confidence}" if self.min_confidence else ""
        return (
            f"EmotionRecognizer(model={self.config.name!r}, labels={len(self.labels)}, "
            f"detector={self.detector.name!r}{abstain})"
        )


def check_min_confidence(value: float) -> float:
    """``value`` as a float if it is a probability (0..1); ParameterError otherwise."""
    hint = "a probability between 0 and 1; 0 (the default) never abstains"
    return float(check_scalar(value, "min_confidence", float, min_val=0, max_val=1, hint=hint))
