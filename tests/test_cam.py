"""emofer cam (and its alias emofer-cam): refuses clearly without a display or camera, records without a window."""

from __future__ import annotations

import cv2
import pytest

from emofer import cam, cli, gui, options
from emofer.detect import yunet
from emofer.gui import display_problem, opencv_gui

from .conftest import YUNET, need
from .video_fixtures import face_video  # noqa: F401  (fixture)


def emofer_cam(argv: list[str]) -> int:
    """``emofer cam ARGV``."""
    return cli.main(["cam", *argv])


#: The two ways to start the live view, and how each begins an error message.
COMMANDS = [pytest.param(cam.main, "emofer-cam: ", id="emofer-cam"), pytest.param(emofer_cam, "emofer: error: ", id="emofer cam")]


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the command gets as far as loading a model."""
    def refuse(args):
        raise AssertionError("the model was loaded before the display was checked")
    monkeypatch.setattr(options, "load_recognizer", refuse)


@pytest.mark.parametrize("build, gui_name", [
    ("  GUI:                           QT5\n    QT:     YES (ver 5.15)\n", "QT5"),
    ("  GUI:                           NONE\n", None),
    ("  GUI: \n    GTK+:   NO\n", None),
    ("  GTK+:                        YES (ver 3.24)\n", "GTK+"),
    ("  Video I/O:\n    FFMPEG:   YES\n", None),
])
def test_opencv_gui_reads_the_build_information(monkeypatch, build, gui_name):
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: "General configuration:\n" + build)
    assert opencv_gui() == gui_name


def test_the_gui_helpers_are_still_importable_from_cam():
    assert cam.opencv_gui is opencv_gui and cam.display_problem is display_problem


@pytest.mark.parametrize("main, prefix", COMMANDS)
def test_no_display_exits_with_a_clear_message(monkeypatch, capsys, no_model, main, prefix):
    monkeypatch.setattr(gui, "opencv_gui", lambda: "QT5")
    monkeypatch.setattr(gui.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "DISPLAY" in display_problem()
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith(prefix + "no display found") and "--no-window --out" in err and err.count("\n") == 1


@pytest.mark.parametrize("main, prefix", COMMANDS)
def test_headless_opencv_exits_with_a_clear_message(monkeypatch, capsys, no_model, main, prefix):
    monkeypatch.setattr(gui, "opencv_gui", lambda: None)
    monkeypatch.setenv("DISPLAY", ":0")
    assert main(["--source", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(prefix) and "no GUI" in err


@pytest.mark.parametrize("main, prefix", COMMANDS)
def test_a_camera_that_cannot_be_opened_exits_with_a_clear_message(capsys, tiny_model_dir, main, prefix):
    assert main(["--source", "99", "--no-window", "--model", str(tiny_model_dir), "--detector", "none"]) == 2
    err = capsys.readouterr().err
    assert f"\n{prefix}camera 99 could not be opened" in "\n" + err


def test_emofer_cam_and_emofer_cam_alias_have_the_same_help(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    helps = []
    for main in (cam.main, emofer_cam):
        with pytest.raises(SystemExit) as exit:
            main(["--help"])
        assert exit.value.code == 0
        helps.append(capsys.readouterr().out)
    alias, command = helps
    assert alias.startswith("usage: emofer-cam [-h] [-v] [--model MODEL]") and "--no-bars" in alias
    assert alias.replace("emofer-cam", "emofer cam") == command  # the same length: the same wrapping too


@pytest.mark.parametrize("argv", [["--bogus"], ["--min-confidence", "2"], ["--detector", "bogus"], ["--bars"]])
def test_bad_arguments_exit_2_from_both(capsys, argv):
    for main, prog in ((cam.main, "emofer-cam"), (emofer_cam, "emofer")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"{prog}: error: ") and err.count("\n") == 1 and "--help)" in err


def test_emofer_lists_cam(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "    cam " in capsys.readouterr().out


@pytest.mark.data
@pytest.mark.parametrize("main, prefix", COMMANDS)
def test_records_a_video_file_without_a_window(monkeypatch, capsys, face_video, tiny_model_dir, tmp_path, main,
                                               prefix):
    monkeypatch.setenv(yunet.ENV_VAR, str(need(YUNET, "YuNet weights")))
    out = tmp_path / "live.avi"
    code = main(["--source", str(face_video), "--no-window", "--out", str(out), "--max-frames", "5",
                 "--model", str(tiny_model_dir)])
    name = prefix.removesuffix("error: ")
    assert code == 0 and capsys.readouterr().err == f"{name}5 frames, saved to {out}\n"
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 5 and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    capture.release()
