"""emofer.ray on a local Ray (num_cpus=2): the same faces as the sequential path, bad items as rows.

One module-scoped Ray for every test here (starting Ray costs seconds); each job uses one actor
with less than a CPU, so Ray's own read/write tasks always find a CPU on a 2-CPU machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import EXAMPLE_PHOTO, FACES_BOXES, FER_ZIP, ROOT, need
from .video_fixtures import write_face_video

TOLERANCE = 1e-6
#: FER2013 crops pasted into larger frames for the data test (with the photos: a few hundred images).
FER_FRAMES = 240


def test_import_emofer_never_imports_ray() -> None:
    code = "import sys, emofer, emofer.cli; sys.exit('ray' in sys.modules or 'pyarrow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 2 CPUs for this module; shut down after it."""
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')
    pytest.importorskip("ray.data", reason='Ray Data is not installed: pip install -e ".[ray]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def write_corrupt(folder: Path) -> list[Path]:
    """An empty file, a truncated JPEG and a text file named .png: each must become an error row."""
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(EXAMPLE_PHOTO.read_bytes()[:600])
    text = folder / "notes.png"
    text.write_text("not an image\n")
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    return [empty, truncated, text]


def rows_by_file(parquet: Path) -> dict[str, list[dict]]:
    import pyarrow.parquet as pq

    rows = defaultdict(list)
    for row in pq.read_table(parquet).to_pylist():
        rows[row["file"]].append(row)
    return {file: sorted(found, key=lambda r: -1 if r["face_index"] is None else r["face_index"])
            for file, found in rows.items()}


def assert_same_as_sequential(rows: dict[str, list[dict]], images: list[Path], detector: str) -> int:
    """Every readable image has the faces EmotionRecognizer.predict finds (boxes equal, numbers to 1e-6)."""
    from emofer import EmotionRecognizer

    recognizer = EmotionRecognizer.from_pretrained(detector=detector)
    faces_seen = 0
    for path in images:
        faces = recognizer.predict(path)
        found = rows[str(path)]
        if not faces:
            assert len(found) == 1 and found[0]["face_index"] is None and found[0]["box"] is None, path
            assert found[0]["error"] is None
            continue
        assert [row["face_index"] for row in found] == list(range(len(faces))), path
        for row, face in zip(found, faces):
            expected = face.to_dict()
            assert row["box"] == expected["box"] and row["emotion"] == expected["emotion"], path
            assert row["abstained"] == expected["abstained"] and row["error"] is None
            assert row["score"] == pytest.approx(expected["score"], abs=TOLERANCE)
            assert np.allclose(row["landmarks"], expected["landmarks"], atol=TOLERANCE, rtol=0)
            assert row["probabilities"].keys() == expected["probabilities"].keys()
            for label, p in expected["probabilities"].items():
                assert abs(row["probabilities"][label] - p) <= TOLERANCE, (path, label)
            faces_seen += 1
    return faces_seen


def assert_error_rows(rows: dict[str, list[dict]], corrupt: list[Path]) -> None:
    for path in corrupt:
        (row,) = rows[str(path)]
        assert row["error"].startswith("ImageReadError: ") and row["box"] is None, row


def small_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """The example photo, mirrored and halved, a face-less grey image, and three corrupt files."""
    folder.mkdir()
    photo = cv2.imread(str(need(EXAMPLE_PHOTO, "example photo")))
    images = [folder / "photo.jpg", folder / "mirrored.png", folder / "small.png", folder / "grey.png"]
    cv2.imwrite(str(images[0]), photo)
    cv2.imwrite(str(images[1]), cv2.flip(photo, 1))
    cv2.imwrite(str(images[2]), cv2.resize(photo, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(images[3]), np.full((120, 160, 3), 128, np.uint8))
    return images, write_corrupt(folder)


def test_small_folder_equals_sequential_and_reports_corrupt_files(ray_local, tmp_path: Path) -> None:
    from emofer.ray import faces_dataset, write_faces

    images, corrupt = small_folder(tmp_path / "photos")
    report = write_faces(faces_dataset(tmp_path / "photos", detector="auto"), tmp_path / "faces.parquet")
    rows = rows_by_file(tmp_path / "faces.parquet")
    assert set(rows) == {str(p) for p in images + corrupt}
    faces = assert_same_as_sequential(rows, images, "auto")
    assert_error_rows(rows, corrupt)
    assert faces >= 3
    assert (report.items, report.faces, report.failed) == (len(images) + len(corrupt), faces, len(corrupt))
    assert report.reasons == (("ImageReadError", 3),)
    assert "3 failed" in report.summary() and "ImageReadError" in report.summary()


def test_cli_predict_ray_writes_parquet(ray_local, tmp_path: Path, capsys) -> None:
    from emofer.cli import main

    images, corrupt = small_folder(tmp_path / "photos")
    out = tmp_path / "faces.parquet"
    assert main(["predict", str(tmp_path / "photos"), "--ray", "--out", str(out)]) == 1  # 1: some unreadable
    assert "3 failed" in capsys.readouterr().err
    assert set(rows_by_file(out)) == {str(p) for p in images + corrupt}
    assert main(["predict", str(tmp_path / "photos"), "--ray", "--out", str(out)]) == 2  # exists: refused
    assert "already exists" in capsys.readouterr().err


def fer_frames(folder: Path, count: int) -> list[Path]:
    """FER2013 PrivateTest crops (upscaled) pasted into larger grey-noise frames at varied places."""
    rng = np.random.default_rng(0)
    paths = []
    with zipfile.ZipFile(FER_ZIP) as archive:
        names = sorted(n for n in archive.namelist() if "PrivateTest_" in n)[:: 3][:count]
        for i, name in enumerate(names):
            face = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_COLOR)
            size = int(rng.integers(96, 160))
            frame = rng.integers(90, 160, (240, 320, 3), dtype=np.uint8)
            x, y = int(rng.integers(0, 320 - size)), int(rng.integers(0, 240 - size))
            frame[y: y + size, x: x + size] = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
            paths.append(folder / f"fer_{i:04d}.png")
            cv2.imwrite(str(paths[-1]), frame)
    return paths


@pytest.mark.data
def test_hundreds_of_real_images_equal_sequential(ray_local, tmp_path: Path) -> None:
    from emofer.ray import faces_dataset, write_faces

    need(FER_ZIP, "FER2013 archive")
    photos = sorted(need(FACES_BOXES / "images", "faces-boxes photos").glob("*.jpg"))
    folder = tmp_path / "frames"
    folder.mkdir()
    images = [*photos, need(EXAMPLE_PHOTO, "example photo"), *fer_frames(folder, FER_FRAMES)]
    corrupt = write_corrupt(folder)
    report = write_faces(faces_dataset([*images, *corrupt], detector="auto", batch_size=16),
                         tmp_path / "faces.parquet")
    rows = rows_by_file(tmp_path / "faces.parquet")
    faces = assert_same_as_sequential(rows, images, "auto")
    assert_error_rows(rows, corrupt)
    assert len(images) >= 250 and faces >= 200, (len(images), faces)
    assert (report.items, report.faces, report.failed) == (len(images) + len(corrupt), faces, len(corrupt))


def test_video_rows_equal_the_video_table(ray_local, tmp_path: Path, photo_path: Path) -> None:
    import pyarrow.parquet as pq

    from emofer import EmotionRecognizer
    from emofer.ray import video_faces_dataset, write_faces
    from emofer.video import analyze_video, write_table

    video = write_face_video(tmp_path / "clip.mp4", photo_path)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 2048)
    report = write_faces(video_faces_dataset([video, broken], detector="auto"), tmp_path / "video.parquet")
    table = tmp_path / "faces.jsonl"
    recognizer = EmotionRecognizer.from_pretrained(detector="auto")
    write_table(analyze_video(recognizer, video), table, labels=recognizer.labels)
    expected = [json.loads(line) for line in table.read_text().splitlines()]
    rows = pq.read_table(tmp_path / "video.parquet").to_pylist()
    got = sorted((r for r in rows if r["file"] == str(video)),
                 key=lambda r: (r["frame_index"], -1 if r["face_index"] is None else r["face_index"]))
    assert len(got) == len(expected) and report.items == 15 + 1 and report.failed == 1
    for row, want in zip(got, expected):
        assert {k: row[k] for k in ("frame_index", "timestamp_ms", "box", "track_id", "emotion")} == \
            {k: want[k] for k in ("frame_index", "timestamp_ms", "box", "track_id", "emotion")}
        if want["probabilities"] is not None:
            assert all(abs(row["probabilities"][k] - v) <= TOLERANCE for k, v in want["probabilities"].items())
    (error,) = [r for r in rows if r["file"] == str(broken)]
    assert error["error"].startswith("VideoError: ")


