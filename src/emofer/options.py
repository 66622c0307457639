"""Command-line options shared by the ``emofer`` subcommands and the ``emofer-cam`` alias.

Each option is declared once here, in parent parsers that ``emofer predict``, ``emofer video``
and ``emofer cam`` / ``emofer-cam`` are built on. The model options' ``dest`` names are
:class:`~emofer.recognizer.LoadSpec`'s fields: :func:`load_spec` carries them into the spec (a new
load option is the spec's field, ``from_pretrained``'s keyword and one ``add_argument`` here).
Numbers are checked by ``type=`` functions built on :func:`emofer.validate.check_scalar`, the
check the Python API uses, and :class:`Parser` reports any mistake as one line.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any, NoReturn

from .detect.registry import NAMES as DETECTOR_NAMES
from .errors import ParameterError
from .validate import check_scalar

if TYPE_CHECKING:
    from .recognizer import EmotionRecognizer, LoadSpec

__all__ = [
    "VERBOSE_HELP",
    "Parser",
    "verbose_options",
    "model_options",
    "configure_logging",
    "load_spec",
    "load_recognizer",
    "number",
    "probability",
    "pixels",
    "count",
    "frames",
    "frames_per_task",
]

VERBOSE_HELP = "log what is loaded from where"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes are ParameterError: the command prints them as one line
    ("emofer: error: argument --every: must be 1 or more, got 0 (see emofer video --help)") and
    exits 2, with no usage block. ``--help`` and ``--version`` print and exit as usual."""

    def error(self, message: str) -> NoReturn:
        raise ParameterError(f"{message} (see {self.prog} --help)")


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
    parser.add_argument(
        "--revision",
        default=None,
        help="with a Hub repo id: the tag, branch or commit to load (default: the bundled copy of a "
        "bundled name, else main)",
    )
    parser.add_argument(
        "--threads",
        type=count,
        default=None,
        metavar="N",
        help="threads ONNX Runtime uses per image (default: its own choice)",
    )
    parser.add_argument("--detector", default="auto", choices=DETECTOR_NAMES, help="face detector (default: auto)")
    parser.add_argument(
        "--min-face",
        type=pixels,
        default=None,
        metavar="PX",
        help="smallest face (pixels) YuNet must find; smaller is slower (default: 32)",
    )
    parser.add_argument(
        "--min-confidence",
        type=probability,
        default=0.0,
        metavar="P",
        help="abstain (mark the face unsure) when the top probability is below P (default: 0, never)",
    )
    return parser


def configure_logging(verbose: bool, prog: str) -> None:
    """Log on stderr as ``PROG: message``: INFO and up with ``-v``, else WARNING and up."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=f"{prog}: %(message)s")
    # huggingface_hub prints its warnings with a handler of its own; through ours as well, each came out twice
    logging.getLogger("huggingface_hub").propagate = False


def load_spec(args: argparse.Namespace, **overrides: Any) -> LoadSpec:
    """The LoadSpec of the model options in ``args`` (each option's ``dest`` is a field's name), with
    ``overrides``; options a subcommand does not have keep the spec's defaults."""
    from .recognizer import LoadSpec

    given = {f.name: getattr(args, f.name) for f in fields(LoadSpec) if hasattr(args, f.name)}
    return LoadSpec(**{**given, **overrides})


def load_recognizer(args: argparse.Namespace) -> EmotionRecognizer:
    """The recognizer that the options of :func:`model_options` in ``args`` describe."""
    from .recognizer import EmotionRecognizer

    return EmotionRecognizer.from_spec(load_spec(args))


def number(name: str, kind: type, **bounds: Any) -> Callable[[str], Any]:
    """An argparse ``type=`` for the option ``name``: its text as ``kind`` (int or float), checked by
    :func:`emofer.validate.check_scalar` with ``bounds`` (min_val, max_val, ...), the API's check."""

    def parse(text: str) -> Any:
        try:
            value: Any = kind(text)
        except ValueError:
            value = text  # check_scalar says what kind of value it must be
        try:
            return check_scalar(value, name, kind, **bounds)
        except ParameterError as exc:  # argparse adds "argument --name: " itself
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{name} ")) from None

    parse.__name__ = name
    return parse


#: --min-confidence: a probability.
probability = number("min_confidence", float, min_val=0, max_val=1, describe="a probability from 0 to 1 (e.g. 0.5)")
#: --min-face: a positive whole number of pixels.
pixels = number("min_face", int, min_val=1, describe="a positive number of pixels")
#: --threads, --workers, --every: a positive whole number.
count = number("count", int, min_val=1, describe="a positive whole number")
#: --max-frames: a whole number, 0 or more.
frames = number("max_frames", int, min_val=0, describe="a whole number of frames, 0 or more")
#: --frames-per-task: a whole number of frames, 1 or more.
frames_per_task = number("frames_per_task", int, min_val=1, describe="a whole number of frames, 1 or more")
