"""Command-line options shared by the ``emofer`` subcommands and the ``emofer-cam`` alias.

Each option is declared once here, in parent parsers that ``emofer predict``, ``emofer video``
and ``emofer cam`` / ``emofer-cam`` are built on, with :func:`load_recognizer` turning the
model options into the recognizer they describe.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from .detect import NAMES as DETECTOR_NAMES

if TYPE_CHECKING:
    from .recognizer import EmotionRecognizer

__all__ = [
    "VERBOSE_HELP", "verbose_options", "model_options", "configure_logging", "load_recognizer", "probability", "pixels",
    "count",
]

VERBOSE_HELP = "log what is loaded from where"


def verbose_options() -> argparse.ArgumentParser:
    """A parent parser with ``-v``/``--verbose`` for a subcommand.

    Its default is SUPPRESS, so a subcommand does not reset an ``emofer -v`` given before it;
    a parser of its own sets ``verbose=False`` with ``set_defaults``. A new parser each call,
    since parsers built on it share its actions and ``set_defaults`` changes them.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def model_options() -> argparse.ArgumentParser:
    """A parent parser with ``-v`` and the options of :func:`load_recognizer`: the model, the face
    detector, the smallest face and the confidence below which a face is marked unsure."""
    parser = argparse.ArgumentParser(add_help=False, parents=[verbose_options()])
    parser.add_argument("--model", default=None, help="model folder, .onnx file or Hub repo id (default: bundled)")
    parser.add_argument("--revision", default=None,
                        help="with a Hub repo id: the tag, branch or commit to load (default: the bundled copy of a "
                             "bundled name, else main)")
    parser.add_argument("--threads", type=count, default=None, metavar="N",
                        help="threads ONNX Runtime uses per image (default: its own choice)")
    parser.add_argument("--detector", default="auto", choices=DETECTOR_NAMES, help="face detector (default: auto)")
    parser.add_argument("--min-face", type=pixels, default=None, metavar="PX",
                        help="smallest face (pixels) YuNet must find; smaller is slower (default: 32)")
    parser.add_argument("--min-confidence", type=probability, default=0.0, metavar="P",
                        help="abstain (mark the face unsure) when the top probability is below P (default: 0, never)")
    return parser


def configure_logging(verbose: bool, prog: str) -> None:
    """Log on stderr as ``PROG: message``: INFO and up with ``-v``, else WARNING and up."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=f"{prog}: %(message)s")
    # huggingface_hub prints its warnings with a handler of its own; through ours as well, each came out twice
    logging.getLogger("huggingface_hub").propagate = False


def load_recognizer(args: argparse.Namespace) -> EmotionRecognizer:
    """The recognizer that the options of :func:`model_options` in ``args`` describe."""
    from .recognizer import EmotionRecognizer

    return EmotionRecognizer.from_pretrained(args.model, revision=args.revision, threads=args.threads,
                                             detector=args.detector, min_face=args.min_face,
                                             min_confidence=args.min_confidence)


def probability(text: str) -> float:
    """argparse type of --min-confidence: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability from 0 to 1 (e.g. 0.5)")
    return value


def pixels(text: str) -> int:
    """argparse type of --min-face: a positive whole number of pixels."""
    return _positive(text, "a positive number of pixels")


def count(text: str) -> int:
    """argparse type of --threads: a positive whole number."""
    return _positive(text, "a positive whole number")


def _positive(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value
