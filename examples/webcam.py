"""A live loop like ``emofer-cam``, written out: camera frames -> faces -> tracks -> smoothed labels.

    python examples/webcam.py                  # camera 0 in a window; q or Esc quits
    python examples/webcam.py --source clip.mp4
    python examples/webcam.py --quick          # no camera, no window: a made-up clip -> webcam.mp4

Use this loop when frames come from somewhere emofer does not read itself (a capture card,
a robot's topic, a video call): ``recognizer.predict(frame)`` per frame, an ``IoUTracker``
to follow faces, a ``Smoother`` so labels do not flicker. Without a camera or a display it
runs on a generated clip and writes the annotated frames to a file instead of a window.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import cv2

import emofer
from emofer.cam import display_problem
from emofer.draw import draw_text
from emofer.video import IoUTracker, Smoother, VideoFileWriter
from emofer import EmotionRecognizer
from _helpers import OUTPUT, VIDEO_FPS, make_video, sample_photos, skip

WINDOW = "emofer example"
QUIT_KEYS = (ord("q"), 27)
QUICK_FRAMES = 20


def open_source(args: argparse.Namespace) -> tuple[cv2.VideoCapture, str]:
    """The camera or file to read, falling back to a generated clip; (capture, description)."""
    if args.source is not None:
        source = int(args.source) if args.source.isdigit() else args.source
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            skip(f"could not open {args.source}")
        return capture, f"source {args.source}"
    if not args.quick:
        capture = cv2.VideoCapture(0)
        if capture.isOpened():
            return capture, "camera 0"
        print("no camera 0 here: using a generated clip instead")
    photos = sample_photos()
    if not photos:
        skip("no camera and no sample photo to make a clip from")
    clip = make_video(args.out.with_name("webcam_input.mp4"), photos[0], frames=QUICK_FRAMES if args.quick else 60)
    return cv2.VideoCapture(str(clip)), f"generated clip {clip}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", help="camera index or video file (default: camera 0, else a generated clip)")
    parser.add_argument("--out", type=Path, default=OUTPUT / "webcam.mp4", help="annotated video when there is no window")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--quick", action="store_true", help=f"generated clip, no window, {QUICK_FRAMES} frames")
    args = parser.parse_args()

    problem = "--quick" if args.quick else display_problem()   # None when a window can be shown
    window = problem is None
    capture, described = open_source(args)
    print(f"reading {described}; " + ("showing a window (q or Esc quits)" if window else f"no window ({problem}): writing {args.out}"))

    recognizer = EmotionRecognizer.from_pretrained()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tracker, smoother = IoUTracker(), Smoother()
    writer = None if window else VideoFileWriter(args.out, fps=capture.get(cv2.CAP_PROP_FPS) or VIDEO_FPS,
                                                 overwrite=True)   # written as a temporary file, renamed at the end
    frames, started = 0, time.perf_counter()
    try:
        while args.max_frames is None or frames < args.max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            faces = recognizer.predict(frame)
            track_ids = tracker.update([face.box for face in faces])          # same face, same id
            faces = [smoother.smooth(replace(face, track_id=track_id))          # averaged, sticky label
                     for face, track_id in zip(faces, track_ids)]
            smoother.keep_only(tracker.active_ids)
            frames += 1

            canvas = emofer.draw(frame, faces, bars=True)
            fps = frames / (time.perf_counter() - started)
            draw_text(canvas, f"{fps:.1f} FPS", (0, 0))
            if window:
                cv2.imshow(WINDOW, canvas)
                if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS:
                    break
            else:
                writer.write(canvas)
                labels = ", ".join(f"#{face.track_id} {face.emotion}" for face in faces)
                print(f"frame {frames:4d}: {labels or 'no face'}")
    finally:
        capture.release()
        if writer is not None:
            writer.close()
        if window:
            cv2.destroyAllWindows()
    print(f"{frames} frames at {frames / max(time.perf_counter() - started, 1e-9):.1f} FPS with "
          f"{recognizer.config.name}" + ("" if window else f"; wrote {args.out}"))


if __name__ == "__main__":
    main()
