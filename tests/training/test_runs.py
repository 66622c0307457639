"""training/runs.py: the one reader and writer of a run folder."""

from __future__ import annotations

import json

import pytest

from emofer.config import InputSpec, ModelConfig
from emofer.preprocess import Normalization
from training import data
from training.runs import Run, RunError, draft_config, fresh_state

RECIPE = {"name": "tiny", "dataset": "fer2013", "classes": "fer5", "network": "baseline", "epochs": 2,
          "command": "training/train.py --recipe tiny --out RUN"}


def test_draft_config_defaults_to_todays_input():
    config = draft_config(RECIPE)
    assert config.labels == data.SUBSETS["fer5"] and config.name == "tiny"
    assert config.input == InputSpec() and config.normalize == Normalization()
    assert config.trained_on["recipe"] == "tiny" and config.trained_on["dataset"] == "fer2013"
    assert config.trained_on["command"] == "python -m training.train --recipe tiny --out RUN"


def test_draft_config_takes_the_recipes_input_and_checks_it():
    config = draft_config({**RECIPE, "input": {"height": 40, "width": 40, "channels": 3},
                           "normalize": {"mean": 0.5, "std": 0.25}})
    assert config.input.size == (40, 40) and config.input.channels == 3
    assert config.normalize == Normalization(mean=0.5, std=0.25)
    with pytest.raises(RunError, match="too small"):
        draft_config({**RECIPE, "input": {"height": 4, "width": 4}})
    with pytest.raises(RunError, match="NHWC"):
        draft_config({**RECIPE, "input": {"layout": "NCHW"}})


def test_run_writes_and_reads_its_files(tmp_path):
    run = Run(tmp_path / "run")
    assert run.state == fresh_state() and run.history == [] and run.best_epoch == 0
    with pytest.raises(FileNotFoundError, match="is .* a run folder"):
        run.recipe  # noqa: B018
    config = run.start(RECIPE)
    assert ModelConfig.load(run.path / "config.json") == config == run.config
    assert run.recipe == RECIPE and run.classes == data.SUBSETS["fer5"] and run.dataset == "fer2013"
    run.write_state({**fresh_state(), "epoch": 2, "best_epoch": 1, "train_seconds": 12.34,
                     "history": [{"epoch": 1}, {"epoch": 2}]})
    assert run.best_epoch == 1 and len(run.history) == 2
    assert (run.best.name, run.last.name) == ("best.keras", "last.keras")
    trained_on = run.trained_on("best.keras", tta_flip=True, ensemble_with=["other"])
    assert list(trained_on)[:9] == ["dataset", "split", "selected_on", "recipe", "network", "epochs", "best_epoch",
                                    "checkpoint", "train_seconds"]
    assert trained_on["epochs"] == 2 and trained_on["train_seconds"] == 12.3 and trained_on["ensemble_with"] == ["other"]


def test_a_resumed_run_keeps_its_preprocessing(tmp_path):
    run = Run(tmp_path)
    run.start(RECIPE)
    run.write_state({**fresh_state(), "epoch": 1})
    run.start({**RECIPE, "command": "again"})  # command, machine and versions may change
    assert run.recipe["command"] == "again"
    with pytest.raises(RunError, match="other input"):
        run.start({**RECIPE, "input": {"height": 40, "width": 40}})


def test_an_old_run_folder_gets_its_draft_from_recipe_json(tmp_path):
    """Folders from before config.json (recipe.json, state.json, *.keras) read as they always did."""
    (tmp_path / "recipe.json").write_text(json.dumps({**RECIPE, "classes": ["neutral", "happiness"],
                                                      "keras": "3.0.0", "backend": "torch"}))
    config = Run(tmp_path).config
    assert config.labels == ("neutral", "happy") and config.input == InputSpec()
    assert config.trained_on["keras"] == "3.0.0" and config.trained_on["backend"] == "torch"
    assert not (tmp_path / "config.json").exists()
