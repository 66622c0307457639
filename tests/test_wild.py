"""benchmarks.wild: the expw-dev protocol end to end (needs ../shared/data/expw-dev.zip)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import wild
from emofer import EmotionRecognizer
from tests.conftest import DATA, need, repo_model


@pytest.mark.data
def test_wild_scores_a_subset_of_expw_dev_and_writes_its_report(tmp_path, capsys):
    archive = need(DATA / "expw-dev.zip", "expw-dev")
    out = tmp_path / "wild"
    assert wild.main(["--every", "60", "--archive", str(archive), "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())["results"][0]
    assert result["faces"] == math.ceil(729 / 60)
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["detector_recall"] <= 1.0
    assert sum(sum(row.values()) for row in result["confusion"].values()) == result["faces"]
    right = sum(result["confusion"][e].get(e, 0) for e in wild.EMOTIONS)
    assert result["accuracy"] == round(right / result["faces"], 4)
    assert "| label |" in out.with_suffix(".md").read_text()
    assert "accuracy" in capsys.readouterr().out


def test_read_faces_groups_labelled_boxes_by_photo():
    archive = need(DATA / "expw-dev.zip", "expw-dev")
    photos = wild.read_faces(archive)
    assert sum(len(faces) for faces in photos.values()) == 729 and len(photos) == 700
    assert {f.label for faces in photos.values() for f in faces} == set(wild.EMOTIONS)


def test_perface_times_a_model_by_name_even_one_moved_out_of_the_wheel(capsys, tmp_path):
    from benchmarks import perface

    repo_model("emofer/fer5-int8")  # no longer bundled: benchmarks read the name from models/
    median, fastest, slowest = perface.per_face_ms("emofer/fer5-int8")
    assert 0.0 < fastest <= median <= slowest
    out = tmp_path / "perface.json"
    assert perface.main(["emofer/fer5-int8", "--out", str(out)]) == 0 and "ms per face" in capsys.readouterr().out
    row = json.loads(out.read_text())["results"][0]
    assert row["model"] == "emofer/fer5-int8" and 0.0 < row["fastest"] <= row["ms_per_face"] <= row["slowest"]


@pytest.mark.data
def test_adjust_grid_scores_every_adjustment_and_chooses_by_the_rule(tmp_path, capsys):
    from benchmarks import adjust_grid

    archive = need(DATA / "expw-dev.zip", "expw-dev")
    need(DATA / "ferplus.zip", "FER+")
    need(DATA / "expw-train.zip", "expw-train (the web prior)")
    folder = repo_model("emofer/wild8-int8")  # no longer bundled: the name is read from models/
    out = tmp_path / "grid.json"
    assert adjust_grid.main(["emofer/wild8-int8", "--every", "60", "--archive", str(archive), "--out", str(out),
                             "--ceiling"]) == 0
    grid = json.loads(out.read_text())
    # three priors (training targets, majority labels, the model's answers on web faces), contempt adjusted or excluded
    assert len(grid["rows"]) == 3 * 2 * len(adjust_grid.TAUS)
    assert {r["prior"] for r in grid["rows"]} == {"targets", "majority", "web"}
    plain = [r for r in grid["rows"] if r["tau"] == 0]
    assert len({(r["expw_dev"], r["fer_plus_valid"]) for r in plain}) == 1  # tau 0 is the model as it is
    subset = wild.evaluate(EmotionRecognizer.from_pretrained(folder), wild.read_faces(archive, 60), archive)
    assert plain[0]["expw_dev"] == subset.accuracy
    eligible = [r for r in grid["rows"] if min(r["recall"].values()) >= 0.15]
    assert grid["best"] == (max(eligible, key=lambda r: r["score"]) if eligible else None)
    printed = capsys.readouterr().out
    assert "chosen by the rule" in printed and "not a candidate" in printed
    top = grid["ceiling"]  # weights fitted on the scored faces: never below the model as it is
    assert top["unweighted"] == plain[0]["expw_dev"] and top["expw_dev"] >= top["unweighted"]
    assert top["faces_found"] == subset.detector_recall and set(top["recall"]) == set(wild.EMOTIONS)


@pytest.mark.data
def test_web_curve_reads_features_that_give_predicts_own_answers():
    """benchmarks.web_curve refits a classifier on frozen features: with the model's own classifier,
    its expw-dev answers (face and mirror averaged) are the ones ``predict`` gives, face by face."""
    pytest.importorskip("onnx")
    from benchmarks import web_curve
    from emofer.config import CONFIG_NAME, ModelConfig
    from training.refit import Features

    archive = need(DATA / "expw-dev.zip", "expw-dev")
    folder = repo_model("emofer/ferplus8")  # its graph averages the face and its mirror
    photos = wild.read_faces(archive, every=60)
    recognizer = EmotionRecognizer.from_pretrained(str(folder))
    features = Features(folder, ModelConfig.load(folder / CONFIG_NAME))
    x, truth = web_curve.dev_features(features, recognizer, photos, archive)
    assert x.shape[:2] == (len(truth), 2) and len(truth) == math.ceil(729 / 60)
    said = web_curve.answers(features.weights[features.head.weight], features.weights[features.head.bias], x)
    found = wild.predict_photos(recognizer, photos, archive)
    labels = recognizer.labels
    for row, face in enumerate(f for faces in photos.values() for f in faces):
        boxes = [f.box for f in found[face.path][0]]
        best = wild.match(face.box, boxes)
        assert (best < 0) == bool(np.isnan(x[row, 0, 0]))
        if best >= 0:
            assert labels[said[row]] == found[face.path][0][best].emotion
        assert labels[truth[row]] == face.label


@pytest.mark.parametrize("argv, message", [
    (["--keep", "0"], "--keep takes parts"), (["--keep", "0.5", "1.5"], "--keep takes parts"),
    (["--draws", "0"], "--draws must be 1 or more"), (["--web-share", "0"], "--web-share must be in"),
    (["--out", str(wild.ROOT / "models" / "ferplus8" / "config.json")], "is an input"),
])
def test_web_curve_refuses_a_wrong_argument_before_reading_anything(argv, message, capsys):
    from benchmarks import web_curve

    with pytest.raises(SystemExit) as exit_:
        web_curve.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
