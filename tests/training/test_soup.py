"""training/soup.py: weight averaging of runs of one network."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="training extras not installed (pip install -r training/requirements.txt)")

from training import nets, soup  # noqa: E402
from training.runs import Run  # noqa: E402


def _net(seed: int, filters=(4, 8)) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return nets.build("baseline", (48, 48, 1), 5, filters=filters, convs_per_block=1, dense=8)


def test_average_is_the_mean_of_every_weight_and_a_working_network():
    a, b = _net(1), _net(2)
    mean = soup.average([a, b])
    for got, wa, wb in zip(mean.get_weights(), a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(got, (wa + wb) / 2, rtol=1e-6, atol=1e-7)
    x = np.random.default_rng(0).normal(size=(3, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(soup.average([a, a]).predict(x, verbose=0), a.predict(x, verbose=0), atol=1e-6)
    assert a.get_weights()[0] is not mean.get_weights()[0]  # the ingredients are left as they were
    with pytest.raises(ValueError, match="not the same network"):
        soup.average([a, _net(3, filters=(4, 16))])


def test_write_run_is_a_run_folder_export_reads(tmp_path):
    runs = []
    for number, seconds in ((1, 100.0), (2, 50.0)):
        run = tmp_path / f"run{number}"
        run.mkdir()
        (run / "recipe.json").write_text(json.dumps({"name": f"r{number}", "classes": ["happy", "sad"], "dataset": "fer2013"}))
        (run / "state.json").write_text(json.dumps({"epoch": 3, "best_epoch": 2, "train_seconds": seconds,
                                                    "history": [{"epoch": 1}]}))
        runs.append(run)
    best = soup.write_run(soup.average([_net(1), _net(2)]), runs, {"soup": 0.5}, tmp_path / "soup", "python -m training.soup x")
    recipe = json.loads((tmp_path / "soup" / "recipe.json").read_text())
    state = json.loads((tmp_path / "soup" / "state.json").read_text())
    assert recipe["soup"] == [str(r) for r in runs] and recipe["command"] == "python -m training.soup x"
    assert state["train_seconds"] == 150.0 and state["history"] == [{"epoch": 1}]
    assert nets.load(best).count_params() == _net(1).count_params()
    config = Run(tmp_path / "soup").config  # the ingredients' draft, under the soup's name
    assert config.labels == ("happy", "sad") and config.name == recipe["name"] == config.trained_on["recipe"]
    assert (tmp_path / "soup" / "config.json").is_file()
