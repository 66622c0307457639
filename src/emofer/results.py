"""Public result types: plain, frozen, JSON-friendly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .boxes import Box

__all__ = ["Face", "FrameResult"]


@dataclass(frozen=True)
class Face:
    """One face: its box (x, y, w, h) in original-image pixels and per-emotion probabilities.

    ``probabilities`` keeps the model's label order; ``score`` is the detector's confidence
    (None when the box came from the caller or the whole image); ``track_id`` is set by the
    video path only. ``min_confidence`` is the recognizer's abstain threshold: below it the
    face is :attr:`abstained` (``emotion`` still names the best guess).
    """

    box: Box
    probabilities: dict[str, float]
    score: float | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None
    track_id: int | None = None
    min_confidence: float = 0.0

    @property
    def emotion(self) -> str:
        """The most probable label."""
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def confidence(self) -> float:
        """The probability of :attr:`emotion`."""
        return self.probabilities[self.emotion]

    @property
    def abstained(self) -> bool:
        """True when :attr:`confidence` is below ``min_confidence``: too unsure to name an emotion.

        The bundled models' probabilities are calibrated (a temperature fitted on held-out faces),
        so a threshold of 0.6 keeps the faces the model gets right about 60% of the time or more.
        """
        return bool(self.probabilities) and self.confidence < self.min_confidence

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types only, ready for ``json.dumps``."""
        return {
            "box": [int(v) for v in self.box],
            "score": None if self.score is None else float(self.score),
            "landmarks": None if self.landmarks is None else [[float(x), float(y)] for x, y in self.landmarks],
            "emotion": self.emotion,
            "confidence": float(self.confidence),
            "abstained": self.abstained,
            "probabilities": {str(k): float(v) for k, v in self.probabilities.items()},
            "track_id": None if self.track_id is None else int(self.track_id),
        }


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
