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
