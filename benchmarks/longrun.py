"""A long video run: synthetic 640x480 frames fed straight to ``predict_video`` with tracking on.

    python -m benchmarks.longrun [--minutes 60] [--fps 30] [--seconds S] [--every 1000] [--out FILE]

The default is one hour of video at 30 fps (108,000 frames). Each frame is a grey gradient
with one to four copies of a real face photo (examples/images/grace_hopper.jpg) drifting
across it; every 90 frames the faces leave and new ones appear elsewhere, so tracks keep
starting and ending. Frames are generated in memory (no encoded file). The resident set size
(VmRSS, Linux) and the tracker's live-track count are sampled every ``--every`` frames; a
leak shows as growth after warm-up. ``--seconds`` stops early (wall-clock) on a slow machine,
and the JSON says how many frames ran.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from benchmarks.memory import command_line, rss_mib, rss_summary, write_json
from emofer import EmotionRecognizer, hub, video
from emofer.detect import YuNetDetector

ROOT = Path(__file__).resolve().parents[1]
FACE_PHOTO = ROOT / "examples" / "images" / "grace_hopper.jpg"
DEFAULT_OUT = ROOT / "docs" / "robustness-longrun.json"
SHARED_YUNET = ROOT.parent / "shared" / "models" / "face_detection_yunet_2026may.onnx"
WIDTH, HEIGHT = 640, 480
#: Frames between scene changes (faces leave, others appear).
SCENE_FRAMES = 90
FACE_SIDE = 150


def synthetic_frames(count: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` 640x480 BGR frames with 1-4 drifting faces; the cast changes every SCENE_FRAMES."""
    rng = np.random.default_rng(seed)
    face = cv2.resize(cv2.imread(str(FACE_PHOTO))[40:460, 60:460], (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)
    ramp = np.linspace(60, 190, WIDTH, dtype=np.float32)
    background = np.repeat(np.repeat(ramp[None, :, None], HEIGHT, 0), 3, 2).astype(np.uint8)
    frame = background.copy()
    starts: np.ndarray = np.zeros((0, 2))
    for index in range(count):
        if index % SCENE_FRAMES == 0:
            n = int(rng.integers(1, 5))
            starts = rng.uniform((0, 0), (WIDTH - FACE_SIDE - 60, HEIGHT - FACE_SIDE), (n, 2))
        np.copyto(frame, background)
        drift = (index % SCENE_FRAMES) * 0.6
        for x, y in starts:
            x0, y0 = int(x + drift), int(y)
            frame[y0:y0 + FACE_SIDE, x0:x0 + FACE_SIDE] = face
        yield frame


def run(recognizer: EmotionRecognizer, frames: int, every: int, seconds: float | None) -> dict:
    """Run ``frames`` synthetic frames (or until ``seconds``); samples of RSS, live tracks and faces."""
    trackers: list[video.IoUTracker] = []
    original = video.IoUTracker

    class Watched(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            trackers.append(self)

    video.IoUTracker = Watched  # observe the tracker predict_video builds, without changing it
    start = time.perf_counter()
    samples = [{"frames": 0, "rss_mib": round(rss_mib(), 2), "seconds": 0.0, "live_tracks": 0, "faces": 0}]
    faces = done = 0
    max_tracks = 0
    try:
        for result in recognizer.predict_video(synthetic_frames(frames), smooth=True):
            done += 1
            faces += len(result.faces)
            live = len(trackers[0].active_ids) if trackers else 0
            max_tracks = max(max_tracks, live)
            elapsed = time.perf_counter() - start
            if done % every == 0 or done == frames:
                samples.append({"frames": done, "rss_mib": round(rss_mib(), 2), "seconds": round(elapsed, 1),
                                "live_tracks": live, "faces": faces})
                print(f"{done:>7} frames  {samples[-1]['rss_mib']:8.1f} MiB  {elapsed:8.1f} s  "
                      f"{live} live tracks", flush=True)
            if seconds is not None and elapsed > seconds:
                if samples[-1]["frames"] != done:
                    samples.append({"frames": done, "rss_mib": round(rss_mib(), 2), "seconds": round(elapsed, 1),
                                    "live_tracks": live, "faces": faces})
                break
    finally:
        video.IoUTracker = original
    last_id = trackers[0]._next_id - 1 if trackers else 0
    return {"samples": samples, "frames_run": done, "faces": faces, "max_live_tracks": max_tracks,
            "tracks_started": last_id}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.longrun", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=hub.DEFAULT_MODEL, help="model folder, .onnx or repo id")
    parser.add_argument("--detector", default=str(SHARED_YUNET) if SHARED_YUNET.exists() else "auto",
                        help="face detector name, or a YuNet .onnx file (default: ../shared's YuNet, else auto)")
    parser.add_argument("--minutes", type=float, default=60.0, help="minutes of video to run (default: 60)")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second of the video (default: 30)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this much wall-clock time")
    parser.add_argument("--every", type=int, default=1000, help="sample memory every this many frames")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)
    frames = int(round(args.minutes * 60 * args.fps))
    detector = YuNetDetector(args.detector) if args.detector.endswith(".onnx") else args.detector
    recognizer = EmotionRecognizer.from_pretrained(args.model, detector=detector)
    outcome = run(recognizer, frames, args.every, args.seconds)
    samples = outcome.pop("samples")
    memory = rss_summary(samples)
    rss, warm = [s["rss_mib"] for s in samples], memory["after_first_sample_mib"]
    result = {
        "command": command_line("benchmarks.longrun", argv),
        "model": recognizer.config.name,
        "detector": recognizer.detector.name,
        "frame_size": [WIDTH, HEIGHT],
        "frames_asked": frames,
        **outcome,
        "video_minutes_run": round(outcome["frames_run"] / args.fps / 60, 2),
        **memory,
        "max_after_first_sample_mib": max(rss[1:]) if len(rss) > 1 else rss[0],
        "ms_per_frame": round(1000.0 * samples[-1]["seconds"] / max(1, outcome["frames_run"]), 2),
        "python": platform.python_version(),
        "samples": samples,
    }
    print(f"{outcome['frames_run']} frames ({result['video_minutes_run']} min of video): RSS {rss[0]:.1f} -> "
          f"{warm:.1f} after warm-up -> {rss[-1]:.1f} MiB (max {max(rss):.1f}); "
          f"{outcome['tracks_started']} tracks started, at most {outcome['max_live_tracks']} alive")
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
