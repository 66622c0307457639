"""emofer's exceptions: every error the library raises on purpose is one of these."""

from __future__ import annotations

__all__ = [
    "EmoferError",
    "ModelLoadError",
    "ImageReadError",
    "DetectorError",
    "VideoError",
    "ParameterError",
    "OutputError",
]


class EmoferError(Exception):
    """Base class of every error emofer raises on purpose; catch this to catch them all."""


class ModelLoadError(EmoferError):
    """A model folder, its config.json or its model.onnx is missing, damaged or inconsistent."""


class ImageReadError(EmoferError, ValueError):
    """An image could not be read or has a shape/dtype emofer cannot turn into a face tensor."""


class DetectorError(EmoferError):
    """A face detector could not be built (missing weights, unsupported OpenCV build)."""


class VideoError(EmoferError):
    """A video file or camera could not be opened or read."""


class ParameterError(EmoferError, ValueError):
    """An argument has a value emofer cannot use (every_n_frames < 1, a table name without .csv/.json/.jsonl)."""


class OutputError(EmoferError):
    """A result cannot be written where asked: the folder is missing, not writable, or not a folder."""
