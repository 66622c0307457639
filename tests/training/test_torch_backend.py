"""The Keras torch backend end to end on CPU: smoke training -> ONNX export -> emofer.

Keras fixes its backend at import, so training runs in a subprocess under KERAS_BACKEND=torch.
Export runs on TensorFlow whatever the environment says (tf2onnx; the .keras file is
backend-agnostic), and emofer must give what the torch-trained network gives on the same faces.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data]

REPO = Path(__file__).resolve().parents[2]
if importlib.util.find_spec("torch") is None:
    pytest.skip('torch is not installed: pip install -e ".[torch]"', allow_module_level=True)
pytest.importorskip("keras", reason='training extras not installed: pip install -e ".[train]"')
pytest.importorskip("tf2onnx", reason="export needs tf2onnx")

#: Trains the smoke recipe on torch, then saves what the torch network gives on PublicTest faces.
TRAIN = """
import sys, keras, numpy as np
from training import data, nets
from training.runs import Run
from training.train import main, recipe_classes, load_recipe
from emofer.preprocess import model_input
assert keras.backend.backend() == "torch", keras.backend.backend()
run = sys.argv[1]
assert main(["--recipe", "smoke", "--out", run]) == 0
faces = data.load("fer2013", "PublicTest", recipe_classes(load_recipe("smoke")))
faces = faces.take(np.linspace(0, len(faces) - 1, 64).astype(int))
model = nets.load(run + "/best.keras", compile=False)
np.save(run + "/torch-probabilities.npy", keras.ops.convert_to_numpy(model(model_input(faces.pixels, Run(run).config))))
np.save(run + "/faces.npy", faces.pixels)
"""


def _env(**extra: str) -> dict[str, str]:
    # one torch thread: on a shared CPU torch's thread pool waits far longer than it computes
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def test_smoke_run_on_torch_exports_and_loads_in_emofer(shared_data, tmp_path):
    from emofer import EmotionRecognizer

    run, model = tmp_path / "run", tmp_path / "smoke5"
    trained = subprocess.run([sys.executable, "-c", TRAIN, str(run)], env=_env(KERAS_BACKEND="torch"), cwd=REPO,
                             capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["backend"] == "torch" and recipe["epochs"] == 1

    # KERAS_BACKEND=torch is inherited on purpose: export must still run on TensorFlow
    exported = subprocess.run([sys.executable, "-m", "training.export", str(run), "--name", "emofer/smoke5",
                               "--out", str(model), "--report", str(tmp_path / "report"), "--no-examples",
                               "--no-framing"], env=_env(KERAS_BACKEND="torch"), cwd=REPO,
                              capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stdout[-2000:] + exported.stderr[-3000:]
    assert "parity on" in exported.stdout and "argmax agrees on all" in exported.stdout

    recognizer = EmotionRecognizer.from_pretrained(model, detector="none")
    config = json.loads((model / "config.json").read_text())
    assert config["trained_on"]["backend"] == "torch"
    served = recognizer.classify(np.load(run / "faces.npy"))
    on_torch = np.load(run / "torch-probabilities.npy")
    assert np.abs(served - on_torch).max() <= 1e-4  # torch-trained weights, TF-exported graph, emofer's pipeline
    np.testing.assert_array_equal(served.argmax(1), on_torch.argmax(1))


def test_train_backend_flag_starts_a_process_on_that_backend(shared_data, tmp_path):
    """--backend overrides KERAS_BACKEND (here: tensorflow asked for under a torch environment)."""
    done = subprocess.run([sys.executable, "-m", "training.train", "--recipe", "smoke", "--out", str(tmp_path),
                           "--backend", "tensorflow", "--limit-train", "64", "--limit-val", "32"],
                          env=_env(KERAS_BACKEND="torch"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "recipe.json").read_text())["backend"] == "tensorflow"
