"""The run's config.json is the one definition of a model's input: change it in the recipe and
training, export and emofer's runtime all follow. Also: a run interrupted after an epoch resumes.

Synthetic faces (``data.load`` replaced), so these run without ../shared; one epoch of a tiny net.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

keras = pytest.importorskip("keras", reason="training extras not installed (pip install -r training/requirements.txt)")
pytest.importorskip("tf2onnx", reason="keras ONNX export needs tf2onnx")

from emofer import EmotionRecognizer  # noqa: E402
from emofer.config import InputSpec, ModelConfig  # noqa: E402
from emofer.preprocess import Normalization, model_input  # noqa: E402
from training import data, export, nets  # noqa: E402
from training import train as training  # noqa: E402
from training.runs import Run  # noqa: E402
from tests.training.conftest import face  # noqa: E402

#: 40x40 colour, normalised around 0.5: every input setting differs from the 48x48 grey default.
INPUT = {"height": 40, "width": 40, "channels": 3}
NORMALIZE = {"scale": 1 / 255, "mean": 0.5, "std": 0.25}
#: One epoch that is also the warm-up (the cosine schedule once failed with zero decay steps).
RECIPE = {"name": "tiny-colour", "dataset": "fer2013", "classes": "fer5", "network": "baseline",
          "network_options": {"filters": [4, 8], "convs_per_block": 1, "dense": 8},
          "epochs": 1, "warmup_epochs": 1, "batch_size": 32, "augment": {}, "patience": 5, "seed": 1,
          "input": INPUT, "normalize": NORMALIZE}
SIZES = {"Training": 96, "PublicTest": 40, "PrivateTest": 20}


def _synthetic(dataset: str, split: str, classes, soft: bool = False, root=None) -> data.FaceSet:
    """A stand-in for data.load: 48x48 grey faces whose brightness follows the label."""
    n = SIZES[split]
    labels = np.arange(n) % len(classes)
    pixels = np.stack([np.clip(face(i + 1000 * len(split)).astype(int) + 10 * label, 0, 255).astype(np.uint8)
                       for i, label in enumerate(labels)])
    return data.FaceSet(pixels, labels, tuple(classes), split)


@pytest.fixture
def synthetic_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "load", _synthetic)


def test_a_recipes_input_reaches_training_export_and_runtime(synthetic_data, tmp_path):
    run = tmp_path / "run"
    training.train(dict(RECIPE), run)
    draft = Run(run).config  # written before epoch one
    assert draft.input == InputSpec(**INPUT) and draft.normalize == Normalization(**NORMALIZE)
    checkpoint = nets.load(run / "best.keras", compile=False)
    assert checkpoint.input_shape[1:] == (40, 40, 3)  # training built the network from the config

    out = tmp_path / "model"
    config = export.export(run, "emofer/tiny-colour", out, framing=None, final=False)
    saved = ModelConfig.load(out / "config.json")
    assert saved == config and saved.input == draft.input and saved.normalize == draft.normalize
    assert saved.trained_on["recipe"] == "tiny-colour" and saved.trained_on["epochs"] == 1
    import onnx

    dims = onnx.load(str(out / "model.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [40, 40, 3]

    faces = _synthetic("fer2013", "PublicTest", draft.labels).pixels  # 48x48 grey crops, resized by both sides
    served = EmotionRecognizer.from_pretrained(out, detector="none").classify(faces)
    trained = checkpoint.predict(model_input(faces, draft), verbose=0)
    assert model_input(faces, draft).shape == (len(faces), 40, 40, 3)
    assert np.abs(served - trained).max() <= 1e-4
    np.testing.assert_array_equal(served.argmax(1), trained.argmax(1))


def test_export_refuses_a_config_that_does_not_fit_the_checkpoint(synthetic_data, tmp_path):
    run = tmp_path / "run"
    training.train(dict(RECIPE), run)
    folder = Run(run)
    folder.write_config(folder.config.with_updates(input=InputSpec(48, 48, 1)))
    with pytest.raises(export.ExportError, match="config.json says 48x48x1"):
        export.export(run, "emofer/x", tmp_path / "model", framing=None, final=False)


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt  # after the run's own callbacks have saved the epoch


def test_an_interrupted_run_resumes_after_its_last_finished_epoch(synthetic_data, tmp_path, monkeypatch):
    recipe = {**RECIPE, "epochs": 2, "input": None, "normalize": None}
    run = tmp_path / "run"
    keep = training.checkpoints
    monkeypatch.setattr(training, "checkpoints", lambda *args: [*keep(*args), _Interrupt()])
    with pytest.raises(KeyboardInterrupt):
        training.train(dict(recipe), run)
    folder = Run(run)
    assert folder.state["epoch"] == 1 and [h["epoch"] for h in folder.history] == [1]
    assert folder.last.is_file() and folder.best.is_file() and folder.best_epoch == 1
    assert not (run / "last.keras.tmp.keras").exists()
    monkeypatch.setattr(training, "checkpoints", keep)

    training.train(dict(recipe), run)  # the same command again
    state = folder.state
    assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
    assert nets.load(folder.last).optimizer.iterations.numpy() == 2 * 3  # 96 faces / 32 a batch, twice
    assert state["best_epoch"] in (1, 2) and state["best_val_accuracy"] == max(h["val_accuracy"] for h in state["history"])
    assert folder.config.input == InputSpec()  # no input in the recipe: today's 48x48 grey
    assert training.train(dict(recipe), run) == folder.best  # finished: nothing more to do
    assert len(Run(run).history) == 2


def test_a_grey_checkpoint_starts_a_colour_network_that_answers_as_it_did(tmp_path):
    """--init-from a grey run into a colour recipe: the first convolution is spread over B, G, R by
    OpenCV's grey weights, so on any colour face the new network answers what the grey one answered
    on that face made grey (up to the grey image's rounding to whole levels)."""
    import cv2

    options = {"stem": [4, 6], "stages": [8], "dense": 8}
    grey = nets.build("sepnet", (24, 24, 1), 3, **options)
    rng = np.random.default_rng(0)
    grey.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in grey.get_weights()])
    grey.save(tmp_path / "grey.keras")
    colour = nets.build("sepnet", (24, 24, 3), 3, **options)
    training.transfer_weights(tmp_path / "grey.keras", colour)

    faces = rng.integers(0, 256, (6, 24, 24, 3), dtype=np.uint8)
    made_grey = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in faces])[..., None]
    want = grey.predict(made_grey.astype(np.float32) / 255, verbose=0)
    got = colour.predict(faces.astype(np.float32) / 255, verbose=0)
    np.testing.assert_allclose(got, want, atol=2e-3)
    first = next(layer for layer in colour.layers if layer.get_weights())
    kernel, grey_kernel = first.get_weights()[0], next(la for la in grey.layers if la.get_weights()).get_weights()[0]
    assert kernel.shape[2] == 3 and grey_kernel.shape[2] == 1
    np.testing.assert_allclose(kernel[:, :, 1] / grey_kernel[:, :, 0], 0.587, rtol=1e-5)  # green weighs most
    np.testing.assert_allclose(kernel.sum(axis=2), grey_kernel[:, :, 0], rtol=1e-5, atol=1e-7)


def test_val_accuracy_mixes_the_two_validation_parts_by_the_recipes_weight():
    """Keras's val_accuracy ignores sample weights (it pooled ~3,400 FER+ faces with ~400 web faces);
    best.keras must follow (1 - val_weight) * main + val_weight * web, as the web block says."""
    model = nets.build("sepnet", (24, 24, 1), 3, stem=[4, 4], stages=[8], dense=8)
    x = np.random.default_rng(1).random((40, 24, 24, 1), np.float32)
    answers = model.predict(x, verbose=0).argmax(1)
    labels = answers.copy()
    web_rows = np.arange(40) >= 30  # 30 main faces, all right; 10 web faces, 2 right
    labels[30:38] = (answers[30:38] + 1) % 3
    parts = training.ValidationParts(x, labels, web_rows, web_weight=0.25)
    parts.set_model(model)
    logs = {"val_accuracy": 32 / 40}
    parts.on_epoch_end(0, logs)
    assert logs["val_main_accuracy"] == 1.0 and logs["val_web_accuracy"] == pytest.approx(0.2)
    assert logs["val_pooled_accuracy"] == 0.8
    assert logs["val_accuracy"] == pytest.approx(0.75 * 1.0 + 0.25 * 0.2)
