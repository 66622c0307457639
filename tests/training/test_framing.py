"""training/framing.py: scenes put the face where they say, and the policy math inverts expand_box."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from emofer.boxes import iou
from emofer.config import ModelConfig
from emofer.preprocess import CropPolicy, expand_box
from tests.conftest import needs_haar, write_model_folder
from training import data, framing

N_FACES = 20


@pytest.fixture(scope="module")
def public(shared_data):
    faces = data.load("fer2013", "PublicTest", data.SUBSETS["fer5"])
    return faces.take(framing.stratified_sample(faces.labels, N_FACES, seed=0))


@pytest.mark.data
def test_scene_places_face_at_its_true_box(public):
    scenes = framing.build_scenes(public.pixels, seed=0)
    height, width = framing.CANVAS
    for face, scene in zip(public.pixels, scenes):
        x, y, w, h = scene.box
        assert scene.image.shape == (height, width, 3) and scene.image.dtype == np.uint8
        assert w == h and 3 * 48 - 1 <= w <= 4 * 48 + 1
        gap = int(np.ceil(framing.EDGE_GAP * w))
        assert gap <= x <= width - w - gap and gap <= y <= height - h - gap
        grey = scene.image[:, :, 0]
        # exactly the enlarged crop inside the box ...
        np.testing.assert_array_equal(grey[y:y + h, x:x + w], cv2.resize(face, (w, h), interpolation=cv2.INTER_CUBIC))
        # ... which shrinks back to the FER2013 face, better than a box one FER pixel off does
        def error(dx: int, dy: int) -> float:
            crop = grey[y + dy:y + dy + h, x + dx:x + dx + w]
            return float(np.abs(cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA).astype(int) - face).mean())

        step = int(round(w / 48))
        assert error(0, 0) < 6.0
        assert error(0, 0) < min(error(step, 0), error(-step, 0), error(0, step), error(0, -step))
        # and no edge frames it: the pixels just outside continue the border pixels
        for inside, outside in ((grey[y, x:x + w], grey[y - 1, x:x + w]), (grey[y + h - 1, x:x + w], grey[y + h, x:x + w]),
                                (grey[y:y + h, x], grey[y:y + h, x - 1]), (grey[y:y + h, x + w - 1], grey[y:y + h, x + w])):
            assert np.abs(inside.astype(int) - outside).mean() < 4.0


@pytest.mark.data
def test_scenes_are_reproducible(public):
    a, b = framing.build_scenes(public.pixels[:3], seed=5), framing.build_scenes(public.pixels[:3], seed=5)
    assert [s.box for s in a] == [s.box for s in b]
    assert all(np.array_equal(s.image, t.image) for s, t in zip(a, b))


@pytest.mark.data
@pytest.mark.parametrize("detector", [pytest.param("haar", marks=needs_haar), "yunet"])
def test_measure_and_predict_end_to_end(public, tmp_path, detector):
    """A detector on a few scenes through the real predict path of a tiny model: the report is complete."""
    folder = write_model_folder(tmp_path / "tiny", trained_on={"dataset": "fer2013"})
    detectors = framing.build_detectors([detector], None)
    run = framing.run_split(folder, "PublicTest", detectors, 8, 0, "replicate", None)
    stats = run["detectors"][detector]
    assert run["n"] == 8 and stats["n"] == 8 and 0 <= stats["detected"] <= 8
    assert run["true_box"]["detected"] == 8
    for key in ("baseline", "with_policy"):
        assert stats[key]["detected"] == stats["detected"]
        assert 0.0 <= stats[key]["accuracy"] <= stats["detected"] / 8
    if stats["detected"]:
        assert set(stats["policy"]) == {"margin", "square", "shift_y"}


def test_stratified_sample_keeps_class_shares():
    labels = np.repeat([0, 1, 2], [500, 100, 10])
    index = framing.stratified_sample(labels, 61, seed=0)
    assert len(index) == 61 and len(set(index)) == 61 and (np.diff(index) > 0).all()
    assert np.bincount(labels[index]).tolist() == [50, 10, 1]
    assert np.array_equal(index, framing.stratified_sample(labels, 61, seed=0))


@pytest.mark.parametrize("det", [(130, 90, 140, 140), (95, 120, 170, 170), (118, 104, 120, 150), (100, 100, 150, 150)])
def test_policy_maps_detection_onto_true_box(det):
    """expand_box(detection, policy from the relation) is the true box (square side = max(w, h))."""
    true_box = (100, 100, 150, 150)
    r = framing.relation(true_box, det)
    exact = CropPolicy(margin=(r["scale"] - 1.0) / 2.0, square=True, shift_y=r["shift_y"])
    x, y, w, h = expand_box(det, exact)
    assert abs(w - 150) <= 1 and abs(h - 150) <= 1 and abs(y - 100) <= 1
    assert abs(x - (det[0] + det[2] / 2 - 75)) <= 1  # no shift_x: the centre x stays the detection's
    assert r["shift_y"] == pytest.approx(r["dy"] / r["scale"])
    # the policy of one face is its exact policy rounded to DECIMALS of the side
    rounded = framing.policy_from([r["scale"]], [r["shift_y"]])
    assert rounded.margin == pytest.approx(exact.margin, abs=0.005) and rounded.shift_y == pytest.approx(exact.shift_y, abs=0.005)
    if det[0] + det[2] / 2 == 175:  # centred in x: the rounded policy still lands within 2% of the side
        assert iou(true_box, expand_box(det, rounded)) > 0.96


def test_policy_uses_medians():
    scales, shifts = [0.9, 1.1, 1.2, 1.3, 5.0], [-0.5, 0.01, 0.02, 0.03, 0.9]
    assert framing.policy_from(scales, shifts) == CropPolicy(margin=0.1, square=True, shift_y=0.02)


def test_best_match_needs_overlap():
    assert framing.best_match((0, 0, 10, 10), []) == (-1, 0.0)
    assert framing.best_match((0, 0, 10, 10), [(50, 50, 10, 10), (1, 1, 10, 10)])[0] == 1
    assert framing.best_match((0, 0, 10, 10), [(8, 8, 10, 10)])[0] == -1


def test_replay_detector_returns_recorded_boxes_under_its_name():
    scenes = [framing.Scene(np.full((20, 20, 3), v, np.uint8), (0, 0, 5, 5)) for v in (1, 2)]
    replay = framing.ReplayDetector("yunet", scenes, [["a"], ["b"]])
    assert replay.name == "yunet"
    assert replay.detect(scenes[1].image.copy()) == ["b"]


def test_load_policies_and_model_copy(tmp_path):
    path = tmp_path / "framing.json"
    path.write_text(json.dumps({"crop_by_detector": {"haar": {"margin": 0.05, "square": True, "shift_y": 0.01},
                                                     "yunet": {"margin": -0.03}}}))
    policies = framing.load_policies(path)
    assert policies == {"haar": CropPolicy(0.05, True, 0.01), "yunet": CropPolicy(-0.03, True, 0.0)}
    source = write_model_folder(tmp_path / "tiny")
    copy = framing.model_with_policies(source, policies, tmp_path / "copy")
    config = ModelConfig.load(copy / "config.json")
    assert config.crop_for("haar") == CropPolicy(0.05, True, 0.01) and config.crop_for("none") == CropPolicy()
    assert ModelConfig.load(source / "config.json").crop_by_detector == {}


@pytest.mark.slow  # imports keras
def test_export_reads_crop_policies(tmp_path):
    pytest.importorskip("keras", reason='training extras not installed: pip install -e ".[train]"')
    from training import export

    path = tmp_path / "framing.json"
    path.write_text(json.dumps({"crop_by_detector": {"haar": {"margin": 0.02, "square": True, "shift_y": 0.01}}}))
    assert export.crop_policies(path) == {"haar": CropPolicy(0.02, True, 0.01)}
    assert export.crop_policies(None) == {}
    with pytest.raises(export.ExportError, match="not found"):
        export.crop_policies(tmp_path / "missing.json")
