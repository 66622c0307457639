"""The emofer command line, run in-process through main() and once as ``python -m emofer``."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from emofer.cli import main
from emofer.detect import YuNetDetector, yunet

from .conftest import ROOT, TINY_LABELS, YUNET
from .video_fixtures import face_video  # noqa: F401  (fixture)


@pytest.fixture
def real_yunet(monkeypatch):
    """detector="auto" is the bundled YuNet (EMOFER_YUNET unset; no network)."""
    monkeypatch.delenv(yunet.ENV_VAR, raising=False)


@pytest.fixture
def photos(tmp_path, photo_path):
    """A folder with two real photos (one in a sub-folder), a blank image and a broken file."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(photo_path, folder / "group.jpg")
    shutil.copy(photo_path, folder / "sub" / "again.jpg")
    cv2.imwrite(str(folder / "blank.png"), np.zeros((64, 64, 3), np.uint8))
    (folder / "sub" / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("not an image, not picked up from folders")
    return folder


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_csv_over_a_folder_keeps_going_past_unreadable_files(capsys, photos, tiny_model_dir, tmp_path,
                                                                     real_yunet):
    code, out, err = run(capsys, "predict", photos, tmp_path / "missing.jpg", "--model", tiny_model_dir, "--csv")
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0])[:2] == ["file", "x"] and list(rows[0])[-3:] == list(TINY_LABELS)
    files = {os.path.basename(r["file"]) for r in rows}
    assert files == {"group.jpg", "again.jpg", "blank.png"}
    group = [r for r in rows if r["file"].endswith("group.jpg")]
    found = YuNetDetector().detect(cv2.imread(str(photos / "group.jpg")))  # 1 (example photo) or several faces
    assert len(group) == len(found) >= 1
    assert all(r["emotion"] in TINY_LABELS and 0.0 < float(r["score"]) <= 1 for r in group)
    blank = [r for r in rows if r["file"].endswith("blank.png")]
    assert len(blank) == 1 and blank[0]["emotion"] == ""  # an image without faces still gets its row
    assert "broken.jpg" in err and "missing.jpg" in err and "2 of 5 inputs could not be read" in err
    assert "notes.txt" not in out + err


def test_predict_json_lines(capsys, photo_path, tiny_model_dir, real_yunet):
    code, out, err = run(capsys, "predict", photo_path, "--model", tiny_model_dir, "--json")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert records and all(r["file"] == str(photo_path) for r in records)
    assert set(records[0]["probabilities"]) == set(TINY_LABELS) and len(records[0]["box"]) == 4
    assert records[0]["emotion"] == max(records[0]["probabilities"], key=records[0]["probabilities"].get)


def test_predict_min_confidence_marks_unsure_faces(capsys, photo_path, tiny_model_dir, real_yunet):
    code, out, _ = run(capsys, "predict", photo_path, "--model", tiny_model_dir, "--csv", "--min-confidence", "1")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows and all(r["abstained"] == "1" and r["emotion"] in TINY_LABELS for r in rows)
    code, out, _ = run(capsys, "predict", photo_path, "--model", tiny_model_dir)
    assert code == 0 and "unsure" not in out
    code, out, _ = run(capsys, "predict", photo_path, "--model", tiny_model_dir, "--min-confidence", "1")
    assert code == 0 and "unsure: " in out
    assert main(["predict", str(photo_path), "--min-confidence", "60%"]) == 2
    assert capsys.readouterr().err == ("emofer: error: argument --min-confidence: must be a probability from 0 to 1 "
                                       "(e.g. 0.5), got '60%' (see emofer predict --help)\n")


def test_predict_min_face_sets_how_small_a_face_yunet_looks_for(capsys, photo_path, tiny_model_dir, real_yunet,
                                                                  caplog):
    code, out, _ = run(capsys, "predict", photo_path, "--model", tiny_model_dir, "--json", "--min-face", "16")
    assert code == 0 and out.strip()
    code, _, err = run(capsys, "predict", photo_path, "--model", tiny_model_dir, "--min-face", "0")
    assert code == 2 and "--min-face: must be a positive number of pixels, got 0" in err
    code, _, _ = run(capsys, "predict", photo_path, "--model", tiny_model_dir, "--detector", "none", "--min-face", "20")
    assert code == 0 and "applies to the yunet detector only" in caplog.text


def test_predict_plain_text_and_annotated_copies(capsys, photos, tiny_model_dir, tmp_path):
    out_dir = tmp_path / "annotated"
    code, out, _ = run(capsys, "predict", photos / "group.jpg", photos / "sub", "--model", tiny_model_dir,
                       "--out", out_dir, "--bars")
    assert code == 1  # sub/broken.jpg
    assert "group.jpg: " in out and "%" in out
    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    assert written == ["group.jpg", "sub/again.jpg"]
    original, annotated = cv2.imread(str(photos / "group.jpg")), cv2.imread(str(out_dir / "group.jpg"))
    assert annotated.shape == original.shape and np.abs(annotated.astype(int) - original).mean() > 1


def test_a_model_that_cannot_be_loaded_is_a_clear_error(capsys, photo_path, tmp_path):
    code, out, err = run(capsys, "predict", photo_path, "--model", tmp_path / "no-model")
    assert code == 2 and out == ""
    assert err.startswith("emofer: error:") and "no-model" in err


@pytest.mark.data
def test_video_writes_annotated_video_and_table(capsys, face_video, tiny_model_dir, tmp_path, real_yunet):
    out, table = tmp_path / "annotated.mp4", tmp_path / "faces.csv"
    code, _, err = run(capsys, "video", face_video, "--model", tiny_model_dir, "--out", out, "--table", table,
                       "--every", "2", "--bars")
    assert code == 0 and "8 frames" in err
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 8
    capture.release()
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert sorted({int(r["frame_index"]) for r in rows}) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert all(r["track_id"] for r in rows if int(r["frame_index"]) < 12)


def test_video_needs_an_output_and_a_readable_source(capsys, tiny_model_dir, tmp_path):
    code, _, err = run(capsys, "video", tmp_path / "clip.mp4", "--model", tiny_model_dir)
    assert code == 2 and "--out" in err
    code, _, err = run(capsys, "video", tmp_path / "clip.mp4", "--model", tiny_model_dir, "--table", tmp_path / "t.csv")
    assert code == 2 and "clip.mp4 does not exist" in err


def test_info(capsys, real_yunet):
    code, out, _ = run(capsys, "info")
    assert code == 0
    for key in ("emofer", "numpy", "onnxruntime", "opencv", "huggingface_hub", "bundled models", "cached models"):
        assert f"\n{key} " in "\n" + out
    assert "CPUExecutionProvider" in out and ("GUI:" in out or "headless" in out)
    assert f"yunet (bundled, sha256 checked): {YUNET}" in out
    assert "emofer/webmix8x52-balanced-int8 (default)" in out and "emofer/webmix8-accurate (accurate tier)" in out


def test_download_a_local_model_and_yunet(capsys, tiny_model_dir, real_yunet):
    code, out, _ = run(capsys, "download", tiny_model_dir, "--yunet")
    assert code == 0 and "test/tiny" in out and str(YUNET) in out
    code, _, err = run(capsys, "download")
    assert code == 2 and "emofer download emofer/fer5" in err and "YuNet face detector is bundled" in err


def test_download_offline_is_a_clear_error_and_python_dash_m_works(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "emofer", "download", "someone/not-cached", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "someone/not-cached" in done.stderr and "emofer download" in done.stderr


def test_no_command_prints_help(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "predict" in err
