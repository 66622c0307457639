"""FER2013's labels as a second signal for FER+ faces (training/second_labels.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import DATA, need
from tests.training.conftest import face
from training import data, second_labels


def _jpeg(pixels: np.ndarray, quality: int = 75) -> np.ndarray:
    ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE)


def test_match_finds_the_same_image_through_contrast_and_jpeg_and_refuses_strangers():
    faces = np.stack([face(seed) for seed in range(8)])
    order = np.array([5, 2, 7, 0, 3, 6, 1, 4])
    # The other archive: shuffled, contrast stretched and JPEG-compressed, plus two unrelated images.
    stretched = np.clip(faces[order].astype(np.float32) * 1.3 - 30, 0, 255).astype(np.uint8)
    others = np.stack([_jpeg(f) for f in stretched] + [face(100), face(101)[:, ::-1]])
    found = second_labels.match(faces, others)
    assert list(found) == [list(order).index(k) for k in range(8)]
    stranger = np.random.default_rng(3).integers(0, 256, (1, 48, 48), dtype=np.uint8)
    assert list(second_labels.match(stranger, others)) == [-1]
    with pytest.raises(ValueError, match="48x48"):
        second_labels.match(faces[:, :40, :40], others)


def test_blend_moves_weight_onto_the_second_label_only_for_the_named_classes():
    classes = data.SUBSETS["ferplus8"]
    base = np.full((4, 8), 1 / 8, np.float32)
    second = ["fear", "happy", None, "disgust"]
    out = second_labels.blend(base, classes, second, ("disgust", "fear"), 0.4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(out[[1, 2]], base[[1, 2]])  # happy is not named; None matched nothing
    assert out[0, classes.index("fear")] == pytest.approx(0.6 / 8 + 0.4)
    assert out[3, classes.index("disgust")] == pytest.approx(0.6 / 8 + 0.4)
    np.testing.assert_allclose(base, 1 / 8)  # the input is left alone
    with pytest.raises(ValueError, match="weight"):
        second_labels.blend(base, classes, second, ("fear",), 1.5)
    with pytest.raises(ValueError, match="not among"):
        second_labels.blend(base, data.SUBSETS["fer5"], second, ("fear",), 0.4)


@pytest.mark.data
def test_ferplus_faces_find_their_fer2013_labels():
    need(DATA / "ferplus.zip", "FER+ (ferplus.zip)")
    need(DATA / "fer2013-images.zip", "FER2013 (fer2013-images.zip)")
    plus = data.load("ferplus", "PublicTest", data.SUBSETS["ferplus8"])
    fer = data.load("fer2013", "PublicTest", data.SUBSETS["fer7"])
    found = second_labels.labels_from(plus, fer)
    matched = [(label, plus.classes[k]) for label, k in zip(found, plus.labels) if label is not None]
    assert len(matched) >= 0.9 * len(plus)  # the two archives hold the same images
    happy = [second == "happy" for second, first in matched if first == "happy"]
    assert np.mean(happy) > 0.8  # and their labels agree where both are clear
