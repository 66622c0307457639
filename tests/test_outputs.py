"""The output policy (emofer.outputs): emofer never writes over its inputs, never replaces a file unless told,
never lets names collide, and never leaves half a file. Real photos, real videos, the real CLI."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from emofer import cam
from emofer.cli import main
from emofer.errors import OutputError
from emofer.outputs import PART, Inputs, check_output_file, copy_names, write_image
from emofer.video import FrameResult, VideoFileWriter, write_table, write_video

from .conftest import EXAMPLE_PHOTO, FACES_BOXES
from .video_fixtures import write_face_video


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def snapshot(root: Path) -> dict[str, str]:
    """Every file below ``root`` (links followed) with its md5."""
    return {p.relative_to(root).as_posix(): md5(p) for p in sorted(root.rglob("*")) if p.is_file()}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith("emofer: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def group_photo() -> Path:
    """A real group photo (faces-boxes), else the example photo."""
    photos = sorted((FACES_BOXES / "images").glob("*.jpg")) if FACES_BOXES.exists() else []
    return photos[0] if photos else EXAMPLE_PHOTO


@pytest.fixture
def photos(tmp_path, group_photo) -> Path:
    """A folder of two real photos, as a user's photo folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(EXAMPLE_PHOTO, folder / "hopper.jpg")
    shutil.copy(group_photo, folder / "group.jpg")
    return folder


@pytest.fixture
def clip(tmp_path, group_photo) -> Path:
    return write_face_video(tmp_path / "clip.mp4", group_photo)


# -- the cases of issue #27, through the CLI -------------------------------------------------------


def test_predict_into_the_folder_of_the_photos_is_refused(capsys, photos, monkeypatch):
    before = snapshot(photos)
    monkeypatch.chdir(photos)
    code, out, err = run(capsys, "predict", "group.jpg", "hopper.jpg", "--out", ".", "--detector", "none")
    assert_refused(code, out, err, "is an input", "never writes over its inputs")
    code, out, err = run(capsys, "predict", "group.jpg", "hopper.jpg", "--out", ".", "--overwrite")
    assert_refused(code, out, err, "is an input")
    assert snapshot(photos) == before


def test_video_out_on_its_own_source_is_refused_even_with_overwrite(capsys, clip, tmp_path, monkeypatch):
    before = md5(clip)
    os.link(clip, tmp_path / "hard.mp4")
    (tmp_path / "soft.mp4").symlink_to(clip)
    monkeypatch.chdir(tmp_path)
    for out in ("clip.mp4", "./clip.mp4", str(clip), "hard.mp4", "soft.mp4"):
        for extra in ((), ("--overwrite",)):
            code, stdout, err = run(capsys, "video", "clip.mp4", "--out", out, *extra)
            assert_refused(code, stdout, err, "is an input")
    code, stdout, err = run(capsys, "video", "clip.mp4", "--table", "clip.csv", "--out", "clip.avi",
                            "--detector", "none")
    assert code == 0 and "15 frames" in err
    assert md5(clip) == before and clip.stat().st_size > 0


