"""``emofer cam`` (alias ``emofer-cam``): live emotions from a webcam (or a video file) in a window,
or recorded to a file.

    emofer cam                          # camera 0, window; q or Esc quits
    emofer-cam clip.mp4 --no-window --out annotated.mp4    # or --source clip.mp4

The ``emofer`` command adds this subcommand with :func:`add_arguments` and :func:`live`;
:func:`main` is the ``emofer-cam`` alias, the same parser on its own.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import cv2

from . import options
from .draw import draw, draw_text
from .errors import EmoferError, ParameterError
from .gui import display_problem, opencv_gui
from .video import FacePredictor, VideoFileWriter, analyze_video_frames

__all__ = ["main", "live", "add_arguments", "parser", "summary", "opencv_gui", "display_problem"]

PROG = "emofer-cam"
DESCRIPTION = "Live facial emotions from a camera or video."
WINDOW = "emofer"
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q, Q, Esc
#: Weight of the newest frame in the displayed frames-per-second average.
FPS_SMOOTHING = 0.1
EXIT_SETUP_ERROR = 2
#: What to do instead when no window can be shown.
RECORD_INSTEAD = "run with --no-window --out out.mp4 to record instead"


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the live view, added to a parser built on :func:`emofer.options.model_options`."""
    parser.add_argument(
        "source",
        nargs="?",
        default=None,
        metavar="SOURCE",
        help="camera index (0, 1, ...) or a video file (default: 0); the same as --source",
    )
    parser.add_argument(
        "--source",
        dest="source_option",
        default=None,
        metavar="SOURCE",
        help="camera index (0, 1, ...) or a video file (default: 0)",
    )
    parser.add_argument("--no-window", action="store_true", help="do not open a window (record with --out)")
    parser.add_argument("--out", default=None, help="also write the annotated video here (.mp4, .avi)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --out if it exists (the source is never written)"
    )
    parser.add_argument(
        "--max-frames", type=options.frames, default=None, metavar="N", help="stop after this many frames"
    )
    parser.add_argument("--no-bars", action="store_true", help="hide the per-emotion probability bars")


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The ``emofer-cam`` parser: the same options and help as ``emofer cam``."""
    cam = options.Parser(prog=prog, description=DESCRIPTION, parents=[options.model_options()])
    cam.set_defaults(verbose=False)
    add_arguments(cam)
    return cam


def main(argv: list[str] | None = None) -> int:
    """``emofer-cam``: 0 on a normal end, 2 when the display, camera or model is unusable."""
    try:
        args = parser().parse_args(argv)
    except EmoferError as exc:  # a mistake in the command line: one line
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_SETUP_ERROR
    options.configure_logging(args.verbose, PROG)
    try:
        frames = live(args)
    except EmoferError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_SETUP_ERROR
    print(f"{PROG}: {summary(frames, args.out)}", file=sys.stderr)
    return 0


def live(args: argparse.Namespace) -> int:
    """Show (or record) the live view ``args`` describe; returns the number of frames.

    Raises EmoferError, before any frame, when no window can be shown (and one is asked for),
    and when the camera, model or output file is unusable.
    """
    source = _source(args)
    window = not args.no_window
    if window and (problem := display_problem()):
        raise EmoferError(f"{problem}; {RECORD_INSTEAD}")
    if not window and args.out is None:
        logging.getLogger("emofer").warning("--no-window without --out: frames are analysed but not shown or saved")
    try:
        inputs = [source] if Path(source).exists() else []
        writer = VideoFileWriter(args.out, overwrite=args.overwrite, inputs=inputs) if args.out else None
        recognizer = options.load_recognizer(args)
        return _run(recognizer, source, args, writer, window)
    except cv2.error as exc:
        raise EmoferError(
            f"OpenCV could not show a window ({str(exc).strip().splitlines()[-1]}); {RECORD_INSTEAD}"
        ) from exc
    finally:
        if window:
            cv2.destroyAllWindows()


def _source(args: argparse.Namespace) -> str:
    """The camera or file to read: the positional SOURCE or --source (one of them), else camera 0."""
    if args.source is not None and args.source_option is not None and args.source != args.source_option:
        raise ParameterError(f"two sources given ({args.source} and --source {args.source_option}); give one")
    return args.source or args.source_option or "0"


def summary(frames: int, out: str | None) -> str:
    """The closing line of the live view: how many frames, and where they were saved."""
    return f"{frames} frames" + (f", saved to {out}" if out else "")


def _run(
    recognizer: FacePredictor, source: str, args: argparse.Namespace, writer: VideoFileWriter | None, window: bool
) -> int:
    """The frame loop; returns the number of frames shown or written. Ctrl-C ends it like q does."""
    meter, frames = _FpsMeter(), 0
    try:
        for image, result in analyze_video_frames(recognizer, source, smooth=True, max_frames=args.max_frames):
            canvas = draw(image, result.faces, bars=not args.no_bars)
            draw_text(canvas, f"{meter.tick():.1f} FPS", (0, 0))
            frames += 1
            if writer is not None:
                writer.write(canvas, result.timestamp_ms)
            if window:
                cv2.imshow(WINDOW, canvas)
                if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                    break
    except KeyboardInterrupt:  # how a recording without a window is stopped: keep it
        pass
    finally:
        if writer is not None:
            writer.close()
    return frames


if __name__ == "__main__":
    sys.exit(main())
