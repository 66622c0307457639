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
from .video_fixtures import write_face_video, write_truncated_video

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


def video_table(video: Path, **options) -> list[dict]:
    """The rows of ``emofer video VIDEO --table faces.jsonl`` (sequential, in this process) with ``options``,
    and each face's ``face_index`` in its frame."""
    from emofer import EmotionRecognizer
    from emofer.video import analyze_video, write_table

    table = video.with_suffix(".jsonl")
    recognizer = EmotionRecognizer.from_pretrained(detector="auto")
    write_table(analyze_video(recognizer, video, **options), table, labels=recognizer.labels)
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    for i, row in enumerate(rows):  # the table has no face_index: count the faces of each frame
        before = rows[i - 1] if i else None
        same_frame = before is not None and before["frame_index"] == row["frame_index"]
        row["face_index"] = None if row["box"] is None else before["face_index"] + 1 if same_frame else 0
    return rows


def video_rows(parquet: Path, video: Path) -> list[dict]:
    """``video``'s rows in a Parquet folder, in frame then face order."""
    import pyarrow.parquet as pq

    rows = [r for r in pq.read_table(parquet).to_pylist() if r["file"] == str(video)]
    return sorted(rows, key=lambda r: (r["frame_index"], -1 if r["face_index"] is None else r["face_index"]))


def assert_rows_equal(got: list[dict], expected: list[dict], keys=("frame_index", "timestamp_ms", "face_index", "box")):
    """Row for row: ``keys`` equal, probabilities to 1e-6."""
    assert len(got) == len(expected), (len(got), len(expected))
    for row, want in zip(got, expected):
        assert {k: row[k] for k in keys} == {k: want[k] for k in keys}
        assert (row["probabilities"] is None) == (want["probabilities"] is None)
        if want["probabilities"] is not None:
            assert all(abs(row["probabilities"][k] - v) <= TOLERANCE for k, v in want["probabilities"].items())


def broken_video(folder: Path) -> Path:
    broken = folder / "broken.mp4"
    broken.write_bytes(b"\x00" * 2048)
    return broken


def test_video_rows_equal_the_video_table(ray_local, tmp_path: Path, photo_path: Path) -> None:
    import pyarrow.parquet as pq

    from emofer.ray import video_faces_dataset, write_faces

    video = write_face_video(tmp_path / "clip.mp4", photo_path)
    broken = broken_video(tmp_path)
    report = write_faces(video_faces_dataset([video, broken], detector="auto"), tmp_path / "video.parquet")
    got = video_rows(tmp_path / "video.parquet", video)
    assert report.items == 15 + 1 and report.failed == 1
    assert_rows_equal(got, video_table(video), keys=("frame_index", "timestamp_ms", "box", "track_id", "emotion"))
    (error,) = [r for r in pq.read_table(tmp_path / "video.parquet").to_pylist() if r["file"] == str(broken)]
    assert error["error"].startswith("VideoError: ")


