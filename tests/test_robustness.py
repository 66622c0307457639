"""Robustness: bad images, many or no faces, damaged models, offline hubs, threads, processes, import.

Every case ends in a defined result or an :class:`emofer.errors.EmoferError` whose message says
what to do. docs/errors.md is the same battery written for users.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from emofer import EmotionRecognizer, preprocess
from emofer.boxes import iou_matrix
from emofer.errors import EmoferError, ImageReadError, ModelLoadError
from emofer.io import load_image
from tests.conftest import EXAMPLE_PHOTO, FACES_BOXES, HAAR, ROOT, need, needs_haar, write_model_folder
from tests.test_hub import COMMIT, OTHER, fill_cache

# -- shared recognizers and images ----------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("robust") / "tiny")


@pytest.fixture(scope="module")
def whole(model_dir) -> EmotionRecognizer:
    """The tiny model with detector "none": every image is one face."""
    return build(model_dir, "none")


@pytest.fixture(scope="module")
def haar(model_dir) -> EmotionRecognizer:
    """The tiny model with OpenCV's Haar cascade (skips on OpenCV 5, which has none)."""
    if not HAAR:
        pytest.skip(needs_haar.kwargs["reason"])
    return build(model_dir, "haar")


#: "haar" as a parameter: skipped with its reason where cv2 has no CascadeClassifier.
HAAR_PARAM = pytest.param("haar", marks=needs_haar)


@pytest.fixture(scope="module")
def photo(photo_path) -> np.ndarray:
    """A real colour photo with faces (BGR)."""
    return cv2.imread(str(photo_path))


@pytest.fixture(scope="module")
def small(photo) -> np.ndarray:
    """The photo shrunk to 60 x 80, for the many dtype/shape cases."""
    return cv2.resize(photo, (80, 60), interpolation=cv2.INTER_AREA)


def build(model_dir: Path, detector: str) -> EmotionRecognizer:
    """The tiny model with ``detector`` (a name; "yunet" is the bundled YuNet)."""
    return EmotionRecognizer.from_pretrained(model_dir, detector=detector)


def probabilities(faces) -> np.ndarray:
    return np.array([list(face.probabilities.values()) for face in faces])


def dicts(faces) -> list[dict]:
    return [face.to_dict() for face in faces]


# -- arrays: dtypes, channels, layouts --------------------------------------------------------------

SAME_AS_UINT8 = {
    "float32 0-1": lambda im: im.astype(np.float32) / 255.0,
    "float32 0-255": lambda im: im.astype(np.float32),
    "float64 0-1": lambda im: im.astype(np.float64) / 255.0,
    "float64 0-255": lambda im: im.astype(np.float64),
    "uint16": lambda im: im.astype(np.uint16) * 257,
    "int64 0-255": lambda im: im.astype(np.int64),
    "int16 0-255": lambda im: im.astype(np.int16),
    "bgra": lambda im: np.dstack([im, np.full(im.shape[:2], 200, np.uint8)]),
    "rgb view with color=rgb": lambda im: im[:, :, ::-1],
    "every other pixel (non-contiguous)": lambda im: np.repeat(np.repeat(im, 2, 0), 2, 1)[::2, ::2],
    "fortran order": np.asfortranarray,
    "read-only": lambda im: _read_only(im.copy()),
    "read-only negative-stride": lambda im: _read_only(im[::-1, ::-1].copy()[::-1, ::-1]),
}


#: (major, minor) of this OpenCV.
OPENCV = tuple(int(part) for part in cv2.__version__.split(".")[:2])


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@pytest.mark.parametrize("make", SAME_AS_UINT8.values(), ids=SAME_AS_UINT8.keys())
def test_array_kinds_give_the_uint8_result(whole, small, make):
    array = make(small)
    color = "rgb" if make is SAME_AS_UINT8["rgb view with color=rgb"] else "bgr"
    expected = whole.predict(small)
    got = whole.predict(array, color=color)
    assert [f.box for f in got] == [f.box for f in expected] == [(0, 0, 80, 60)]
    np.testing.assert_allclose(probabilities(got), probabilities(expected), atol=1e-6)


@pytest.mark.parametrize("view", ["flipped", "transposed", "strided", "broadcast (zero strides)"])
def test_negative_stride_and_strided_views_equal_their_copies(whole, small, view):
    array = {"flipped": small[::-1, ::-1], "transposed": small.transpose(1, 0, 2), "strided": small[::3, ::2],
             "broadcast (zero strides)": np.broadcast_to(small[:1], small.shape)}[view]
    np.testing.assert_allclose(probabilities(whole.predict(array)),
                               probabilities(whole.predict(np.ascontiguousarray(array))), atol=1e-6)


@pytest.mark.parametrize("shape", [(60, 80), (60, 80, 1)])
def test_grey_arrays_equal_grey_converted_to_bgr(whole, small, shape):
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    np.testing.assert_allclose(probabilities(whole.predict(grey.reshape(shape))),
                               probabilities(whole.predict(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))), atol=1e-6)


def test_float16_is_read_like_float32(whole, small):
    got = probabilities(whole.predict(small.astype(np.float16) / np.float16(255)))
    np.testing.assert_allclose(got, probabilities(whole.predict(small)), atol=0.02)