def test_same_names_from_different_folders_do_not_collide(capsys, tmp_path, group_photo):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(EXAMPLE_PHOTO, tmp_path / "a" / "x.jpg")
    shutil.copy(group_photo, tmp_path / "b" / "x.jpg")
    code, _, err = run(capsys, "predict", tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", "--out", tmp_path / "o",
                       "--detector", "none")
    assert code == 0, err
    written = sorted(p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o").rglob("*") if p.is_file())
    assert written == ["a/x.jpg", "b/x.jpg"]  # the input tree mirrored
    shapes = {cv2.imread(str(tmp_path / "o" / name)).shape for name in written}
    assert shapes == {cv2.imread(str(EXAMPLE_PHOTO)).shape, cv2.imread(str(group_photo)).shape}


def test_copy_names_number_what_mirroring_cannot_tell_apart():
    items = [(None, "https://a.org/x/photo.jpg"), (None, "https://b.org/y/photo.jpg"),
             (None, "https://b.org/photo.gif")]
    assert copy_names(items) == [Path("photo.jpg"), Path("photo-2.jpg"), Path("photo.png")]
    clash = [(None, "https://a.org/p.gif"), (None, "https://a.org/p.png")]
    assert copy_names(clash) == [Path("p.png"), Path("p-2.png")]


def test_an_output_folder_inside_the_input_folder_is_skipped_and_never_nested(capsys, photos):
    out = photos / "annotated"
    code, stdout, err = run(capsys, "predict", photos, "--out", out, "--detector", "none")
    assert code == 0, err
    first = snapshot(photos)
    assert sorted(first) == ["annotated/photos/group.jpg", "annotated/photos/hopper.jpg", "group.jpg", "hopper.jpg"]
    code, stdout, err = run(capsys, "predict", photos, "--out", out, "--detector", "none")
    assert_refused(code, stdout, err, "annotated/photos/group.jpg already exists", "--overwrite")
    assert snapshot(photos) == first
    code, stdout, err = run(capsys, "predict", photos, "--out", out, "--detector", "none", "--overwrite")
    assert code == 0 and "annotated" not in stdout  # its own output was not read
    assert sorted(snapshot(photos)) == sorted(first)


def test_out_is_the_input_folder(capsys, photos):
    before = snapshot(photos)
    code, out, err = run(capsys, "predict", photos, "--out", photos)
    assert_refused(code, out, err, "is the input folder")
    assert snapshot(photos) == before


def test_out_with_an_image_suffix_is_a_file_for_one_input_and_refused_for_many(capsys, tmp_path, photos):
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), cv2.cvtColor(cv2.imread(str(EXAMPLE_PHOTO)), cv2.COLOR_BGR2GRAY))
    code, _, err = run(capsys, "predict", gray, "--out", tmp_path / "ann.png", "--detector", "none")
    assert code == 0, err
    assert (tmp_path / "ann.png").is_file() and cv2.imread(str(tmp_path / "ann.png")).shape[2] == 3
    code, out, err = run(capsys, "predict", photos, "--out", tmp_path / "many.png")
    assert_refused(code, out, err, "names an image file", "give a folder")
    code, out, err = run(capsys, "predict", gray, "--out", tmp_path / "ann.gif")
    assert_refused(code, out, err, "cannot write an annotated .gif image")
    code, _, err = run(capsys, "predict", gray, "--out", f"{tmp_path / 'folder.png'}/", "--detector", "none")
    assert code == 0 and (tmp_path / "folder.png" / "gray.png").is_file()  # a trailing slash: a folder


def test_predict_reads_an_image_from_stdin(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(EXAMPLE_PHOTO.read_bytes())))
    code, out, err = run(capsys, "predict", "-", "--out", tmp_path / "o")
    assert code == 0, err
    assert out.startswith("-: ") and " at (" in out and (tmp_path / "o" / "stdin.png").is_file()


def test_cam_out_on_its_source_is_refused_before_the_model(capsys, clip, monkeypatch):
    monkeypatch.setattr(cam.options, "load_recognizer", lambda args: pytest.fail("model loaded before the check"))
    before = md5(clip)
    code, out, err = run(capsys, "cam", clip, "--no-window", "--out", clip, "--overwrite")
    assert_refused(code, out, err, "is an input")
    assert md5(clip) == before


def test_tables_are_not_replaced_without_overwrite(capsys, clip, tmp_path):
    table = tmp_path / "faces.csv"
    table.write_text("the user's own table\n")
    code, out, err = run(capsys, "video", clip, "--table", table)
    assert_refused(code, out, err, "faces.csv already exists", "--overwrite")
    assert table.read_text() == "the user's own table\n"
    code, _, err = run(capsys, "video", clip, "--table", table, "--overwrite", "--detector", "none")
    assert code == 0 and table.read_text().startswith("frame_index,")


def test_ray_out_that_exists_or_is_an_input_is_refused_before_ray(capsys, photos):
    before = snapshot(photos)
    code, out, err = run(capsys, "predict", photos, "--ray", "--out", photos)
    assert_refused(code, out, err, "is an input")
    code, out, err = run(capsys, "predict", photos, "--ray", "--out", photos / "faces.parquet")
    assert_refused(code, out, err, "inside", "being read")
    assert snapshot(photos) == before


# -- the Python API --------------------------------------------------------------------------------


def test_api_writers_follow_the_policy(clip, tmp_path):
    image = cv2.imread(str(EXAMPLE_PHOTO))
    result = FrameResult(0, 0.0, ())
    with pytest.raises(OutputError, match="is an input"):
        write_video([(image, result)], clip, inputs=[clip], overwrite=True)
    with pytest.raises(OutputError, match="already exists"):
        write_video([(image, result)], clip)
    with pytest.raises(OutputError, match="already exists"):
        VideoFileWriter(clip)
    with pytest.raises(OutputError, match="already exists"):
        write_table([result], _existing(tmp_path / "t.csv"))
    with pytest.raises(OutputError, match="is an input"):
        write_image(image, tmp_path / "copy.jpg", inputs=Inputs([_existing(tmp_path / "copy.jpg")]), overwrite=True)
    with pytest.raises(OutputError, match="already exists"):
        write_image(image, tmp_path / "copy.jpg")
    assert write_image(image, tmp_path / "new.png").is_file()


