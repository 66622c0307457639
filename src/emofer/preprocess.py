"""The single definition of face crop -> model tensor, shared by runtime and training.

Everything a model needs to know about its input (size, channels, normalisation, crop
margin) comes from its config.json; this module only turns those numbers into pixels.
Training (``training/data.py``) imports these functions, so the pixels a model was trained on
are made by exactly the code that feeds it at run time.

The public functions check their arguments (:mod:`emofer.validate`); the recognizer, whose
crops are already checked, passes ``check_input=False`` to :func:`crop_face` and
:func:`to_tensor` and nothing is checked or copied again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from .errors import ImageReadError
from .validate import box_numbers, check_uint8, to_bgr

__all__ = [
    "CropPolicy",
    "Normalization",
    "expand_box",
    "crop_face",
    "to_gray",
    "GRAY_FROM_BGR",
    "resize_face",
    "normalize",
    "to_tensor",
    "model_input",
]

#: Interpolation used to bring any face crop to the model's input size.
#: INTER_AREA when shrinking (anti-aliased), INTER_LINEAR when enlarging.
SHRINK_INTERPOLATION = cv2.INTER_AREA
ENLARGE_INTERPOLATION = cv2.INTER_LINEAR
#: Largest padded crop made at full resolution. A square crop of a very long, thin image (a
#: 32832 x 80 GIF: a 32832 x 32832 crop, 3.2 GB, found by tests/test_fuzz.py) is made from a
#: shrunken copy instead; the network sees its own input size (48 x 48, 52 x 52, ...) either way.
MAX_PADDED_CROP_PIXELS = 4096 * 4096
#: The weights of blue, green and red in the grey image :func:`to_gray` makes (OpenCV's
#: ``COLOR_BGR2GRAY``; they sum to 1). Training spreads a grey network over B, G, R with them, and
#: a colour ensemble makes a grey member's face with them.
GRAY_FROM_BGR = np.array([0.114, 0.587, 0.299], np.float32)


@dataclass(frozen=True)
class Normalization:
    """``tensor = (pixels * scale - mean) / std`` with pixels in 0..255."""

    scale: float = 1.0 / 255.0
    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True)
class CropPolicy:
    """How a detector box becomes a face crop.

    ``margin`` grows the box by that fraction of its side on every edge; ``square`` makes the
    crop square around the box centre; ``shift_y`` moves the crop down by that fraction of the
    side (detectors box the face a little higher or lower than FER2013's framing). Parts of the
    crop outside the image are filled by replicating the border, so the face keeps its aspect.
    """

    margin: float = 0.0
    square: bool = True
    shift_y: float = 0.0


def expand_box(box: Sequence[float], policy: CropPolicy) -> tuple[int, int, int, int]:
    """Apply a crop policy to an (x, y, w, h) box; the result may extend past the image."""
    x, y, w, h = box_numbers(box)
    cx, cy = x + w / 2.0, y + h / 2.0
    if policy.square:
        w = h = max(w, h)
    w *= 1.0 + 2.0 * policy.margin
    h *= 1.0 + 2.0 * policy.margin
    cy += policy.shift_y * h
    if not np.isfinite((cx - w / 2.0, cy - h / 2.0, w, h)).all():
        raise ImageReadError(f"face box {tuple(box)} must hold finite numbers of pixels")
    x0, y0 = int(round(cx - w / 2.0)), int(round(cy - h / 2.0))
    return x0, y0, max(1, int(round(w))), max(1, int(round(h)))


def crop_face(image: np.ndarray, box: Sequence[float], policy: CropPolicy, *, check_input: bool = True) -> np.ndarray:
    """Cut the face of ``box`` out of ``image`` following ``policy`` (border replicated).

    ``check_input=False`` skips the check that ``image`` is a uint8 image (already checked).
    """
    height, width = (check_uint8(image, "an image") if check_input else image).shape[:2]
    x0, y0, w, h = expand_box(box, policy)
    x1, y1 = x0 + w, y0 + h
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise ImageReadError(
            f"face box {tuple(box)} lies outside the {width}x{height} image; "
            "pass boxes in the image's pixel coordinates (x, y, w, h)"
        )
    inner = image[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
    pads = (max(0, -y0), max(0, y1 - height), max(0, -x0), max(0, x1 - width))
    if any(pads):
        if w * h > MAX_PADDED_CROP_PIXELS:  # shrink first, so the padding never takes gigabytes
            scale = (MAX_PADDED_CROP_PIXELS / (w * h)) ** 0.5
            size = (max(1, round(inner.shape[1] * scale)), max(1, round(inner.shape[0] * scale)))
            inner = cv2.resize(inner, size, interpolation=SHRINK_INTERPOLATION)
            pads = tuple(round(pad * scale) for pad in pads)
        inner = cv2.copyMakeBorder(inner, *pads, borderType=cv2.BORDER_REPLICATE)
    return inner


def to_gray(image: np.ndarray) -> np.ndarray:
    """A uint8 (H, W) grey image from a uint8 (H, W), (H, W, 1), BGR or BGRA image."""
    return _gray(check_uint8(image))


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    channels = image.shape[2]
    if channels == 1:
        return image[:, :, 0]
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)


def resize_face(face: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a crop to (height, width) with the interpolation fit for the direction."""
    return _resize(check_uint8(face), size)


def _resize(face: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    if face.shape[:2] == (height, width):
        return face
    shrinking = face.shape[0] * face.shape[1] > height * width
    interpolation = SHRINK_INTERPOLATION if shrinking else ENLARGE_INTERPOLATION
    return cv2.resize(face, (width, height), interpolation=interpolation)


def normalize(pixels: np.ndarray, norm: Normalization) -> np.ndarray:
    """Map 0..255 pixels (any numeric dtype) to the model's float32 input range."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype.kind not in "buif":
        raise ImageReadError(
            f"normalize takes a real-valued pixel array, got {getattr(pixels, 'dtype', type(pixels).__name__)}"
        )
    return _normalize(pixels, norm)


def _normalize(pixels: np.ndarray, norm: Normalization) -> np.ndarray:
    tensor = pixels.astype(np.float32) * np.float32(norm.scale)
    if norm.mean != 0.0:
        tensor -= np.float32(norm.mean)
    if norm.std != 1.0:
        tensor /= np.float32(norm.std)
    return tensor


def to_tensor(
    faces: Sequence[np.ndarray] | np.ndarray,
    size: tuple[int, int],
    channels: int,
    norm: Normalization,
    *,
    check_input: bool = True,
) -> np.ndarray:
    """Stack uint8 face crops of any size into one float32 (N, H, W, C) model input.

    ``faces`` is a list of (h, w[, c]) uint8 crops (grey, BGR or BGRA) or one uint8
    (N, h, w[, c]) array. ``channels`` is 1 (grey) or 3 (BGR). ``check_input=False`` skips
    the check of each crop (already checked).
    """
    if check_input:
        faces = [check_uint8(face) for face in faces]
    height, width = size
    batch = (
        np.empty((len(faces), height, width), np.uint8)
        if channels == 1
        else np.empty((len(faces), height, width, 3), np.uint8)
    )
    for i, face in enumerate(faces):
        batch[i] = _resize(_gray(face) if channels == 1 else to_bgr(face), size)
    tensor = _normalize(batch, norm)
    return tensor[..., None] if channels == 1 else tensor


class InputShape(Protocol):
    """A model's input size and channel count, as :class:`emofer.config.InputSpec` holds them."""

    @property
    def size(self) -> tuple[int, int]: ...
    @property
    def channels(self) -> int: ...


class InputConfig(Protocol):
    """What :func:`model_input` reads of a :class:`emofer.config.ModelConfig` (config imports
    this module, so this one names only the protocol)."""

    @property
    def input(self) -> InputShape: ...
    @property
    def normalize(self) -> Normalization: ...


def model_input(faces: Sequence[np.ndarray] | np.ndarray, config: InputConfig) -> np.ndarray:
    """A batch of uint8 face crops, (N, H, W) or (N, H, W, C), as ``config``'s model input.

    The size, channels and normalisation all come from ``config`` (training passes its run's
    draft config.json), so training and serving make the same tensor from the same crops.
    """
    return to_tensor(faces, config.input.size, config.input.channels, config.normalize)
