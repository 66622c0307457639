"""The command line's first hour: one-line errors (exit 2) checked before the work, URLs, -v, progress.

Run as a new user would: real images, real files, the real CLI in-process through main(), and
in a subprocess where the process-wide logging or the Hugging Face client matter.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time

import pytest

from emofer import options
from emofer.cli import main

from .conftest import EXAMPLE_PHOTO, ROOT
from .http_fixtures import served  # noqa: F401  (fixture)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_process(*argv: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    """``python -m emofer ARGV`` in a fresh process; returns it and its wall time in seconds."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "emofer", *argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **env})
    return done, time.monotonic() - start


def closed_port() -> int:
    """A local port nobody listens on: connecting to it is refused at once, like a network that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the command gets as far as loading a model (the check came too late)."""
    def refuse(args):
        raise AssertionError("the model was loaded before the arguments were checked")
    monkeypatch.setattr(options, "load_recognizer", refuse)


def assert_one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2 and out == ""
    assert err.startswith("emofer: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err


@pytest.mark.parametrize("option, name, needle", [
    ("--table", "faces.txt", "use a name ending in .csv, .json, .jsonl"),
    ("--table", "", "use a name ending in .csv"),  # a folder
    ("--table", "/nonexistent/dir/a.csv", "create it first (mkdir -p /nonexistent/dir)"),
    ("--out", "/nonexistent/dir/a.mp4", "create it first (mkdir -p /nonexistent/dir)"),
])
def test_video_outputs_are_checked_before_the_video(capsys, tmp_path, no_model, option, name, needle):
    target = tmp_path / name if not name.startswith("/") else name
    code, out, err = run(capsys, "video", EXAMPLE_PHOTO, option, target)
    assert_one_line_error(code, out, err, needle)


def test_predict_out_must_be_a_folder_we_can_write(capsys, tmp_path, no_model):
    code, out, err = run(capsys, "predict", EXAMPLE_PHOTO, "--out", "/proc/forbidden")
    assert_one_line_error(code, out, err, "cannot create the output folder /proc/forbidden")
    (tmp_path / "file.txt").write_text("a file, not a folder")
    code, out, err = run(capsys, "predict", EXAMPLE_PHOTO, "--out", tmp_path / "file.txt" / "annotated")
    assert_one_line_error(code, out, err, "cannot create the output folder")


def test_predict_an_empty_folder_says_no_images_were_found(capsys, tmp_path, no_model):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    code, out, err = run(capsys, "predict", tmp_path / "empty")
    assert_one_line_error(code, out, err, "no images found in", ".jpg")


def test_a_typo_in_an_emofer_model_name_lists_the_bundled_models(capsys):
    start = time.monotonic()
    code, out, err = run(capsys, "predict", EXAMPLE_PHOTO, "--model", "emofer/fer8")
    assert_one_line_error(code, out, err, "did you mean emofer/fer5?", "emofer/fer5", "emofer/wild8v2-balanced-int8")
    assert time.monotonic() - start < 5  # no Hub request for emofer's own namespace


def test_a_model_moved_out_of_the_wheel_says_where_to_load_it_from(capsys):
    start = time.monotonic()
    code, out, err = run(capsys, "predict", EXAMPLE_PHOTO, "--model", "emofer/wild8")
    assert_one_line_error(code, out, err, "emofer/wild8 is no longer bundled",
                          "from_pretrained('path/to/emofer/models/wild8')", "--model path/to/emofer/models/wild8")
    assert time.monotonic() - start < 5


def test_predict_an_image_url(capsys, served, tmp_path):
    url = f"{served}/photo.jpg"
    code, out, err = run(capsys, "predict", url, "--out", tmp_path / "annotated")
    assert code == 0, err
    assert out.startswith(f"{url}: ") and " at (" in out  # the face of the example photo
    assert (tmp_path / "annotated" / "photo.jpg").is_file()
    code, out, err = run(capsys, "predict", f"{served}/missing.jpg", EXAMPLE_PHOTO)
    assert code == 1 and "answered 404" in err and str(EXAMPLE_PHOTO) in out  # the other input is still done


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stderr_is_a_terminal", [False, True])
def test_progress_bar_only_on_a_terminal(monkeypatch, tmp_path, stderr_is_a_terminal):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes(EXAMPLE_PHOTO.read_bytes())
    out, err = io.StringIO(), (_Terminal() if stderr_is_a_terminal else io.StringIO())
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["predict", str(folder), "--csv", "--detector", "none"]) == 0
    assert out.getvalue().count("\n") == 3  # header and one row per image
    assert ("images 100% |" in err.getvalue()) == stderr_is_a_terminal


@pytest.mark.parametrize("argv", [["-v", "predict"], ["predict", "-v"]])
def test_verbose_shows_what_was_loaded_from_where(argv):
    done, _ = run_process(*argv, str(EXAMPLE_PHOTO), "--model", "emofer/fer5", HF_HUB_OFFLINE="1")
    assert done.returncode == 0, done.stderr
    assert "loaded emofer/fer5 from " in done.stderr and "fer5/model.onnx" in done.stderr


def test_quiet_without_verbose():
    done, _ = run_process("predict", str(EXAMPLE_PHOTO), "--detector", "none", HF_HUB_OFFLINE="1")
    assert done.returncode == 0 and "loaded" not in done.stderr


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:{port}"}],
                         ids=["HF_HUB_OFFLINE", "network-down"])
def test_an_uncached_hub_model_fails_fast_with_one_line(tmp_path, env):
    env = {key: value.format(port=closed_port()) for key, value in env.items()}
    done, seconds = run_process("predict", str(EXAMPLE_PHOTO), "--model", "someone/not-cached",
                                HF_HOME=str(tmp_path / "hf"), **env)
    assert_one_line_error(done.returncode, done.stdout, done.stderr, "not in the Hugging Face cache",
                          "emofer download someone/not-cached")
    assert seconds < 10  # huggingface_hub's own retries took about 23 s


def test_hub_warnings_are_printed_once():
    script = ("from emofer.cli import main; main(['download']);"
              "from huggingface_hub.utils import logging; logging.get_logger('huggingface_hub.x').warning('hub says hi')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.stderr.count("hub says hi") == 1, done.stderr
