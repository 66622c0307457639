"""Robustness of the video path: cameras that do not exist, videos that end, damaged files,
frames that change size mid-stream. (tests/test_video.py covers the ordinary cases.)"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from emofer.errors import VideoError
from emofer.video import analyze_video, iter_frames
from tests.test_robustness import model_dir, whole  # noqa: F401  (module fixtures: the tiny model, detector "none")

FPS = 10


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)


def _list(fourcc: bytes, body: bytes) -> bytes:
    return b"LIST" + struct.pack("<I", len(body) + 4) + fourcc + body


def write_mjpeg_avi(path: Path, images: list[np.ndarray], fps: int = FPS) -> Path:
    """A Motion-JPEG AVI written byte by byte, so its frames may differ in size (cv2.VideoWriter
    refuses that); the headers give the first frame's size, as a camera that switched mode would."""
    jpegs = [cv2.imencode(".jpg", image)[1].tobytes() for image in images]
    height, width = images[0].shape[:2]
    largest = max(map(len, jpegs))
    avih = struct.pack("<14I", 1_000_000 // fps, 0, 0, 0x10, len(jpegs), 0, 1, largest, width, height, 0, 0, 0, 0)
    strh = b"vidsMJPG" + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, 1, fps, 0, len(jpegs), largest,
                                      0xFFFFFFFF, 0, 0, 0, width, height)
    strf = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG", width * height * 3, 0, 0, 0, 0)
    header = _list(b"hdrl", _chunk(b"avih", avih) + _list(b"strl", _chunk(b"strh", strh) + _chunk(b"strf", strf)))
    frames, index, offset = b"", b"", 4
    for jpeg in jpegs:
        frames += _chunk(b"00dc", jpeg)
        index += b"00dc" + struct.pack("<III", 0x10, offset, len(jpeg))
        offset = len(frames) + 4
    body = header + _list(b"movi", frames) + _chunk(b"idx1", index)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + 4) + b"AVI " + body)
    return path


@pytest.fixture(scope="module")
def frames(photo_path) -> list[np.ndarray]:
    """Six 160 x 120 views panning across a real photo."""
    photo = cv2.resize(cv2.imread(str(photo_path)), (200, 150))
    return [np.ascontiguousarray(photo[5 * i: 5 * i + 120, 6 * i: 6 * i + 160]) for i in range(6)]


@pytest.fixture
def six(tmp_path, frames) -> Path:
    return write_mjpeg_avi(tmp_path / "six.avi", frames)


# -- cameras ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("camera", [99, 100, 4242, "100"])
def test_cameras_that_do_not_exist_raise_video_error(whole, camera):
    results = whole.predict_video(camera)
    with pytest.raises(VideoError, match=r"could not be opened: it does not exist.*try another index"):
        next(results)