def assert_tracks_scoped(got: list[dict], expected: list[dict], ranges: list[tuple[int, int | None]]) -> None:
    """Track ids: a whole run's in the range at frame 0; elsewhere the range's first frame * stride + 1, 2, ...,
    the same faces together as in the whole run (one-to-one) within each range."""
    from emofer.video import RANGE_TRACK_STRIDE

    tracked = 0
    for start, stop in ranges:
        pairs = {(want["track_id"], row["track_id"]) for row, want in zip(got, expected)
                 if start <= row["frame_index"] < (stop or 10**9) and row["track_id"] is not None}
        assert all(ranged // RANGE_TRACK_STRIDE == start for _, ranged in pairs)
        assert len({w for w, _ in pairs}) == len({r for _, r in pairs}) == len(pairs)
        assert start or all(w == r for w, r in pairs)
        tracked += bool(pairs)
    assert tracked >= min(len(ranges), 2)  # faces past a border too: the check is not empty


def test_video_frame_ranges_equal_the_video_table_frame_for_frame(ray_local, tmp_path: Path, photo_path: Path) -> None:
    """A 15-frame video in ranges of 6 (borders at frames 6 and 12), a 5-frame video shorter than one range,
    a cut video whose header reports 15 frames (fewer can be read: ranges past its end) and a broken video:
    the rows of the sequential table, and the broken one's error row once."""
    import pyarrow.parquet as pq

    from emofer.ray import frame_ranges, video_faces_dataset, write_faces

    video = write_face_video(tmp_path / "clip.mp4", photo_path)
    short = write_face_video(tmp_path / "short.mp4", photo_path, face_frames=4, blank_frames=1)
    cut = write_truncated_video(tmp_path / "cut.avi")
    broken = broken_video(tmp_path)
    assert frame_ranges(15, 6) == [(0, 6), (6, 12), (12, None)] and frame_ranges(5, 6) == [(0, None)]
    dataset = video_faces_dataset([video, short, cut, broken], frames_per_task=6, smooth=False, detector="auto")
    report = write_faces(dataset, tmp_path / "video.parquet")
    cut_rows = video_table(cut, smooth=False)
    assert (report.items, report.failed) == (15 + 5 + len(cut_rows) + 1, 1) and 0 < len(cut_rows) < 12
    assert_rows_equal(video_rows(tmp_path / "video.parquet", cut), cut_rows)
    for clip in (video, short):
        expected = video_table(clip, smooth=False)
        got = video_rows(tmp_path / "video.parquet", clip)
        assert_rows_equal(got, expected)
        assert_tracks_scoped(got, expected, frame_ranges(15 if clip == video else 5, 6))
    (error,) = [r for r in pq.read_table(tmp_path / "video.parquet").to_pylist() if r["file"] == str(broken)]
    assert error["error"].startswith("VideoError: ") and error["frame_index"] is None


def test_emofer_video_ray_writes_the_video_table_as_parquet(ray_local, tmp_path: Path, photo_path: Path, capsys) -> None:
    """``emofer video CLIP --ray --table faces.parquet --frames-per-task 6``: the rows of ``emofer video CLIP
    --table``, frame for frame; its Parquet folder is never written over."""
    from emofer.cli import main
    from emofer.ray import frame_ranges

    video = write_face_video(tmp_path / "clip.mp4", photo_path)
    out = tmp_path / "faces.parquet"
    argv = ["video", str(video), "--ray", "--table", str(out), "--frames-per-task", "6", "--no-smooth"]
    assert main(argv) == 0
    assert "15 items" in capsys.readouterr().err
    expected = video_table(video, smooth=False)
    got = video_rows(out, video)
    assert_rows_equal(got, expected)
    assert_tracks_scoped(got, expected, frame_ranges(15, 6))
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err


def test_video_faces_dataset_takes_every_load_option_in_one_spec(ray_local, tmp_path: Path, photo_path: Path) -> None:
    """``spec=`` (what ``emofer video --ray`` builds from its options) reaches the actors whole: with
    ``min_confidence`` 1 every face abstains; a spec beside keywords is refused."""
    import pyarrow.parquet as pq

    from emofer.errors import EmoferError
    from emofer.ray import video_faces_dataset, write_faces
    from emofer.recognizer import LoadSpec

    video = write_face_video(tmp_path / "clip.mp4", photo_path, face_frames=3, blank_frames=0)
    with pytest.raises(EmoferError, match="not both"):
        video_faces_dataset(video, detector="yunet", spec=LoadSpec())
    spec = LoadSpec(min_confidence=1.0)
    report = write_faces(video_faces_dataset(video, spec=spec, smooth=False), tmp_path / "t.parquet")
    rows = pq.read_table(tmp_path / "t.parquet").to_pylist()
    assert report.items == 3 and report.faces > 0 and report.failed == 0
    assert all(row["abstained"] for row in rows if row["face_index"] is not None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--table", "t.csv", "--frames-per-task", "6"], "--frames-per-task works with --ray"),
        (["--ray", "--table", "t.csv"], "give --table faces.parquet"),
        (["--ray", "--table", "t.parquet", "--out", "a.mp4"], "run without --ray"),
        (["--ray", "--table", "t.parquet", "--frames-per-task", "0"], "--frames-per-task: must be a whole number"),
    ],
)
def test_emofer_video_ray_refuses_what_it_cannot_do(tmp_path: Path, photo_path: Path, capsys, extra, message) -> None:
    """Checked before Ray starts or the model loads: exit 2 and one line naming what to change; nothing written."""
    from emofer.cli import main

    video = write_face_video(tmp_path / "clip.mp4", photo_path, face_frames=2, blank_frames=0)
    os.chdir(tmp_path)
    assert main(["video", str(video), *extra]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.slow
def test_video_frame_ranges_keep_every_n_frames_max_frames_and_smoothing_scope(
    ray_local, tmp_path: Path, photo_path: Path
) -> None:
    """Every 2nd frame, at most 6 of them (frames 0-10), ranges of 5 (borders at 5 and 10, off the multiples of 2),
    smoothed: the same frames and boxes as the sequential table; smoothed probabilities equal in the first range."""
    from emofer.ray import frame_ranges, video_faces_dataset, write_faces

    video = write_face_video(tmp_path / "clip.mp4", photo_path)
    ranges = frame_ranges(15, 5, every_n_frames=2, max_frames=6)
    assert ranges == [(0, 5), (5, 10), (10, 12)]
    options = dict(every_n_frames=2, max_frames=6)
    dataset = video_faces_dataset(video, frames_per_task=5, detector="auto", **options)
    report = write_faces(dataset, tmp_path / "video.parquet")
    expected = video_table(video, **options)
    got = video_rows(tmp_path / "video.parquet", video)
    assert report.items == 6 and [r["frame_index"] for r in got if r["face_index"] in (None, 0)] == [0, 2, 4, 6, 8, 10]
    assert_rows_equal([r for r in got if r["frame_index"] < 5], [r for r in expected if r["frame_index"] < 5],
                      keys=("frame_index", "timestamp_ms", "face_index", "box", "track_id", "emotion"))
    unsmoothed = [{**r, "probabilities": None} for r in got]  # later ranges restart smoothing: compare the rest
    assert_rows_equal(unsmoothed, [{**r, "probabilities": None} for r in expected])
    assert_tracks_scoped(got, expected, ranges)


def test_frames_per_task_must_be_a_whole_number_1_or_more(tmp_path: Path) -> None:
    from emofer.errors import ParameterError
    from emofer.ray import frame_ranges, video_faces_dataset

    for bad in (0, -1, 2.5, True):
        with pytest.raises(ParameterError, match="frames_per_task"):
            video_faces_dataset(tmp_path / "clip.mp4", frames_per_task=bad)
    assert frame_ranges(None, 6) == [(0, None)]  # unknown count: one task
    assert frame_ranges(15, 6, max_frames=0) == [(0, None)]  # as emofer video --max-frames 0
    assert frame_ranges(15, 4, every_n_frames=3, max_frames=2) == [(0, 4), (4, 6)]
    assert frame_ranges(15, 15) == [(0, None)] and frame_ranges(16, 15) == [(0, 15), (15, None)]


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
