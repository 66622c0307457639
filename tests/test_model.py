"""OnnxClassifier over real ONNX files: checks at load, batching, temperature."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from emofer.config import ModelConfig
from emofer.errors import ModelLoadError
from emofer.model import OnnxClassifier, softmax
from tests.conftest import write_model_folder


def load(folder, **kwargs) -> OnnxClassifier:
    return OnnxClassifier(folder / "model.onnx", ModelConfig.load(folder / "config.json"), **kwargs)


def test_runs_in_batches_and_rows_sum_to_one(tiny_model_dir):
    model = load(tiny_model_dir)
    tensor = np.random.default_rng(1).random((70, 48, 48, 1), dtype=np.float32)
    whole = model.run(tensor)
    batched = model.run(tensor, batch_size=16)
    assert whole.shape == (70, 3) and whole.dtype == np.float32
    np.testing.assert_allclose(whole.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(whole, batched, atol=1e-6)
    assert model.run(tensor[:0]).shape == (0, 3)


def test_temperature_flattens_but_keeps_order(tmp_path):
    sharp = load(write_model_folder(tmp_path / "a"))
    soft = load(write_model_folder(tmp_path / "b", temperature=3.0))
    tensor = np.random.default_rng(2).random((10, 48, 48, 1), dtype=np.float32)
    p1, p3 = sharp.run(tensor), soft.run(tensor)
    np.testing.assert_array_equal(p1.argmax(1), p3.argmax(1))
    assert (p3.max(1) <= p1.max(1) + 1e-6).all()
    np.testing.assert_allclose(p3, softmax(np.log(p1), 3.0), atol=1e-5)


def test_sha256_mismatch(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["model_sha256"] = "0" * 64
    (tiny_model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="damaged"):
        load(tiny_model_dir)


def test_truncated_and_missing_model(tmp_path, tiny_model_dir):
    data = (tiny_model_dir / "model.onnx").read_bytes()
    (tiny_model_dir / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        load(tiny_model_dir, verify=False)
    (tiny_model_dir / "model.onnx").unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        load(tiny_model_dir)


def test_config_disagreeing_with_graph(tmp_path):
    folder = write_model_folder(tmp_path / "m", labels=("a", "b", "c"))
    config = json.loads((folder / "config.json").read_text())
    wrong_labels = {**config, "labels": ["a", "b", "c", "d"]}
    (folder / "config.json").write_text(json.dumps(wrong_labels))
    with pytest.raises(ModelLoadError, match="4 labels"):
        load(folder)
    wrong_size = {**config, "input": {**config["input"], "height": 64, "width": 64}}
    (folder / "config.json").write_text(json.dumps(wrong_size))
    with pytest.raises(ModelLoadError, match="input of shape"):
        load(folder)


def test_unknown_provider(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="not available"):
        load(tiny_model_dir, providers=["NoSuchExecutionProvider"])


def test_worker_threads_do_not_spin_unless_asked(tiny_model_dir):
    """Spinning onnxruntime threads would hold a core the face detector needs next."""
    import pickle

    from emofer import EmotionRecognizer

    def spinning(classifier: OnnxClassifier) -> str:
        return classifier.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    config = ModelConfig.load(tiny_model_dir / "config.json")
    assert spinning(OnnxClassifier(tiny_model_dir / "model.onnx", config)) == "0"
    assert spinning(OnnxClassifier(tiny_model_dir / "model.onnx", config, allow_spinning=True)) == "1"
    recognizer = EmotionRecognizer.from_pretrained(tiny_model_dir, detector="none", allow_spinning=True)
    assert spinning(pickle.loads(pickle.dumps(recognizer)).classifier) == "1"
