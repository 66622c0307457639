"""emofer.io: every input kind becomes uint8 BGR, or an ImageReadError that says what to do."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emofer.errors import ImageReadError
from emofer.io import as_uint8, load_image


@pytest.fixture
def bgr() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)


def test_path_bytes_and_array_agree(tmp_path, bgr):
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), bgr)
    from_path = load_image(path)
    assert from_path.dtype == np.uint8 and from_path.shape == (40, 60, 3)
    np.testing.assert_array_equal(from_path, bgr)
    np.testing.assert_array_equal(load_image(str(path)), bgr)
    np.testing.assert_array_equal(load_image(path.read_bytes()), bgr)
    np.testing.assert_array_equal(load_image(bgr), bgr)


def test_rgb_order_is_swapped(bgr):
    rgb = bgr[:, :, ::-1]
    np.testing.assert_array_equal(load_image(rgb, color="rgb"), bgr)


@pytest.mark.parametrize("shape", [(30, 20), (30, 20, 1)])
def test_gray_inputs_become_three_equal_channels(shape):
    gray = np.full(shape, 77, np.uint8)
    out = load_image(gray)
    assert out.shape == (30, 20, 3) and (out == 77).all()


def test_bgra_drops_alpha(bgr):
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 9, np.uint8)])
    np.testing.assert_array_equal(load_image(bgra), bgr)


def test_dtype_rules(bgr):
    np.testing.assert_array_equal(as_uint8(bgr.astype(np.uint16) * 257), bgr)
    np.testing.assert_array_equal(as_uint8(bgr.astype(np.float32) / 255.0), bgr)
    np.testing.assert_array_equal(as_uint8(bgr.astype(np.float64)), bgr)
    np.testing.assert_array_equal(as_uint8(bgr.astype(np.int64)), bgr)


def test_non_contiguous_and_read_only_views(bgr):
    view = bgr[::-1, ::2]
    view.setflags(write=False)
    out = load_image(view)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, view)


@pytest.mark.parametrize(
    "bad, words",
    [
        (None, "is None"),
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((5, 5, 2), np.uint8), "shape"),
        (np.zeros((2, 5, 5, 3), np.uint8), "shape"),
        (np.zeros((5, 5), bool), "boolean"),
        (np.full((5, 5), 300, np.int64), "0..255"),
        (np.full((5, 5), np.nan, np.float32), "NaN"),
        (b"not an image at all", "could not be decoded"),
        (b"", "empty"),
        (12345, "cannot read"),
    ],
)
def test_bad_inputs_raise_image_read_error(bad, words):
    with pytest.raises(ImageReadError, match=words):
        load_image(bad)


def test_bad_files(tmp_path, bgr):
    with pytest.raises(ImageReadError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageReadError, match="directory"):
        load_image(tmp_path)
    text = tmp_path / "notes.jpg"
    text.write_text("hello, I am text")
    with pytest.raises(ImageReadError, match="could not be decoded"):
        load_image(text)
    ok, jpeg = cv2.imencode(".jpg", bgr)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg.tobytes()[:40])
    with pytest.raises(ImageReadError):
        load_image(truncated)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        load_image(empty)
