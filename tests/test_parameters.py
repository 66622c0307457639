"""One parameter gate: every public entry point and every command-line number refuses a bad value
with ParameterError naming the parameter (a one-line message and exit 2 on the command line),
never a raw ValueError, ZeroDivisionError or islice error."""

from __future__ import annotations

import argparse
import pickle
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from emofer import cam, cli, options
from emofer.detect import YuNetDetector, build_detector
from emofer.errors import ParameterError
from emofer.io import load_image
from emofer.preprocess import expand_box
from emofer.recognizer import EmotionRecognizer, LoadSpec
from emofer.validate import check_scalar
from emofer.video import (
    FrameIterator,
    IoUTracker,
    Smoother,
    VideoFileWriter,
    analyze_video,
    analyze_video_frames,
    iter_frames,
)

from .conftest import EXAMPLE_PHOTO

PHOTO = str(EXAMPLE_PHOTO)


@pytest.fixture(scope="module")
def recognizer() -> EmotionRecognizer:
    return EmotionRecognizer.from_pretrained(detector="none")


def frames() -> list[np.ndarray]:
    return [load_image(PHOTO)] * 3


# (id, call, the parameter's name in the message). Each call makes one mistake.
API_CASES = [
    ("from_pretrained threads=0", lambda r: EmotionRecognizer.from_pretrained(threads=0), "threads"),
    ("from_pretrained threads=1.5", lambda r: EmotionRecognizer.from_pretrained(threads=1.5), "threads"),
    ("from_pretrained threads=True", lambda r: EmotionRecognizer.from_pretrained(threads=True), "threads"),
    ("from_pretrained min_face=0", lambda r: EmotionRecognizer.from_pretrained(min_face=0), "min_face"),
    ("from_pretrained min_confidence=2", lambda r: EmotionRecognizer.from_pretrained(min_confidence=2), "min_confidence"),
    ("from_pretrained min_confidence=nan",
     lambda r: EmotionRecognizer.from_pretrained(min_confidence=float("nan")), "min_confidence"),
    ("from_pretrained revision=3", lambda r: EmotionRecognizer.from_pretrained(revision=3), "revision"),
    ("from_pretrained local_files_only='yes'",
     lambda r: EmotionRecognizer.from_pretrained(local_files_only="yes"), "local_files_only"),
    ("from_pretrained providers='CPU'", lambda r: EmotionRecognizer.from_pretrained(providers="CPU"), "providers"),
    ("from_pretrained detector='retina'", lambda r: EmotionRecognizer.from_pretrained(detector="retina"), "detector"),
    ("from_pretrained detector=3", lambda r: EmotionRecognizer.from_pretrained(detector=3), "detector"),
    ("from_spec of a dict", lambda r: EmotionRecognizer.from_spec({"model": None}), "spec"),
    ("LoadSpec threads=-1", lambda r: LoadSpec(threads=-1), "threads"),
    ("classify batch_size=0", lambda r: r.classify([np.zeros((48, 48), np.uint8)], batch_size=0), "batch_size"),
    ("predict box of negative width", lambda r: r.predict(PHOTO, boxes=[(0, 0, -5, 10)]), "box"),
    ("predict boxes not a list", lambda r: r.predict(PHOTO, boxes=5), "boxes"),
    ("predict_video every_n_frames=0", lambda r: r.predict_video(frames(), every_n_frames=0), "every_n_frames"),
    ("predict_video every_n_frames=1.5", lambda r: r.predict_video(frames(), every_n_frames=1.5), "every_n_frames"),
    ("predict_video max_frames=-1", lambda r: r.predict_video(frames(), max_frames=-1), "max_frames"),
    ("analyze_video max_frames='2'", lambda r: analyze_video(r, frames(), max_frames="2"), "max_frames"),
    ("analyze_video_frames every_n_frames=-2",
     lambda r: analyze_video_frames(r, frames(), every_n_frames=-2), "every_n_frames"),
    ("iter_frames every_n_frames=0", lambda r: iter_frames(frames(), every_n_frames=0), "every_n_frames"),
    ("FrameIterator fps=0", lambda r: FrameIterator(frames(), fps=0), "fps"),
    ("IoUTracker iou_threshold=1.5", lambda r: IoUTracker(iou_threshold=1.5), "iou_threshold"),
    ("IoUTracker max_missed=-1", lambda r: IoUTracker(max_missed=-1), "max_missed"),
    ("Smoother alpha=0", lambda r: Smoother(alpha=0), "alpha"),
    ("Smoother margin=-0.1", lambda r: Smoother(margin=-0.1), "margin"),
    ("build_detector min_face=0", lambda r: build_detector("yunet", min_face=0), "min_face"),
    ("build_detector unknown name", lambda r: build_detector("retinaface"), "detector"),
    ("YuNetDetector max_side=0", lambda r: YuNetDetector(max_side=0), "max_side"),
    ("YuNetDetector score_threshold=2", lambda r: YuNetDetector(score_threshold=2), "score_threshold"),
    ("YuNetDetector top_k=0", lambda r: YuNetDetector(top_k=0), "top_k"),
    ("load_image max_pixels=0", lambda r: load_image(PHOTO, max_pixels=0), "max_pixels"),
    ("expand_box of three numbers", lambda r: expand_box((1, 2, 3), 0.0), "box"),
]


@pytest.mark.parametrize("call, name", [case[1:] for case in API_CASES], ids=[case[0] for case in API_CASES])
def test_a_bad_value_at_a_public_entry_point_is_a_parameter_error_naming_it(recognizer, call, name):
    with pytest.raises(ParameterError) as info:
        call(recognizer)
    assert name in str(info.value)


