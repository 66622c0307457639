"""training.refit: the classifier layer of a real emofer graph (the repository's models/) is found, its features tapped
exactly, and a refitted folder loads with only that layer changed."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="training extras not installed (pip install -e '.[train]')")
pytest.importorskip("keras", reason="training extras not installed (pip install -e '.[train]')")

import onnxruntime as ort  # noqa: E402

from emofer import EmotionRecognizer  # noqa: E402
from emofer.config import CONFIG_NAME, MODEL_NAME, ModelConfig  # noqa: E402
from emofer.preprocess import model_input  # noqa: E402
from training import data, expw, refit  # noqa: E402
from tests.conftest import repo_model  # noqa: E402
from training.ensemble import member_folder  # noqa: E402


def _faces(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


@pytest.mark.parametrize("name", ["emofer/wild8", "emofer/ferplus8"])
def test_the_tapped_features_times_the_head_give_the_graphs_own_output(name):
    folder = member_folder(repo_model(name))
    config = ModelConfig.load(folder / CONFIG_NAME)
    features = refit.Features(folder, config)
    weight, bias = features.weights[features.head.weight], features.weights[features.head.bias]
    assert weight.shape == (256, len(config.labels)) and bias.shape == (len(config.labels),)
    faces = _faces(5, 0)

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    # the graph averages the face and its mirror, each through the same (shared) classifier layer
    mine = (softmax(features(faces) @ weight + bias) + softmax(features(faces[:, :, ::-1].copy()) @ weight + bias)) / 2
    session = ort.InferenceSession(str(folder / MODEL_NAME), providers=["CPUExecutionProvider"])
    graph = session.run(None, {session.get_inputs()[0].name: model_input(faces, config)})[0]
    np.testing.assert_allclose(mine, graph, atol=1e-5)


def test_quantised_or_adjusted_models_are_refused():
    with pytest.raises(refit.RefitError, match="float dense layer"):
        refit.find_head(onnx.load(str(member_folder(repo_model("wild8-int8")) / MODEL_NAME)))
    with pytest.raises(refit.RefitError, match="quantised or adjusted"):
        refit.refit(repo_model("wild8-balanced-int8"), "unused", "emofer/x", final=False)


def test_a_refit_changes_only_the_classifier_and_loads(tmp_path, monkeypatch):
    classes = data.SUBSETS["ferplus8"]
    rng = np.random.default_rng(1)

    def load(dataset, split, labels, soft=False, root=None):  # small stand-ins for FER+ (needs ../shared)
        n = 64
        votes = rng.random((n, 8)).astype(np.float32)
        return data.FaceSet(_faces(n, 2 if split == "Training" else 3), votes.argmax(1), classes, split,
                            votes / votes.sum(1, keepdims=True) if soft else None)

    def web(split, labels, policy, size, channels=1):
        labels_ = rng.integers(0, 7, 32)
        return data.FaceSet(_faces(32, 4), labels_, classes, split), expw.Framing(32, 31, 1, 0.6)

    monkeypatch.setattr(data, "load", load)
    monkeypatch.setattr(expw, "load", web)
    out = tmp_path / "refit"
    config = refit.refit(repo_model("wild8"), out, "emofer/wild8-test", web_share=0.6, final=False)
    assert config.trained_on["head_refit"]["from"] == "emofer/wild8" and config.name == "emofer/wild8-test"
    assert config.trained_on["head_refit"]["web_share"] == 0.6 and 0.0 < config.temperature
    before = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(repo_model("wild8") / MODEL_NAME)).graph.initializer}
    after = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(out / MODEL_NAME)).graph.initializer}
    assert before.keys() == after.keys()
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    head = refit.find_head(onnx.load(str(out / MODEL_NAME)))
    assert sorted(changed) == sorted([head.weight, head.bias])
    probabilities = EmotionRecognizer.from_pretrained(out, detector="none").classify(_faces(3, 5))
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
