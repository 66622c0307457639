"""What the examples share and emofer itself does not do: finding sample photos, making a
short test video, and loading the default model while a checkout has only emofer/fer5.

Every emofer call an example is about stays in the example itself.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


REPO = Path(__file__).resolve().parents[1]
#: The photo shipped with the examples (public domain, see images/SOURCES.md).
EXAMPLE_PHOTO = REPO / "examples" / "images" / "grace_hopper.jpg"
#: Data beside a developer's checkout (never in a user's clone): real multi-face photos.
SHARED_DATA = REPO.parent / "shared" / "data"
FACES_BOXES = SHARED_DATA / "faces-boxes"
#: Where the examples write by default (ignored by git).
OUTPUT = REPO / "examples" / "output"
#: Size and rate of the videos the examples make for themselves.
VIDEO_SIZE = (320, 240)
VIDEO_FPS = 10.0


def skip(reason: str) -> None:
    """End the example successfully, saying why it did nothing."""
    print(f"skipped: {reason}")
    raise SystemExit(0)


def sample_photos() -> list[Path]:
    """Real photos of faces: the multi-face photos in ../shared/data, else the example photo."""
    photos = sorted((FACES_BOXES / "images").glob("*.jpg"))
    if not photos and EXAMPLE_PHOTO.is_file():
        photos = [EXAMPLE_PHOTO]
    return photos


def make_video(path: Path, photo: Path, frames: int = 30) -> Path:
    """A short mp4 of a slow zoom into ``photo`` (faces move and grow, as in a real clip)."""
    image = cv2.imread(str(photo))
    if image is None:
        raise SystemExit(f"could not read {photo}")
    height, width = image.shape[:2]
    out_w, out_h = VIDEO_SIZE
    aspect = out_w / out_h
    full_w, full_h = (width, width / aspect) if width / height <= aspect else (height * aspect, height)
    centre_x, centre_y = width / 2, min(height / 2, full_h / 2 + 0.1 * height)  # portraits: keep the head in
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, VIDEO_SIZE)
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {path} (no mp4v encoder in this build)")
    for i in range(frames):
        zoom = 1.0 - 0.15 * i / max(1, frames - 1)
        w, h = full_w * zoom, full_h * zoom
        x = float(np.clip(centre_x - w / 2, 0, width - w))
        y = float(np.clip(centre_y - h / 2, 0, height - h))
        view = image[round(y): round(y + h), round(x): round(x + w)]
        writer.write(cv2.resize(view, VIDEO_SIZE, interpolation=cv2.INTER_AREA))
    writer.release()
    return path