BAD_ARRAYS = {
    "None": (None, "is None; pass a file path"),
    "int": (12345, "cannot read an image from a int; pass"),
    "nested list": ([[0, 1], [2, 3]], "cannot read an image from a list; pass"),
    "0-d array": (np.zeros((), np.uint8), r"shape \(\); expected \(H, W\)"),
    "1-d array": (np.zeros(10, np.uint8), r"expected \(H, W\)"),
    "batch of images (4-d)": (np.zeros((2, 5, 5, 3), np.uint8), r"expected \(H, W\)"),
    "2 channels": (np.zeros((5, 5, 2), np.uint8), r"expected \(H, W\), \(H, W, 1\), \(H, W, 3\) or \(H, W, 4\)"),
    "0 channels": (np.zeros((5, 5, 0), np.uint8), r"expected \(H, W\)"),
    "empty 0x0": (np.zeros((0, 0), np.uint8), "empty"),
    "0 rows": (np.zeros((0, 10, 3), np.uint8), "empty"),
    "0 columns": (np.zeros((10, 0, 3), np.uint8), "empty"),
    "0x0x1": (np.zeros((0, 0, 1), np.float32), "empty"),
    "bool mask": (np.ones((5, 5), bool), "boolean.*pass uint8 0-255 or float 0-1"),
    "int64 negative": (np.full((5, 5), -1, np.int64), r"-1\.\.-1; expected 0\.\.255"),
    "int64 above 255": (np.full((5, 5, 3), 256, np.int64), "expected 0..255 .convert it to uint8"),
    "float NaN": (np.full((5, 5), np.nan, np.float32), "NaN or infinite values; pass finite"),
    "float inf": (np.full((5, 5, 3), np.inf, np.float64), "NaN or infinite"),
    "complex": (np.zeros((5, 5), np.complex64), "dtype complex64 are not supported; pass uint8"),
    "strings": (np.full((5, 5), "a"), "not supported; pass uint8"),
    "objects": (np.full((5, 5), None, object), "not supported; pass uint8"),
    "bad color order": (np.zeros((5, 5, 3), np.uint8), "color must be one of"),
}


@pytest.mark.parametrize("detector", ["whole", HAAR_PARAM])
@pytest.mark.parametrize("case", BAD_ARRAYS, ids=BAD_ARRAYS.keys())
def test_bad_arrays_raise_image_read_error(request, detector, case):
    recognizer = request.getfixturevalue(detector)
    image, message = BAD_ARRAYS[case]
    color = "BGR" if case == "bad color order" else "bgr"
    with pytest.raises(ImageReadError, match=message):
        recognizer.predict(image, color=color)


@pytest.mark.parametrize("detector, faces", [("whole", [(0, 0, 1, 1)]), pytest.param("haar", [], marks=needs_haar)])
@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (1, 1, 4), (1, 500, 3), (500, 1)])
def test_tiny_images_give_a_defined_result(request, detector, faces, shape):
    got = request.getfixturevalue(detector).predict(np.full(shape, 90, np.uint8))
    expected = [(0, 0, shape[1], shape[0])] if faces else []
    assert [f.box for f in got] == expected
    assert all(abs(sum(f.probabilities.values()) - 1) < 1e-5 for f in got)


@pytest.mark.parametrize("detector, faces", [("whole", 1), pytest.param("haar", 0, marks=needs_haar)])
def test_a_10000_by_10000_image_is_scaled_not_crashed(request, detector, faces):
    image = np.zeros((10_000, 10_000, 3), np.uint8)  # 300 MB; load_image takes it without a copy
    got = request.getfixturevalue(detector).predict(image)
    assert len(got) == faces
    if faces:
        assert got[0].box == (0, 0, 10_000, 10_000)


# -- files and bytes ---------------------------------------------------------------------------------


def _encoded(image: np.ndarray, suffix: str) -> bytes:
    ok, data = cv2.imencode(suffix, image)
    assert ok
    return data.tobytes()


def write_exif_jpeg(image: np.ndarray, orientation: int) -> bytes:
    """A JPEG of ``image`` with an APP1 Exif segment holding only the Orientation tag."""
    jpeg = _encoded(image, ".jpg")
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


