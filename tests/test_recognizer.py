"""EmotionRecognizer end to end on real images, real ONNX sessions and the bundled model."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

import emofer
from emofer import EmotionRecognizer, Face, hub
from emofer.detect import yunet
from emofer.errors import EmoferError, ImageReadError
from tests.conftest import EXAMPLE_PHOTO, need, shipped

#: Every model emofer ships: bundled in the wheel, then those moved out of it into the repository's models/.
SHIPPED = sorted(hub.bundled_models()) + sorted(hub.MOVED_MODELS)


@pytest.fixture(scope="module")
def bundled() -> EmotionRecognizer:
    """The default recognizer: no arguments, so the bundled model and the bundled YuNet."""
    return EmotionRecognizer.from_pretrained()


@pytest.fixture
def tiny(tiny_model_dir) -> EmotionRecognizer:
    return EmotionRecognizer.from_pretrained(tiny_model_dir, detector="none")


def test_public_names():
    for name in ("EmotionRecognizer", "Face", "draw", "EmoferError", "ModelLoadError", "ImageReadError"):
        assert hasattr(emofer, name)
    assert callable(emofer.draw)


def test_the_default_recognizer_offline_prints_nothing_and_finds_the_face(tmp_path):
    """from_pretrained() with no arguments, HF_HUB_OFFLINE=1 and empty caches: bundled model and
    YuNet, not a line on stderr (OpenCV 5 would print a WARN line per YuNet it creates)."""
    script = ("import emofer, cv2; log = getattr(cv2.utils, 'logging', cv2); level = log.getLogLevel(); "
              "r = emofer.EmotionRecognizer.from_pretrained(); "
              f"print(r.detector.name, len(r.predict({str(need(EXAMPLE_PHOTO, 'example photo'))!r})), "
              "log.getLogLevel() == level)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "EMOFER_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.split() == ["yunet", "1", "True"]


def test_bundled_default_is_the_real_photo_model_within_the_per_face_budget(bundled):
    assert bundled.detector.name == "yunet" and bundled.detector.weights == yunet.BUNDLED_WEIGHTS
    assert bundled.config.name == "emofer/webmix8x52-balanced-int8"
    assert bundled.config.trained_on["head_refit"]["faces"]["expw-train"] > 3000  # it has seen web faces
    assert bundled.config.trained_on["dataset"].lower() == "ferplus"
    assert bundled.config.trained_on["tta_flip"] and bundled.config.trained_on["quantization"]
    assert bundled.config.trained_on["logit_adjustment"]["tau"] > 0  # says the rare emotions too
    # at least the 7 basic emotions, under emofer's names (FER+ adds contempt)
    assert {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"} <= set(bundled.labels)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_loads_and_speaks_one_emotion_vocabulary(name):
    # Switching models must not rename emotions: ferplus8 says "happy" where FER+ says "happiness".
    # Loading checks model.onnx against the sha256 in config.json, for the moved folders too.
    vocabulary = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt"}
    face = cv2.resize(cv2.imread(str(need(EXAMPLE_PHOTO, "example photo")), cv2.IMREAD_GRAYSCALE), (48, 48))
    recognizer = EmotionRecognizer.from_pretrained(shipped(name), detector="none")
    assert recognizer.config.name == name and set(recognizer.labels) <= vocabulary
    (result,) = recognizer.predict(face)  # detector "none": the whole image is the face
    assert tuple(result.probabilities) == recognizer.labels and result.emotion in vocabulary


def test_predict_on_the_example_photo(bundled):
    faces = bundled.predict(need(EXAMPLE_PHOTO, "example photo"))
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, Face)
    x, y, w, h = face.box
    assert 100 < x < 300 and 50 < y < 250 and 80 < w < 300, face.box
    assert tuple(face.probabilities) == bundled.labels
    assert abs(sum(face.probabilities.values()) - 1) < 1e-4
    assert face.emotion in bundled.labels and face.confidence == max(face.probabilities.values())
    json.dumps(face.to_dict())  # plain Python types only


def test_input_kinds_agree(bundled):
    path = need(EXAMPLE_PHOTO, "example photo")
    bgr = cv2.imread(str(path))
    expected = bundled.predict(path)
    for same in (str(path), path.read_bytes(), bgr, np.ascontiguousarray(bgr[:, :, ::-1])):
        color = "rgb" if same is not bgr and isinstance(same, np.ndarray) else "bgr"
        got = bundled.predict(same, color=color)
        assert [f.box for f in got] == [f.box for f in expected]
        np.testing.assert_allclose(list(got[0].probabilities.values()),
                                   list(expected[0].probabilities.values()), atol=1e-6)


def test_no_face_returns_empty_list(bundled):
    assert bundled.predict(np.full((240, 320, 3), 127, np.uint8)) == []
    assert bundled.predict_batch([np.zeros((50, 50), np.uint8)]) == [[]]


def test_classify_shapes_and_kinds(bundled, fer_faces):
    faces = fer_faces["happy"]
    from_array = bundled.classify(faces)
    from_list = bundled.classify(list(faces))
    from_bgr = bundled.classify([cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in faces])
    bigger = bundled.classify([cv2.resize(f, (96, 96), interpolation=cv2.INTER_NEAREST) for f in faces])
    assert from_array.shape == (len(faces), len(bundled.labels))
    np.testing.assert_allclose(from_array.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(from_array, from_list, atol=1e-6)
    np.testing.assert_allclose(from_array, from_bgr, atol=1e-6)
    np.testing.assert_array_equal(from_array.argmax(1), bigger.argmax(1))
    assert bundled.classify([]).shape == (0, len(bundled.labels))


def test_classify_recognises_real_faces(bundled, fer_faces):
    """Most of a handful of clear PrivateTest faces get their label (happy/surprise are easy)."""
    labels = list(bundled.labels)
    right = sum(int((bundled.classify(fer_faces[c]).argmax(1) == labels.index(c)).sum()) for c in ("happy", "surprise"))
    assert right >= 6, right


def test_classify_rejects_ambiguous_input(bundled):
    with pytest.raises(ImageReadError, match="wrap a single crop"):
        bundled.classify(np.zeros((48, 48), np.uint8))


def test_given_boxes_skip_detection(tiny):
    image = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    faces = tiny.predict(image, boxes=[(10, 10, 40, 40), (-20, -5, 50, 50), (100, 80, 60, 60)])
    assert [f.box for f in faces] == [(10, 10, 40, 40), (0, 0, 30, 45), (100, 80, 20, 20)]
    assert all(f.score is None for f in faces)
    for bad in ([(200, 200, 10, 10)], [(0, 0, -5, 10)], [(0, 0, 10)], [(0, 0, np.nan, 10)]):
        with pytest.raises(EmoferError):
            tiny.predict(image, boxes=bad)


def test_whole_image_detector(tiny):
    faces = tiny.predict(np.zeros((30, 40), np.uint8))
    assert len(faces) == 1 and faces[0].box == (0, 0, 40, 30)


def test_threads_give_identical_results(bundled, photo_path):
    image = cv2.imread(str(photo_path))
    expected = [f.to_dict() for f in bundled.predict(image)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: [f.to_dict() for f in bundled.predict(image)], range(16)))
    assert all(r == expected for r in results)


def test_min_confidence_marks_unsure_faces_and_keeps_the_best_guess(tiny_model_dir):
    image = np.random.default_rng(3).integers(0, 255, (60, 60, 3), dtype=np.uint8)
    plain = EmotionRecognizer.from_pretrained(tiny_model_dir, detector="none")
    (face,) = plain.predict(image)
    assert not face.abstained and face.to_dict()["abstained"] is False
    for threshold, abstains in ((face.confidence - 1e-3, False), (min(1.0, face.confidence + 1e-3), True)):
        strict = EmotionRecognizer.from_pretrained(tiny_model_dir, detector="none", min_confidence=threshold)
        for recognizer in (strict, pickle.loads(pickle.dumps(strict))):
            (judged,) = recognizer.predict(image)
            assert judged.abstained is abstains and judged.to_dict()["abstained"] is abstains
            assert judged.emotion == face.emotion and judged.probabilities == face.probabilities
    assert "min_confidence=" in repr(strict) and "min_confidence" not in repr(plain)
    for bad in (1.5, -0.1, float("nan"), True, "0.5"):
        with pytest.raises(EmoferError, match="between 0 and 1"):
            EmotionRecognizer.from_pretrained(tiny_model_dir, detector="none", min_confidence=bad)


def test_pickle_round_trip(tiny):
    image = np.random.default_rng(3).integers(0, 255, (60, 60, 3), dtype=np.uint8)
    clone = pickle.loads(pickle.dumps(tiny))
    assert clone.labels == tiny.labels
    assert [f.to_dict() for f in clone.predict(image)] == [f.to_dict() for f in tiny.predict(image)]


def test_min_face_reaches_yunet_and_survives_pickling(tiny_model_dir, monkeypatch, caplog):
    from emofer.detect import yunet

    from tests.conftest import YUNET

    monkeypatch.setenv(yunet.ENV_VAR, str(need(YUNET, "YuNet weights")))
    small = EmotionRecognizer.from_pretrained(tiny_model_dir, detector="yunet", min_face=16)
    assert small.detector.min_face == 16 and small.detector.working_scale(640, 480) == 1.0
    assert pickle.loads(pickle.dumps(small)).detector.min_face == 16
    assert EmotionRecognizer.from_pretrained(tiny_model_dir, detector="auto").detector.min_face == yunet.MIN_FACE
    EmotionRecognizer.from_pretrained(tiny_model_dir, detector="none", min_face=20)
    assert "min_face applies to the yunet detector only; none ignores it" in caplog.text
    given = yunet.YuNetDetector(str(YUNET))
    assert EmotionRecognizer.from_pretrained(tiny_model_dir, detector=given, min_face=16).detector is given
    assert given.min_face == yunet.MIN_FACE and "pass it to your YuNetDetector's constructor" in caplog.text
    with pytest.raises(EmoferError, match="min_face must be a positive number of pixels"):
        EmotionRecognizer.from_pretrained(tiny_model_dir, detector="yunet", min_face=0)


def test_int8_variants_agree_with_their_float_models(fer_faces):
    for name in ("emofer/fer5", "emofer/fer7"):
        full = EmotionRecognizer.from_pretrained(shipped(name), detector="none")
        small = EmotionRecognizer.from_pretrained(shipped(f"{name}-int8"), detector="none")
        assert small.labels == full.labels and small.config.temperature == full.config.temperature
        assert small.config.trained_on["quantization"]["from_sha256"] == full.config.model_sha256
        faces = np.concatenate(list(fer_faces.values()))
        a, b = full.classify(faces), small.classify(faces)
        assert (a.argmax(1) == b.argmax(1)).mean() >= 0.9 and np.abs(a - b).max() < 0.2
        # the reported PrivateTest accuracy stays within half a point of the float model's
        drop = full.config.metrics["PrivateTest"]["accuracy"] - small.config.metrics["PrivateTest"]["accuracy"]
        assert drop <= 0.005


def test_fer5_is_bundled_too():
    rec = EmotionRecognizer.from_pretrained("emofer/fer5", detector="none")
    assert rec.labels == ("angry", "disgust", "happy", "sad", "surprise")


@pytest.mark.data
@pytest.mark.parametrize("name", SHIPPED)
def test_classify_reproduces_the_reported_accuracy(name):
    """emofer's classify on every PrivateTest face gives, to the 4th decimal, the accuracy that
    training/evaluate.py wrote into the shipped config.json (same preprocessing, same figure)."""
    data = pytest.importorskip("training.data", reason="training/ is not importable from here")
    rec = EmotionRecognizer.from_pretrained(shipped(name), detector="none")
    dataset = rec.config.trained_on.get("dataset", "fer2013")
    need(data.DATA_ROOT / data.ARCHIVES[dataset], f"{dataset} archive")
    faces = data.load(dataset, "PrivateTest", rec.labels)
    accuracy = float((rec.classify(faces.pixels).argmax(1) == faces.labels).mean())
    assert round(accuracy, 4) == rec.config.metrics["PrivateTest"]["accuracy"]
    assert len(faces) == rec.config.metrics["PrivateTest"]["n"]


# -- LoadSpec: every load option once -------------------------------------------------------------


def test_from_pretrained_takes_exactly_the_fields_of_load_spec():
    """A new load option is a LoadSpec field and the from_pretrained keyword of the same name and default."""
    import dataclasses
    import inspect

    from emofer.recognizer import LoadSpec

    keywords = [(p.name, p.default) for p in inspect.signature(EmotionRecognizer.from_pretrained).parameters.values()]
    assert keywords == [(f.name, f.default) for f in dataclasses.fields(LoadSpec)]


def test_the_load_spec_survives_pickling_without_the_token(tiny_model_dir):
    from dataclasses import FrozenInstanceError, replace

    image = np.random.default_rng(5).integers(0, 255, (60, 60, 3), dtype=np.uint8)
    rec = EmotionRecognizer.from_pretrained(
        str(tiny_model_dir), detector="none", providers=["CPUExecutionProvider"], threads=1, allow_spinning=True,
        local_files_only=True, min_confidence=0.25, token="hf_not_pickled",
    )
    assert rec.spec.providers == ("CPUExecutionProvider",) and rec.min_confidence == 0.25
    with pytest.raises(FrozenInstanceError):
        rec.spec.threads = 2
    clone = pickle.loads(pickle.dumps(rec))
    assert clone.spec == replace(rec.spec, token=None)
    assert (clone.classifier.threads, clone.classifier.allow_spinning, clone.min_confidence) == (1, True, 0.25)
    assert [f.to_dict() for f in clone.predict(image)] == [f.to_dict() for f in rec.predict(image)]
    assert pickle.loads(pickle.dumps(clone)).spec == clone.spec


def test_a_recognizer_built_by_hand_pickles_too(tiny_model_dir):
    from emofer.config import ModelConfig
    from emofer.detect import WholeImageDetector
    from emofer.model import OnnxClassifier

    classifier = OnnxClassifier(tiny_model_dir / "model.onnx", ModelConfig.load(tiny_model_dir / "config.json"), threads=1)
    rec = EmotionRecognizer(classifier, WholeImageDetector())
    clone = pickle.loads(pickle.dumps(rec))
    assert clone.spec.model == str(tiny_model_dir / "model.onnx") and clone.classifier.threads == 1
    assert clone.detector.name == "none" and clone.labels == rec.labels


def test_predict_checks_pixels_once_and_never_goes_back_through_classify(bundled, monkeypatch):
    """The inner steps (detect -> crop -> tensor -> model) trust the image load_image checked."""
    from emofer import preprocess, recognizer, validate

    expected = [f.to_dict() for f in bundled.predict(EXAMPLE_PHOTO)]
    checks = {"as_uint8": 0}

    def counted(array, color="bgr"):
        checks["as_uint8"] += 1
        return validate.as_uint8(array, color)

    def refuse(*args, **kwargs):
        raise AssertionError("an inner step checked or classified again")

    monkeypatch.setattr(EmotionRecognizer, "classify", refuse)
    monkeypatch.setattr(recognizer, "as_crops", refuse)
    monkeypatch.setattr(preprocess, "check_uint8", refuse)
    monkeypatch.setattr(emofer.io, "as_uint8", counted)
    image = cv2.imread(str(EXAMPLE_PHOTO))
    assert [f.to_dict() for f in bundled.predict(image)] == expected
    assert [[f.to_dict() for f in faces] for faces in bundled.predict_batch([image, image])] == [expected, expected]
    assert len(bundled.predict(image, boxes=[(10, 10, 50, 60)])) == 1
    assert checks["as_uint8"] == 4  # once per image handed in, nothing more