def test_video_writer_fps(tmp_path):
    with pytest.raises(ParameterError, match="fps must be"):
        VideoFileWriter(tmp_path / "out.mp4", fps=-1)
    assert not (tmp_path / "out.mp4").exists()


def test_check_scalar_in_words():
    assert check_scalar(3, "n", int, min_val=1) == 3 and check_scalar(None, "n", int, allow_none=True) is None
    assert check_scalar(np.int64(2), "n", int, min_val=1) == 2 and check_scalar(2, "p", float, max_val=2) == 2
    for value, bounds, message in [
        (0, {"min_val": 1}, "n must be 1 or more, got 0"),
        (1.0, {"min_val": 0, "max_val": 1, "include_boundaries": "left"}, "n must be from 0 and under 1, got 1.0"),
        (0, {"min_val": 0, "include_boundaries": "neither"}, "n must be over 0, got 0"),
        (float("inf"), {"max_val": 1}, "n must be a finite number 1 or less, got inf"),
        ("3", {}, "n must be a number, got '3'"),
        (True, {}, "n must be a number, got True"),
    ]:
        with pytest.raises(ParameterError) as info:
            check_scalar(value, "n", float, **bounds)
        assert str(info.value) == message


# -- the command line -------------------------------------------------------------------------

VIDEO = ["video", PHOTO, "--table", "t.csv"]
CLI_CASES = [
    (["predict", PHOTO, "--threads", "0"], "--threads"),
    (["predict", PHOTO, "--threads", "two"], "--threads"),
    (["predict", PHOTO, "--min-face", "-3"], "--min-face"),
    (["predict", PHOTO, "--min-confidence", "2"], "--min-confidence"),
    (["predict", PHOTO, "--min-confidence", "nan"], "--min-confidence"),
    (["predict", PHOTO, "--detector", "retina"], "--detector"),
    (["predict", PHOTO, "--ray", "--out", "o.parquet", "--workers", "0"], "--workers"),
    ([*VIDEO, "--every", "0"], "--every"),
    ([*VIDEO, "--every", "x"], "--every"),
    ([*VIDEO, "--max-frames", "-1"], "--max-frames"),
    ([*VIDEO, "--max-frames", "1.5"], "--max-frames"),
    ([*VIDEO, "--frames-per-task", "0"], "--frames-per-task"),
    ([*VIDEO, "--frames-per-task", "1.5"], "--frames-per-task"),
    (["cam", PHOTO, "--no-window", "--max-frames", "-1"], "--max-frames"),
    (["cam", "--threads", "0"], "--threads"),
    (["predict", PHOTO, "--bogus"], "--bogus"),
    (["predict"], "PATH"),
    (["nosuch"], "nosuch"),
    (["video", PHOTO], "--table"),
    (["download"], "name a model"),
]


@pytest.mark.parametrize("argv, name", CLI_CASES, ids=[" ".join(argv[:1] + argv[2:]) for argv, _ in CLI_CASES])
def test_a_bad_command_line_exits_2_with_one_line(capsys, monkeypatch, tmp_path, argv, name):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("emofer: error: ") and captured.err.count("\n") == 1, captured.err
    assert name in captured.err and "Traceback" not in captured.err and captured.out == ""
    assert not list(tmp_path.iterdir())  # nothing written


def test_emofer_cam_says_the_same_in_one_line(capsys):
    assert cam.main(["--max-frames", "-1", "--no-window"]) == 2
    err = capsys.readouterr().err
    assert err == ("emofer-cam: error: argument --max-frames: must be a whole number of frames, 0 or more, "
                   "got -1 (see emofer-cam --help)\n")


def _number_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option of ``parser`` and its subcommands whose type is a checked number (options.number)."""
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _number_options(sub)
        elif action.type is not None and getattr(action.type, "__qualname__", "").startswith("number."):
            found.add(action.option_strings[-1])
    return found


def test_every_number_option_has_a_bad_value_case():
    covered = {name for _, name in CLI_CASES}
    options_found = _number_options(cli._parser()) | _number_options(cam.parser())
    assert options_found == {"--threads", "--min-face", "--min-confidence", "--workers", "--every", "--max-frames",
                             "--frames-per-task"}
    assert options_found <= covered


# -- LoadSpec, the one carrier of load options -------------------------------------------------


def test_the_cli_model_options_are_load_spec_fields():
    names = {f.name for f in fields(LoadSpec)}
    model = options.model_options()
    dests = {action.dest for action in model._actions} - {"help", "verbose"}
    assert dests <= names, dests - names
    args = cli._parser().parse_args(["predict", PHOTO, "--threads", "2", "--revision", "v1", "--min-face", "20",
                                     "--min-confidence", "0.4", "--detector", "none"])
    assert options.load_spec(args) == LoadSpec(revision="v1", threads=2, min_face=20, min_confidence=0.4,
                                                detector="none")
    assert options.load_spec(args, detector="yunet").detector == "yunet"


def test_a_load_spec_pickles_without_its_token():
    spec = LoadSpec("emofer/fer5", revision="v1", threads=2, token="hf_secret")
    assert "hf_secret" not in repr(spec)
    data = pickle.dumps(spec)
    assert b"hf_secret" not in data
    clone = pickle.loads(data)
    assert clone.token is None and clone == LoadSpec("emofer/fer5", revision="v1", threads=2)


def test_from_spec_is_from_pretrained(recognizer):
    again = EmotionRecognizer.from_spec(LoadSpec(detector="none"))
    assert again.spec == recognizer.spec and again.labels == recognizer.labels
    assert [f.to_dict() for f in again.predict(PHOTO)] == [f.to_dict() for f in recognizer.predict(PHOTO)]
    assert Path(again.classifier.model_path) == Path(recognizer.classifier.model_path)
