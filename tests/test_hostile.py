"""Hostile inputs and failing sources: decompression bombs, video sources that fail midway,
long runs of faces coming and going, model folders from elsewhere. (tests/test_fuzz.py fuzzes
the decoders; docs/errors.md lists every case.)"""

from __future__ import annotations

import csv
import json
import logging
import os
import struct
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from emofer import EmotionRecognizer, io, preprocess
from emofer.cam import main as cam_main
from emofer.errors import EmoferError, ImageReadError, ModelLoadError, ParameterError, VideoError
from emofer.imagesize import declared_size
from emofer.preprocess import CropPolicy
from emofer.video import IoUTracker, Smoother, write_table
from tests.conftest import write_model_folder
from tests.test_robustness import assert_model_load_error
from tests.test_robustness import model_dir, photo, small, whole  # noqa: F401  (module fixtures)

# -- declared size before decode --------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A valid-looking grey PNG declaring ``width`` x ``height``: a few KB of zlib'd zero rows."""
    row = b"\0" * (width + 1)
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(4)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")


def _encoded(image: np.ndarray, suffix: str) -> bytes:
    ok, data = cv2.imencode(suffix, image)
    assert ok, suffix
    return data.tobytes()


def _jpeg_sized(data: bytes, width: int, height: int) -> bytes:
    at = data.index(b"\xff\xc0")
    return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]


def _gif_sized(data: bytes, width: int, height: int) -> bytes:
    return data[:6] + struct.pack("<HH", width, height) + data[10:]


def _bmp_sized(data: bytes, width: int, height: int) -> bytes:
    return data[:18] + struct.pack("<ii", width, -height) + data[26:]


def _webp_sized(data: bytes, width: int, height: int) -> bytes:
    """An extended (VP8X) WebP header declaring the canvas size, before the real image chunk."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + data[12:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _tiff_sized(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    (offset,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[offset:offset + 2])
    for i in range(count):
        at = offset + 2 + 12 * i
        tag, _ = struct.unpack("<HH", data[at:at + 4])
        if tag in (256, 257):
            out[at + 2:at + 12] = struct.pack("<HII", 4, 1, width if tag == 256 else height)
    return bytes(out)


def _pnm_sized(data: bytes, width: int, height: int) -> bytes:
    return b"P6\n%d %d\n255\n" % (width, height) + data.split(b"\n255\n", 1)[1]


RESIZED = {".jpg": _jpeg_sized, ".gif": _gif_sized, ".bmp": _bmp_sized, ".webp": _webp_sized,
           ".tiff": _tiff_sized, ".ppm": _pnm_sized}


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".gif", ".bmp", ".webp", ".tiff", ".ppm"])
def test_declared_size_of_real_files(small, suffix):
    assert declared_size(_encoded(small, suffix)) == (80, 60)


def test_declared_size_of_damaged_headers_is_none_not_an_error():
    for data in (b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a\x01", b"BM", b"RIFF\0\0\0\0WEBPVP8X",
                 b"II*\x00\xff\xff\xff\xff", b"P6\n12", b"\xff\xd8" + b"\xff\xe0\x00\x01" * 10):
        assert declared_size(data) is None, data


def test_a_60000_by_60000_png_of_a_few_kb_is_refused_before_decoding(whole, tmp_path):
    bomb = png_bomb(60000, 60000)
    assert len(bomb) < 10_000
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    for source in (bomb, path):
        with pytest.raises(ImageReadError, match=r"is 60000 x 60000 = 3,600,000,000 pixels, over the limit of "
                                                 r"100,000,000 \(emofer.io.MAX_IMAGE_PIXELS; raise it with the "
                                                 r"EMOFER_MAX_IMAGE_PIXELS environment variable"):
            whole.predict(source)


@pytest.mark.parametrize("suffix", sorted(RESIZED))
def test_every_format_is_measured_before_decoding(small, suffix, monkeypatch):
    """A header declaring 20000 x 20000 (400 MP) is refused; OpenCV is never asked to decode it."""
    data = RESIZED[suffix](_encoded(small, suffix), 20000, 20000)
    assert declared_size(data) == (20000, 20000)

    def no_decode(*args):
        raise AssertionError("decoded despite the header")

    monkeypatch.setattr(io.cv2, "imdecode", no_decode)
    with pytest.raises(ImageReadError, match="20000 x 20000 = 400,000,000 pixels, over the limit"):
        io.load_image(data)


def test_a_png_chunk_claiming_gigabytes_is_refused_before_decoding(small, monkeypatch):
    """Found by tests/test_fuzz.py: OpenCV 4.14 allocated an IDAT's declared 3.6 GB for an 11 KB file."""
    data = bytearray(_encoded(small, ".png"))
    at = data.index(b"IDAT") - 4
    data[at:at + 4] = struct.pack(">I", 0xDA002000)

    def no_decode(*args):
        raise AssertionError("decoded despite the chunk length")

    monkeypatch.setattr(io.cv2, "imdecode", no_decode)
    with pytest.raises(ImageReadError, match=r"could not be decoded as an image \(truncated: its 'IDAT' chunk at "
                                             r"byte 33 declares 3,657,441,280 bytes"):
        io.load_image(bytes(data))


