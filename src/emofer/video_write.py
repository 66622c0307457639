"""Writing video results: annotated video files and per-face tables.

The output policy (:mod:`emofer.outputs`) holds for both: an input is never overwritten, an
existing file only with ``overwrite``, and files appear whole. Part of :mod:`emofer.video`,
which re-exports these names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .draw import draw
from .errors import VideoError
from .outputs import Inputs, PathLike, as_inputs, check_output_file, commit, open_text, temporary_path
from .results import FrameResult
from .table import RowWriter, format_for
from .validate import check_scalar
from .video_read import DEFAULT_FPS

__all__ = ["CODECS", "video_format", "VideoFileWriter", "write_video", "write_table", "TABLE_KEYS", "table_keys"]

#: Video codec (FourCC) by output file suffix.
CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def video_format(path: str | os.PathLike) -> str:
    """The codec (FourCC) a video file named ``path`` is written with; VideoError for other suffixes."""
    codec = CODECS.get(Path(path).suffix.lower())
    if codec is None:
        raise VideoError(f"cannot write video {path}: use a name ending in {', '.join(CODECS)}")
    return codec


class VideoFileWriter:
    """Writes BGR frames to a video file (.mp4, .avi, ...); the first frame sets the size.

    Frames of another size are resized to it (a video has one frame size). With ``fps`` None
    the rate is measured from the timestamps of the first two frames. The output policy
    (:mod:`emofer.outputs`) is checked here: ``path`` is never one of ``inputs`` and an existing
    file is replaced only with ``overwrite``. Frames go to a temporary file that :meth:`close`
    renames to ``path``; :meth:`discard` (and leaving a ``with`` block by KeyboardInterrupt)
    removes it instead, so no half-written video is left.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float | None = None,
        *,
        overwrite: bool = False,
        inputs: Inputs | Iterable[PathLike] | None = None,
    ) -> None:
        self.path = Path(path)
        self.codec = video_format(self.path)
        check_output_file(self.path, as_inputs(inputs), overwrite=overwrite)
        self.fps = check_scalar(fps, "fps", float, min_val=0, include_boundaries="neither", allow_none=True)
        self.frames = 0
        self.overwrite = overwrite
        self._writer: cv2.VideoWriter | None = None
        self._temporary: Path | None = None
        self._size: tuple[int, int] | None = None
        self._pending: tuple[np.ndarray, float | None] | None = None

    def write(self, image: np.ndarray, timestamp_ms: float | None = None) -> None:
        """Append one uint8 BGR frame; ``timestamp_ms`` is needed only while the rate is unknown."""
        if self._writer is None and self.fps is None:
            if self._pending is None:
                self._pending = (image, timestamp_ms)
                return
            first, first_ms = self._pending
            gap = timestamp_ms - first_ms if timestamp_ms is not None and first_ms is not None else 0.0
            self.fps = 1000.0 / gap if gap > 0 else DEFAULT_FPS
            self._pending = None
            self._append(first)
        self._append(image)

    def _append(self, image: np.ndarray) -> None:
        if self._writer is None:
            height, width = image.shape[:2]
            self._size = (width, height)
            temporary = temporary_path(self.path)
            self._writer = cv2.VideoWriter(
                str(temporary), _fourcc(self.codec), float(self.fps or DEFAULT_FPS), self._size
            )
            if not self._writer.isOpened():
                temporary.unlink(missing_ok=True)
                raise VideoError(
                    f"OpenCV could not open {self.path} for writing ({self.codec}); check the folder exists"
                )
            self._temporary = temporary
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        """Flush a lone pending frame, finish the file and rename it into place."""
        if self._pending is not None:
            self._append(self._pending[0])
            self._pending = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            if self._temporary is not None:
                temporary, self._temporary = self._temporary, None
                commit(temporary, self.path, overwrite=self.overwrite)

    def discard(self) -> None:
        """Stop and remove what was written: ``path`` is left as it was."""
        self._pending = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)
            self._temporary = None

    def __enter__(self) -> VideoFileWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is not None and not issubclass(kind, Exception):  # interrupted (Ctrl-C): no half file
            self.discard()
        else:  # a source that failed midway still leaves a complete video of the frames before it
            self.close()


def write_video(
    frames_and_results: Iterable[tuple[np.ndarray, FrameResult]],
    path: str | os.PathLike,
    fps: float | None = None,
    *,
    bars: bool = False,
    overwrite: bool = False,
    inputs: Inputs | Iterable[PathLike] | None = None,
) -> int:
    """Write the frames with their faces drawn to a video file; returns the number written.

    ``fps`` None measures it from the results' timestamps (so ``every_n_frames`` keeps the
    real speed). VideoError when there is no frame or the file cannot be written. The output
    policy (:mod:`emofer.outputs`) holds: OutputError, before any frame, when ``path`` is one of
    ``inputs`` (give the source video) or exists without ``overwrite``; the file appears whole.
    """
    with VideoFileWriter(path, fps, overwrite=overwrite, inputs=inputs) as writer:
        for image, result in frames_and_results:
            writer.write(draw(image, result.faces, bars=bars), result.timestamp_ms)
    if writer.frames == 0:
        raise VideoError(f"no frames to write to {path}")
    return writer.frames


def write_table(
    results: Iterable[FrameResult],
    path: str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    overwrite: bool = False,
    inputs: Inputs | Iterable[PathLike] | None = None,
) -> int:
    """Write one row per face (and one empty row per frame without faces) to .csv, .json or .jsonl.

    ``labels`` orders the probability columns (default: as the first face lists them). Rows are
    written as results arrive; when ``results`` raises midway (a video cut short, a camera that
    fails), the table is still ended properly with every row before the failure, then the
    error propagates. Returns the number of rows. The output policy (:mod:`emofer.outputs`)
    holds: OutputError when ``path`` is one of ``inputs`` or exists without ``overwrite``.
    """
    fmt = format_for(path)
    checked = as_inputs(inputs)
    check_output_file(path, checked, overwrite=overwrite)
    results, head, failure = iter(results), [], None
    if labels is None:  # the probability columns: those of the first face
        try:
            for result in results:
                head.append(result)
                if result.faces:
                    break
        except Exception as exc:  # written below, raised after the table is complete
            failure = exc
        labels = list(next((f.probabilities for r in head for f in r.faces), {}))
    rows = iter(head) if failure else chain(head, results)
    with open_text(path, overwrite=overwrite, inputs=checked) as stream:
        table = RowWriter(stream, fmt, TABLE_KEYS, labels)
        while True:
            try:
                result = next(rows)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - the source failed: end the table, then raise it
                failure = exc
                break
            keys = table_keys(result)
            for face in result.faces or (None,):
                table.write(keys, face)
        table.close()
    if failure is not None:
        raise failure
    return table.rows


#: The columns a video table has before each face's fields.
TABLE_KEYS = ("frame_index", "timestamp_ms")


def table_keys(result: FrameResult) -> dict[str, Any]:
    """A frame's leading cells in a video table (also emofer.ray's video rows)."""
    return {"frame_index": result.frame_index, "timestamp_ms": round(result.timestamp_ms, 1)}


def _fourcc(codec: str) -> int:
    """``cv2.VideoWriter_fourcc(*codec)``; OpenCV 5's type stubs leave the function out, though it has it."""
    fourcc: Callable[..., int] = getattr(cv2, "VideoWriter_fourcc")  # noqa: B009 - not in OpenCV 5's stubs
    return fourcc(*codec)
