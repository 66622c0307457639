"""Distillation targets (training/distill.py) and batch mixing (training.augment.Mix)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras", reason='training extras not installed: pip install -e ".[train]"')  # training.distill

from tests.conftest import repo_model
from tests.training.conftest import face
from training import data
from training.augment import Mix
from training.distill import blend, soften


# --- soften / blend ---

def test_soften_flattens_and_keeps_the_ranking():
    p = np.array([[0.9, 0.08, 0.02], [0.2, 0.5, 0.3]], np.float32)
    same = soften(p, 1.0)
    flat = soften(p, 2.0)
    np.testing.assert_allclose(same, p, atol=1e-6)
    np.testing.assert_allclose(flat.sum(axis=1), 1.0, atol=1e-6)
    assert (flat.argmax(1) == p.argmax(1)).all()
    assert flat[0, 0] < p[0, 0] and flat[0, 2] > p[0, 2]
    np.testing.assert_allclose(flat[0], np.sqrt(p[0]) / np.sqrt(p[0]).sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        soften(p, 0.0)


def test_blend_mixes_rows_that_sum_to_one():
    hard = np.eye(3, dtype=np.float32)[[0, 2]]
    teacher = np.array([[0.5, 0.5, 0.0], [0.1, 0.1, 0.8]], np.float32)
    out = blend(hard, teacher, 0.25)
    np.testing.assert_allclose(out, [[0.625, 0.375, 0.0], [0.075, 0.075, 0.85]], atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        blend(hard, teacher, 1.5)
    with pytest.raises(ValueError, match="shape"):
        blend(hard, teacher[:, :2], 0.5)


# --- Mix ---

def _indexed_batch(n: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face i is the constant i, its target one-hot i, its weight i + 1: every mixed face's mean
    must equal the target-weighted mean of the indices it came from."""
    x = np.repeat(np.arange(n, dtype=np.float32), 48 * 48).reshape(n, 48, 48, 1)
    return x, np.eye(n, dtype=np.float32), np.arange(1, n + 1, dtype=np.float32)


@pytest.mark.parametrize("cutmix_share", [0.0, 1.0], ids=["mixup", "cutmix"])
def test_mixed_faces_match_their_blended_targets(cutmix_share):
    x, y, w = _indexed_batch()
    mix = Mix(p=1.0, cutmix_share=cutmix_share)
    changed = 0
    for seed in range(8):
        mx, my, mw = mix(x, y, w, np.random.default_rng(seed))
        assert mx.shape == x.shape and my.shape == y.shape and mw.shape == w.shape
        np.testing.assert_allclose(my.sum(axis=1), 1.0, atol=1e-6)
        index = np.arange(len(x), dtype=np.float64)
        np.testing.assert_allclose(mx.mean(axis=(1, 2, 3)), my @ index, atol=1e-4)
        np.testing.assert_allclose(mw, my @ (index + 1), atol=1e-4)
        changed += int(not np.array_equal(mx, x))
        if cutmix_share == 1.0:  # cutmix pastes: every pixel is one source face or the other
            for face_index in range(len(x)):
                assert set(np.unique(mx[face_index])) <= set(np.flatnonzero(my[face_index]).astype(np.float32))
    assert changed >= 6


def test_mix_off_and_without_weights():
    x, y, _ = _indexed_batch()
    mx, my, mw = Mix(p=0.0)(x, y, None, np.random.default_rng(0))
    assert mx is x and my is y and mw is None
    mx, my, mw = Mix(p=1.0, cutmix_share=0.0)(x, y, None, np.random.default_rng(0))
    assert mw is None and not np.array_equal(my, y)


# --- teacher probabilities from real Keras runs ---

def _teacher_run(root: Path, classes: tuple[str, ...], seed: int) -> Path:
    keras = pytest.importorskip("keras", reason="training extras not installed")
    from training import nets

    keras.utils.set_random_seed(seed)
    model = nets.build("baseline", (48, 48, 1), len(classes), filters=(4, 8), convs_per_block=1, dense=8)
    root.mkdir(parents=True)
    model.save(root / "best.keras")
    (root / "recipe.json").write_text(json.dumps({"classes": list(classes)}))
    return root


def _faces() -> data.FaceSet:
    pixels = np.stack([face(seed) for seed in range(6)])
    pixels[:, :, :24] //= 2  # not mirror-symmetric, so flipping changes the prediction
    return data.FaceSet(pixels, np.array([0, 1, 2, 3, 4, 0]), data.SUBSETS["fer5"], "Training")


