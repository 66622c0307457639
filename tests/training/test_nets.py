"""training/nets.py: the class helpers shared by ensembles (export) and teachers (distill)."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="training extras not installed (pip install -r training/requirements.txt)")

from training import nets  # noqa: E402

SEVEN = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FIVE = ("angry", "disgust", "happy", "sad", "surprise")


def test_pick_classes_takes_the_named_columns_in_the_wanted_order_and_renormalises():
    probabilities = np.array([[0.1, 0.05, 0.2, 0.3, 0.1, 0.15, 0.1]])
    got = np.asarray(nets.pick_classes(probabilities, SEVEN, ("surprise", "angry")))
    np.testing.assert_allclose(got, [[0.6, 0.4]], rtol=1e-6)
    five = np.asarray(nets.pick_classes(probabilities, SEVEN, FIVE))
    np.testing.assert_allclose(five.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(five[0] / five[0, 0], np.array([0.1, 0.05, 0.3, 0.1, 0.15]) / 0.1, rtol=1e-6)
    with pytest.raises(ValueError, match=r"teacher X has no classes \['contempt'\]"):
        nets.pick_classes(probabilities, SEVEN, ("happy", "contempt"), "teacher X")


def test_pick_classes_inside_a_keras_graph_matches_numpy():
    keras.utils.set_random_seed(0)
    model = nets.build("baseline", (48, 48, 1), 7, filters=(4,), convs_per_block=1, dense=8)
    inputs = keras.Input((48, 48, 1))
    graph = keras.Model(inputs, nets.pick_classes(model(inputs), SEVEN, FIVE))
    x = np.random.default_rng(1).normal(size=(4, 48, 48, 1)).astype(np.float32)
    expected = np.asarray(nets.pick_classes(model.predict(x, verbose=0), SEVEN, FIVE))
    np.testing.assert_allclose(graph.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_run_classes_reads_the_recipe_and_says_what_is_missing(tmp_path):
    (tmp_path / "recipe.json").write_text(json.dumps({"classes": list(FIVE)}))
    assert nets.run_classes(tmp_path) == FIVE
    with pytest.raises(FileNotFoundError, match="is .* a run folder"):
        nets.run_classes(tmp_path / "elsewhere")
    # A FER+ run recorded with FER+'s names answers in emofer's, so its exports say "happy".
    (tmp_path / "recipe.json").write_text(json.dumps({"classes": ["neutral", "happiness", "sadness", "anger"]}))
    assert nets.run_classes(tmp_path) == ("neutral", "happy", "sad", "angry")
