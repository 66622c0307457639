"""The one list of face detectors emofer builds by name.

Everything that names a detector reads it: :func:`emofer.detect.build_detector` and
``--detector`` on the command line (:data:`NAMES`), the recognizer's warning when a model has no
crop measured for its detector (:func:`needs_crop`), ``training/framing.py`` (which measures a
crop policy for each of :data:`FRAMED`) and ``benchmarks/detectors.py`` (which scores them).
A new detector is a class in ``detect/`` and one :class:`DetectorEntry` here; then
``python -m training.framing`` measures its crop and ``training.export`` writes it into models.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass

from ..errors import ParameterError
from .base import Detector
from .haar import HaarDetector
from .whole_image import WholeImageDetector
from .yunet import YuNetDetector

__all__ = ["DetectorEntry", "DETECTORS", "NAMES", "FRAMED", "FRAMING_COMMAND", "entry", "needs_crop"]

#: What measures the crop policies of the detectors in FRAMED (``crop_by_detector`` in config.json).
FRAMING_COMMAND = "python -m training.framing"


@dataclass(frozen=True)
class DetectorEntry:
    """A detector emofer builds by name.

    ``name`` is the built detector's ``Detector.name`` and its key in a model's
    ``crop_by_detector``; ``aliases`` are other names for it ("auto"); ``build(min_face)`` makes
    one; ``framed`` is True for detectors that box faces in their own way, whose crop
    ``training.framing`` measures (False for "none": the whole image is the face).
    """

    name: str
    build: Callable[[int], Detector]
    summary: str
    framed: bool = True
    aliases: tuple[str, ...] = ()


def _yunet(min_face: int) -> Detector:
    return YuNetDetector(min_face=min_face)


def _haar(min_face: int) -> Detector:
    return HaarDetector()


def _whole(min_face: int) -> Detector:
    return WholeImageDetector()


#: Every detector by name, in the order the command line lists them.
DETECTORS: dict[str, DetectorEntry] = {
    entry.name: entry
    for entry in (
        DetectorEntry("yunet", _yunet, "OpenCV's YuNet CNN, weights bundled (the default)", aliases=("auto",)),
        DetectorEntry("haar", _haar, "OpenCV's Haar cascade (opencv-python < 5)"),
        DetectorEntry("none", _whole, "the whole image is one face (for ready-made crops)", framed=False),
    )
}
#: The names ``detector=`` and ``--detector`` take: each detector's aliases, then its name.
NAMES: tuple[str, ...] = tuple(name for entry in DETECTORS.values() for name in (*entry.aliases, entry.name))
#: Detectors whose crop policy ``training.framing`` measures (sorted: the order of its reports).
FRAMED: tuple[str, ...] = tuple(sorted(name for name, entry in DETECTORS.items() if entry.framed))


def entry(name: str) -> DetectorEntry:
    """The entry for a detector name or alias (any case); ParameterError listing the names otherwise."""
    key = name.strip().lower()
    for candidate in DETECTORS.values():
        if key == candidate.name or key in candidate.aliases:
            return candidate
    raise ParameterError(f"unknown detector {name!r}; use one of {', '.join(NAMES)}, a Detector or a box function")


def needs_crop(detector_name: str, measured: Container[str]) -> bool:
    """True when ``detector_name`` is one whose crop is measured (FRAMED) but ``measured`` (a model's
    ``crop_by_detector``) has none for it: its faces would get the model's generic crop."""
    return detector_name in FRAMED and detector_name not in measured
