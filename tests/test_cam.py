"""emofer-cam: refuses clearly without a display or camera, records without a window."""

from __future__ import annotations

import cv2
import pytest

from emofer import cam
from emofer.cam import display_problem, main, opencv_gui
from emofer.detect import yunet

from .conftest import YUNET, need
from .video_fixtures import face_video  # noqa: F401  (fixture)


@pytest.mark.parametrize("build, gui", [
    ("  GUI:                           QT5\n    QT:     YES (ver 5.15)\n", "QT5"),
    ("  GUI:                           NONE\n", None),
    ("  GUI: \n    GTK+:   NO\n", None),
    ("  GTK+:                        YES (ver 3.24)\n", "GTK+"),
    ("  Video I/O:\n    FFMPEG:   YES\n", None),
])
def test_opencv_gui_reads_the_build_information(monkeypatch, build, gui):
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: "General configuration:\n" + build)
    assert opencv_gui() == gui


def test_no_display_exits_with_a_clear_message(monkeypatch, capsys):
    monkeypatch.setattr(cam, "opencv_gui", lambda: "QT5")
    monkeypatch.setattr(cam.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "DISPLAY" in display_problem()
    assert main([]) == 2
    assert "--no-window --out" in capsys.readouterr().err


def test_headless_opencv_exits_with_a_clear_message(monkeypatch, capsys):
    monkeypatch.setattr(cam, "opencv_gui", lambda: None)
    monkeypatch.setenv("DISPLAY", ":0")
    assert main(["--source", "0"]) == 2
    assert "no GUI" in capsys.readouterr().err


def test_a_camera_that_cannot_be_opened_exits_with_a_clear_message(capsys, tiny_model_dir):
    assert main(["--source", "99", "--no-window", "--model", str(tiny_model_dir), "--detector", "none"]) == 2
    assert "camera 99 could not be opened" in capsys.readouterr().err


@pytest.mark.data
def test_records_a_video_file_without_a_window(monkeypatch, capsys, face_video, tiny_model_dir, tmp_path):
    monkeypatch.setenv(yunet.ENV_VAR, str(need(YUNET, "YuNet weights")))
    out = tmp_path / "live.avi"
    code = main(["--source", str(face_video), "--no-window", "--out", str(out), "--max-frames", "5",
                 "--model", str(tiny_model_dir)])
    assert code == 0 and "5 frames" in capsys.readouterr().err
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 5 and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    capture.release()
