"""training.evaluate on a real (random-weight) ONNX model and a tiny image-folder dataset."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from emofer import EmotionRecognizer
from emofer.config import ModelConfig
from tests.conftest import write_model_folder
from tests.training.conftest import zip_folder
from training import data, evaluate, paths

LABELS = ("angry", "happy", "sad")
HISTORY = [{"accuracy": 0.3 + 0.05 * e, "loss": 1.5 - 0.1 * e, "val_accuracy": 0.28 + 0.04 * e,
            "val_loss": 1.6 - 0.08 * e, "epoch": e + 1, "seconds": 2.0} for e in range(6)]
ALL_FIGURES = {"confusion_matrix.png", "per_class.png", "reliability.png", "examples.png", "curves.png",
               "distributions.png"}


@pytest.fixture
def model_dir(tmp_path):
    return write_model_folder(tmp_path / "model", LABELS, name="emofer/tiny3", temperature=1.5,
                              trained_on={"dataset": "FER2013"})


@pytest.fixture
def archive(fer_folder, tmp_path, isolated_cache):
    return zip_folder(fer_folder, tmp_path / "fer2013-images.zip")


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "state.json").write_text(json.dumps({"epoch": 6, "best_epoch": 4, "history": HISTORY}))
    return run


def test_evaluation_uses_emofers_probabilities(model_dir, archive):
    result = evaluate.evaluate(model_dir, "PrivateTest", archive)
    faces = data.load("fer2013", "PrivateTest", LABELS, root=archive)
    expected = EmotionRecognizer.from_pretrained(model_dir, detector="none").classify(faces.pixels)
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-7)
    np.testing.assert_array_equal(result.faces.labels, faces.labels)
    assert result.scores.n == len(faces) == 4
    assert result.scores.confusion.sum() == 4
    assert result.scores.accuracy == pytest.approx(np.mean(expected.argmax(1) == faces.labels))
    assert result.headline()["n"] == 4 and set(result.headline()) == {"accuracy", "macro_f1", "weighted_f1",
                                                                     "n", "ece"}


def test_report_files(model_dir, archive, run_dir, tmp_path):
    pytest.importorskip("matplotlib", reason='training extras not installed: pip install -e ".[train]"')
    result = evaluate.evaluate(model_dir, "PrivateTest", archive)
    out = tmp_path / "report"
    markdown = evaluate.write_report(result, out, run_dir, command="python -m training.evaluate X")
    assert {p.name for p in out.iterdir()} == ALL_FIGURES | {"report.json", "report.md"}
    for name in ALL_FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / name).stat().st_size < 200_000, name
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"] == result.scores.accuracy and report["n"] == 4
    assert report["model_sha256"] == json.loads((model_dir / "config.json").read_text())["model_sha256"]
    assert report["command"] == "python -m training.evaluate X"
    assert report["calibration"]["bins"] == 15 and report["ece"] == result.calibration.ece
    assert report["training"]["best_epoch"] == 4 and len(report["training"]["history"]) == 6
    text = markdown.read_text()
    for name in ALL_FIGURES:
        assert f"]({name})" in text
    assert "| angry |" in text and "| weighted |" in text and "| micro |" in text


def test_cli_prints_accuracy_and_skips_curves_without_a_run(model_dir, archive, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason='training extras not installed: pip install -e ".[train]"')
    out = tmp_path / "cli"
    assert evaluate.main([str(model_dir), "--split", "PublicTest", "--out", str(out), "--data", str(archive),
                          "--no-examples"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"emofer/tiny3 PublicTest accuracy \d\.\d{4} on 2 faces", printed)
    assert {p.name for p in out.glob("*.png")} == ALL_FIGURES - {"curves.png", "distributions.png", "examples.png"}
    assert "examples.png" not in (out / "report.md").read_text()


def test_default_report_folder_is_docs_models_short_name(model_dir):
    config = ModelConfig.load(model_dir / "config.json")
    assert paths.default_out(config) == paths.REPO_ROOT / "docs" / "models" / "tiny3"


def test_unknown_dataset_in_config(tmp_path):
    folder = write_model_folder(tmp_path / "m", LABELS, trained_on={"dataset": "AffectNet"})
    with pytest.raises(data.DatasetError, match="affectnet"):
        evaluate.evaluate(folder, "PrivateTest")


def test_another_dataset_is_scored_over_the_emotions_both_name(tmp_path, archive):
    """A FER+-style model scored on FER2013 (image folders): only the shared emotions, renormalised."""
    pytest.importorskip("matplotlib", reason='training extras not installed: pip install -e ".[train]"')
    model = write_model_folder(tmp_path / "plus", ("happy", "contempt", "sad"), name="emofer/plus3",
                               trained_on={"dataset": "ferplus"})
    result = evaluate.evaluate(model, "PrivateTest", archive, dataset="fer2013")
    assert result.scores.labels == ("happy", "sad")  # FER2013's order; contempt dropped
    assert set(result.faces.classes) == {"happy", "sad"} and len(result.faces) == 3
    assert result.probabilities.shape == (3, 2)
    np.testing.assert_allclose(result.probabilities.sum(1), 1.0, atol=1e-6)
    full = EmotionRecognizer.from_pretrained(model, detector="none").classify(result.faces.pixels)
    expected = full[:, [0, 2]] / full[:, [0, 2]].sum(1, keepdims=True)
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-6)
    assert result.dataset == "fer2013"
    out = evaluate.write_report(result, tmp_path / "report", examples=False)
    assert out.read_text().startswith("# emofer/plus3 on fer2013 PrivateTest")