def _existing(path: Path) -> Path:
    path.write_bytes(b"kept")
    return path


def test_an_interrupted_write_leaves_no_file(tmp_path, clip):
    image = cv2.imread(str(EXAMPLE_PHOTO))

    def interrupted():
        for index in range(3):
            yield image, FrameResult(index, 100.0 * index, ())
        raise KeyboardInterrupt

    def table(pairs, path):
        return write_table((result for _, result in pairs), path)

    for writer, name in ((write_video, "v.mp4"), (table, "t.csv")):
        with pytest.raises(KeyboardInterrupt):
            writer(interrupted(), tmp_path / name)
        assert not (tmp_path / name).exists()
    assert not [p for p in tmp_path.iterdir() if PART in p.name]


def test_a_source_that_fails_midway_keeps_a_whole_video(tmp_path):
    image = cv2.imread(str(EXAMPLE_PHOTO))

    def failing():
        for index in range(3):
            yield image, FrameResult(index, 100.0 * index, ())
        raise OSError("camera unplugged")

    with pytest.raises(OSError):
        write_video(failing(), tmp_path / "v.avi")
    capture = cv2.VideoCapture(str(tmp_path / "v.avi"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3
    capture.release()


def test_check_output_file_messages(tmp_path):
    with pytest.raises(OutputError, match="create it first"):
        check_output_file(tmp_path / "missing" / "a.csv")
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path)


# -- fuzz: random layouts of inputs and outputs; no input ever changes -----------------------------


def _layout(rng: random.Random, root: Path, photo: np.ndarray) -> list[Path]:
    """A random tree of small real images (some in sub-folders, some hard-linked or symlinked)."""
    files = []
    for i in range(rng.randint(1, 5)):
        folder = root / rng.choice(["", "a", "b", "a/sub", "out", "a/out"])
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / rng.choice(["x.jpg", "y.png", f"p{i}.jpg", "X.JPG", "z.bmp"])
        if path.exists():
            continue
        size = (rng.randint(40, 90), rng.randint(40, 90))
        cv2.imwrite(str(path), cv2.resize(photo, size))
        files.append(path)
    if rng.random() < 0.3:
        link = root / "linked.jpg"
        os.link(files[0], link) if rng.random() < 0.5 else link.symlink_to(files[0])
    return files


def _candidates(root: Path, files: list[Path]) -> list[str]:
    folders = [root / d for d in ("", "a", "b", "a/sub", "out", "a/out") if (root / d).is_dir()]
    return [str(p) for p in files + folders]


@pytest.mark.parametrize("seed", range(40))
def test_fuzz_no_input_is_ever_modified(capsys, tmp_path, seed, monkeypatch):
    rng = random.Random(seed)
    root = tmp_path / "tree"
    root.mkdir()
    files = _layout(rng, root, cv2.imread(str(EXAMPLE_PHOTO)))
    monkeypatch.chdir(root)
    candidates = _candidates(root, files)
    for _ in range(3):  # runs one after another over the same tree, as a user would
        paths = rng.sample(candidates, rng.randint(1, min(3, len(candidates))))
        paths = [os.path.relpath(p) if rng.random() < 0.5 else p for p in paths]
        out = rng.choice([".", "out", "a", "a/out", "o", "a/annotated", "x.jpg", "new.png", "a/x.jpg", "linked.jpg",
                          *paths])
        overwrite = ["--overwrite"] if rng.random() < 0.5 else []
        before = snapshot(root)
        identities = {p: (p.stat().st_dev, p.stat().st_ino) for p in root.rglob("*") if p.is_file()}
        code, stdout, err = run(capsys, "predict", *paths, "--out", out, "--detector", "none", *overwrite)
        after = snapshot(root)
        assert not [p for p in root.rglob("*") if PART in p.name]
        if code == 2:
            assert err.count("\n") == 1 and after == before, (paths, out, err)
            continue
        assert code == 0, (paths, out, err)
        read = {line.split(": ")[0] for line in stdout.splitlines()}
        read_ids = {(Path(p).stat().st_dev, Path(p).stat().st_ino) for p in read}
        for name, digest in before.items():
            if after.get(name) != digest:  # changed: only an earlier output, replaced on request, never an input
                assert overwrite and identities[root / name] not in read_ids, (paths, out, name)
        for path in read:
            assert md5(Path(path)) == before[Path(os.path.abspath(path)).relative_to(root).as_posix()], (paths, out)
