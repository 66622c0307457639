"""training.augment.Augment's options that imitate detector crops of real photos."""

from __future__ import annotations

import numpy as np

from tests.training.conftest import face
from training.augment import Augment

FACES = np.stack([face(seed) for seed in range(8)])
STILL = dict(flip=False, rotate_deg=0.0, zoom=0.0, shift=0.0, brightness=0.0, contrast=0.0)


def test_without_the_wild_options_a_still_augment_returns_the_faces_unchanged():
    out = Augment(**STILL)(FACES, np.random.default_rng(0))
    np.testing.assert_array_equal(out, FACES)


def test_each_wild_option_changes_the_faces_and_keeps_shape_and_dtype():
    for option in ({"blur_p": 1.0}, {"downscale_p": 1.0, "downscale_min": 0.3}, {"jpeg_p": 1.0}, {"gamma": 0.5}):
        out = Augment(**STILL, **option)(FACES, np.random.default_rng(1))
        assert out.shape == FACES.shape and out.dtype == np.uint8, option
        assert np.abs(out.astype(int) - FACES).mean() > 0.5, option


def test_wild_augmentation_is_reproducible_from_the_seed():
    augment = Augment(blur_p=0.5, downscale_p=0.5, jpeg_p=0.5, gamma=0.3)
    np.testing.assert_array_equal(augment(FACES, np.random.default_rng(7)), augment(FACES, np.random.default_rng(7)))


def test_a_colour_face_with_equal_channels_augments_as_its_grey_face_does():
    """A colour network trains on FER faces (grey in all three channels) beside web faces in colour:
    each geometric and tonal step must treat the three channels as the grey face, draw for draw."""
    augment = Augment(rotate_deg=15, zoom=0.15, shift=0.1, brightness=0.25, contrast=0.3, blur_p=0.5,
                      downscale_p=0.5, gamma=0.3)
    colour = np.repeat(FACES[..., None], 3, axis=-1)
    grey_out = augment(FACES, np.random.default_rng(3))
    colour_out = augment(colour, np.random.default_rng(3))
    assert colour_out.shape == colour.shape and colour_out.dtype == np.uint8
    np.testing.assert_array_equal(colour_out, np.repeat(grey_out[..., None], 3, axis=-1))


def test_every_option_keeps_a_colour_face_in_colour():
    colour = np.stack([np.dstack([face(seed), face(seed + 50), face(seed + 99)]) for seed in range(4)])
    out = Augment(rotate_deg=10, erase_p=1.0, blur_p=1.0, downscale_p=1.0, jpeg_p=1.0, gamma=0.3)(
        colour, np.random.default_rng(5))
    assert out.shape == colour.shape and out.dtype == np.uint8
    assert np.abs(out[..., 0].astype(int) - out[..., 1]).mean() > 5  # the channels stay apart: still colour