def test_a_square_crop_of_a_long_thin_image_stays_small(whole, small):
    """Found by tests/test_fuzz.py: a 32832 x 80 GIF's square crop was 32832 x 32832 (3.2 GB)."""
    # 80 wide x 410 = 32800 x 60; every column constant top to bottom, so the replicated border
    # rows equal the strip's own and the mean below holds for whatever photo ``small`` is
    strip = np.ascontiguousarray(np.tile(np.repeat(small[:1], small.shape[0], axis=0), (1, 410, 1)))
    crop = preprocess.crop_face(strip, (0, 0, 32800, 60), CropPolicy(square=True))
    assert abs(crop.shape[0] - crop.shape[1]) <= 2  # square, to rounding
    assert crop.shape[0] * crop.shape[1] <= preprocess.MAX_PADDED_CROP_PIXELS
    assert crop[:, :, 0].mean() == pytest.approx(cv2.resize(strip, (crop.shape[1], 1), interpolation=cv2.INTER_AREA)
                                                 [:, :, 0].mean(), abs=3)
    normal = preprocess.crop_face(small, (10, 10, 50, 45), CropPolicy(margin=0.2, square=True))
    assert normal.shape == (70, 70, 3)  # ordinary crops are unchanged: full resolution
    assert len(whole.predict(strip)) == 1


