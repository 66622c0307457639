"""emofer.validate: the one place input arrays and boxes are checked, with the errors users see."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emofer import io, preprocess, validate
from emofer.detect import base
from emofer.errors import DetectorError, EmoferError, ImageReadError, ParameterError


def test_the_older_names_are_the_same_checks():
    assert io.as_uint8 is validate.as_uint8 and io.COLOR_ORDERS is validate.COLOR_ORDERS
    assert base.check_image is validate.check_bgr
    # one check_pixels: emofer.io's pixel limit (preprocess's old alias of check_uint8 is gone)
    assert not hasattr(preprocess, "check_pixels") and io.check_pixels.__module__ == "emofer.io"


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (5, 7, 3), (5, 7, 4)])
def test_to_bgr_gives_three_channels_and_keeps_bgr_as_is(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    bgr = validate.to_bgr(image)
    assert bgr.shape == (5, 7, 3) and bgr.dtype == np.uint8
    if shape[-1] == 3:
        assert bgr is image
    elif shape[-1] == 4:
        np.testing.assert_array_equal(bgr, image[:, :, :3])
    else:
        np.testing.assert_array_equal(bgr, np.repeat(image.reshape(5, 7, 1), 3, axis=2))


def test_check_uint8_and_check_bgr():
    crop = np.zeros((4, 4, 1), np.uint8)
    assert validate.check_uint8(crop) is crop
    with pytest.raises(ImageReadError, match=r"an image must be a non-empty uint8 .* convert it with emofer.io.as_uint8"):
        validate.check_uint8(np.zeros((4, 4), np.float32), "an image")
    with pytest.raises(ImageReadError, match="a face crop must be"):
        validate.check_uint8(np.zeros((0, 4), np.uint8))
    with pytest.raises(ImageReadError, match=r"face detectors take a uint8 BGR \(H, W, 3\) array, got uint8 with shape \(4, 4\)"):
        validate.check_bgr(np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageReadError, match="got list with shape None"):
        validate.check_bgr([[0]])


def test_as_crops_takes_a_list_or_one_stacked_array():
    stack = np.zeros((2, 6, 5, 3), np.float32)
    crops = validate.as_crops(stack)
    assert len(crops) == 2 and all(c.dtype == np.uint8 and c.flags.c_contiguous for c in crops)
    assert [c.shape for c in validate.as_crops([np.zeros((3, 3, 1), np.uint8)])] == [(3, 3)]
    with pytest.raises(ImageReadError, match="wrap a single crop in a list"):
        validate.as_crops(np.zeros((6, 5), np.uint8))
    with pytest.raises(ImageReadError, match="classify takes a list of crops or an array, got dict"):
        validate.as_crops({})
    with pytest.raises(ImageReadError, match="color must be one of"):
        validate.as_crops([np.zeros((3, 3), np.uint8)], color="hsv")


def test_a_callers_box():
    assert validate.parse_box((1, 2.5, 3, 4)) == (1.0, 2.5, 3.0, 4.0)
    for bad, message in [((0, 0, 10), r"a box must be four numbers \(x, y, w, h\), got \(0, 0, 10\)"),
                         (None, "four numbers"), (("a", 1, 2, 3), "four numbers"), ((0, 0, 1, 1, 0.5), "four numbers"),
                         ((0, 0, -1, 1), r"box \(0, 0, -1, 1\) must have finite values and positive width and height"),
                         ((1e308, 0, 1e308, 5), "finite values")]:
        with pytest.raises(EmoferError, match=message) as info:
            validate.parse_box(bad)
        assert type(info.value) is ParameterError


def test_a_box_functions_row():
    assert validate.parse_box((1, 2, 3, 4, 0.5), source="find") == (1.0, 2.0, 3.0, 4.0, 0.5)
    for bad, message in [(("a", 2, 3, 4), r"find returned \('a', 2, 3, 4\); a box is \(x, y, w, h\) or \(x, y, w, h, score\) numbers"),
                         ((1, 2, 3), "with finite numbers and positive width and height"),
                         ((1, 2, 3, 4, float("nan")), "finite numbers")]:
        with pytest.raises(DetectorError, match=message):
            validate.parse_box(bad, source="find")


def test_image_boxes_are_clipped_to_the_image():
    assert validate.image_boxes([(-5, -5, 20, 20), (70.4, 50, 30, 30)], 80, 60) == [(0, 0, 15, 15), (70, 50, 10, 10)]
    assert validate.image_boxes(np.zeros((0, 4)), 80, 60) == []
    with pytest.raises(EmoferError, match="lies outside the 80x60 image"):
        validate.image_boxes([(90, 0, 5, 5)], 80, 60)
    with pytest.raises(EmoferError, match="boxes must be a list of"):
        validate.image_boxes(5, 80, 60)


def test_box_numbers_takes_any_four_numbers():
    assert validate.box_numbers(np.array([1, -2, 0, 4])) == (1.0, -2.0, 0.0, 4.0)
    with pytest.raises(ParameterError, match=r"a face box must be four numbers \(x, y, w, h\), got None"):
        validate.box_numbers(None)


def test_the_inner_tensor_path_equals_the_checked_one():
    """check_input=False skips only the checks: the same crops give the same tensor, bit for bit."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    policy = preprocess.CropPolicy(margin=0.2)
    crops = [preprocess.crop_face(image, box, policy) for box in [(10, 10, 40, 50), (100, 70, 30, 30)]]
    assert all(np.array_equal(c, preprocess.crop_face(image, box, policy, check_input=False))
               for c, box in zip(crops, [(10, 10, 40, 50), (100, 70, 30, 30)]))
    norm = preprocess.Normalization(mean=0.5, std=0.25)
    for channels in (1, 3):
        checked = preprocess.to_tensor(crops, (48, 48), channels, norm)
        assert np.array_equal(checked, preprocess.to_tensor(crops, (48, 48), channels, norm, check_input=False))
    grey = preprocess.to_tensor([cv2.cvtColor(crops[0], cv2.COLOR_BGR2GRAY)], (48, 48), 1, norm)
    assert np.array_equal(grey[0], preprocess.to_tensor(crops[:1], (48, 48), 1, norm)[0])


def test_gray_from_bgr_is_the_grey_image_to_gray_makes():
    """The weights training and the ensembles use to make a grey face are to_gray's own, to rounding."""
    image = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert abs(float(preprocess.GRAY_FROM_BGR.sum()) - 1.0) < 1e-6
    made = image.astype(np.float32) @ preprocess.GRAY_FROM_BGR
    np.testing.assert_allclose(made, preprocess.to_gray(image), atol=0.51)
