"""``emofer-cam``: live emotions from a webcam (or a video file) in a window, or recorded to a file.

    emofer-cam                          # camera 0, window; q or Esc quits
    emofer-cam --source clip.mp4 --no-window --out annotated.mp4
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import TYPE_CHECKING

import cv2

from .detect import NAMES as DETECTOR_NAMES
from .cli import pixels, probability
from .draw import draw, draw_text
from .errors import EmoferError
from .video import VideoFileWriter, analyze_video_frames

if TYPE_CHECKING:
    from .recognizer import EmotionRecognizer

__all__ = ["main", "opencv_gui", "display_problem"]

WINDOW = "emofer"
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q, Q, Esc
#: Weight of the newest frame in the displayed frames-per-second average.
FPS_SMOOTHING = 0.1
EXIT_SETUP_ERROR = 2
#: Build-information lines that name an OpenCV GUI backend when there is no "GUI:" summary line.
GUI_BACKENDS = ("GTK+", "GTK", "QT", "Win32 UI", "Cocoa")


def opencv_gui() -> str | None:
    """The GUI backend OpenCV was built with (e.g. "QT5", "GTK3"), or None for a headless build."""
    found = []
    for line in cv2.getBuildInformation().splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "GUI":
            return None if value.upper() in ("", "NONE", "NO") else value
        if key in GUI_BACKENDS and value.upper().startswith("YES"):
            found.append(key)
    return " ".join(found) or None


def display_problem() -> str | None:
    """Why a window cannot be shown here, or None when it probably can."""
    if opencv_gui() is None:
        return (
            "this OpenCV build has no GUI (opencv-python-headless?), so it cannot open a window; "
            "pip install opencv-python"
        )
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display found (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    return None


class _FpsMeter:
    """Frames per second as a moving average over frame-to-frame times."""

    def __init__(self) -> None:
        self.fps = 0.0
        self._last: float | None = None

    def tick(self) -> float:
        now = time.perf_counter()
        if self._last is not None and now > self._last:
            current = 1.0 / (now - self._last)
            self.fps = current if self.fps == 0.0 else FPS_SMOOTHING * current + (1 - FPS_SMOOTHING) * self.fps
        self._last = now
        return self.fps


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emofer-cam", description="Live facial emotions from a camera or video.")
    parser.add_argument("--source", default="0", help="camera index (0, 1, ...) or a video file (default: 0)")
    parser.add_argument("--model", default=None, help="model folder, .onnx file or Hub repo id (default: bundled)")
    parser.add_argument("--detector", default="auto", choices=DETECTOR_NAMES, help="face detector (default: auto)")
    parser.add_argument("--min-face", type=pixels, default=None, metavar="PX",
                        help="smallest face (pixels) YuNet must find; smaller is slower (default: 32)")
    parser.add_argument("--min-confidence", type=probability, default=0.0, metavar="P",
                        help="mark a face unsure when its top probability is below P (default: 0, never)")
    parser.add_argument("--no-window", action="store_true", help="do not open a window (record with --out)")
    parser.add_argument("--out", default=None, help="also write the annotated video here (.mp4, .avi)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--no-bars", action="store_true", help="hide the per-emotion probability bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the live view; 0 on a normal end, 2 when the display, camera or model is unusable."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="emofer-cam: %(message)s")
    window = not args.no_window
    if window and (problem := display_problem()):
        return _fail(f"{problem}; run with --no-window --out out.mp4 to record instead")
    if not window and args.out is None:
        logging.getLogger("emofer").warning("--no-window without --out: frames are analysed but not shown or saved")
    from .recognizer import EmotionRecognizer

    try:
        recognizer = EmotionRecognizer.from_pretrained(args.model, detector=args.detector, min_face=args.min_face,
                                                       min_confidence=args.min_confidence)
        writer = VideoFileWriter(args.out) if args.out else None
        frames = _run(recognizer, args, writer, window)
    except EmoferError as exc:
        return _fail(str(exc))
    except cv2.error as exc:
        return _fail(f"OpenCV could not show a window ({str(exc).strip().splitlines()[-1]}); "
                     "run with --no-window --out out.mp4 to record instead")
    finally:
        if window:
            cv2.destroyAllWindows()
    print(f"emofer-cam: {frames} frames" + (f", saved to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def _run(recognizer: EmotionRecognizer, args: argparse.Namespace, writer: VideoFileWriter | None, window: bool) -> int:
    """The frame loop; returns the number of frames shown or written."""
    meter, frames = _FpsMeter(), 0
    try:
        for image, result in analyze_video_frames(recognizer, args.source, smooth=True, max_frames=args.max_frames):
            canvas = draw(image, result.faces, bars=not args.no_bars)
            draw_text(canvas, f"{meter.tick():.1f} FPS", (0, 0))
            frames += 1
            if writer is not None:
                writer.write(canvas, result.timestamp_ms)
            if window:
                cv2.imshow(WINDOW, canvas)
                if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                    break
    finally:
        if writer is not None:
            writer.close()
    return frames


def _fail(message: str) -> int:
    print(f"emofer-cam: {message}", file=sys.stderr)
    return EXIT_SETUP_ERROR


if __name__ == "__main__":
    sys.exit(main())