BAD_FILES = {
    "missing path": (lambda d, im: d / "missing.jpg", "does not exist; check the path"),
    "missing str path": (lambda d, im: str(d / "missing.png"), "does not exist; check the path"),
    "directory": (lambda d, im: d, "is a directory; pass an image file"),
    "text named .jpg": (lambda d, im: _file(d / "notes.jpg", b"hello, I am text\n"), "could not be decoded"),
    "truncated JPEG": (lambda d, im: _file(d / "cut.jpg", _encoded(im, ".jpg")[:-len(_encoded(im, ".jpg")) // 2]),
                       "could not be decoded as an image .truncated"),
    "truncated PNG": (lambda d, im: _file(d / "cut.png", _encoded(im, ".png")[:-len(_encoded(im, ".png")) // 2]),
                      "could not be decoded as an image .truncated"),
    "JPEG header only": (lambda d, im: _file(d / "head.jpg", _encoded(im, ".jpg")[:40]), "could not be decoded"),
    "zero-byte .jpg": (lambda d, im: _file(d / "zero.jpg", b""), r"the file is empty \(0 bytes\)"),
    "zero-byte .png": (lambda d, im: _file(d / "zero.png", b""), r"the file is empty \(0 bytes\)"),
    "bytes that are not an image": (lambda d, im: b"\x00\x01 definitely not an image" * 10, "could not be decoded"),
    "empty bytes": (lambda d, im: b"", "empty"),
    "truncated JPEG bytes": (lambda d, im: _encoded(im, ".jpg")[:200], "could not be decoded"),
    "NUL in path": (lambda d, im: str(d / "a\x00b.jpg"), "could not be read"),
    "path too long": (lambda d, im: d / ("x" * 5000 + ".jpg"), "could not be read"),
}


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("detector", ["whole", HAAR_PARAM])
@pytest.mark.parametrize("case", BAD_FILES, ids=BAD_FILES.keys())
def test_bad_files_raise_image_read_error(request, tmp_path, small, detector, case):
    if case == "truncated JPEG" and OPENCV < (4, 11):
        pytest.skip(f"OpenCV {cv2.__version__} decodes a JPEG cut in half (the rest grey) without an error; 4.11+ refuses it")
    make, message = BAD_FILES[case]
    source = make(tmp_path, small)
    with pytest.raises(ImageReadError, match=message):
        request.getfixturevalue(detector).predict(source)


@pytest.mark.parametrize("kind", ["path", "str", "bytes", "bytearray", "memoryview"])
@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tiff", ".webp"])
def test_encoded_inputs_agree_with_the_array(whole, small, tmp_path, kind, suffix):
    data = _encoded(small, suffix)
    path = _file(tmp_path / f"face{suffix}", data)
    source = {"path": path, "str": str(path), "bytes": data, "bytearray": bytearray(data),
              "memoryview": memoryview(data)}[kind]
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_allclose(probabilities(whole.predict(source)), probabilities(whole.predict(decoded)), atol=1e-6)


@pytest.mark.parametrize("as_bytes", [False, True], ids=["path", "bytes"])
def test_animated_gif_gives_its_first_frame(whole, small, tmp_path, as_bytes):
    first = np.zeros((60, 80, 3), np.uint8)
    first[:, :40] = (0, 0, 255)
    second = np.full((60, 80, 3), 255, np.uint8)
    path = tmp_path / "animated.gif"
    try:
        written = cv2.imwritemulti(str(path), [first, second])
    except cv2.error:  # opencv-python before 4.12 has no GIF writer
        written = False
    if not written:
        pytest.skip(f"OpenCV {cv2.__version__} cannot write GIF")
    assert len(cv2.imreadmulti(str(path))[1]) == 2
    source = path.read_bytes() if as_bytes else path
    pixels = load_image(source)
    assert pixels.shape == (60, 80, 3)
    assert pixels[:, :40, 2].mean() > 240 and pixels[:, 40:].mean() < 15  # red left half: frame one
    np.testing.assert_allclose(probabilities(whole.predict(source)), probabilities(whole.predict(pixels)), atol=1e-6)


@pytest.mark.parametrize("orientation, rotate", [(1, None), (3, cv2.ROTATE_180), (6, cv2.ROTATE_90_CLOCKWISE),
                                                 (8, cv2.ROTATE_90_COUNTERCLOCKWISE)])
def test_exif_orientation_is_applied(whole, tmp_path, orientation, rotate):
    image = np.zeros((40, 60, 3), np.uint8)
    image[:10, :10] = (0, 0, 255)  # a red mark in the stored top-left corner
    data = write_exif_jpeg(image, orientation)
    stored = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    upright = stored if rotate is None else cv2.rotate(stored, rotate)
    for source in (data, _file(tmp_path / "phone.jpg", data)):
        np.testing.assert_array_equal(load_image(source), upright)
        assert [f.box for f in whole.predict(source)] == [(0, 0, upright.shape[1], upright.shape[0])]


# -- faces: none, many, at the border, caller boxes ----------------------------------------------------


@pytest.mark.parametrize("scene", ["grey", "gradient", "black", "white"])
def test_no_face_gives_an_empty_list(haar, scene):
    image = {"grey": np.full((240, 320, 3), 127, np.uint8),
             "gradient": np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3)),
             "black": np.zeros((240, 320, 3), np.uint8), "white": np.full((240, 320), 255, np.uint8)}[scene]
    assert haar.predict(image) == []
    assert haar.predict_batch([image, image]) == [[], []]


TILE, GAP, COLUMNS, ROWS = 96, 24, 10, 6


@pytest.fixture(scope="module")
def crowd(fer_faces) -> tuple[np.ndarray, list[tuple[int, int, int, int]], list[np.ndarray]]:
    """60 real FER2013 faces (96 px) tiled 10 x 6 on grey: (BGR image, their boxes, the tiles)."""
    faces = [face for label in sorted(fer_faces) for face in fer_faces[label]]
    grid = np.full((ROWS * (TILE + GAP), COLUMNS * (TILE + GAP)), 128, np.uint8)
    boxes, tiles = [], []
    for i in range(ROWS * COLUMNS):
        row, column = divmod(i, COLUMNS)
        y, x = row * (TILE + GAP) + GAP // 2, column * (TILE + GAP) + GAP // 2
        tile = cv2.resize(faces[i % len(faces)], (TILE, TILE), interpolation=cv2.INTER_LINEAR)
        grid[y:y + TILE, x:x + TILE] = tile
        boxes.append((x, y, TILE, TILE))
        tiles.append(tile)
    return cv2.cvtColor(grid, cv2.COLOR_GRAY2BGR), boxes, tiles


def test_sixty_caller_boxes_give_sixty_faces_equal_to_classify(whole, crowd):
    image, boxes, tiles = crowd
    faces = whole.predict(image, boxes=boxes)
    assert len(faces) == 60 and [f.box for f in faces] == boxes
    assert all(f.score is None for f in faces)
    np.testing.assert_allclose(probabilities(faces), whole.classify(tiles), atol=1e-6)
    as_array = whole.predict(image, boxes=np.array(boxes, np.float32))
    np.testing.assert_allclose(probabilities(as_array), probabilities(faces), atol=1e-6)


@pytest.mark.parametrize("detector", [HAAR_PARAM, "yunet"])
def test_detectors_find_most_of_sixty_faces(model_dir, crowd, detector):
    recognizer = build(model_dir, detector)
    image, boxes, _ = crowd
    faces = recognizer.predict(image)
    found = (iou_matrix(boxes, [f.box for f in faces]) >= 0.3).any(axis=1).sum()
    assert found >= 30, (found, len(faces))
    height, width = image.shape[:2]
    assert all(0 <= x and 0 <= y and x + w <= width and y + h <= height for x, y, w, h in (f.box for f in faces))
    np.testing.assert_allclose(probabilities(faces).sum(1), 1, atol=1e-5)


@pytest.fixture(scope="module")
def face_box(photo_path) -> tuple[int, int, int, int]:
    """A hand-drawn face box in the photo (faces-boxes), or a fixed box in the fallback photo."""
    csv = FACES_BOXES / "boxes.csv"
    if csv.exists():
        for line in csv.read_text().splitlines()[1:]:
            path, _, x, y, w, h, _ = line.split(",")
            if Path(path).name == photo_path.name:
                return int(x), int(y), int(w), int(h)
    return 150, 120, 180, 180


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
@pytest.mark.parametrize("detector", [HAAR_PARAM, "yunet"])
def test_faces_cut_by_the_image_border(model_dir, photo, face_box, side, detector):
    recognizer = build(model_dir, detector)
    x, y, w, h = face_box
    cx, cy = x + w // 2, y + h // 2
    image = {"left": photo[:, cx:], "right": photo[:, :cx], "top": photo[cy:], "bottom": photo[:cy]}[side]
    height, width = image.shape[:2]
    faces = recognizer.predict(image)
    assert all(0 <= fx and 0 <= fy and fx + fw <= width and fy + fh <= height for fx, fy, fw, fh in (f.box for f in faces))
    assert all(abs(sum(f.probabilities.values()) - 1) < 1e-5 for f in faces)


@pytest.mark.parametrize(
    "box, clipped",
    [
        ((-20, 10, 50, 50), (0, 10, 30, 50)),
        ((60, 10, 50, 50), (60, 10, 20, 50)),
        ((10, -30, 40, 40), (10, 0, 40, 10)),
        ((10, 40, 40, 40), (10, 40, 40, 20)),
        ((-10, -10, 100, 80), (0, 0, 80, 60)),
        ((79, 59, 1, 1), (79, 59, 1, 1)),
        ((10.4, 10.6, 20.2, 19.8), (10, 11, 21, 19)),
    ],
    ids=["left", "right", "top", "bottom", "all around", "one pixel", "fractional"],
)
def test_caller_boxes_over_the_border_are_clipped(whole, small, box, clipped):
    faces = whole.predict(small, boxes=[box])
    assert [f.box for f in faces] == [clipped]
    assert abs(sum(faces[0].probabilities.values()) - 1) < 1e-5


BAD_BOXES = {
    "right of the image": ([(90, 0, 5, 5)], "lies outside the 80x60 image"),
    "below the image": ([(0, 70, 5, 5)], "lies outside"),
    "above-left of the image": ([(-50, -50, 10, 10)], "lies outside"),
    "touching the right edge": ([(80, 0, 10, 10)], "lies outside"),
    "negative width": ([(0, 0, -5, 10)], "positive width and height"),
    "zero height": ([(0, 0, 5, 0)], "positive width and height"),
    "NaN": ([(0, 0, np.nan, 10)], "finite values"),
    "infinite": ([(0, 0, np.inf, 10)], "finite values"),
    "overflowing": ([(1e308, 0, 1e308, 5)], "finite values"),
    "three numbers": ([(0, 0, 10)], r"four numbers \(x, y, w, h\)"),
    "five numbers": ([(0, 0, 10, 10, 1)], "four numbers"),
    "strings": ([("a", "b", "c", "d")], "four numbers"),
    "None box": ([None], "four numbers"),
    "flat list": ((0, 0, 10, 10), "four numbers"),
    "not a list": (5, "boxes must be a list of"),
}


@pytest.mark.parametrize("case", BAD_BOXES, ids=BAD_BOXES.keys())
def test_bad_caller_boxes_raise(whole, small, case):
    boxes, message = BAD_BOXES[case]
    with pytest.raises(EmoferError, match=message):
        whole.predict(small, boxes=boxes)


@pytest.mark.parametrize("boxes", [[], (), np.zeros((0, 4)), iter([])], ids=["list", "tuple", "array", "iterator"])
def test_no_caller_boxes_give_no_faces(whole, small, boxes):
    assert whole.predict(small, boxes=boxes) == []


# -- model folders: missing, damaged, inconsistent ---------------------------------------------------


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _edit_input(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    _edit_config(folder, input={**config["input"], **changes})


def _truncate(folder: Path) -> None:
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 2])


def _unverified(damage):
    """``damage`` with model_sha256 removed, so onnxruntime itself meets the bad file."""
    def apply(folder: Path) -> None:
        damage(folder)
        _edit_config(folder, model_sha256=None)
    return apply


def build_double_input_onnx(path: Path, labels: int = 3) -> None:
    """A real graph whose input is float64 (Cast -> Flatten -> Gemm -> Softmax)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).normal(0, 0.01, (48 * 48, labels)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Cast", ["input"], ["as_float"], to=TensorProto.FLOAT),
         helper.make_node("Flatten", ["as_float"], ["flat"]),
         helper.make_node("Gemm", ["flat", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "double_input",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, ["batch", 48, 48, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", labels])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


MODEL_DAMAGE = {
    "model.onnx missing": (lambda f: (f / "model.onnx").unlink(), "holds no model.onnx.*export one"),
    "two other .onnx files": (lambda f: [(f / "model.onnx").rename(f / "a.onnx"), _file(f / "b.onnx", b"x")],
                              "holds no model.onnx"),
    "model.onnx is a folder": (lambda f: [(f / "model.onnx").unlink(), (f / "model.onnx").mkdir()],
                               r"model.onnx is not a file \(a folder\?\)"),
    "model.onnx truncated": (_truncate, "damaged or not the file its config.json describes.*download it again"),
    "model.onnx truncated, no sha256": (_unverified(_truncate), "could not be loaded by onnxruntime.*re-export"),
    "model.onnx zero bytes, no sha256": (_unverified(lambda f: _file(f / "model.onnx", b"")), "could not be loaded"),
    "model.onnx is text, no sha256": (_unverified(lambda f: _file(f / "model.onnx", b"not onnx\n" * 50)),
                                      "could not be loaded"),
    "sha256 mismatch": (lambda f: _edit_config(f, model_sha256="0" * 64), r"damaged.*download it again"),
    "sha256 not a string": (lambda f: _edit_config(f, model_sha256=5), "model_sha256 must be a hex string"),
    "config.json missing": (lambda f: (f / "config.json").unlink(), "config.json is missing.*docs/models.md"),
    "config.json not JSON": (lambda f: _file(f / "config.json", b"{labels: [angry"), "could not be read as JSON"),
    "config.json not UTF-8": (lambda f: _file(f / "config.json", b"\xff\xfe\x00{"), "could not be read as JSON"),
    "config.json a list": (lambda f: _file(f / "config.json", b"[]"), "must hold a JSON object"),
    "config.json empty object": (lambda f: _file(f / "config.json", b"{}"), "not a valid emofer model config"),
    "labels a string": (lambda f: _edit_config(f, labels="ahs"), "'labels' must be a JSON list"),
    "labels null": (lambda f: _edit_config(f, labels=None), "'labels' must be a JSON list"),
    "one label": (lambda f: _edit_config(f, labels=["happy"]), "at least two distinct"),
    "duplicate labels": (lambda f: _edit_config(f, labels=["a", "a", "b"]), "at least two distinct"),
    "format_version from the future": (lambda f: _edit_config(f, format_version=99), "upgrade emofer"),
    "input too small": (lambda f: _edit_input(f, height=4, width=4), "too small"),
    "input layout unknown": (lambda f: _edit_input(f, layout="NCWH"), "layout must be NHWC or NCHW"),
    "input 2 channels": (lambda f: _edit_input(f, channels=2), "1 or 3 channels"),
    "input unknown key": (lambda f: _edit_input(f, depth=3), "not a valid emofer model config.*re-export"),
    "input height a string": (lambda f: _edit_input(f, height="48"), "not a valid emofer model config"),
    "input a list": (lambda f: _edit_config(f, input=[48, 48, 1]), "not a valid emofer model config"),
    "normalize std 0": (lambda f: _edit_config(f, normalize={"std": 0}), "std non-zero"),
    "normalize scale NaN": (lambda f: _edit_config(f, normalize={"scale": float("nan")}), "must be finite"),
    "normalize a list": (lambda f: _edit_config(f, normalize=[1, 0, 1]), "not a valid emofer model config"),
    "crop a list": (lambda f: _edit_config(f, crop=[0.1]), "not a valid emofer model config"),
    "crop margin NaN": (lambda f: _edit_config(f, crop={"margin": float("nan")}), "must be finite"),
    "crop_by_detector not objects": (lambda f: _edit_config(f, crop_by_detector={"haar": 3}), "not a valid"),
    "temperature 0": (lambda f: _edit_config(f, temperature=0), "temperature must be positive"),
    "temperature infinite": (lambda f: _edit_config(f, temperature=float("inf")), "temperature must be positive and finite"),
    "temperature a word": (lambda f: _edit_config(f, temperature="hot"), "not a valid emofer model config"),
    "4 labels for 3 outputs": (lambda f: _edit_config(f, labels=["a", "b", "c", "d"]), r"outputs shape .* lists 4 labels"),
    "2 labels for 3 outputs": (lambda f: _edit_config(f, labels=["a", "b"]), "lists 2 labels; the config does not belong"),
    "input size disagrees": (lambda f: _edit_input(f, height=64, width=64), "takes input of shape .* config.json says"),
    "input channels disagree": (lambda f: _edit_input(f, channels=3), "takes input of shape"),
    "input layout disagrees": (lambda f: _edit_input(f, layout="NCHW"), "takes input of shape"),
    "graph takes float64": (_unverified(lambda f: build_double_input_onnx(f / "model.onnx")),
                            r"takes tensor\(double\) input, but emofer feeds float32"),
}


@pytest.mark.parametrize("case", MODEL_DAMAGE, ids=MODEL_DAMAGE.keys())
def test_damaged_model_folders_raise_model_load_error(tmp_path, case):
    assert_model_load_error(tmp_path, *MODEL_DAMAGE[case])


def assert_model_load_error(tmp_path: Path, damage, message: str) -> None:
    """A tiny model folder, ``damage``d, must fail to load with a ModelLoadError matching ``message``."""
    folder = write_model_folder(tmp_path / "model")
    damage(folder)
    with pytest.raises(ModelLoadError, match=message):
        EmotionRecognizer.from_pretrained(folder, detector="none")


def test_a_single_onnx_file_with_another_name_is_used(tmp_path):
    folder = write_model_folder(tmp_path / "model")
    (folder / "model.onnx").rename(folder / "fer.onnx")
    assert EmotionRecognizer.from_pretrained(folder, detector="none").classifier.model_path.name == "fer.onnx"


# -- the Hub offline -----------------------------------------------------------------------------------


def _partial(cache: Path, model: Path) -> None:
    (fill_cache(cache, "someone/tiny", model) / "model.onnx").unlink()


def _dangling_ref(cache: Path, model: Path) -> None:
    shutil.rmtree(fill_cache(cache, "someone/tiny", model))


def _damaged(cache: Path, model: Path) -> None:
    snapshot = fill_cache(cache, "someone/tiny", model)
    _truncate(snapshot)


HUB_CASES = {
    "empty cache": (lambda c, m: c.mkdir(), None, "config.json is not in the Hugging Face cache.*emofer download someone/tiny"),
    "branch not in cache": (lambda c, m: fill_cache(c, "someone/tiny", m), "dev",
                            "at revision dev is not in the Hugging Face cache.*--revision dev"),
    "commit not in cache": (lambda c, m: fill_cache(c, "someone/tiny", m), OTHER, f"at revision {OTHER} is not in"),
    "short commit": (lambda c, m: fill_cache(c, "someone/tiny", m), COMMIT[:7], "is not in the Hugging Face cache"),
    "model.onnx missing from the snapshot": (_partial, None, "someone/tiny/model.onnx is not in the Hugging Face cache"),
    "ref to a deleted snapshot": (_dangling_ref, None, "is not in the Hugging Face cache"),
    "damaged file in the cache": (_damaged, None, "damaged.*download it again"),
}


@pytest.mark.parametrize("case", HUB_CASES, ids=HUB_CASES.keys())
def test_hub_models_offline(tmp_path, model_dir, case):
    prepare, revision, message = HUB_CASES[case]
    prepare(tmp_path / "cache", model_dir)
    with pytest.raises(ModelLoadError, match=message):
        EmotionRecognizer.from_pretrained("someone/tiny", revision=revision, cache_dir=tmp_path / "cache",
                                          local_files_only=True, detector="none")


@pytest.mark.parametrize("name", ["a/b/c", "someone/", "/tiny", "some one/tiny", ""])
def test_names_that_are_neither_folders_nor_repo_ids(tmp_path, name):
    with pytest.raises(ModelLoadError, match="neither an existing folder"):
        EmotionRecognizer.from_pretrained(name or "nothing here", cache_dir=tmp_path, local_files_only=True)


OFFLINE_SCRIPT = """
import json, sys
from emofer import EmotionRecognizer
from emofer.errors import EmoferError
cache, cases, out = sys.argv[1], json.loads(sys.argv[2]), {}
for name, kwargs in cases.items():
    try:
        rec = EmotionRecognizer.from_pretrained(cache_dir=cache, **kwargs)
        out[name] = ["ok", rec.detector.name, list(rec.labels)]
    except EmoferError as exc:
        out[name] = [type(exc).__name__, str(exc)]
print(json.dumps(out))
"""

OFFLINE_CASES = {
    "cached repo": ({"model": "someone/tiny", "detector": "none"}, ["ok", "none", ["angry", "happy", "sad"]]),
    "cached repo, auto detector is the bundled yunet": ({"model": "someone/tiny"}, ["ok", "yunet", ["angry", "happy", "sad"]]),
    "uncached repo": ({"model": "someone/absent", "detector": "none"},
                      ["ModelLoadError", "someone/absent/config.json is not in the Hugging Face cache"]),
    "revision not cached": ({"model": "someone/tiny", "revision": "v2", "detector": "none"},
                            ["ModelLoadError", "at revision v2 is not in the Hugging Face cache"]),
    "yunet needs no download": ({"model": "someone/tiny", "detector": "yunet"}, ["ok", "yunet", ["angry", "happy", "sad"]]),
}


@pytest.fixture(scope="module")
def offline_results(tmp_path_factory, model_dir) -> dict:
    """One HF_HUB_OFFLINE=1 process, empty HOME and HF cache but for someone/tiny, runs every case."""
    root = tmp_path_factory.mktemp("offline")
    fill_cache(root / "cache", "someone/tiny", model_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "EMOFER_"))}
    env.update(HF_HUB_OFFLINE="1", HOME=str(root), HF_HOME=str(root / "hf"), XDG_CACHE_HOME=str(root / "xdg"))
    cases = json.dumps({name: kwargs for name, (kwargs, _) in OFFLINE_CASES.items()})
    out = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, str(root / "cache"), cases], env=env,
                         capture_output=True, text=True, timeout=180, cwd=root)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.parametrize("case", OFFLINE_CASES, ids=OFFLINE_CASES.keys())
def test_hf_hub_offline_in_a_fresh_process(offline_results, case):
    expected = OFFLINE_CASES[case][1]
    got = offline_results[case]
    if expected[0] == "ok":
        assert got == expected
    else:
        assert got[0] == expected[0] and expected[1] in got[1], got


# -- property-based: any array, never an exception outside EmoferError ----------------------------------

DTYPES = [np.uint8, np.uint16, np.int8, np.int64, np.float16, np.float32, np.float64, np.bool_, np.complex64]
SHAPES = st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple)
ANY_ARRAY = st.sampled_from(DTYPES).flatmap(lambda dtype: arrays(dtype, SHAPES))
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(call, *args, **kwargs):
    """``call``'s result, or the EmoferError it raised; any other exception fails the test."""
    try:
        return call(*args, **kwargs)
    except EmoferError as exc:
        assert str(exc), "an EmoferError needs a message"
        return exc


@PROPERTY
@given(array=ANY_ARRAY)
def test_load_image_any_array(array):
    got = outcome(load_image, array)
    if not isinstance(got, EmoferError):
        assert got.dtype == np.uint8 and got.ndim == 3 and got.shape[2] == 3 and got.flags.c_contiguous
        assert got.shape[:2] == array.shape[:2]


@pytest.fixture(scope="module", params=["whole", HAAR_PARAM])
def whole_or_haar(request) -> EmotionRecognizer:
    return request.getfixturevalue(request.param)


@PROPERTY
@given(array=ANY_ARRAY)
def test_predict_any_array(whole_or_haar, array):
    got = outcome(whole_or_haar.predict, array)
    if not isinstance(got, EmoferError):
        assert all(abs(sum(f.probabilities.values()) - 1) < 1e-4 for f in got)
        if whole_or_haar.detector.name == "none":
            assert [f.box for f in got] == [(0, 0, array.shape[1], array.shape[0])]


@PROPERTY
@given(array=ANY_ARRAY, wrap=st.booleans())
def test_classify_any_array(whole, array, wrap):
    got = outcome(whole.classify, [array] if wrap else array)
    if not isinstance(got, EmoferError):
        assert got.dtype == np.float32 and got.shape[1] == 3
        np.testing.assert_allclose(got.sum(1), 1, atol=1e-4)


COORDINATE = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308]))
BOXES = st.tuples(*[COORDINATE] * 4)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # normalize(1e308)
@PROPERTY
@given(array=ANY_ARRAY, box=BOXES, margin=st.floats(-0.4, 1.0))
def test_preprocess_functions_any_array(array, box, margin):
    norm = preprocess.Normalization()
    outcome(preprocess.to_gray, array)
    outcome(preprocess.resize_face, array, (48, 48))
    outcome(preprocess.normalize, array, norm)
    outcome(preprocess.expand_box, box, preprocess.CropPolicy(margin=margin))
    for channels in (1, 3):
        got = outcome(preprocess.to_tensor, [array], (48, 48), channels, norm)
        if not isinstance(got, EmoferError):
            assert got.shape == (1, 48, 48, channels) and got.dtype == np.float32
    small_box = tuple(np.clip(np.nan_to_num(box), -100, 100))
    got = outcome(preprocess.crop_face, array, small_box, preprocess.CropPolicy(margin=margin))
    if not isinstance(got, EmoferError):
        assert got.dtype == np.uint8 and got.size > 0


