"""training.device: the lossless face codec, the pack, the carry split, the results round trip, and
the device script run here on CPU with a tiny limit (the fake $OUT that unpack turns into runs)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from training import data, device

REPO = Path(__file__).resolve().parents[2]


def _faces(n: int, seed: int = 0) -> np.ndarray:
    """Face-like uint8 images: smooth gradients, noise and a few hard edges (0 and 255 included)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, 48)[None, None, :] * rng.uniform(0.2, 1.0, (n, 1, 1))
    faces = np.clip(ramp + rng.normal(0, 8, (n, 48, 48)), 0, 255).astype(np.uint8)
    faces[:, 10:20, 30:40] = 255
    faces[:, 30:, :5] = 0
    return faces


def test_codec_is_lossless_and_smaller():
    faces = _faces(50)
    blob = device.encode_faces(faces)
    np.testing.assert_array_equal(device.decode_faces(blob, faces.shape), faces)
    assert len(blob) < 0.8 * faces.nbytes
    noise = np.random.default_rng(1).integers(0, 256, (3, 48, 48), np.uint8)  # incompressible, still exact
    np.testing.assert_array_equal(device.decode_faces(device.encode_faces(noise), noise.shape), noise)


def test_pack_decodes_to_what_training_data_loads(tmp_path, monkeypatch):
    faces = data.FaceSet(_faces(12), np.arange(12) % 3, ("angry", "happy", "sad"), "Training",
                         np.random.default_rng(0).dirichlet(np.ones(3), 12).astype(np.float32),
                         tuple(f"train/x/Training_{i:05d}.png" for i in range(12)))
    device.write_pack(tmp_path / "faces.pack", {"fer2013-Training": faces})
    assert device.read_pack(tmp_path / "faces.pack", tmp_path / "packed") == ["fer2013-Training"]
    monkeypatch.setattr(data, "PACKED", str(tmp_path / "packed"))
    loaded = data.load("fer2013", "Training", ("happy", "sad"), soft=True)
    expected = data.subset(faces, ("happy", "sad"))
    np.testing.assert_array_equal(loaded.pixels, expected.pixels)
    np.testing.assert_array_equal(loaded.labels, expected.labels)
    np.testing.assert_allclose(loaded.soft, expected.soft)
    assert loaded.names == expected.names
    with pytest.raises(data.DatasetError, match="EMOFER_PACKED"):
        data.load("fer2013", "PublicTest", ("happy",))


def test_results_round_trip_into_run_folders(tmp_path):
    runs = []
    for name in ("a-s1", "b-s2"):
        run = tmp_path / "there" / name
        run.mkdir(parents=True)
        (run / "recipe.json").write_text(json.dumps({"name": name[0]}))
        (run / "state.json").write_text(json.dumps({"epoch": 3, "best_epoch": 2, "best_val_accuracy": 0.5}))
        (run / "best.keras").write_bytes(os.urandom(1000))
        runs.append(run)
    out = tmp_path / "out"
    out.mkdir()
    names = device.pack_runs(runs, out)
    assert names == ["runs-1.tar"]
    (out / "summary.json").write_text("{}")
    made = device.unpack(out, tmp_path / "here")
    assert sorted(p.name for p in made) == ["a-s1", "b-s2"]
    for run in runs:
        for f in ("recipe.json", "state.json", "best.keras"):
            assert (tmp_path / "here" / run.name / f).read_bytes() == (run / f).read_bytes()
    with pytest.raises(SystemExit, match="exists"):
        device.unpack(out, tmp_path / "here")


def test_unpack_refuses_paths_outside_the_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    inner = tmp_path / "inner.tar.gz"
    evil = tmp_path / "evil.txt"
    evil.write_text("x")
    with tarfile.open(inner, "w:gz") as tar:
        tar.add(evil, arcname="r-s1/../../evil.txt")
    with tarfile.open(out / "runs-1.tar", "w") as tar:
        tar.add(inner, arcname="r-s1.tar.gz")
    with pytest.raises(SystemExit, match="unexpected"):
        device.unpack(out, tmp_path / "runs")


