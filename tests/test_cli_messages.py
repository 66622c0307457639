"""What a new user meets (issue #27): hints that name options which exist, a quiet stderr, examples that
run on the default install, and the source of ``emofer cam`` given as ``emofer video`` takes it."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from emofer import cam, io
from emofer.cli import main
from emofer.errors import ImageReadError

from .conftest import EXAMPLE_PHOTO, ROOT
from .video_fixtures import write_face_video


def run_process(*argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emofer", *argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", **env})


def test_the_unknown_model_hint_names_an_option_predict_takes(capsys, tmp_path):
    assert main(["predict", str(EXAMPLE_PHOTO), "--model", "emofer/fer8"]) == 2
    err = capsys.readouterr().err
    assert "--revision main" in err
    done = run_process("predict", str(EXAMPLE_PHOTO), "--model", "emofer/fer8", "--revision", "main",
                       HF_HOME=str(tmp_path / "hf"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "at revision main is not in the Hugging Face cache" in done.stderr  # --revision was taken and used


def test_threads_is_a_model_option(capsys):
    assert main(["predict", str(EXAMPLE_PHOTO), "--threads", "1", "--detector", "none"]) == 0
    assert main(["predict", str(EXAMPLE_PHOTO), "--threads", "0"]) == 2
    assert "--threads: must be a positive whole number, got 0" in capsys.readouterr().err


def test_the_huge_image_hint_names_what_works(monkeypatch):
    monkeypatch.setattr(io, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageReadError) as info:
        io.load_image(EXAMPLE_PHOTO)
    message = str(info.value)
    assert "EMOFER_MAX_IMAGE_PIXELS" in message and "load_image(path, max_pixels=N)" in message
    assert io.load_image(EXAMPLE_PHOTO, max_pixels=10**7).ndim == 3  # what the hint says works


def test_emofer_cam_without_a_camera_says_one_thing(tmp_path):
    for argv in (["cam", "--no-window", "--out", str(tmp_path / "o.mp4"), "5"],
                 ["cam", "--source", "5", "--no-window"]):
        done = run_process(*argv)
        assert done.returncode == 2
        lines = done.stderr.splitlines()
        assert all(line.startswith("emofer") for line in lines), done.stderr  # no OpenCV WARN / ERROR lines
        assert lines[-1].startswith("emofer: error: camera 5 could not be opened")
    verbose = run_process("cam", "--source", "5", "--no-window", "-v")
    assert verbose.returncode == 2 and len(verbose.stderr.splitlines()) > 2  # -v shows OpenCV's own lines


def test_emofer_cam_takes_the_source_positionally(capsys, tmp_path, monkeypatch):
    clip = write_face_video(tmp_path / "clip.mp4", EXAMPLE_PHOTO)
    for argv in ([str(clip)], ["--source", str(clip)], [str(clip), "--source", str(clip)]):
        out = tmp_path / f"live{len(argv)}.avi"
        code = cam.main([*argv, "--no-window", "--out", str(out), "--max-frames", "3", "--detector", "none"])
        assert code == 0 and capsys.readouterr().err == f"emofer-cam: 3 frames, saved to {out}\n"
        capture = cv2.VideoCapture(str(out))
        assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3
        capture.release()
    assert cam.main([str(clip), "--source", "0", "--no-window"]) == 2
    assert "two sources given" in capsys.readouterr().err


def test_ray_cluster_example_without_ray_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as on the default install: import ray fails
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    monkeypatch.setattr(sys, "argv", ["ray_cluster.py", "--quick"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / "examples" / "ray_cluster.py"), run_name="__main__")
    assert stop.value.code == 'this example needs Ray: pip install "emofer[ray]"'


@pytest.mark.parametrize("name, args", [("custom_detector", ()), ("predict_image", ("--out", "a.png"))])
def test_examples_print_nothing_but_their_own_lines_on_stderr(tmp_path, name, args):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / f"{name}.py"), "--quick", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stdout.startswith("skipped"), done.stdout + done.stderr
    assert "WARN" not in done.stderr and "ERROR" not in done.stderr, done.stderr


def test_the_readme_first_command_is_quiet():
    done = run_process("predict", str(EXAMPLE_PHOTO))
    assert done.returncode == 0 and done.stderr == "" and done.stdout.startswith(str(EXAMPLE_PHOTO))
    assert Path(EXAMPLE_PHOTO).is_file()