# -- threads and processes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Eight different real images, some without faces: crops and flips of four copies of the
    shipped example portrait (2 x 2), so every detector has faces to find on any checkout."""
    portrait = cv2.resize(cv2.imread(str(need(EXAMPLE_PHOTO, "example photo"))), None, fx=0.6, fy=0.6,
                          interpolation=cv2.INTER_AREA)
    photo = np.vstack([np.hstack([portrait, portrait[:, ::-1]])] * 2)
    height, width = photo.shape[:2]
    return [photo, photo[:, ::-1], photo[: height // 2], photo[height // 2:], photo[:, : width // 2],
            cv2.resize(photo, None, fx=0.5, fy=0.5), photo[::-1], np.full((100, 100, 3), 127, np.uint8)]


@pytest.mark.parametrize("detector", ["none", HAAR_PARAM, "yunet"])
def test_eight_threads_equal_sequential(model_dir, images, detector):
    recognizer = build(model_dir, detector)
    expected = [dicts(recognizer.predict(image)) for image in images]
    assert sum(map(len, expected)) >= 8
    with ThreadPoolExecutor(8) as pool:  # eight predicts and a predict_batch, all at once
        batch = pool.submit(lambda: [dicts(faces) for faces in recognizer.predict_batch(images)])
        results = list(pool.map(lambda image: dicts(recognizer.predict(image)), images[::-1]))
    assert results[::-1] == expected and batch.result() == expected


def test_classify_from_threads(whole, fer_faces):
    faces = np.concatenate(list(fer_faces.values()))
    expected = whole.classify(faces)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: whole.classify(faces), range(16)))
    for got in results:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("detector", ["none", HAAR_PARAM, "yunet"])
def test_pickled_recognizer_in_a_spawned_process(model_dir, images, detector):
    recognizer = build(model_dir, detector)
    clone = pickle.loads(pickle.dumps(recognizer))
    assert clone.labels == recognizer.labels and clone.detector.name == recognizer.detector.name
    expected = [dicts(recognizer.predict(image)) for image in images[:4]]
    assert sum(map(len, expected)) >= 4
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        got = list(pool.map(recognizer.predict, images[:4]))
    assert [dicts(faces) for faces in got] == expected


# -- importing has no side effects ---------------------------------------------------------------------

IMPORT_SCRIPT = r"""
import json, logging, os, socket, sys, warnings
from pathlib import Path