def test_the_limit_is_configurable(small, monkeypatch):
    data = _encoded(small, ".png")  # 80 x 60 = 4,800 pixels
    with pytest.raises(ImageReadError, match="80 x 60 = 4,800 pixels, over the limit of 4,799"):
        io.load_image(data, max_pixels=4799)
    assert io.load_image(data, max_pixels=4800).shape == (60, 80, 3)
    monkeypatch.setenv("EMOFER_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageReadError, match="over the limit of 1,000"):
        io.load_image(data)
    monkeypatch.setenv("EMOFER_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ImageReadError, match="EMOFER_MAX_IMAGE_PIXELS='lots' is not a positive whole number"):
        io.load_image(data)
    monkeypatch.delenv("EMOFER_MAX_IMAGE_PIXELS")
    monkeypatch.setattr(io, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageReadError, match="over the limit of 100"):
        io.load_image(data)
    for bad in (0, -5, True, 2.5):
        with pytest.raises(ParameterError, match="max_pixels must be a positive whole number"):
            io.load_image(data, max_pixels=bad)


def test_arrays_are_not_limited(small, monkeypatch):
    monkeypatch.setattr(io, "MAX_IMAGE_PIXELS", 100)
    assert io.load_image(small).shape == (60, 80, 3)


def test_an_opencv_decoder_error_is_an_image_read_error(monkeypatch, small):
    def fail(*args):
        raise cv2.error("OpenCV(4.14.0) imdecode_: (-215) image size is too big")

    monkeypatch.setattr(io.cv2, "imdecode", fail)
    with pytest.raises(ImageReadError, match="could not be decoded by OpenCV .*image size is too big"):
        io.load_image(b"\x00unknown format" * 4)


# -- video: frame size, sources that fail midway ----------------------------------------------------


def write_video(path: Path, frames: list[np.ndarray], codec: str = "MJPG") -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 10.0, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def clip(tmp_path, small) -> Path:
    """Twelve 80 x 60 frames of a real photo, Motion-JPEG AVI."""
    return write_video(tmp_path / "clip.avi", [np.roll(small, 3 * i, axis=1) for i in range(12)])


def test_a_video_frame_size_over_the_limit_is_refused(whole, clip, monkeypatch):
    monkeypatch.setenv("EMOFER_MAX_IMAGE_PIXELS", "4000")
    with pytest.raises(VideoError, match=r"clip.avi's frame size is 80 x 60 = 4,800 pixels, over the limit of 4,000"):
        list(whole.predict_video(clip))


def _table(path: Path) -> list:
    text = path.read_text()
    assert text.endswith("\n"), "the table ends mid-line"
    if path.suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if path.suffix == ".json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines()]


def failing(frames: list[np.ndarray], after: int, how: str):
    """A frame source that gives ``after`` frames, then raises, gives None, or an empty frame."""
    for frame in frames[:after]:
        yield frame
    if how == "raises":
        raise OSError("camera unplugged")
    yield None if how == "none" else np.zeros((0, 0, 3), np.uint8)


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
def test_a_source_that_raises_midway_keeps_every_row_before_it(whole, small, tmp_path, suffix):
    path = tmp_path / f"faces{suffix}"
    with pytest.raises(VideoError, match=r"the frame source raised OSError \(camera unplugged\) after 5 frames; "
                                         r"the frames before it were delivered"):
        write_table(whole.predict_video(failing([small] * 9, 5, "raises")), path, labels=whole.labels)
    rows = _table(path)
    assert [int(row["frame_index"]) for row in rows] == [0, 1, 2, 3, 4]


def test_labels_come_from_the_first_face_when_a_source_fails(whole, small, tmp_path):
    path = tmp_path / "faces.csv"
    with pytest.raises(VideoError):
        write_table(whole.predict_video(failing([small] * 9, 3, "raises")), path)
    assert list(_table(path)[0])[-3:] == list(whole.labels)


@pytest.mark.parametrize("how", ["none", "empty"])
def test_a_source_that_stops_delivering_frames_ends_with_a_warning(whole, small, caplog, how):
    with caplog.at_level(logging.WARNING, logger="emofer"):
        results = list(whole.predict_video(failing([small] * 9, 4, how)))
    assert [r.frame_index for r in results] == [0, 1, 2, 3]
    assert "the frame source gave an empty frame after 4 frames; stopping" in caplog.text


def test_frames_whose_size_changes_restart_the_tracks(whole, small):
    big = cv2.resize(small, (160, 120))
    results = list(whole.predict_video([small, small, big, big, small]))
    assert [r.faces[0].box for r in results] == [(0, 0, 80, 60)] * 2 + [(0, 0, 160, 120)] * 2 + [(0, 0, 80, 60)]
    assert [r.faces[0].track_id for r in results] == [1, 1, 2, 2, 3]


def test_bad_frame_sources_raise_video_error(whole, small):
    for source, message in ((b"bytes", "cannot read video frames from a bytes"),
                            (small, r"from a ndarray of shape \(60, 80, 3\)"),
                            (3.5, "cannot read video frames from a float"),
                            ([small, "nope.png"], r"frame 1 of the frame source: nope.png does not exist"),
                            ([], "the frame source gave no frame")):
        with pytest.raises(VideoError, match=message):
            list(whole.predict_video(source))


def test_a_truncated_video_gives_a_complete_table_of_the_frames_before_the_cut(whole, clip, tmp_path):
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 3])
    table = tmp_path / "cut.json"
    rows = write_table(whole.predict_video(cut), table, labels=whole.labels)
    frames = [row["frame_index"] for row in _table(table)]
    assert 1 <= rows == len(frames) < 12
    assert frames == list(range(len(frames)))


