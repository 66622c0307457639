"""Video: reading real files, tracking, smoothing, analysis and the writers."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from emofer import Face
from emofer.errors import EmoferError, OutputError, ParameterError, VideoError
from emofer.video import (
    RANGE_TRACK_STRIDE,
    FrameResult,
    IoUTracker,
    Smoother,
    TrackedFace,
    VideoFileWriter,
    VideoFrame,
    VideoReader,
    analyze_video,
    analyze_video_frames,
    analyze_video_range,
    iter_frames,
    write_table,
    write_video,
)

from .conftest import FACES_BOXES, need
from .video_fixtures import FPS, SIZE, face_video, write_truncated_video, yunet_recognizer  # noqa: F401  (fixtures)

FACE_FRAMES, BLANK_FRAMES = 12, 3


def probs(**values):
    return {label: values.get(label, 0.0) for label in ("angry", "happy", "sad")}


# -- reading ---------------------------------------------------------------------------------


def test_iter_frames_reads_every_frame_with_its_time(face_video):
    frames = list(iter_frames(face_video))
    assert [f.index for f in frames] == list(range(FACE_FRAMES + BLANK_FRAMES))
    assert [f.timestamp_ms for f in frames] == pytest.approx([1000 * i / FPS for i in range(len(frames))])
    assert all(f.image.shape == (SIZE[1], SIZE[0], 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[-1].image.max() < 16  # the black tail (codec noise aside)


def test_every_n_frames_skips_frames(face_video):
    assert [f.index for f in iter_frames(face_video, every_n_frames=4)] == [0, 4, 8, 12]
    with pytest.raises(ValueError, match="every_n_frames"):
        next(iter_frames(face_video, every_n_frames=0))


def test_reader_reports_rate_and_length(face_video):
    with VideoReader(face_video) as reader:
        assert reader.fps == pytest.approx(FPS) and reader.frame_count == FACE_FRAMES + BLANK_FRAMES
        assert not reader.is_camera


def test_missing_damaged_and_empty_videos_raise_video_error(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        next(iter_frames(tmp_path / "missing.mp4"))
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    with pytest.raises(VideoError, match="could not be opened|no frame"):
        next(iter_frames(damaged))
    empty = tmp_path / "empty.avi"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE).release()
    with pytest.raises(VideoError):
        next(iter_frames(empty))


@pytest.mark.parametrize("camera", [99, "99"])
def test_a_camera_that_does_not_exist_raises_video_error(camera):
    with pytest.raises(VideoError, match="camera 99 could not be opened"):
        next(iter_frames(camera))


# -- tracking and smoothing ------------------------------------------------------------------


def test_tracker_keeps_ids_while_faces_move():
    tracker = IoUTracker()
    assert tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)]) == [1, 2]
    assert tracker.update([(205, 3, 50, 50), (4, 2, 50, 50)]) == [2, 1]
    assert tracker.update([(10, 4, 50, 50), (400, 400, 30, 30)]) == [1, 3]  # 2 missed once, 3 is new
    assert tracker.active_ids == {1, 2, 3}


def test_tracker_ends_tracks_after_max_missed_frames():
    tracker = IoUTracker(max_missed=2)
    tracker.update([(0, 0, 50, 50)])
    tracker.update([])
    tracker.update([])
    assert tracker.update([(0, 0, 50, 50)]) == [1]  # back within 2 missed frames
    for _ in range(3):
        tracker.update([])
    assert tracker.active_ids == frozenset()
    assert tracker.update([(0, 0, 50, 50)]) == [2]


def test_tracker_reset_ends_tracks_but_never_reuses_ids():
    tracker = IoUTracker()
    tracker.update([(0, 0, 50, 50)])
    tracker.reset()
    assert tracker.update([(0, 0, 50, 50)]) == [2]


def test_smoother_averages_and_holds_the_label_until_a_clear_lead():
    smoother = Smoother(alpha=0.5, margin=0.1)
    assert smoother.update(1, probs(angry=0.6, happy=0.4)) == (probs(angry=0.6, happy=0.4), "angry")
    smoothed, label = smoother.update(1, probs(angry=0.4, happy=0.6))
    assert smoothed == pytest.approx(probs(angry=0.5, happy=0.5)) and label == "angry"
    smoothed, label = smoother.update(1, probs(angry=0.44, happy=0.56))  # happy leads by 0.06 only
    assert smoothed["happy"] > smoothed["angry"] and label == "angry"
    smoothed, label = smoother.update(1, probs(angry=0.1, happy=0.9))
    assert smoothed["happy"] - smoothed["angry"] >= 0.1 and label == "happy"
    assert smoother.update(2, probs(sad=1.0))[1] == "sad"  # tracks are independent


def test_smoother_faces_report_the_held_label():
    smoother = Smoother(alpha=0.5, margin=0.2)
    first = smoother.smooth(Face((0, 0, 9, 9), probs(angry=0.7, happy=0.3), track_id=4))
    second = smoother.smooth(Face((1, 0, 9, 9), probs(angry=0.3, happy=0.7), track_id=4))
    assert isinstance(second, TrackedFace) and second.track_id == 4 and second.box == (1, 0, 9, 9)
    assert first.emotion == second.emotion == "angry"
    assert second.to_dict()["emotion"] == "angry" and second.confidence == pytest.approx(0.5)
    with pytest.raises(ValueError, match="track_id"):
        smoother.smooth(Face((0, 0, 9, 9), probs(angry=1.0)))


def test_smoother_forgets_ended_tracks():
    smoother = Smoother(alpha=0.5)
    smoother.update(1, probs(angry=1.0))
    smoother.keep_only([2])
    assert smoother.update(1, probs(happy=1.0)) == (probs(happy=1.0), "happy")


@pytest.mark.parametrize("every", [1, 3])
def test_frame_ranges_read_the_frames_of_a_whole_read(face_video, every):
    """Ranges [0, 4), [4, 8), [8, 13), [13, end): borders mid-video and, with every 3rd frame, off its multiples."""
    with VideoReader(face_video) as reader:
        whole = list(reader.frames(every))
    parts = []
    for start, stop in [(0, 4), (4, 8), (8, 13), (13, None)]:
        with VideoReader(face_video) as reader:
            parts.extend(reader.frames(every, start, stop))
    assert [(f.index, f.timestamp_ms) for f in parts] == [(f.index, f.timestamp_ms) for f in whole]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(parts, whole))
    assert [f.index for f in whole] == list(range(0, FACE_FRAMES + BLANK_FRAMES, every))


def test_ranges_of_a_video_that_reports_too_many_frames_read_what_it_has(tmp_path):
    video = write_truncated_video(tmp_path / "cut.avi")
    with VideoReader(video) as reader:
        assert reader.frame_count == 15
        whole = [(f.index, f.timestamp_ms) for f in reader.frames()]
    parts = []
    for start, stop in [(0, 4), (4, 8), (8, 12), (12, None)]:  # the ranges of 15 frames; the last is past the end
        with VideoReader(video) as reader:
            parts.append([(f.index, f.timestamp_ms) for f in reader.frames(1, start, stop)])
    assert 0 < len(whole) < 12 and [f for part in parts for f in part] == whole and parts[-1] == []


class FailingCapture:
    """An OpenCV capture that raises cv2.error when frame ``at`` is decoded (as a damaged stream does)."""

    def __init__(self, capture, at: int) -> None:
        self.capture, self.at, self.decoded = capture, at, 0

    def _next(self, call):
        if self.decoded == self.at:
            raise cv2.error("damaged frame")
        self.decoded += 1
        return call()

    def grab(self):
        return self._next(self.capture.grab)

    def read(self):
        return self._next(self.capture.read)

    def __getattr__(self, name):
        return getattr(self.capture, name)


def test_a_video_that_breaks_mid_way_fails_in_the_range_that_holds_the_break_only(face_video):
    def reader(*span):
        video = VideoReader(face_video)
        video._capture = FailingCapture(video._capture, at=7)
        return [f.index for f in video.frames(1, *span)]

    with pytest.raises(VideoError, match="reading frame 7 .* the 7 frames before it were delivered"):
        reader()
    assert reader(0, 4) == [0, 1, 2, 3] and reader(8, None) == []  # before the break; after it: no frame, no error
    # the message counts what this read delivered, not the frames before its range
    with pytest.raises(VideoError, match=r"reading frame 7 .* the 2 frames before it were delivered \(this read began at frame 5\)"):
        reader(5, None)
    with pytest.raises(VideoError, match="reading frame 7 "):
        reader(4, 8)


def test_a_range_past_the_end_gives_nothing_and_no_error(face_video):
    with VideoReader(face_video) as reader:
        assert list(reader.frames(1, 40, 50)) == []
    with VideoReader(face_video) as reader, pytest.raises(ParameterError, match="start"):
        list(reader.frames(1, -1))


# -- analysis ----------------------------------------------------------------------------------


RANGES = [(0, 5), (5, 11), (11, None)]


def result_keys(results):
    """Per face (or empty frame): frame_index, timestamp_ms, face index, box and probabilities."""
    return [
        (r.frame_index, r.timestamp_ms, i, f.box if f else None, f.probabilities if f else None)
        for r in results
        for i, f in (enumerate(r.faces) if r.faces else [(None, None)])
    ]


@pytest.mark.data
@pytest.mark.parametrize("every", [1, 2])
def test_analyze_video_range_equals_a_whole_run_with_tracks_scoped_to_the_range(yunet_recognizer, face_video, every):
    whole = list(analyze_video(yunet_recognizer, face_video, every_n_frames=every, smooth=False))
    parts = {
        span: list(analyze_video_range(yunet_recognizer, face_video, *span, every_n_frames=every, smooth=False))
        for span in RANGES
    }
    assert result_keys([r for results in parts.values() for r in results]) == result_keys(whole)
    by_frame = {r.frame_index: r for r in whole}
    for (start, _), results in parts.items():
        pairs = {(by_frame[r.frame_index].faces[i].track_id, f.track_id) for r in results for i, f in enumerate(r.faces)}
        assert all(ranged // RANGE_TRACK_STRIDE == start for _, ranged in pairs)  # the range is in the id
        assert len({w for w, _ in pairs}) == len({r for _, r in pairs}) == len(pairs)  # the same tracks, renamed
        if start == 0:
            assert all(w == r for w, r in pairs)  # the first range has a whole run's ids
    smoothed = list(analyze_video_range(yunet_recognizer, face_video, 0, 5, every_n_frames=every))
    assert smoothed == list(analyze_video(yunet_recognizer, face_video, every_n_frames=every, max_frames=-(-5 // every)))
    with pytest.raises(ParameterError, match="stop"):
        analyze_video_range(yunet_recognizer, face_video, 0, -2)
    with pytest.raises(ParameterError, match="path"):
        analyze_video_range(yunet_recognizer, [np.zeros((8, 8, 3), np.uint8)], 0, 1)



@pytest.mark.data
def test_analyze_video_gives_one_result_per_frame_with_stable_tracks(yunet_recognizer, face_video):
    need(FACES_BOXES / "images", "faces-boxes photos (the video pans across a photo with several faces)")
    results = list(analyze_video(yunet_recognizer, face_video))
    assert [r.frame_index for r in results] == list(range(FACE_FRAMES + BLANK_FRAMES))
    assert all(r.faces for r in results[:FACE_FRAMES]) and not any(r.faces for r in results[FACE_FRAMES:])
    first_ids = {f.track_id for f in results[0].faces}
    assert len(first_ids) >= 3 and {f.track_id for f in results[1].faces} == first_ids
    all_ids = {f.track_id for r in results for f in r.faces}
    assert len(all_ids) <= len(first_ids) + 3  # faces keep their ids while the view pans
    for face in (f for r in results for f in r.faces):
        assert isinstance(face, TrackedFace) and sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    json.dumps([r.to_dict() for r in results])


@pytest.mark.data
def test_unsmoothed_results_equal_per_image_predictions(yunet_recognizer, face_video):
    pairs = list(analyze_video_frames(yunet_recognizer, face_video, smooth=False, max_frames=2))
    assert len(pairs) == 2
    for image, result in pairs:
        expected = yunet_recognizer.predict(image)
        assert [f.probabilities for f in result.faces] == [f.probabilities for f in expected]
        assert all(f.track_id is not None for f in result.faces)


@pytest.mark.data
def test_every_n_frames_max_frames_and_predict_video(yunet_recognizer, face_video):
    results = list(yunet_recognizer.predict_video(face_video, every_n_frames=5, max_frames=2))
    assert [(r.frame_index, r.timestamp_ms) for r in results] == [(0, 0.0), (5, pytest.approx(500.0))]


@pytest.mark.data
def test_progress_goes_to_stderr_only_when_asked(yunet_recognizer, face_video, capsys):
    list(analyze_video(yunet_recognizer, face_video, max_frames=3))
    assert capsys.readouterr() == ("", "")
    list(analyze_video(yunet_recognizer, face_video, max_frames=3, progress=True))
    captured = capsys.readouterr()
    assert captured.out == "" and "3/3" in captured.err and "faces.mp4" in captured.err


@pytest.mark.data
def test_frames_that_change_size_restart_the_tracks(yunet_recognizer, face_video, monkeypatch, tmp_path):
    frames = list(iter_frames(face_video))[:4]
    bigger = [VideoFrame(4 + f.index, 400.0 + f.timestamp_ms, cv2.resize(f.image, None, fx=2, fy=2)) for f in frames]
    monkeypatch.setattr(VideoReader, "frames", lambda self, every_n_frames=1: iter(frames + bigger))
    pairs = list(analyze_video_frames(yunet_recognizer, face_video))
    before = {f.track_id for _, r in pairs[:4] for f in r.faces}
    after = {f.track_id for _, r in pairs[4:] for f in r.faces}
    assert before and after and not before & after
    assert write_video(pairs, tmp_path / "mixed.avi") == 8
    monkeypatch.undo()
    with VideoReader(tmp_path / "mixed.avi") as reader:
        assert {f.image.shape for f in reader.frames()} == {(SIZE[1], SIZE[0], 3)}


# -- writing -----------------------------------------------------------------------------------


@pytest.mark.data
def test_write_video_keeps_the_real_speed(yunet_recognizer, face_video, tmp_path):
    out = tmp_path / "annotated.mp4"
    written = write_video(analyze_video_frames(yunet_recognizer, face_video, every_n_frames=2), out, bars=True)
    assert written == 8
    with VideoReader(out) as reader:
        assert reader.fps == pytest.approx(FPS / 2) and reader.frame_count == written
        first = next(reader.frames()).image
    assert first.shape == (SIZE[1], SIZE[0], 3)
    assert np.abs(first.astype(int) - next(iter_frames(face_video)).image).mean() > 1  # boxes drawn


def test_video_file_writer_errors(tmp_path):
    with pytest.raises(VideoError, match=r"\.mp4"):
        VideoFileWriter(tmp_path / "out.gif")
    with pytest.raises(VideoError, match="no frames"):
        write_video([], tmp_path / "out.mp4")
    with pytest.raises(OutputError, match="create it first"):  # checked before any frame
        VideoFileWriter(tmp_path / "no" / "dir.mp4", fps=5)


def test_video_file_writer_single_frame_and_fixed_rate(tmp_path):
    with VideoFileWriter(tmp_path / "one.avi") as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8), 0.0)
    with VideoReader(tmp_path / "one.avi") as reader:
        assert reader.frame_count == 1 and reader.fps == pytest.approx(30.0)


def sample_results():
    face = Face((1, 2, 3, 4), probs(angry=0.2, happy=0.7, sad=0.1), score=0.9, track_id=1)
    other = Face((5, 6, 7, 8), probs(angry=0.5, happy=0.25, sad=0.25), track_id=2)
    return [FrameResult(0, 0.0, (face, other)), FrameResult(2, 66.7, ()), FrameResult(4, 133.3, (face,))]


def test_write_table_csv_has_a_row_per_face_and_per_empty_frame(tmp_path):
    path = tmp_path / "faces.csv"
    assert write_table(sample_results(), path) == 4
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["frame_index", "timestamp_ms", "x", "y", "w", "h", "score", "track_id", "emotion",
                             "confidence", "abstained", "angry", "happy", "sad"]
    assert [r["frame_index"] for r in rows] == ["0", "0", "2", "4"]
    assert rows[0]["emotion"] == "happy" and float(rows[0]["happy"]) == 0.7 and rows[1]["score"] == ""
    assert rows[2]["timestamp_ms"] == "66.7" and all(rows[2][key] == "" for key in ("x", "emotion", "happy"))


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_write_table_json(tmp_path, suffix):
    path = tmp_path / f"faces{suffix}"
    write_table(sample_results(), path)
    text = path.read_text()
    rows = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines()]
    assert [r["frame_index"] for r in rows] == [0, 0, 2, 4]
    assert rows[0]["probabilities"]["happy"] == 0.7 and rows[0]["box"] == [1, 2, 3, 4]
    assert rows[2]["box"] is None and rows[2]["emotion"] is None


def test_write_table_empty_and_bad_suffix(tmp_path):
    write_table([], tmp_path / "none.json")
    assert json.loads((tmp_path / "none.json").read_text()) == []
    with pytest.raises(ParameterError, match=".csv"):  # also a ValueError, as before
        write_table(sample_results(), tmp_path / "faces.xlsx")
    with pytest.raises(OutputError, match="create it first"):
        write_table(sample_results(), tmp_path / "no such folder" / "faces.csv")


def test_argument_errors_are_emofer_errors_and_value_errors():
    with pytest.raises(ParameterError, match="alpha") as info:
        Smoother(alpha=0)
    assert isinstance(info.value, EmoferError) and isinstance(info.value, ValueError)
