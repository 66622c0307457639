"""Every recipe in training/recipes names a real network, options it accepts, classes and blocks
that construct, so a typo fails here instead of an hour into a background run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

keras = pytest.importorskip("keras", reason="training extras not installed (pip install -r training/requirements.txt)")

from training import data, nets  # noqa: E402
from training.recipe import KEYS, RECIPES, Recipe, RecipeError  # noqa: E402
from training.train import load_recipe  # noqa: E402

ALL = sorted(p.stem for p in RECIPES.glob("*.json"))


def test_the_recipe_folder_is_not_empty():
    assert {"fer5-baseline", "smoke", "fer5-effnet"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_recipe_loads_and_builds_its_network(name):
    recipe = Recipe.load(name)  # refuses unknown keys and checks every block
    raw = json.loads((RECIPES / f"{name}.json").read_text())
    assert set(raw) <= KEYS and recipe.dataset in data.ARCHIVES
    assert len(recipe.class_names) >= 2
    model = nets.build(recipe.network, (48, 48, 1), len(recipe.class_names), **recipe.network_options)
    assert model.output_shape == (None, len(recipe.class_names))
    assert recipe.epochs > recipe.warmup_epochs >= 0
    assert load_recipe(name) == recipe.to_dict()  # defaults are filled in one place


def test_a_recipe_with_a_typo_or_a_bad_block_is_refused_at_load(tmp_path):
    base = {"dataset": "ferplus", "classes": "ferplus8", "network": "sepnet", "epochs": 3}
    cases = [({"sead": 1}, "unknown keys \\['sead'\\]"), ({"web": {"share": 2}}, "web.share"),
             ({"augment": {"flipp": True}}, "flipp"), ({"distill": {"alfa": 1}}, "distill has unknown keys"),
             ({"second_labels": {"classes": ["bored"]}}, "second_labels"), ({"epochs": 0}, "epochs must be"),
             ({"dataset": "imagenet"}, "dataset 'imagenet'")]
    for extra, message in cases:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({**base, **extra}))
        with pytest.raises(RecipeError, match=message):
            Recipe.load(path)


def test_defaults_are_the_ones_training_used_before_the_schema():
    recipe = Recipe.from_dict({"dataset": "fer2013", "classes": "fer5", "network": "baseline", "epochs": 2})
    assert (recipe.seed, recipe.batch_size, recipe.lr, recipe.weight_decay, recipe.warmup_epochs, recipe.patience) == \
        (1337, 64, 2e-3, 1e-4, 1, 10)


def test_load_recipe_names_the_known_ones_when_asked_for_a_missing_one():
    with pytest.raises(SystemExit, match="known recipes: .*fer5-baseline"):
        load_recipe("no-such-recipe")
    assert Path(RECIPES / "smoke.json").is_file()
