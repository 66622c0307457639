"""config.json parsing: the contract between training and runtime."""

from __future__ import annotations

import json

import pytest

from emofer.config import ModelConfig
from emofer.errors import ModelLoadError
from emofer.preprocess import CropPolicy


def test_round_trip(tmp_path, tiny_model_dir):
    config = ModelConfig.load(tiny_model_dir / "config.json")
    assert config.labels == ("angry", "happy", "sad")
    assert config.input.size == (48, 48)
    config.save(tmp_path / "again.json")
    assert ModelConfig.load(tmp_path / "again.json") == config


def test_crop_by_detector_falls_back():
    config = ModelConfig.from_dict({"labels": ["a", "b"], "crop": {"margin": 0.1},
                                    "crop_by_detector": {"haar": {"margin": 0.0, "shift_y": 0.05}}})
    assert config.crop_for("yunet") == CropPolicy(margin=0.1)
    assert config.crop_for("haar") == CropPolicy(margin=0.0, shift_y=0.05)


@pytest.mark.parametrize(
    "raw, words",
    [
        ({}, "labels"),
        ({"labels": ["only"]}, "at least two"),
        ({"labels": ["a", "a"]}, "distinct"),
        ({"labels": ["a", "b"], "input": {"channels": 2}}, "channels"),
        ({"labels": ["a", "b"], "input": {"bogus": 1}}, "bogus"),
        ({"labels": ["a", "b"], "temperature": 0}, "temperature"),
        ({"labels": ["a", "b"], "format_version": 99}, "upgrade emofer"),
        ({"labels": ["a", "b"], "normalize": {"std": 0}}, "std"),
        ({"labels": ["a", "b"], "crop": {"square": "no"}}, "true or false"),
    ],
)
def test_invalid_configs(raw, words):
    with pytest.raises(ModelLoadError, match=words):
        ModelConfig.from_dict(raw)


def test_unreadable_files(tmp_path):
    with pytest.raises(ModelLoadError, match="missing"):
        ModelConfig.load(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="JSON"):
        ModelConfig.load(tmp_path / "config.json")
    (tmp_path / "config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ModelLoadError, match="object"):
        ModelConfig.load(tmp_path / "config.json")