def _fake_wheels(monkeypatch, tmp_path):
    wheel = tmp_path / "wheels" / "keras-0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"w" * 1000)
    monkeypatch.setattr(device, "fetch_wheels", lambda folder, versions: [wheel])
    monkeypatch.setattr(device, "local_versions", lambda: {"keras": "0"})


@pytest.mark.data
def test_prepare_splits_the_pack_over_two_calls_when_one_cannot_carry_it(shared_data, tmp_path, monkeypatch):
    _fake_wheels(monkeypatch, tmp_path)
    monkeypatch.setattr(device, "tree_bytes", lambda: 0)
    monkeypatch.setattr(device, "CARRY_MARGIN", 0)
    args = dict(seeds=[1, 2], limit_train=150, limit_val=50)
    whole = device.prepare(["smoke"], tmp_path / "carry", **args)
    assert whole["parts"] == 1
    limit = int(whole["pack_bytes"] * 0.6) + 1000 + 64 * 1024  # 60% of the faces beside the wheel and scripts
    monkeypatch.setattr(device, "CARRY_LIMIT", limit)
    plan = device.prepare(["smoke"], tmp_path / "carry", **args)
    assert [r["run"] for r in plan["runs"]] == ["smoke-s1", "smoke-s2"]
    assert plan["parts"] == 2 and len(plan["calls"]) == 2
    assert all(call["bytes"] <= limit for call in plan["calls"])
    parts = b"".join((tmp_path / "carry" / f"call{i}" / f"faces.pack.part{i}").read_bytes() for i in (1, 2))
    assert len(parts) == plan["pack_bytes"]
    first = (tmp_path / "carry" / "call1" / "run.sh").read_text()
    assert "--time-only" in first and "pip install" in first
    assert "--time-only" not in (tmp_path / "carry" / "call2" / "run.sh").read_text()
    assert 150 <= plan["splits"]["fer2013-Training"] <= 300  # the faces the two seeds sample, no more


def test_prepare_refuses_a_carry_folder_git_would_commit(tmp_path):
    with pytest.raises(SystemExit, match="not ignored"):
        device.prepare(["smoke"], device.REPO_ROOT / "training" / "carry-here")


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_device_calls_here_on_cpu_then_unpack(shared_data, tmp_path, monkeypatch):
    """The two device commands run locally with a tiny limit (call 1 stages its part and times the
    steps, call 2 trains): call 2's $OUT unpacks into a run folder as training.train writes them."""
    _fake_wheels(monkeypatch, tmp_path)
    monkeypatch.setattr(device, "tree_bytes", lambda: 0)
    monkeypatch.setattr(device, "CARRY_MARGIN", 0)
    args = dict(limit_train=64, limit_val=32, minutes=3)
    whole = device.prepare(["smoke"], tmp_path / "carry", **args)
    monkeypatch.setattr(device, "CARRY_LIMIT", int(whole["pack_bytes"] * 0.6) + 1000 + 64 * 1024)
    plan = device.prepare(["smoke"], tmp_path / "carry", **args)
    assert len(plan["calls"]) == 2
    env = {**os.environ, "KERAS_BACKEND": "torch", "EMOFER_DEVICE_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    for number, call in enumerate(plan["calls"], start=1):
        out = tmp_path / f"out{number}"
        done = subprocess.run(["bash", call["command"].split()[-1]], cwd=REPO, env={**env, "OUT": str(out)},
                              capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    timing = json.loads((tmp_path / "out1" / "timing.json").read_text())
    assert timing["smoke-s1"]["epoch_seconds"] > 0 and timing["smoke-s1"]["epochs_in_budget"] >= 1
    out = tmp_path / "out2"
    assert sorted(p.name for p in out.iterdir()) == ["device.log", "runs-1.tar", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"]["smoke-s1"]["exit"] == 0 and summary["runs"]["smoke-s1"]["epochs"] >= 1
    (run,) = device.unpack(out, tmp_path / "runs")
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["backend"] == "torch" and recipe["command"].startswith("training.train --recipe smoke")
    assert {"recipe.json", "state.json", "best.keras", "train.log"} <= {p.name for p in run.iterdir()}
    run_timing = json.loads((run / "device-timing.json").read_text())
    assert run_timing["epochs"] == recipe["epochs"] >= 1 and run_timing["epoch_seconds"] > 0
