"""Video: frames from files or cameras, face tracks across frames, smoothed emotions, outputs.

    for result in recognizer.predict_video("clip.mp4", every_n_frames=2):
        print(result.frame_index, [face.emotion for face in result.faces])

Faces are followed from frame to frame by box overlap (:class:`IoUTracker`); each track's
probabilities are averaged over time and its label only switches when another emotion wins
clearly (:class:`Smoother`), so labels do not flicker on every frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from itertools import chain, islice
from pathlib import Path
from typing import Any, NamedTuple, Protocol, Union

import cv2
import numpy as np

from .boxes import match
from .draw import draw
from .errors import ImageReadError, ParameterError, VideoError
from .io import check_pixels
from .outputs import Inputs, PathLike, as_inputs, check_output_file, commit, open_text, temporary_path
from .progress import Progress
from .results import Face
from .table import RowWriter, format_for

__all__ = [
    "FacePredictor",
    "VideoSource",
    "VideoFrame",
    "VideoReader",
    "FrameIterator",
    "open_source",
    "iter_frames",
    "IoUTracker",
    "Smoother",
    "TrackedFace",
    "FrameResult",
    "analyze_video",
    "analyze_video_frames",
    "VideoFileWriter",
    "video_format",
    "write_video",
    "write_table",
]

#: A camera index, a file or URL, or any iterable of uint8 BGR frames (arrays; e.g. a generator).
VideoSource = Union[int, str, os.PathLike, Iterable[np.ndarray]]

log = logging.getLogger("emofer")


class FacePredictor(Protocol):
    """What video analysis needs of a recognizer: the faces, with emotions, in one BGR frame.

    :class:`emofer.EmotionRecognizer` is one. This module names only the protocol, never the
    recognizer, which imports this module for ``predict_video``.
    """

    def predict(self, image: np.ndarray) -> list[Face]:
        """The faces found in ``image`` (uint8 BGR), each with its emotion probabilities."""
        ...

#: Frame rate assumed when a video does not say and it cannot be measured.
DEFAULT_FPS = 30.0
#: A face in the next frame continues a track when their boxes overlap at least this much.
TRACK_IOU = 0.3
#: A track that finds no face for this many processed frames in a row ends.
MAX_MISSED_FRAMES = 10
#: Most tracks kept alive at once; past it the tracks missed longest end first (bounds memory
#: however many faces come and go).
MAX_TRACKS = 256
#: Weight of the newest frame in a track's moving average of probabilities.
SMOOTHING_ALPHA = 0.3
#: A track's label switches only when the new top emotion leads the current one by this much.
HYSTERESIS_MARGIN = 0.1
#: Video codec (FourCC) by output file suffix.
CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


# -- reading ---------------------------------------------------------------------------------


class VideoFrame(NamedTuple):
    """One decoded frame: its index in the source, its time and its uint8 BGR pixels."""

    index: int
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
            if int(source) < 0:  # OpenCV 4.14 segfaults on negative indices when no camera exists
                raise VideoError(f"camera index {int(source)} is negative; cameras are numbered 0, 1, ...")
            with _opencv_log_quiet():
                self._capture = cv2.VideoCapture(int(source))
            if not self._capture.isOpened():
                raise VideoError(
                    f"camera {int(source)} could not be opened: it does not exist, is in use by "
                    "another program, or this process may not use it; try another index (0, 1, ...) "
                    "or pass a video file"
                )
        else:
            text = os.fspath(source)
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

    def frames(self, every_n_frames: int = 1) -> Iterator[VideoFrame]:
        """Every ``every_n_frames``-th frame (skipped ones are not converted); VideoError if none can be read."""
        if every_n_frames < 1:
            raise ParameterError(f"every_n_frames must be >= 1, got {every_n_frames}")
        start = time.monotonic()
        index = 0
        while True:
            try:
                if index % every_n_frames:
                    if not self._capture.grab():
                        break
                    index += 1
                    continue
                ok, image = self._capture.read()
            except cv2.error as exc:
                raise VideoError(
                    f"reading frame {index} of {self._name} failed ({(str(exc).strip().splitlines() or [''])[-1][:200]}); "
                    f"the {index} frames before it were delivered"
                ) from exc
            if not ok or image is None or image.size == 0:
                if self.is_camera and index:
                    log.warning("%s stopped delivering frames after %d frames", self._name, index)
                break
            yield VideoFrame(index, self._timestamp_ms(index, start), image)
            index += 1
        if index == 0:
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
        return f"camera {int(self.source)}" if self.is_camera else os.fspath(self.source)

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
            raise VideoError(f"cannot read video frames from a {type(frames).__name__}; pass a file, a camera "
                             "index, or a list / iterator of (H, W, 3) frames") from exc
        self.source = frames
        self.fps = fps
        self._name = "the frame source"

    def frames(self, every_n_frames: int = 1) -> Iterator[VideoFrame]:
        """Every ``every_n_frames``-th frame as uint8 BGR; VideoError if the source gives none."""
        from .io import load_image

        if every_n_frames < 1:
            raise ParameterError(f"every_n_frames must be >= 1, got {every_n_frames}")
        index = 0
        while True:
            try:
                image = next(self._iterator)
            except StopIteration:
                break
            except Exception as exc:  # whatever the caller's source raises ends the stream, said clearly
                raise VideoError(f"{self._name} raised {type(exc).__name__} ({exc}) after {index} frames; "
                                 "the frames before it were delivered") from exc
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
    """The frames of a video file, camera or frame iterable as (index, timestamp_ms, BGR image); frames may change size."""
    with open_source(source) as reader:
        yield from reader.frames(every_n_frames)


# -- tracking and smoothing ------------------------------------------------------------------


class IoUTracker:
    """Gives each face box a track id, matching boxes to the previous ones greedily by IoU."""

    def __init__(self, iou_threshold: float = TRACK_IOU, max_missed: int = MAX_MISSED_FRAMES,
                 max_tracks: int = MAX_TRACKS) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.max_tracks = max_tracks
        self._tracks: dict[int, tuple[Sequence[float], int]] = {}  # id -> (last box, frames missed)
        self._next_id = 1

    @property
    def active_ids(self) -> frozenset[int]:
        """Ids of the tracks still alive (seen within the last ``max_missed`` frames)."""
        return frozenset(self._tracks)

    def update(self, boxes: Sequence[Sequence[float]]) -> list[int]:
        """Track ids for this frame's ``boxes``, in their order; new faces get new ids."""
        ids = list(self._tracks)
        pairs = match([self._tracks[i][0] for i in ids], boxes, self.iou_threshold)
        assigned: list[int | None] = [None] * len(boxes)
        for track, box in pairs:
            assigned[box] = ids[track]
        for track_id in set(ids) - {ids[t] for t, _ in pairs}:
            box, missed = self._tracks[track_id]
            if missed + 1 > self.max_missed:
                del self._tracks[track_id]
            else:
                self._tracks[track_id] = (box, missed + 1)
        for i, box in enumerate(boxes):
            if assigned[i] is None:
                assigned[i] = self._next_id
                self._next_id += 1
            self._tracks[assigned[i]] = (box, 0)
        if len(self._tracks) > self.max_tracks:  # end the tracks missed longest, oldest first
            by_missed = sorted(self._tracks, key=lambda t: (-self._tracks[t][1], t))
            for track_id in by_missed[:len(self._tracks) - self.max_tracks]:
                del self._tracks[track_id]
        return [int(i) for i in assigned]  # type: ignore[arg-type]

    def reset(self) -> None:
        """End all tracks (ids keep counting up, so they stay unique within a video)."""
        self._tracks.clear()


