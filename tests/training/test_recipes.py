"""Every recipe in training/recipes names a real network, options it accepts, classes and blocks
that construct, so a typo fails here instead of an hour into a background run."""

from __future__ import annotations

from pathlib import Path

import pytest

keras = pytest.importorskip("keras", reason="training extras not installed (pip install -r training/requirements.txt)")

from training import data, nets  # noqa: E402
from training.augment import Augment, Mix  # noqa: E402
from training.mixing import Web  # noqa: E402
from training.train import RECIPES, load_recipe, recipe_classes  # noqa: E402

ALL = sorted(p.stem for p in RECIPES.glob("*.json"))
KNOWN = {"web", "description", "dataset", "classes", "soft_labels", "network", "network_options", "epochs",
         "warmup_epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "class_weight_power",
         "augment", "mix", "distill", "second_labels", "patience", "seed", "limit_train", "limit_val", "init_from", "name"}


def test_the_recipe_folder_is_not_empty():
    assert {"fer5-baseline", "smoke", "fer5-effnet"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_recipe_builds_its_network_and_blocks(name):
    recipe = load_recipe(name)
    assert not set(recipe) - KNOWN, f"{name}: unknown keys {sorted(set(recipe) - KNOWN)}"
    assert recipe["dataset"] in data.ARCHIVES
    classes = recipe_classes(recipe)
    assert len(classes) >= 2
    model = nets.build(recipe["network"], (48, 48, 1), len(classes), **recipe.get("network_options", {}))
    assert model.output_shape == (None, len(classes))
    assert recipe["epochs"] > recipe.get("warmup_epochs", 1) >= 0
    Augment(**(recipe.get("augment") or {}))
    if recipe.get("mix") is not None:
        Mix(**recipe["mix"])
    if recipe.get("distill") is not None:
        assert set(recipe["distill"]) <= {"alpha", "temperature", "flip", "teachers"}
        assert 0.0 <= recipe["distill"].get("alpha", 0.5) <= 1.0
    if recipe.get("web") is not None:
        Web.from_recipe(recipe["web"])
    if recipe.get("second_labels") is not None:
        block = recipe["second_labels"]
        assert set(block) <= {"dataset", "classes", "weight", "max_distance"}
        assert block.get("dataset", "fer2013") in data.ARCHIVES and set(block["classes"]) <= set(classes)
        assert 0.0 <= block.get("weight", 0.3) <= 1.0


def test_load_recipe_names_the_known_ones_when_asked_for_a_missing_one():
    with pytest.raises(SystemExit, match="known recipes: .*fer5-baseline"):
        load_recipe("no-such-recipe")
    assert Path(RECIPES / "smoke.json").is_file()
