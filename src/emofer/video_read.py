"""Reading video: frames from a file, stream URL, camera or any iterable of images.

:func:`open_source` gives a :class:`VideoReader` (OpenCV's capture) or a :class:`FrameIterator`
(a list, generator or 4-D array of frames); both yield :class:`VideoFrame` tuples from
``frames(every_n_frames)``. Part of :mod:`emofer.video`, which re-exports these names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, cast

import cv2
import numpy as np

from .errors import ImageReadError, VideoError
from .io import check_pixels
from .validate import check_scalar

__all__ = ["VideoSource", "VideoFrame", "VideoReader", "FrameIterator", "open_source", "iter_frames", "DEFAULT_FPS"]

#: A camera index, a file or URL, or any iterable of uint8 BGR frames (arrays; e.g. a generator).
VideoSource = int | str | os.PathLike | Iterable[np.ndarray]

log = logging.getLogger("emofer")

#: Frame rate assumed when a video does not say and it cannot be measured.
DEFAULT_FPS = 30.0


class VideoFrame(NamedTuple):
    """One decoded frame: its index in the source, its time and its uint8 BGR pixels."""

    index: int  # type: ignore[assignment]  # shadows tuple.index, as the public field name
    timestamp_ms: float
    image: np.ndarray


class VideoReader:
    """An opened video file, stream URL or camera; iterate :meth:`frames`, then :meth:`close`.

    A camera is an int (or a string of digits that is not a file). Raises VideoError when the
    source cannot be opened.
    """

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self.is_camera = isinstance(source, int) or (
            isinstance(source, str) and source.isdigit() and not Path(source).exists()
        )
        if self.is_camera:
            camera = int(cast("int | str", source))
            if camera < 0:  # OpenCV 4.14 segfaults on negative indices when no camera exists
                raise VideoError(f"camera index {camera} is negative; cameras are numbered 0, 1, ...")
            with _opencv_log_quiet():
                self._capture = cv2.VideoCapture(camera)
            if not self._capture.isOpened():
                raise VideoError(
                    f"camera {camera} could not be opened: it does not exist, is in use by "
                    "another program, or this process may not use it; try another index (0, 1, ...) "
                    "or pass a video file"
                )
        else:
            text = os.fspath(cast("str | os.PathLike[str]", source))
            if "://" not in text and not Path(text).is_file():
                what = "is a folder, not a video file" if Path(text).is_dir() else "does not exist"
                raise VideoError(f"video file {text} {what}; check the path")
            with _opencv_log_quiet():
                self._capture = cv2.VideoCapture(text)
            if not self._capture.isOpened():
                raise VideoError(
                    f"{text} could not be opened as a video (damaged, or a codec this OpenCV build "
                    "lacks); convert it with e.g. ffmpeg -i in.mov -c:v libx264 out.mp4"
                )
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else None
        count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if not self.is_camera and count and count > 0 else None
        width, height = (self._capture.get(p) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
        if all(np.isfinite(v) and v > 0 for v in (width, height)):
            try:
                check_pixels(int(width), int(height), f"{self._name}'s frame size")
            except ImageReadError as exc:
                self._capture.release()
                raise VideoError(str(exc)) from exc

    def frames(self, every_n_frames: int = 1, start: int = 0, stop: int | None = None) -> Iterator[VideoFrame]:
        """Every ``every_n_frames``-th frame (skipped ones are not converted); VideoError if none can be read.

        ``start`` and ``stop`` keep the frames with index in [start, stop) (None: to the end), indices
        counted from the video's first frame, so a range gives the very frames, indices and timestamps
        of a whole read. The frames before ``start`` are read and discarded (``grab``: decoded, never
        converted), not sought to, since seeking is not frame-exact in every codec. A video that ends,
        or fails, before ``start`` gives no frame and no error: the range holding that frame reports it.
        """
        check_every(every_n_frames)
        check_scalar(start, "start", int, min_val=0)
        check_scalar(stop, "stop", int, min_val=0, allow_none=True, hint="None reads to the end")
        began = time.monotonic()
        index = delivered = 0
        while stop is None or index < stop:
            try:
                if index < start or index % every_n_frames:
                    if not self._capture.grab():
                        break
                    index += 1
                    continue
                ok, image = self._capture.read()
            except cv2.error as exc:
                if index < start:
                    log.debug("%s failed at frame %d, before this range's first (%d)", self._name, index, start)
                    return
                detail = (str(exc).strip().splitlines() or [""])[-1][:200]
                since = f" (this read began at frame {start})" if start else ""
                raise VideoError(
                    f"reading frame {index} of {self._name} failed ({detail}); "
                    f"the {delivered} frame{'s' if delivered != 1 else ''} before it were delivered{since}"
                ) from exc
            if not ok or image is None or image.size == 0:
                if self.is_camera and index:
                    log.warning("%s stopped delivering frames after %d frames", self._name, index)
                break
            yield VideoFrame(index, self._timestamp_ms(index, began), image)
            index += 1
            delivered += 1
        if index == 0 and start == 0 and stop != 0:
            raise VideoError(f"no frame could be read from {self._name}; the video is empty or damaged")

    def _timestamp_ms(self, index: int, start: float) -> float:
        if self.is_camera:
            return 1000.0 * (time.monotonic() - start)
        position = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        if position > 0 or index == 0:
            return round(float(position), 3)
        return 1000.0 * index / (self.fps or DEFAULT_FPS)

    @property
    def _name(self) -> str:
        if self.is_camera:
            return f"camera {int(cast('int | str', self.source))}"
        return os.fspath(cast("str | os.PathLike[str]", self.source))

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _opencv_log_quiet() -> Iterator[None]:
    """OpenCV's own log off while a capture opens (a missing camera prints a dozen WARN and ERROR
    lines before emofer's one-line message), unless emofer logs at INFO (``-v``)."""
    logging_api = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_api is None or log.isEnabledFor(logging.INFO):
        yield
        return
    level = logging_api.getLogLevel()
    logging_api.setLogLevel(logging_api.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging_api.setLogLevel(level)


class FrameIterator:
    """Frames from any iterable of images (arrays, or paths/bytes): a generator, a list, a 4-D array.

    Same interface as :class:`VideoReader`. Timestamps count at ``fps`` (default 30). The
    stream ends when the iterable ends or gives None or an empty array (logged); an exception
    from it becomes a VideoError saying how many frames came before.
    """

    is_camera = False
    frame_count = None

    def __init__(self, frames: Iterable[Any], fps: float | None = None) -> None:
        if isinstance(frames, (bytes, bytearray, memoryview)) or (isinstance(frames, np.ndarray) and frames.ndim != 4):
            raise VideoError(
                f"cannot read video frames from a {type(frames).__name__}"
                + (f" of shape {frames.shape}" if isinstance(frames, np.ndarray) else "")
                + "; pass a file, a camera index, or a list / iterator of (H, W, 3) frames"
            )
        try:
            self._iterator = iter(frames)
        except TypeError as exc:
            raise VideoError(
                f"cannot read video frames from a {type(frames).__name__}; pass a file, a camera "
                "index, or a list / iterator of (H, W, 3) frames"
            ) from exc
        self.source = frames
        self.fps = check_scalar(fps, "fps", float, min_val=0, include_boundaries="neither", allow_none=True)
        self._name = "the frame source"

    def frames(self, every_n_frames: int = 1) -> Iterator[VideoFrame]:
        """Every ``every_n_frames``-th frame as uint8 BGR; VideoError if the source gives none."""
        from .io import load_image

        check_every(every_n_frames)
        index = 0
        while True:
            try:
                image = next(self._iterator)
            except StopIteration:
                break
            except Exception as exc:  # whatever the caller's source raises ends the stream, said clearly
                raise VideoError(
                    f"{self._name} raised {type(exc).__name__} ({exc}) after {index} frames; "
                    "the frames before it were delivered"
                ) from exc
            if image is None or (isinstance(image, np.ndarray) and image.size == 0):
                log.warning("%s gave an empty frame after %d frames; stopping", self._name, index)
                break
            if index % every_n_frames == 0:
                try:
                    pixels = load_image(image)
                except ImageReadError as exc:
                    raise VideoError(f"frame {index} of {self._name}: {exc}") from exc
                yield VideoFrame(index, 1000.0 * index / (self.fps or DEFAULT_FPS), pixels)
            index += 1
        if index == 0:
            raise VideoError(f"{self._name} gave no frame")

    def close(self) -> None:
        close = getattr(self._iterator, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> FrameIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(source: VideoSource) -> VideoReader | FrameIterator:
    """A VideoReader for a camera index, file or URL; a FrameIterator for an iterable of frames."""
    if isinstance(source, (int, str, os.PathLike)):
        return VideoReader(source)
    return FrameIterator(source)


def iter_frames(source: VideoSource, *, every_n_frames: int = 1) -> Iterator[VideoFrame]:
    """The frames of a video file, camera or frame iterable as (index, timestamp_ms, BGR image).

    Frames may change size."""
    check_every(every_n_frames)  # here, when called
    return _frames(source, every_n_frames)


def _frames(source: VideoSource, every_n_frames: int) -> Iterator[VideoFrame]:
    with open_source(source) as reader:
        yield from reader.frames(every_n_frames)


def check_every(every_n_frames: int) -> int:
    """``every_n_frames`` if it is a whole number 1 or more, else ParameterError."""
    return check_scalar(every_n_frames, "every_n_frames", int, min_val=1, hint="1 analyses every frame")
