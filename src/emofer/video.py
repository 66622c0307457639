"""Video: frames from files or cameras, face tracks across frames, smoothed emotions, outputs.

    for result in recognizer.predict_video("clip.mp4", every_n_frames=2):
        print(result.frame_index, [face.emotion for face in result.faces])

This module is the analysis (:func:`analyze_video`: read -> predict -> track -> smooth) and the
one place to import the video API from. Each job is a module of its own, re-exported here:
reading in :mod:`emofer.video_read`, tracking and smoothing in :mod:`emofer.tracking`, writing
in :mod:`emofer.video_write`; :class:`FrameResult` is in :mod:`emofer.results`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from .errors import ParameterError
from .progress import Progress
from .results import Face, FrameResult
from .tracking import (
    HYSTERESIS_MARGIN,
    MAX_MISSED_FRAMES,
    MAX_TRACKS,
    SMOOTHING_ALPHA,
    TRACK_IOU,
    IoUTracker,
    Smoother,
    TrackedFace,
)
from .validate import check_scalar
from .video_read import (
    DEFAULT_FPS,
    FrameIterator,
    VideoFrame,
    VideoReader,
    VideoSource,
    check_every,
    iter_frames,
    open_source,
)
from .video_write import CODECS, TABLE_KEYS, VideoFileWriter, table_keys, video_format, write_table, write_video

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
    "analyze_video_range",
    "RANGE_TRACK_STRIDE",
    "VideoFileWriter",
    "video_format",
    "write_video",
    "write_table",
    "table_keys",
    "TABLE_KEYS",
    "CODECS",
    "DEFAULT_FPS",
    "TRACK_IOU",
    "MAX_MISSED_FRAMES",
    "MAX_TRACKS",
    "SMOOTHING_ALPHA",
    "HYSTERESIS_MARGIN",
]


#: Track ids of a frame range (:func:`analyze_video_range`) are ``start * RANGE_TRACK_STRIDE + 1, 2, ...``:
#: unique across a video's ranges while a range starts fewer than this many tracks.
RANGE_TRACK_STRIDE = 10**9


class FacePredictor(Protocol):
    """What video analysis needs of a recognizer: the faces, with emotions, in one BGR frame.

    :class:`emofer.EmotionRecognizer` is one. This module names only the protocol, never the
    recognizer, which imports this module for ``predict_video``.
    """

    def predict(self, image: np.ndarray) -> list[Face]:
        """The faces found in ``image`` (uint8 BGR), each with its emotion probabilities."""
        ...


def analyze_video_frames(
    recognizer: FacePredictor,
    source: VideoSource,
    *,
    every_n_frames: int = 1,
    smooth: bool = True,
    max_frames: int | None = None,
    progress: bool = False,
) -> Iterator[tuple[np.ndarray, FrameResult]]:
    """Each processed frame's image with its :class:`FrameResult`; :func:`analyze_video` gives the results only.

    ``every_n_frames`` processes every n-th frame; ``smooth`` averages each face track's
    probabilities over time with a sticky label; ``max_frames`` stops after that many
    processed frames; ``progress`` draws a progress bar on stderr (files only). Bad values raise
    ParameterError when this is called; the source is opened at the first frame.
    """
    check_every(every_n_frames)
    check_scalar(max_frames, "max_frames", int, min_val=0, allow_none=True, hint="None reads to the end")
    check_scalar(smooth, "smooth", bool)
    return _analyzed(recognizer, source, every_n_frames, smooth, max_frames, progress)


def analyze_video_range(
    recognizer: FacePredictor,
    source: str | os.PathLike,
    start: int,
    stop: int | None,
    *,
    every_n_frames: int = 1,
    smooth: bool = True,
) -> Iterator[FrameResult]:
    """The FrameResults of a video file's frames with index in [start, stop) (``stop`` None: to the end).

    The frames analysed, their ``frame_index`` and ``timestamp_ms`` and each face's box and raw
    probabilities are those of a whole run (:func:`analyze_video` with the same ``every_n_frames``):
    the frames before ``start`` are read and discarded, never sought to
    (:meth:`~emofer.video_read.VideoReader.frames`). Tracks are scoped to the range: tracking and
    smoothing start afresh at ``start``, and track ids are ``start * RANGE_TRACK_STRIDE + 1, 2, ...``,
    so ids stay unique across the ranges of one video, ``track_id // RANGE_TRACK_STRIDE`` is the
    first frame of the face's range, and the range that starts at frame 0 has a whole run's ids
    (and smoothed probabilities). A face seen on both sides of a range border has a track on each.
    A video that ends or fails before ``start`` gives nothing; one that fails within the range
    raises VideoError after the frames before the failure.
    """
    if not isinstance(source, (str, os.PathLike)):
        raise ParameterError(f"analyze_video_range reads a video file (a path), not a {type(source).__name__}")
    check_scalar(start, "start", int, min_val=0)
    check_scalar(stop, "stop", int, min_val=0, allow_none=True, hint="None reads to the end")
    check_every(every_n_frames)
    check_scalar(smooth, "smooth", bool)
    return (result for _, result in _analyzed(recognizer, source, every_n_frames, smooth, None, False, (start, stop)))


def analyze_video(recognizer: FacePredictor, source: VideoSource, **options: Any) -> Iterator[FrameResult]:
    """One FrameResult per processed frame (also frames without faces) of a file, camera or frame iterable.

    ``options`` are :func:`analyze_video_frames`'s: ``every_n_frames`` (1), ``smooth`` (True),
    ``max_frames`` (None: to the end) and ``progress`` (False), checked when this is called.
    """
    return (result for _, result in analyze_video_frames(recognizer, source, **options))


def _analyzed(
    recognizer: FacePredictor,
    source: VideoSource,
    every_n_frames: int,
    smooth: bool,
    max_frames: int | None,
    progress: bool,
    span: tuple[int, int | None] = (0, None),
) -> Iterator[tuple[np.ndarray, FrameResult]]:
    start, stop = span
    with open_source(source) as reader:
        if span == (0, None):
            frames = reader.frames(every_n_frames)
        else:  # a range of a file (analyze_video_range): open_source gave a VideoReader
            frames = cast(VideoReader, reader).frames(every_n_frames, start, stop)
        first_id = start * RANGE_TRACK_STRIDE
        total = None
        if reader.frame_count is not None:
            total = -(-reader.frame_count // every_n_frames)
            total = total if max_frames is None else min(total, max_frames)
        bar = Progress(total, label=Path(reader._name).name) if progress and not reader.is_camera else None
        tracker, smoother, size = IoUTracker(), Smoother(), None
        try:
            for frame in islice(frames, max_frames):
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
                if first_id:  # a range's ids, once tracking and smoothing are done with the local ones
                    faces = [replace(face, track_id=first_id + track_id) for face, track_id in zip(faces, ids)]
                yield frame.image, FrameResult(frame.index, frame.timestamp_ms, tuple(faces))
                if bar is not None:
                    bar.update()
        finally:
            if bar is not None:
                bar.close()
