"""Tracking and smoothing: face track ids across frames, and steady emotions per track.

Faces are followed from frame to frame by box overlap (:class:`IoUTracker`); each track's
probabilities are averaged over time and its label only switches when another emotion wins
clearly (:class:`Smoother`), so labels do not flicker on every frame. Part of
:mod:`emofer.video`, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np

from .boxes import match
from .errors import ParameterError
from .results import Face
from .validate import check_scalar

__all__ = [
    "IoUTracker",
    "Smoother",
    "TrackedFace",
    "TRACK_IOU",
    "MAX_MISSED_FRAMES",
    "MAX_TRACKS",
    "SMOOTHING_ALPHA",
    "HYSTERESIS_MARGIN",
]

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


class IoUTracker:
    """Gives each face box a track id, matching boxes to the previous ones greedily by IoU."""

    def __init__(
        self, iou_threshold: float = TRACK_IOU, max_missed: int = MAX_MISSED_FRAMES, max_tracks: int = MAX_TRACKS
    ) -> None:
        self.iou_threshold = check_scalar(
            iou_threshold, "iou_threshold", float, min_val=0, max_val=1, include_boundaries="right"
        )
        self.max_missed = check_scalar(max_missed, "max_missed", int, min_val=0)
        self.max_tracks = check_scalar(max_tracks, "max_tracks", int, min_val=1)
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
        for track, index in pairs:
            assigned[index] = ids[track]
        for track_id in set(ids) - {ids[t] for t, _ in pairs}:
            last, missed = self._tracks[track_id]
            if missed + 1 > self.max_missed:
                del self._tracks[track_id]
            else:
                self._tracks[track_id] = (last, missed + 1)
        result: list[int] = []
        for index, box in enumerate(boxes):
            given = assigned[index]
            if given is None:
                given = self._next_id
                self._next_id += 1
            self._tracks[given] = (box, 0)
            result.append(int(given))
        if len(self._tracks) > self.max_tracks:  # end the tracks missed longest, oldest first
            by_missed = sorted(self._tracks, key=lambda t: (-self._tracks[t][1], t))
            for track_id in by_missed[: len(self._tracks) - self.max_tracks]:
                del self._tracks[track_id]
        return result

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
        self.alpha = check_scalar(alpha, "alpha", float, min_val=0, max_val=1, include_boundaries="right")
        self.margin = check_scalar(margin, "margin", float, min_val=0, max_val=1)
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