@dataclass(frozen=True)
class TrackedFace(Face):
    """A Face from a video whose emotion is held steady by hysteresis: ``emotion`` is
    ``held_emotion`` (which may trail the top of the smoothed probabilities by < the margin)."""

    held_emotion: str | None = None

    @property
    def emotion(self) -> str:
        return self.held_emotion if self.held_emotion is not None else super().emotion


class Smoother:
    """Per-track exponential moving average of probabilities, with a sticky top label."""

    def __init__(self, alpha: float = SMOOTHING_ALPHA, margin: float = HYSTERESIS_MARGIN) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ParameterError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.margin = margin
        self._state: dict[int, tuple[np.ndarray, int]] = {}  # track id -> (average, held label index)

    def update(self, track_id: int, probabilities: Mapping[str, float]) -> tuple[dict[str, float], str]:
        """Fold this frame's probabilities into the track; return (smoothed probabilities, held label)."""
        labels = list(probabilities)
        current = np.array([probabilities[label] for label in labels], np.float64)
        state = self._state.get(track_id)
        if state is None or len(state[0]) != len(current):
            average, held = current, int(np.argmax(current))
        else:
            average = self.alpha * current + (1.0 - self.alpha) * state[0]
            held = state[1]
            top = int(np.argmax(average))
            if average[top] - average[held] >= self.margin:
                held = top
        self._state[track_id] = (average, held)
        return dict(zip(labels, average.tolist())), labels[held]

    def smooth(self, face: Face) -> TrackedFace:
        """``face`` (which must have a track_id) with its track's smoothed probabilities and label."""
        if face.track_id is None:
            raise ParameterError("Smoother.smooth needs a face with a track_id (see IoUTracker)")
        probabilities, label = self.update(face.track_id, face.probabilities)
        values = {field.name: getattr(face, field.name) for field in fields(face)}
        values.update(probabilities=probabilities, held_emotion=label)
        return TrackedFace(**values)

    def keep_only(self, track_ids: Iterable[int]) -> None:
        """Forget tracks not in ``track_ids`` (those the tracker ended)."""
        alive = set(track_ids)
        for track_id in [t for t in self._state if t not in alive]:
            del self._state[track_id]

    def reset(self) -> None:
        self._state.clear()


