"""The detector registry is the one list of detectors: the runtime, the CLI, training.framing and
benchmarks.detectors read it, and a detector without a measured crop says so when loaded."""

from __future__ import annotations

import logging

import pytest

from emofer import cli
from emofer.detect import NAMES, build_detector, registry
from emofer.recognizer import EmotionRecognizer

from .conftest import EXAMPLE_PHOTO, write_model_folder


def test_names_come_from_the_registry():
    assert NAMES == registry.NAMES == ("auto", "yunet", "haar", "none")
    assert registry.FRAMED == ("haar", "yunet")
    assert registry.entry(" AUTO ") is registry.entry("yunet") is registry.DETECTORS["yunet"]
    assert build_detector("auto").name == build_detector("yunet").name == "yunet"
    assert build_detector("none").name == "none"
    predict = next(a for a in cli._parser()._subparsers._group_actions[0].choices["predict"]._actions
                   if a.dest == "detector")
    assert tuple(predict.choices) == NAMES


def test_training_and_the_benchmark_read_the_registry():
    framing = pytest.importorskip("training.framing", reason="training dependencies missing")
    assert framing.DETECTORS is registry.FRAMED
    assert set(framing.build_detectors(["yunet"], None)) == {"yunet"}
    with pytest.raises(ValueError, match="unknown detector 'none'; use haar, yunet"):
        framing.build_detectors(["none"], None)
    from benchmarks import detectors

    names = [d.name for d in detectors.registry_detectors(detectors.DEFAULT_YUNET)]
    assert names[:2] == ["yunet", "yunet min_face=16"]
    assert set(names) - {"yunet min_face=16"} <= set(registry.FRAMED)


def test_a_detector_without_a_measured_crop_says_so(tmp_path, caplog):
    folder = write_model_folder(tmp_path / "tiny")  # no crop_by_detector: the generic crop for every detector
    with caplog.at_level(logging.WARNING, logger="emofer"):
        EmotionRecognizer.from_pretrained(folder, detector="yunet")
    (record,) = [r for r in caplog.records if "no crop measured" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "the yunet detector" in record.getMessage() and "python -m training.framing" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="emofer"):
        EmotionRecognizer.from_pretrained(folder, detector="none")  # the whole image: nothing to measure
        bundled = EmotionRecognizer.from_pretrained()  # measured for every detector it can use
    assert "no crop measured" not in caplog.text
    assert bundled.predict(EXAMPLE_PHOTO)
