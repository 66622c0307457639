"""Small real videos for the video, CLI and camera tests, written with cv2.VideoWriter."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from emofer.detect import YuNetDetector
from emofer.recognizer import EmotionRecognizer

from .conftest import YUNET, need

SIZE = (320, 240)  # width, height
FPS = 10.0
PAN_STEP = 4  # pixels the view moves per frame


def write_face_video(path: Path, photo: Path, face_frames: int = 12, blank_frames: int = 3) -> Path:
    """A view panning slowly across a real group photo, then ``blank_frames`` black frames."""
    image = cv2.imread(str(photo))
    width, height = SIZE
    if image.shape[0] < height or image.shape[1] < width + PAN_STEP * face_frames:
        image = cv2.resize(image, (width + PAN_STEP * face_frames + 20, height + 20))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for i in range(face_frames):
        x = PAN_STEP * i
        writer.write(np.ascontiguousarray(image[: height, x : x + width]))
    for _ in range(blank_frames):
        writer.write(np.zeros((height, width, 3), np.uint8))
    writer.release()
    return path


@pytest.fixture
def face_video(tmp_path: Path, photo_path: Path) -> Path:
    """15 frames at 10 fps, 320x240: 12 with several real faces, 3 black."""
    return write_face_video(tmp_path / "faces.mp4", photo_path)


@pytest.fixture
def yunet_recognizer(tiny_model_dir: Path) -> EmotionRecognizer:
    """The tiny test model with the real YuNet detector."""
    return EmotionRecognizer.from_pretrained(tiny_model_dir, detector=YuNetDetector(need(YUNET, "YuNet weights")))


def write_truncated_video(path: Path, frames: int = 15, keep: float = 0.6) -> Path:
    """An MJPG .avi of ``frames`` noise frames cut to ``keep`` of its bytes: its header still reports
    ``frames`` frames, fewer can be read (a container whose frame count is too high)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    noise = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(noise.integers(0, 256, (SIZE[1], SIZE[0], 3), np.uint8))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
