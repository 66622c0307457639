"""Inputs of the speed benchmark, made from real faces into a temporary folder (never committed).

- ``crops``: FER2013 PrivateTest faces (48x48 grey), read from ../shared/data/fer2013-images.zip;
- ``frame_WxH_N``: frames of 640x480 and 1280x720 pixels holding N = 1 or 5 of those faces,
  upscaled and blended into a blurred real photo (the photo's own faces blurred beyond detection);
- ``photo_I``: the multi-face photos of ../shared/data/faces-boxes (332-500 px, 43 faces in all);
- a video file: faces moving over a blurred photo, 640x480 at 30 fps.

All arrays go into one ``.npz`` that the emofer and fer workers both read, so the two libraries
see exactly the same pixels.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FER_ZIP = SHARED / "data" / "fer2013-images.zip"
FACES_BOXES = SHARED / "data" / "faces-boxes"
YUNET = ROOT / "src" / "emofer" / "detect" / "weights" / "face_detection_yunet_2026may.onnx"  # the bundled YuNet

FRAME_SIZES = ((640, 480), (1280, 720))
FACE_COUNTS = (1, 5)
VIDEO_SIZE = (640, 480)
VIDEO_FPS = 30
SEED = 2013


def read_crops(zip_path: Path = FER_ZIP, count: int = 512, split: str = "PrivateTest") -> np.ndarray:
    """``count`` FER2013 faces of ``split`` as uint8 (count, 48, 48), in a fixed shuffled order."""
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(n for n in archive.namelist() if Path(n).name.startswith(split + "_"))
        if not names:
            raise FileNotFoundError(f"no {split} images in {zip_path}")
        order = np.random.default_rng(SEED).permutation(len(names))[:count]
        faces = []
        for i in order:
            pixels = cv2.imdecode(np.frombuffer(archive.read(names[i]), np.uint8), cv2.IMREAD_GRAYSCALE)
            faces.append(cv2.resize(pixels, (48, 48), interpolation=cv2.INTER_AREA) if pixels.shape != (48, 48) else pixels)
    return np.stack(faces)


def read_photos(folder: Path = FACES_BOXES) -> list[np.ndarray]:
    """The faces-boxes photos (BGR), sorted by file name."""
    return [cv2.imread(str(p)) for p in sorted((folder / "images").glob("*.jpg"))]


def photo_face_count(folder: Path = FACES_BOXES) -> int:
    """Hand-boxed faces in the faces-boxes photos (not marked ignore)."""
    with open(folder / "boxes.csv", newline="") as handle:
        return sum(1 for row in csv.DictReader(handle) if row.get("ignore", "0") in ("", "0"))


def background(photo: np.ndarray, width: int, height: int) -> np.ndarray:
    """``photo`` scaled to cover width x height, centre-cropped and blurred so no face remains."""
    scale = max(width / photo.shape[1], height / photo.shape[0])
    big = cv2.resize(photo, (max(width, round(photo.shape[1] * scale)), max(height, round(photo.shape[0] * scale))),
                     interpolation=cv2.INTER_LINEAR)
    y0, x0 = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    scene = big[y0:y0 + height, x0:x0 + width]
    return cv2.GaussianBlur(scene, (0, 0), sigmaX=max(width, height) / 40.0)


def _mask(side: int) -> np.ndarray:
    """A square alpha mask with feathered edges, so a pasted face has no hard border."""
    ramp = np.clip(np.minimum(np.arange(side), np.arange(side)[::-1]) / max(1.0, side * 0.08), 0.0, 1.0)
    return np.minimum.outer(ramp, ramp).astype(np.float32)[..., None]


def paste(scene: np.ndarray, face: np.ndarray, x: int, y: int, side: int) -> None:
    """Blend a grey face, upscaled to side x side, into ``scene`` at (x, y) (in place)."""
    big = cv2.cvtColor(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
    alpha = _mask(side)
    region = scene[y:y + side, x:x + side].astype(np.float32)
    scene[y:y + side, x:x + side] = (alpha * big + (1.0 - alpha) * region + 0.5).astype(np.uint8)


def layout(width: int, height: int, count: int, rng: np.random.Generator) -> tuple[int, list[tuple[int, int]]]:
    """Face side and non-overlapping (x, y) positions of ``count`` faces on a grid with jitter."""
    cols = 1 if count == 1 else 3
    rows = -(-count // cols)
    side = int(min(width / cols, height / rows) * (0.5 if count == 1 else 0.62))
    cell_w, cell_h = width // cols, height // rows
    cells = [(c, r) for r in range(rows) for c in range(cols)][:count]
    spots = []
    for c, r in cells:
        slack_x, slack_y = cell_w - side, cell_h - side
        spots.append((c * cell_w + int(rng.integers(0, max(1, slack_x))), r * cell_h + int(rng.integers(0, max(1, slack_y)))))
    return side, spots


def detectable(crops: np.ndarray, weights: Path = YUNET, side: int = 120) -> np.ndarray:
    """Indices of the crops that OpenCV's YuNet finds when one is shown alone, upscaled to ``side`` px.

    FER2013 holds some faces that no detector finds once taken out of their 48x48 frame (profiles,
    hands over the face); the scenes use the others so that "5 faces" means 5 findable faces.
    Without the YuNet weights every crop is kept.
    """
    if not Path(weights).is_file() or not hasattr(cv2, "FaceDetectorYN"):
        return np.arange(len(crops))
    canvas = 2 * side
    net = cv2.FaceDetectorYN.create(str(weights), "", (canvas, canvas), 0.6, 0.3, 50)
    plain = np.full((canvas, canvas, 3), 110, np.uint8)
    keep = []
    for i, face in enumerate(crops):
        scene = plain.copy()
        paste(scene, face, side // 2, side // 2, side)
        _, found = net.detect(scene)
        if found is not None and len(found):
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def make_frames(crops: np.ndarray, photos: list[np.ndarray], width: int, height: int, count: int,
                variants: int, start: int) -> np.ndarray:
    """``variants`` frames of width x height with ``count`` faces each, faces taken from ``start`` on."""
    rng = np.random.default_rng(SEED + width + count)
    frames = np.empty((variants, height, width, 3), np.uint8)
    scenes = [background(photo, width, height) for photo in photos[:variants]]
    for v in range(variants):
        scene = scenes[v % len(scenes)].copy()
        side, spots = layout(width, height, count, rng)
        for k, (x, y) in enumerate(spots):
            paste(scene, crops[(start + v * count + k) % len(crops)], x, y, side)
        frames[v] = scene
    return frames


def write_video(path: Path, crops: np.ndarray, photo: np.ndarray, seconds: float, faces: int = 3) -> int:
    """A 640x480, 30 fps .mp4 of ``faces`` faces moving over a blurred photo; returns the frame count."""
    width, height = VIDEO_SIZE
    scene = background(photo, width, height)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(VIDEO_FPS), (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} (no mp4v encoder in this build)")
    frames = int(round(seconds * VIDEO_FPS))
    side = 130
    try:
        for i in range(frames):
            t = i / VIDEO_FPS
            frame = scene.copy()
            for k in range(faces):
                phase = 2.0 * np.pi * k / faces
                x = int((width - side) * (0.5 + 0.45 * np.sin(0.35 * t + phase)))
                y = int((height - side) * (0.5 + 0.45 * np.sin(0.23 * t + 1.7 * phase)))
                # each face changes every 2 seconds: new expressions, same tracks
                paste(frame, crops[(k + faces * int(t // 2)) % len(crops)], x, y, side)
            writer.write(frame)
    finally:
        writer.release()
    return frames


def build(folder: Path, *, variants: int = 4, video_seconds: float = 30.0, crop_count: int = 512) -> dict:
    """Write ``inputs.npz`` and ``video.mp4`` into ``folder``; returns a description of them."""
    folder.mkdir(parents=True, exist_ok=True)
    crops = read_crops(count=crop_count)
    photos = read_photos()
    if not photos:
        raise FileNotFoundError(f"no photos in {FACES_BOXES / 'images'}")
    arrays: dict[str, np.ndarray] = {"crops": crops}
    findable = crops[detectable(crops[:160])]
    start = 0
    for width, height in FRAME_SIZES:
        for count in FACE_COUNTS:
            arrays[f"frame_{width}x{height}_{count}"] = make_frames(findable, photos, width, height, count, variants, start)
            start += variants * count
    for i, photo in enumerate(photos):
        arrays[f"photo_{i}"] = photo
    npz = folder / "inputs.npz"
    np.savez(npz, **arrays)
    video = folder / "video.mp4"
    frames = write_video(video, np.roll(findable, -start, axis=0), photos[0], video_seconds)
    return {
        "npz": str(npz),
        "video": str(video),
        "crops": int(len(crops)),
        "crop_source": f"{FER_ZIP.name} PrivateTest (48x48 grey)",
        "scene_faces": f"{len(findable)} of the first 160 crops (those YuNet finds alone), upscaled into blurred photos",
        "frames": {key: list(value.shape) for key, value in arrays.items() if key.startswith("frame_")},
        "photos": len(photos),
        "photo_faces": photo_face_count(),
        "video_frames": frames,
        "video_size": list(VIDEO_SIZE),
        "video_fps": VIDEO_FPS,
        "video_faces": 3,
    }