def test_example_script_joins_the_cluster_by_address(ray_local, tmp_path: Path) -> None:
    address = ray_local.get_runtime_context().gcs_address
    process = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ray_cluster.py"), "--quick", "--address", address,
         "--out", str(tmp_path / "faces.parquet")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "RAY_ADDRESS": ""},
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert f"joined {address}" in process.stdout and "faces" in process.stdout
    assert (tmp_path / "faces.parquet").is_dir()


def test_quieting_ray_leaves_handlers_it_does_not_own_alone() -> None:
    # A handler the user (or pytest's caplog) put on "ray.data" kept the ERROR level emofer's quieting gave it,
    # so after a Ray run the user's logging dropped every warning (#28).
    import logging

    pytest.importorskip("ray.data", reason='Ray Data is not installed: pip install -e ".[ray]"')
    from emofer.ray import _quiet_ray

    logger = logging.getLogger("ray.data")
    mine = logging.StreamHandler()
    logger.addHandler(mine)
    try:
        _quiet_ray()
        assert mine.level == logging.NOTSET
        ray_console = [h for h in logger.handlers if type(h).__module__.startswith("ray.")]
        assert all(h.level == logging.ERROR for h in ray_console if not isinstance(h, logging.FileHandler))
    finally:
        logger.removeHandler(mine)