def test_a_file_that_grows_while_read(whole, clip, tmp_path):
    """Reading stops at what was there (or later); every frame delivered is whole and in order."""
    data = clip.read_bytes()
    growing = tmp_path / "growing.avi"
    growing.write_bytes(data[: len(data) // 2])
    results = whole.predict_video(growing)
    first = next(results)
    with open(growing, "ab") as handle:
        handle.write(data[len(data) // 2:])
    indexes = [first.frame_index] + [r.frame_index for r in results]
    assert indexes == list(range(len(indexes))) and 1 <= len(indexes) <= 12
    assert all(r.faces[0].box == (0, 0, 80, 60) for r in whole.predict_video(growing))


class FakeCamera:
    """Stands in for cv2.VideoCapture on a camera index: ``good`` frames, then ``then``."""

    def __init__(self, image: np.ndarray, good: int, then: str, fps: float | None = None) -> None:
        self.image, self.left, self.then, self.fps = image, good, then, fps

    def __call__(self, index: int) -> FakeCamera:
        return self

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FRAME_WIDTH: 80.0, cv2.CAP_PROP_FRAME_HEIGHT: 60.0}.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left > 0:
            self.left -= 1
            if self.fps:  # a real camera's pace
                time.sleep(1.0 / self.fps)
            return True, self.image.copy()
        if self.then == "error":
            raise cv2.error("OpenCV(4.14.0) cap_v4l.cpp: (-2) VIDIOC_DQBUF: No such device")
        return (True, np.zeros((0, 0, 3), np.uint8)) if self.then == "empty" else (False, None)

    def grab(self) -> bool:
        return self.read()[0]

    def release(self) -> None:
        pass


@pytest.mark.parametrize("then", ["false", "empty"])
def test_a_camera_that_stops_delivering_frames(whole, small, monkeypatch, caplog, then):
    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera(small, 6, then))
    with caplog.at_level(logging.WARNING, logger="emofer"):
        results = list(whole.predict_video(0))
    assert len(results) == 6
    assert "camera 0 stopped delivering frames after 6 frames" in caplog.text


def test_a_camera_that_fails_midway_raises_video_error_after_its_frames(whole, small, monkeypatch, tmp_path):
    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera(small, 4, "error"))
    table = tmp_path / "camera.csv"
    with pytest.raises(VideoError, match=r"reading frame 4 of camera 0 failed \(.*No such device\); "
                                         r"the 4 frames before it were delivered"):
        write_table(whole.predict_video(0), table, labels=whole.labels)
    assert [row["frame_index"] for row in _table(table)] == ["0", "1", "2", "3"]


def test_emofer_cam_ends_with_a_clear_message_and_keeps_its_recording(model_dir, small, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera(small, 5, "error", fps=30.0))
    out = tmp_path / "cam.avi"
    code = cam_main(["--source", "0", "--no-window", "--out", str(out), "--model", str(model_dir), "--detector", "none"])
    assert code == 2
    assert "emofer-cam: reading frame 5 of camera 0 failed" in capsys.readouterr().err
    monkeypatch.undo()
    capture = cv2.VideoCapture(str(out))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 5


def test_the_video_command_keeps_the_table_when_the_source_fails(model_dir, small, monkeypatch, capsys, tmp_path):
    from emofer.cli import main as cli_main

    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera(small, 7, "error"))
    table = tmp_path / "faces.jsonl"
    code = cli_main(["video", "0", "--table", str(table), "--model", str(model_dir), "--detector", "none"])
    assert code == 2
    assert "reading frame 7 of camera 0 failed" in capsys.readouterr().err
    assert [row["frame_index"] for row in _table(table)] == list(range(7))


# -- long runs: tracker state stays bounded ----------------------------------------------------------


def test_tracker_state_is_bounded_however_many_faces_come_and_go():
    rng = np.random.default_rng(0)
    tracker, smoother = IoUTracker(), Smoother()
    largest = 0
    for frame in range(3000):
        count = int(rng.integers(0, 40))  # crowds that come and go, in new places every frame
        boxes = [tuple(float(v) for v in (*rng.uniform(0, 5000, 2), 20, 20)) for _ in range(count)]
        ids = tracker.update(boxes)
        for track_id in ids:
            smoother.update(track_id, {"a": 0.4, "b": 0.6})
        smoother.keep_only(tracker.active_ids)
        largest = max(largest, len(tracker.active_ids), len(smoother._state))
    assert tracker._next_id > 50_000  # tens of thousands of faces came and went
    assert largest <= tracker.max_tracks == 256


def test_tracks_over_the_cap_end_those_missed_longest():
    tracker = IoUTracker(max_tracks=3)
    first = tracker.update([(0, 0, 10, 10), (100, 0, 10, 10)])
    tracker.update([(200, 0, 10, 10)])
    tracker.update([(300, 0, 10, 10), (0, 0, 10, 10)])
    assert tracker.active_ids == {first[0], 3, 4}


# -- model folders from elsewhere ---------------------------------------------------------------------