def no_network(*args, **kwargs):
    raise AssertionError("emofer tried to open a network connection")

socket.socket.connect = socket.socket.connect_ex = no_network
socket.create_connection = socket.getaddrinfo = no_network
root, model, photo, detectors = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split(",")

def files():
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))

def state():
    manager = logging.Logger.manager
    return {
        "root_handlers": [id(h) for h in logging.getLogger().handlers],
        "root_level": logging.getLogger().level,
        "levels": {name: logger.level for name, logger in manager.loggerDict.items()
                   if isinstance(logger, logging.Logger) and not name.startswith("emofer")},
        "disable": manager.disable,
        "warnings": [repr(f) for f in warnings.filters],
        "cv2_threads": cv2.getNumThreads(),
        "cv2_log": getattr(cv2.utils, "logging", cv2).getLogLevel(),  # opencv-python 4.8: cv2.getLogLevel
        "files": files(),
    }

import cv2
before = state()
import emofer
after = state()
report = {key: before[key] == after[key] for key in before}
report["onnxruntime_imported"] = "onnxruntime" in sys.modules
report["emofer_handlers"] = [type(h).__name__ for h in logging.getLogger("emofer").handlers]
report["emofer_propagates"] = logging.getLogger("emofer").propagate

import onnxruntime as ort
severity_calls = []
ort.set_default_logger_severity = ort.set_default_logger_verbosity = severity_calls.append
before_use = state()
report["faces"] = {d: len(emofer.EmotionRecognizer.from_pretrained(model, detector=d).predict(photo)) for d in detectors}
after_use = state()
report["use"] = {key: before_use[key] == after_use[key] for key in before_use}
report["severity_calls"] = severity_calls
report["onnxruntime_files"] = sorted(set(before_use["files"]) - set(after["files"]))
print(json.dumps(report))
"""


#: The detectors the fresh process loads and runs: Haar too where this OpenCV has it.
IMPORT_DETECTORS = ["none", "yunet"] + (["haar"] if HAAR else [])


@pytest.fixture(scope="module")
def import_report(tmp_path_factory, model_dir, small) -> tuple[dict, subprocess.CompletedProcess]:
    """``import emofer`` then a recognizer per detector, in a fresh process with an empty HOME and caches."""
    root = tmp_path_factory.mktemp("import")
    for folder in ("home", "hf", "xdg", "work"):
        (root / folder).mkdir()
    photo = root / "work" / "face.png"
    cv2.imwrite(str(photo), small)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "EMOFER_", "XDG_", "ORT_"))}
    env.update(HOME=str(root / "home"), HF_HOME=str(root / "hf"), XDG_CACHE_HOME=str(root / "xdg"),
               PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT, str(root), str(model_dir), str(photo),
                          ",".join(IMPORT_DETECTORS)], env=env,
                         capture_output=True, text=True, timeout=180, cwd=root / "work")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1]), out


STATE = ["root_handlers", "root_level", "levels", "disable", "warnings", "cv2_threads", "cv2_log", "files"]


@pytest.mark.parametrize("key", STATE)
def test_import_changes_no_global_state(import_report, key):
    assert import_report[0][key] is True, f"import emofer changed {key}"


@pytest.mark.parametrize("key", STATE)
def test_loading_and_predicting_change_no_global_state(import_report, key):
    assert import_report[0]["use"][key] is True, f"from_pretrained/predict changed {key}"


def test_import_is_lazy_offline_and_quiet(import_report, model_dir, small):
    report, out = import_report
    # the fresh process read ``small`` as a PNG (lossless): it finds what this process finds
    assert report["faces"] == {name: len(build(model_dir, name).predict(small)) for name in IMPORT_DETECTORS}
    assert report["faces"]["none"] == 1
    assert not report["onnxruntime_imported"]  # onnxruntime loads with the first model
    assert report["emofer_handlers"] == ["NullHandler"] and report["emofer_propagates"] is True
    assert report["severity_calls"] == []
    assert out.stdout.count("\n") == 1  # only the report: import and predict print nothing


def test_only_onnxruntime_writes_its_device_id(import_report):
    """``import onnxruntime`` (1.2x) writes a telemetry device id under XDG_CACHE_HOME unless
    ORT_DISABLE_TELEMETRY=1; emofer itself writes nothing (see docs/errors.md)."""
    written = import_report[0]["onnxruntime_files"]
    assert all(path.startswith("xdg/Microsoft") for path in written), written


# -- the memory benchmark runs ---------------------------------------------------------------------


def test_memory_benchmark_script_runs(tmp_path, model_dir):
    out = tmp_path / "memory.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--model", str(model_dir), "--n", "200",
                           "--every", "100", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["predictions"] == 200 and len(result["samples"]) == 3
    assert {"start_mib", "end_mib", "max_mib", "growth_mib", "command"} <= set(result)