def test_teacher_probabilities_average_runs_mirrors_and_class_subsets(tmp_path):
    from emofer.preprocess import model_input
    from training import distill, nets
    from training.runs import Run

    faces = _faces()
    five = _teacher_run(tmp_path / "five", data.SUBSETS["fer5"], 1)
    seven = _teacher_run(tmp_path / "seven", data.SUBSETS["fer7"], 2)
    x = model_input(faces.pixels, Run(five).config)  # the teachers' config.json: 48x48 grey, / 255

    def manual(run: Path, classes: tuple[str, ...]) -> np.ndarray:
        model = nets.load(run / "best.keras")
        columns = [classes.index(c) for c in faces.classes]
        views = [model.predict(v, verbose=0)[:, columns] for v in (x, x[:, :, ::-1])]
        return np.mean([v / v.sum(axis=1, keepdims=True) for v in views], axis=0)

    got = distill.teacher_probabilities([five, seven], faces)
    expected = (manual(five, data.SUBSETS["fer5"]) + manual(seven, data.SUBSETS["fer7"])) / 2
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    plain = distill.teacher_probabilities([five], faces, flip=False)
    assert not np.allclose(plain, manual(five, data.SUBSETS["fer5"]), atol=1e-6)  # the mirror counted

    with pytest.raises(ValueError, match="no classes"):
        distill.teacher_probabilities([five], data.FaceSet(faces.pixels, faces.labels, data.SUBSETS["fer7"][:6],
                                                           "Training"))
    with pytest.raises(ValueError, match="at least one teacher"):
        distill.teacher_probabilities([], faces)


def test_a_bundled_model_teaches_through_classify_beside_a_run(tmp_path):
    """An exported emofer model (no Keras run left) is a teacher too: its classify, mirrored, averaged."""
    from emofer import EmotionRecognizer
    from training import distill

    faces = _faces()
    fer7 = str(repo_model("emofer/fer7"))  # a folder, as a teacher is named on the command line
    model = EmotionRecognizer.from_pretrained(fer7)  # a real ONNX session, 7 emotions
    columns = [model.labels.index(c) for c in faces.classes]

    def manual(view: np.ndarray) -> np.ndarray:
        picked = model.classify(view)[:, columns]
        return picked / picked.sum(axis=1, keepdims=True)

    got = distill.teacher_probabilities([fer7], faces)
    expected = (manual(faces.pixels) + manual(faces.pixels[:, :, ::-1])) / 2
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert not distill.is_run(fer7)
    np.testing.assert_allclose(distill.teacher_probabilities([fer7], faces, flip=False), manual(faces.pixels),
                               atol=1e-5)

    run = _teacher_run(tmp_path / "five", data.SUBSETS["fer5"], 4)
    assert distill.is_run(run)
    both = distill.teacher_probabilities([run, fer7], faces)
    np.testing.assert_allclose(both, (distill.teacher_probabilities([run], faces) + got) / 2, atol=1e-5)

    with pytest.raises(ValueError, match="no classes"):  # fer5 cannot teach fear or neutral
        distill.teacher_probabilities(["emofer/fer5"], data.FaceSet(faces.pixels, faces.labels,
                                                                    data.SUBSETS["fer7"][:5], "Training"))
    student = tmp_path / "student"
    student.mkdir()
    first = distill.targets(student, [fer7], faces)
    np.testing.assert_array_equal(distill.targets(student, [fer7], faces), first)  # cached by name
    with pytest.raises(ValueError, match="other faces or teachers"):
        distill.targets(student, [fer7, run], faces)


def test_targets_are_cached_per_run_and_refuse_other_faces(tmp_path):
    from training import distill

    faces = _faces()
    teacher = _teacher_run(tmp_path / "teacher", data.SUBSETS["fer5"], 3)
    run = tmp_path / "student"
    run.mkdir()
    first = distill.targets(run, [teacher], faces, alpha=0.5, temperature=2.0)
    assert (run / distill.CACHE_NAME).exists()
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-5)
    assert (first[np.arange(len(faces)), faces.labels] >= 0.5).all()
    (teacher / "best.keras").unlink()  # a resumed run reads the cache, not the teacher
    np.testing.assert_array_equal(distill.targets(run, [teacher], faces, alpha=0.5, temperature=2.0), first)
    with pytest.raises(ValueError, match="other faces or teachers"):
        distill.targets(run, [teacher], faces.take(np.arange(3)))


def test_train_cli_pairs_teachers_with_a_distill_recipe(tmp_path):
    pytest.importorskip("keras", reason="training extras not installed")
    from training import train

    with pytest.raises(SystemExit, match="no distill block"):
        train.main(["--recipe", "smoke", "--out", str(tmp_path / "run"), "--teacher", str(tmp_path)])
    with pytest.raises(SystemExit, match="--teacher RUN_DIR"):
        train.main(["--recipe", "fer5-distill", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()