def _edit(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _raw(folder: Path, text: str) -> None:
    (folder / "config.json").write_text(text)


def _onnx_is_a_folder(folder: Path) -> None:
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").mkdir()


def _onnx_links_out(folder: Path) -> None:
    outside = folder.parent / "elsewhere.onnx"
    (folder / "model.onnx").rename(outside)
    (folder / "model.onnx").symlink_to(outside)


def _config_links_out(folder: Path) -> None:
    outside = folder.parent / "elsewhere.json"
    (folder / "config.json").rename(outside)
    (folder / "config.json").symlink_to(outside)


HOSTILE = {
    "input height 10**9": (lambda f: _edit(f, input={"height": 10**9, "width": 48, "channels": 1}), "over the 1024 px"),
    "input height 48.0": (lambda f: _edit(f, input={"height": 48.0, "width": 48, "channels": 1}), "must be a whole number"),
    "input channels true": (lambda f: _edit(f, input={"height": 48, "width": 48, "channels": True}), "must be a whole number"),
    "an integer of 5000 digits": (lambda f: _raw(f, '{"labels": ["a", "b"], "temperature": ' + "9" * 5000 + "}"),
                                  "could not be read as JSON"),
    "temperature 1e999": (lambda f: _edit(f, temperature=float("inf")), "temperature must be positive and finite"),
    "temperature NaN": (lambda f: _edit(f, temperature=float("nan")), "temperature must be positive and finite"),
    "temperature a string": (lambda f: _edit(f, temperature="1.0"), "temperature must be a number"),
    "temperature true": (lambda f: _edit(f, temperature=True), "temperature must be a number"),
    "normalize NaN": (lambda f: _edit(f, normalize={"scale": float("nan")}), "must be finite"),
    "normalize a string": (lambda f: _edit(f, normalize={"scale": "0.1"}), "normalize scale must be a number"),
    "crop margin 1e6": (lambda f: _edit(f, crop={"margin": 1e6}), r"margin in \(-0.4, 2.0\)"),
    "crop shift_y -50": (lambda f: _edit(f, crop_by_detector={"haar": {"shift_y": -50}}), "shift_y"),
    "labels numbers": (lambda f: _edit(f, labels=[1, 2, 3]), "label 1 is not a plain name"),
    "labels objects": (lambda f: _edit(f, labels=[{"a": 1}, "b", "c"]), "is not a plain name"),
    "labels path-like": (lambda f: _edit(f, labels=["../../etc/passwd", "b", "c"]), r"label '\.\./\.\./etc/passwd' is not"),
    "labels with a slash": (lambda f: _edit(f, labels=["a/b", "b", "c"]), "no path separators"),
    "labels a control character": (lambda f: _edit(f, labels=["a\nb", "b", "c"]), "not a plain name"),
    "labels 10,000": (lambda f: _edit(f, labels=[f"l{i}" for i in range(10_000)]), "lists 10000 names; at most 1000"),
    "a label of 1000 characters": (lambda f: _edit(f, labels=["x" * 1000, "b", "c"]), "not a plain name"),
    "name an object": (lambda f: _edit(f, name={"$ref": "x"}), "'name' must be a string"),
    "format_version true": (lambda f: _edit(f, format_version=True), "format_version must be a whole number"),
    "nested 100,000 deep": (lambda f: _raw(f, "[" * 100_000 + "]" * 100_000), "could not be read as JSON"),
    "config.json of 2 MB": (lambda f: _raw(f, json.dumps({"labels": ["a", "b", "c"], "pad": "x" * 2_000_000})),
                            "over the 1,048,576 a config.json may have"),
    "model.onnx a folder": (_onnx_is_a_folder, "model.onnx is not a file"),
    "model.onnx a link out of the folder": (_onnx_links_out, "is a link to .*elsewhere.onnx, outside the model folder"),
    "config.json a link out of the folder": (_config_links_out, "is a link to .*elsewhere.json, outside the model folder"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=HOSTILE.keys())
def test_hostile_model_folders_raise_model_load_error(tmp_path, case):
    assert_model_load_error(tmp_path, *HOSTILE[case])


def test_links_inside_the_folder_and_hub_snapshots_are_fine(tmp_path):
    """A Hub cache snapshot's files are links into the repo's blobs folder: that is allowed."""
    source = write_model_folder(tmp_path / "source")
    repo = tmp_path / "models--someone--tiny"
    snapshot = repo / "snapshots" / "abc123"
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.onnx"):
        blob = repo / "blobs" / name.replace(".", "-")
        blob.write_bytes((source / name).read_bytes())
        (snapshot / name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    assert EmotionRecognizer.from_pretrained(snapshot, detector="none").labels == ("angry", "happy", "sad")


def test_loading_never_executes_code_from_the_model_folder(tmp_path, small):
    """Python files, a .pth and a sitecustomize in the folder stay unread; the model still loads."""
    folder = write_model_folder(tmp_path / "model")
    marker = tmp_path / "ran"
    payload = f"open({str(marker)!r}, 'w').write('ran')\n"
    for name in ("__init__.py", "model.py", "config.py", "sitecustomize.py", "emofer.py", "onnxruntime.py"):
        (folder / name).write_text(payload)
    (folder / "evil.pth").write_text(f"import os; {payload}")
    _edit(folder, custom_op_library=str(folder / "evil.so"), auto_map={"AutoModel": "model.Evil"})
    recognizer = EmotionRecognizer.from_pretrained(folder, detector="none")
    assert len(recognizer.predict(small)) == 1
    assert not marker.exists()
    assert str(folder) not in sys.path and os.getcwd() != str(folder)


def test_hostile_errors_are_emofer_errors():
    assert issubclass(ModelLoadError, EmoferError) and issubclass(VideoError, EmoferError)