@pytest.mark.parametrize("camera", [-1, -2])
def test_a_negative_camera_index_does_not_crash_the_process(camera):
    script = textwrap.dedent(f"""
        from emofer.errors import VideoError
        from emofer.video import iter_frames
        try:
            next(iter_frames({camera}))
            print("opened")
        except VideoError as exc:
            print("VideoError", exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"the process died with code {out.returncode}"
    assert out.stdout.startswith("VideoError camera index"), out.stdout


# -- videos that end -------------------------------------------------------------------------------


def test_a_video_that_ends_ends_the_iteration(whole, six, frames):
    results = analyze_video(whole, six)
    got = list(results)
    assert [r.frame_index for r in got] == list(range(6))
    assert [r.faces[0].box for r in got] == [(0, 0, 160, 120)] * 6
    assert {r.faces[0].track_id for r in got} == {1}
    with pytest.raises(StopIteration):
        next(results)


@pytest.mark.parametrize("kwargs, indexes", [({"max_frames": 100}, [0, 1, 2, 3, 4, 5]),
                                             ({"every_n_frames": 4}, [0, 4]),
                                             ({"every_n_frames": 100}, [0]),
                                             ({"max_frames": 0}, [])])
def test_options_past_the_end(whole, six, kwargs, indexes):
    assert [r.frame_index for r in whole.predict_video(six, **kwargs)] == indexes


def test_reading_twice_and_stopping_early(whole, six):
    first = [frame.image for frame in iter_frames(six)]
    again = [frame.image for frame in iter_frames(six)]
    assert len(first) == len(again) == 6 and all((a == b).all() for a, b in zip(first, again))
    results = whole.predict_video(six)
    next(results)
    results.close()  # releases the capture; nothing raised


# -- damaged files ---------------------------------------------------------------------------------


def _bytes_of(name: str, make):
    def write(folder: Path, six: Path) -> Path:
        path = folder / name
        path.write_bytes(make(six.read_bytes()))
        return path
    return write


DAMAGED = {
    "random bytes": (_bytes_of("noise.avi", lambda _: np.random.default_rng(0).bytes(5000)), "could not be opened as a video"),
    "text named .mp4": (_bytes_of("notes.mp4", lambda _: b"hello, I am text\n" * 20), "could not be opened as a video"),
    "zero bytes": (_bytes_of("zero.mp4", lambda _: b""), "could not be opened as a video"),
    "headers only": (_bytes_of("head.avi", lambda data: data[:300]), "no frame could be read"),
    "a folder": (lambda folder, six: folder, "is a folder, not a video file"),
    "a missing file": (lambda folder, six: folder / "gone.avi", "does not exist; check the path"),
}


@pytest.mark.parametrize("case", DAMAGED, ids=DAMAGED.keys())
def test_damaged_videos_raise_video_error(whole, tmp_path, six, case):
    make, message = DAMAGED[case]
    path = make(tmp_path, six)
    with pytest.raises(VideoError, match=message):
        list(whole.predict_video(path))


def test_a_video_cut_in_the_middle_gives_the_frames_before_the_cut(whole, tmp_path, six):
    data = six.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    results = list(whole.predict_video(cut))
    assert 1 <= len(results) < 6
    assert [r.frame_index for r in results] == list(range(len(results)))


def test_a_still_image_named_mp4_is_a_one_frame_video(whole, tmp_path, frames):
    path = tmp_path / "still.mp4"
    path.write_bytes(cv2.imencode(".jpg", frames[0])[1].tobytes())
    results = list(whole.predict_video(path))
    assert [r.faces[0].box for r in results] == [(0, 0, 160, 120)]


# -- frames that change size mid-stream ------------------------------------------------------------


@pytest.fixture
def mixed(tmp_path, frames) -> Path:
    """Three 160 x 120 frames, then three 320 x 240 ones."""
    big = [cv2.resize(frame, (320, 240)) for frame in frames[3:]]
    return write_mjpeg_avi(tmp_path / "mixed.avi", frames[:3] + big)


def test_size_change_with_the_default_backend(whole, mixed):
    """OpenCV's FFmpeg backend scales later frames to the first size; others pass them as they are.
    Either way every frame gets a result whose box is its own size."""
    images = [frame.image for frame in iter_frames(mixed)]
    results = list(whole.predict_video(mixed, smooth=False))
    assert len(images) == len(results) == 6
    assert [r.faces[0].box for r in results] == [(0, 0, im.shape[1], im.shape[0]) for im in images]


SIZE_CHANGE_SCRIPT = """
import json, sys
from emofer import EmotionRecognizer
recognizer = EmotionRecognizer.from_pretrained(sys.argv[1], detector="none")
print(json.dumps([[list(face.box), face.track_id] for result in recognizer.predict_video(sys.argv[2])
                  for face in result.faces]))
"""


def test_size_change_restarts_the_tracks(model_dir, mixed):
    """With OpenCV's own MJPEG reader (FFmpeg off) the frames really change size mid-stream."""
    env = {**os.environ, "OPENCV_VIDEOIO_PRIORITY_FFMPEG": "0"}
    out = subprocess.run([sys.executable, "-c", SIZE_CHANGE_SCRIPT, str(model_dir), str(mixed)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    faces = json.loads(out.stdout.splitlines()[-1])
    assert faces == [[[0, 0, 160, 120], 1]] * 3 + [[[0, 0, 320, 240], 2]] * 3