# -- analysis ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameResult:
    """The faces of one processed frame."""

    frame_index: int
    timestamp_ms: float
    faces: tuple[Face, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types only, ready for ``json.dumps``."""
        return {
            "frame_index": int(self.frame_index),
            "timestamp_ms": float(self.timestamp_ms),
            "faces": [face.to_dict() for face in self.faces],
        }


def analyze_video_frames(
    recognizer: FacePredictor,
    source: VideoSource,
    *,
    every_n_frames: int = 1,
    smooth: bool = True,
    max_frames: int | None = None,
    progress: bool = False,
) -> Iterator[tuple[np.ndarray, FrameResult]]:
    """Like :func:`analyze_video`, but yields each processed frame's image with its result."""
    with open_source(source) as reader:
        total = None
        if reader.frame_count is not None:
            total = -(-reader.frame_count // every_n_frames)
            total = total if max_frames is None else min(total, max_frames)
        bar = Progress(total, label=Path(reader._name).name) if progress and not reader.is_camera else None
        tracker, smoother, size = IoUTracker(), Smoother(), None
        try:
            for frame in islice(reader.frames(every_n_frames), max_frames):
                if frame.image.shape != size:  # a new geometry: old boxes mean nothing here
                    tracker.reset()
                    smoother.reset()
                    size = frame.image.shape
                faces = recognizer.predict(frame.image)
                ids = tracker.update([face.box for face in faces])
                faces = [replace(face, track_id=track_id) for face, track_id in zip(faces, ids)]
                if smooth:
                    faces = [smoother.smooth(face) for face in faces]
                    smoother.keep_only(tracker.active_ids)
                yield frame.image, FrameResult(frame.index, frame.timestamp_ms, tuple(faces))
                if bar is not None:
                    bar.update()
        finally:
            if bar is not None:
                bar.close()


def analyze_video(
    recognizer: FacePredictor,
    source: VideoSource,
    *,
    every_n_frames: int = 1,
    smooth: bool = True,
    max_frames: int | None = None,
    progress: bool = False,
) -> Iterator[FrameResult]:
    """One FrameResult per processed frame (also frames without faces) of a file or camera.

    ``every_n_frames`` processes every n-th frame; ``smooth`` averages each face track's
    probabilities over time with a sticky label; ``max_frames`` stops after that many
    processed frames; ``progress`` draws a progress bar on stderr (files only).
    """
    for _, result in analyze_video_frames(
        recognizer, source, every_n_frames=every_n_frames, smooth=smooth, max_frames=max_frames, progress=progress
    ):
        yield result


# -- writing -----------------------------------------------------------------------------------


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

    def __init__(self, path: str | os.PathLike, fps: float | None = None, *, overwrite: bool = False,
                 inputs: Inputs | Iterable[PathLike] | None = None) -> None:
        self.path = Path(path)
        self.codec = video_format(self.path)
        check_output_file(self.path, as_inputs(inputs), overwrite=overwrite)
        self.fps = fps
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
            self._writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*self.codec),
                                           float(self.fps or DEFAULT_FPS), self._size)
            if not self._writer.isOpened():
                temporary.unlink(missing_ok=True)
                raise VideoError(f"OpenCV could not open {self.path} for writing ({self.codec}); "
                                 "check the folder exists")
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
    results: Iterable[FrameResult], path: str | os.PathLike, *, labels: Sequence[str] | None = None,
    overwrite: bool = False, inputs: Inputs | Iterable[PathLike] | None = None,
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
