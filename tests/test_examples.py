"""Every example runs in its quick mode, exits 0 and writes what it says it writes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from .conftest import ROOT

EXAMPLES = ROOT / "examples"
TIMEOUT_S = 120


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python examples/NAME.py --quick ARGS`` in ``cwd``; skip when the example skipped itself."""
    process = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", *args],
        cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert process.returncode == 0, f"{name}.py failed:\n{process.stdout}\n{process.stderr}"
    if process.stdout.startswith("skipped:"):
        pytest.skip(f"{name}.py {process.stdout.strip()}")
    return process


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


def test_predict_image(tmp_path: Path) -> None:
    out = tmp_path / "annotated.png"
    process = run_example("predict_image", "--out", str(out), cwd=tmp_path)
    faces = json.loads(process.stdout)
    assert faces and all(set(face["probabilities"]) and face["emotion"] in face["probabilities"] for face in faces)
    image = cv2.imread(str(out))
    assert image is not None and image.shape == cv2.imread(str(EXAMPLES / "images" / "grace_hopper.jpg")).shape


def test_folder_to_csv(tmp_path: Path) -> None:
    out = tmp_path / "faces.csv"
    process = run_example("folder_to_csv", "--out", str(out), cwd=tmp_path)
    with open(out, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert rows, process.stdout
    assert all(row["emotion"] and 0.0 < float(row["confidence"]) <= 1.0 and int(row["w"]) > 0 for row in rows)
    assert f"{len(rows)} faces" in process.stdout


def test_video_file(tmp_path: Path) -> None:
    process = run_example("video_file", "--out-dir", str(tmp_path), cwd=tmp_path)
    assert frame_count(tmp_path / "annotated.mp4") > 0
    with open(tmp_path / "faces.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert rows and {"frame_index", "timestamp_ms", "track_id", "emotion"} <= set(rows[0])
    assert any(row["track_id"] for row in rows), process.stdout


def test_webcam_without_camera_or_window(tmp_path: Path) -> None:
    out = tmp_path / "webcam.mp4"
    process = run_example("webcam", "--out", str(out), cwd=tmp_path)
    assert frame_count(out) > 0
    assert "no window" in process.stdout


def test_hub_model_offline_with_revision(tmp_path: Path) -> None:
    process = run_example("hub_model", cwd=tmp_path)
    assert "at revision v1 from" in process.stdout and "snapshots" in process.stdout
    assert "revision v2 (not cached) -> ModelLoadError" in process.stdout


def test_custom_detector(tmp_path: Path) -> None:
    process = run_example("custom_detector", cwd=tmp_path)
    assert "1. detector=yunet_faces" in process.stdout and "2. predict(image, boxes=...)" in process.stdout
