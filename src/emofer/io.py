"""Image decoding: paths, encoded bytes and arrays -> uint8 BGR pixels, with clear errors.

Rules, in one place:
- paths and bytes are decoded by OpenCV with IMREAD_COLOR, which applies the EXIF orientation
  (a phone photo comes out upright) and gives 8-bit BGR; animated images give their first frame.
- arrays are taken as BGR (OpenCV's order) unless ``color="rgb"``, and checked by
  :func:`as_uint8` (:mod:`emofer.validate`, where every input check lives): shapes (H, W),
  (H, W, 1), (H, W, 3) and (H, W, 4); uint8 as is, uint16 scaled by 1/257, float read as 0-1
  when its maximum is <= 1 else 0-255 (clipped), other integers 0-255. Boolean arrays, NaN/inf
  and empty arrays are rejected with an ImageReadError that says what to pass instead.
- encoded images (paths, bytes) whose header declares more pixels than the limit are refused
  before any pixel is decoded (:func:`max_image_pixels`: the ``max_pixels`` argument, else the
  ``EMOFER_MAX_IMAGE_PIXELS`` environment variable, else :data:`MAX_IMAGE_PIXELS`).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageReadError
from .fetch import is_url
from .imagesize import declared_size, overrun
from .validate import COLOR_ORDERS, as_uint8, check_color, check_scalar, to_bgr

__all__ = [
    "ImageInput",
    "load_image",
    "as_uint8",
    "COLOR_ORDERS",
    "MAX_IMAGE_PIXELS",
    "MAX_PIXELS_ENV",
    "max_image_pixels",
    "check_pixels",
]

ImageInput = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray
#: Default largest image (width x height) decoded from a file or bytes, and video frame size:
#: 100 megapixels (a 10000 x 10000 image, 300 MB as BGR). Assign to change it for the process.
MAX_IMAGE_PIXELS = 100_000_000
#: Environment variable that overrides MAX_IMAGE_PIXELS (a positive integer).
MAX_PIXELS_ENV = "EMOFER_MAX_IMAGE_PIXELS"


def load_image(image: ImageInput, color: str = "bgr", *, max_pixels: int | None = None) -> np.ndarray:
    """Any supported image input -> a C-contiguous uint8 (H, W, 3) BGR array.

    Encoded images larger than ``max_pixels`` (default: :func:`max_image_pixels`) raise
    ImageReadError before decoding; arrays are already in memory and are not limited.
    """
    check_color(color)
    if isinstance(image, np.ndarray):
        pixels = as_uint8(image, color)
    elif isinstance(image, (bytes, bytearray, memoryview)):
        pixels = _decode(bytes(image), "the given bytes", max_pixels)
    elif is_url(image):
        raise ImageReadError(
            f"{image} is a URL: emofer reads files, bytes and arrays, and fetches nothing "
            "by itself; pass emofer.fetch.fetch_url(url) (the bytes) or a downloaded file"
        )
    elif isinstance(image, (str, os.PathLike)):
        pixels = _decode(_read_file(Path(image)), str(image), max_pixels)
    elif image is None:
        raise ImageReadError("image is None; pass a file path, encoded image bytes or a numpy array")
    else:
        raise ImageReadError(
            f"cannot read an image from a {type(image).__name__}; "
            "pass a file path, encoded image bytes or a numpy array"
        )
    return to_bgr(pixels)


def _read_file(path: Path) -> bytes:
    try:
        data = None if path.is_dir() else path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path} does not exist; check the path") from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
        raise ImageReadError(f"{path} could not be read ({getattr(exc, 'strerror', None) or exc})") from exc
    if data is None:
        raise ImageReadError(f"{path} is a directory; pass an image file (the CLI reads folders)")
    return data


def max_image_pixels(override: int | None = None) -> int:
    """The pixel limit in force: ``override``, else $EMOFER_MAX_IMAGE_PIXELS, else MAX_IMAGE_PIXELS."""
    if override is None:
        text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
        if not text:
            return int(MAX_IMAGE_PIXELS)
        if not text.isdigit() or int(text) < 1:
            raise ImageReadError(
                f"{MAX_PIXELS_ENV}={os.environ[MAX_PIXELS_ENV]!r} is not a positive whole number "
                "of pixels; set it to e.g. 200000000 or unset it"
            )
        return int(text)
    return int(check_scalar(override, "max_pixels", int, min_val=1, describe="a positive whole number of pixels"))


def check_pixels(width: int, height: int, where: str, max_pixels: int | None = None) -> None:
    """ImageReadError when a ``width`` x ``height`` image is over the pixel limit (named in the message)."""
    limit = max_image_pixels(max_pixels)
    if width * height > limit:
        raise ImageReadError(
            f"{where} is {width} x {height} = {width * height:,} pixels, over the limit of {limit:,} "
            f"(emofer.io.MAX_IMAGE_PIXELS; raise it with the {MAX_PIXELS_ENV} environment variable, in Python "
            "with emofer.io.load_image(path, max_pixels=N) and pass the array on, or shrink the image)"
        )


def _decode(data: bytes, where: str, max_pixels: int | None = None) -> np.ndarray:
    if not data:
        raise ImageReadError(f"{where}: the file is empty (0 bytes)")
    size = declared_size(data)
    if size is not None:
        check_pixels(*size, where, max_pixels)
    problem = overrun(data)
    if problem is not None:  # refused before the decoder allocates what the file claims
        raise ImageReadError(f"{where} could not be decoded as an image ({problem})")
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. over OpenCV's own size limit in a format emofer cannot measure
        message = (str(exc).strip().splitlines() or [""])[-1][:200]
        raise ImageReadError(f"{where} could not be decoded by OpenCV ({message}); it is damaged or too large") from exc
    if pixels is not None and pixels.size:
        check_pixels(pixels.shape[1], pixels.shape[0], where, max_pixels)
    if pixels is None or pixels.size == 0:
        raise ImageReadError(
            f"{where} could not be decoded as an image (truncated, or not a format OpenCV reads: "
            "JPEG, PNG, BMP, TIFF, WebP, GIF...)"
        )
    return pixels
