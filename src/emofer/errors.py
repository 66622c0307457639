"""emofer's exceptions: every error the library raises on purpose is one of these."""

from __future__ import annotations

__all__ = [
    "EmoferError",
    "ModelLoadError",
    "ImageReadError",
    "DetectorError",
    "VideoError",
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
