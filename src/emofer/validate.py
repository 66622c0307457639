"""The one place that checks what callers hand in: parameters, image arrays, face crops and face boxes.

Public entry points check their inputs here: :meth:`EmotionRecognizer.predict` /
``classify`` / ``predict_batch`` (through :func:`emofer.io.load_image`), the detectors'
``detect``, :func:`emofer.draw` and the :mod:`emofer.preprocess` functions training calls.
The steps behind them (detect -> crop -> tensor -> model) trust what they are handed.

Numbers and options go through :func:`check_scalar` (scikit-learn's style: name, type, bounds),
which raises :class:`~emofer.errors.ParameterError` naming the parameter; the command line's
``type=`` functions (:mod:`emofer.options`) are built on it, so a bad ``--every`` and a bad
``every_n_frames=`` say the same thing. Image arrays follow :func:`as_uint8`'s rules; a box is
``(x, y, w, h)`` in image pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np

from .boxes import Box, clip_boxes
from .errors import DetectorError, EmoferError, ImageReadError, ParameterError

__all__ = [
    "check_scalar",
    "check_choice",
    "check_min_face",
    "COLOR_ORDERS",
    "check_color",
    "as_uint8",
    "as_crops",
    "to_bgr",
    "check_uint8",
    "check_bgr",
    "parse_box",
    "image_boxes",
    "box_numbers",
]

COLOR_ORDERS = ("bgr", "rgb")

_TYPE_WORDS = {int: "a whole number", float: "a number", bool: "True or False", str: "a string"}


def check_scalar(
    value: Any,
    name: str,
    kind: type | tuple[type, ...],
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_boundaries: str = "both",
    allow_none: bool = False,
    describe: str = "",
    hint: str = "",
) -> Any:
    """``value`` if it is of ``kind`` and within the bounds, else ParameterError naming ``name``.

    As scikit-learn's ``check_scalar``: ``kind`` is a type or tuple of types (``float`` also takes
    ints; ``bool`` is never a number), ``min_val`` / ``max_val`` are the bounds and
    ``include_boundaries`` ("both", "left", "right", "neither") says which of them are allowed.
    ``allow_none`` lets None through (an option's "default"); ``describe`` says what the value
    must be in words ("a positive number of pixels") instead of the type and bounds; ``hint`` ends
    the message.
    """
    if value is None and allow_none:
        return value
    kinds = kind if isinstance(kind, tuple) else (kind,)
    numbers = (int, np.integer, np.floating) if float in kinds else (np.integer,) if int in kinds else ()
    fits = isinstance(value, kinds) or isinstance(value, numbers)
    if not fits or (isinstance(value, (bool, np.bool_)) and bool not in kinds):
        words = describe or " or ".join(_TYPE_WORDS.get(k, k.__name__) for k in kinds)
        raise ParameterError(_message(name, f"must be {words}", value, hint))
    if min_val is None and max_val is None:
        return value
    bounds = describe or _range(min_val, max_val, include_boundaries)
    if isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(_message(name, f"must be {describe or 'a finite number' + bounds}", value, hint))
    low_ok = min_val is None or value > min_val or (value == min_val and include_boundaries in ("both", "left"))
    high_ok = max_val is None or value < max_val or (value == max_val and include_boundaries in ("both", "right"))
    if not (low_ok and high_ok):
        raise ParameterError(_message(name, f"must be {bounds.strip()}", value, hint))
    return value


def check_min_face(value: int | None) -> int | None:
    """``min_face`` (the smallest face YuNet looks for) if it is None or a positive whole number of pixels."""
    return check_scalar(value, "min_face", int, min_val=1, allow_none=True, describe="a positive number of pixels")


def check_choice(value: Any, name: str, choices: Sequence[str], hint: str = "") -> str:
    """``value`` if it is one of ``choices`` (strings), else ParameterError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(_message(name, f"must be one of {', '.join(choices)}", value, hint))
    return value


def _range(low: float | None, high: float | None, include: str) -> str:
    """The bounds in words, after a space: " 1 or more", " from 0 to 1", " over 0 and up to 1"."""
    low_in, high_in = include in ("both", "left"), include in ("both", "right")
    if low is not None and high is not None:
        if low_in and high_in:
            return f" from {low} to {high}"
        return f" {'from' if low_in else 'over'} {low} and {'up to' if high_in else 'under'} {high}"
    if low is not None:
        return f" {low} or more" if low_in else f" over {low}"
    return f" {high} or less" if high_in else f" under {high}"


def _message(name: str, rule: str, value: Any, hint: str) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{name} {rule}, got {text}" + (f"; {hint}" if hint else "")


def check_color(color: str) -> str:
    """``color`` if it is a channel order emofer reads ("bgr" or "rgb"), else ImageReadError."""
    if color not in COLOR_ORDERS:
        raise ImageReadError(f"color must be one of {COLOR_ORDERS}, got {color!r}")
    return color


def as_uint8(array: np.ndarray, color: str = "bgr") -> np.ndarray:
    """Validate an image array and return it as C-contiguous uint8 with 1, 3 (BGR) or 4 (BGRA) channels.

    Shapes (H, W), (H, W, 1), (H, W, 3) and (H, W, 4); uint8 as is, uint16 scaled by 1/257,
    float read as 0-1 when its maximum is <= 1 else 0-255 (clipped), other integers 0-255.
    Booleans, NaN/inf and empty arrays raise ImageReadError saying what to pass instead.
    """
    check_color(color)
    if not isinstance(array, np.ndarray):
        raise ImageReadError(f"expected a numpy array, got {type(array).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageReadError(f"image array has shape {array.shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageReadError(
            f"image array is empty (shape {array.shape}); pass an image at least 1 pixel high and wide"
        )
    array = _to_uint8_values(array)
    if color == "rgb" and array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    return np.ascontiguousarray(array)


def _to_uint8_values(array: np.ndarray) -> np.ndarray:
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array
    if kind == "b":
        raise ImageReadError("image array is boolean (a mask?); pass uint8 0-255 or float 0-1 pixels")
    if array.dtype == np.uint16:
        return (array.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if kind == "f":
        if not np.isfinite(array).all():
            raise ImageReadError("image array holds NaN or infinite values; pass finite pixel values")
        peak = float(array.max())
        scale = 255.0 if peak <= 1.0 else 1.0
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, then 255
            return np.clip(array.astype(np.float32) * scale + 0.5, 0, 255).astype(np.uint8)
    if kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ImageReadError(
                f"{array.dtype} image array holds values {low}..{high}; expected 0..255 "
                "(convert it to uint8, or pass uint16 / float pixels)"
            )
        return array.astype(np.uint8)
    raise ImageReadError(f"image arrays of dtype {array.dtype} are not supported; pass uint8, uint16 or float")


def as_crops(crops: Sequence[np.ndarray] | np.ndarray, color: str = "bgr") -> list[np.ndarray]:
    """``classify``'s input (a list of crop arrays, or one (N, H, W[, C]) array) as checked uint8 crops."""
    if isinstance(crops, np.ndarray):
        if crops.ndim not in (3, 4):
            raise ImageReadError(
                f"classify takes a list of crops or one (N, H, W[, C]) array, got shape {crops.shape}; "
                "wrap a single crop in a list"
            )
        crops = list(crops)
    elif not isinstance(crops, (list, tuple)):
        raise ImageReadError(f"classify takes a list of crops or an array, got {type(crops).__name__}")
    return [as_uint8(crop, color) for crop in crops]


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A checked uint8 grey (H, W[, 1]), BGR or BGRA image as BGR (H, W, 3); BGR is returned as is."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def check_uint8(image: Any, what: str = "a face crop") -> np.ndarray:
    """``image`` if it is a non-empty uint8 (H, W), (H, W, 1), BGR or BGRA array, else ImageReadError."""
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] not in (1, 3, 4))
        or image.size == 0
    ):
        raise ImageReadError(
            f"{what} must be a non-empty uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array, got "
            f"{getattr(image, 'dtype', type(image).__name__)} with shape {getattr(image, 'shape', None)}; "
            "convert it with emofer.io.as_uint8"
        )
    return image


def check_bgr(image: Any) -> np.ndarray:
    """``image`` if it is a uint8 BGR (H, W, 3) array (what detectors take), else ImageReadError."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ImageReadError(
            f"face detectors take a uint8 BGR (H, W, 3) array, got {dtype} with shape {shape}; "
            "decode images with emofer.io.load_image first"
        )
    return image


def parse_box(box: Any, *, source: str | None = None) -> tuple[float, ...]:
    """A face box as floats: (x, y, w, h), finite, with positive width and height.

    A caller's box (``source`` None) that is not raises ParameterError. A row returned by the box
    function named ``source`` may carry a fifth number, its score, and raises DetectorError.
    """
    sizes = (4,) if source is None else (4, 5)
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise _bad_box(box, source, numbers=True) from exc
    if len(values) in sizes:
        x, y, w, h = values[:4]
        if all(math.isfinite(v) for v in (*values, x + w, y + h)) and w > 0 and h > 0:
            return values
    raise _bad_box(box, source, numbers=source is None and len(values) not in sizes)


def _bad_box(box: Any, source: str | None, *, numbers: bool) -> EmoferError:
    """The error for a box that is not numbers (``numbers``) or has values no face box has."""
    if source is not None:
        problem = "numbers" if numbers else "with finite numbers and positive width and height"
        return DetectorError(f"{source} returned {box!r}; a box is (x, y, w, h) or (x, y, w, h, score) {problem}")
    if numbers:
        return ParameterError(f"a box must be four numbers (x, y, w, h), got {box!r}")
    return ParameterError(f"box {tuple(box)} must have finite values and positive width and height")


def image_boxes(boxes: Iterable[Sequence[float]], width: int, height: int) -> list[Box]:
    """A caller's (x, y, w, h) boxes, checked and clipped to a ``width`` x ``height`` image.

    ParameterError when ``boxes`` is not a list of boxes, or a box has no area inside the image.
    """
    try:
        boxes = list(boxes)
    except TypeError as exc:
        raise ParameterError(f"boxes must be a list of (x, y, w, h) boxes, got {type(boxes).__name__}") from exc
    return [_clip_box(box, width, height) for box in boxes]


def _clip_box(box: Any, width: int, height: int) -> Box:
    clipped, keep = clip_boxes(parse_box(box), width, height)
    if not keep[0]:
        raise ParameterError(
            f"box {tuple(box)} lies outside the {width}x{height} image; boxes are (x, y, w, h) in the image's pixels"
        )
    x, y, w, h = (int(v) for v in clipped[0])
    return x, y, w, h


def box_numbers(box: Any) -> tuple[float, float, float, float]:
    """Any four numbers (x, y, w, h) as floats, for box geometry; ParameterError otherwise."""
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"a face box must be four numbers (x, y, w, h), got {box!r}") from exc
    return x, y, w, h
