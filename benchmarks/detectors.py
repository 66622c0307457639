"""Face detector recall and false positives on the faces-boxes photos, and small faces in large
images, written to docs/detectors.md.

    python -m benchmarks.detectors [--data ../shared/data/faces-boxes] [--yunet PATH.onnx]

A detection counts as a found face when it overlaps a hand-drawn box at IoU >= 0.3 (the boxes
are tight squares, detectors box faces differently); each box is matched once, greedily by IoU.
Every face in these photos is boxed, so unmatched detections are false positives.
Large images: the shipped example portrait, scaled so its face is 32-96 px, pasted into grey
canvases of 1920x1080 to 6000x4000 at a few places; YuNet with and without its second pass.
"""

from __future__ import annotations

import argparse
import csv
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emofer.boxes import Box, match
from emofer.detect import Detector, YuNetDetector, build_detector, haar, yunet
from emofer.detect.registry import DETECTORS, FRAMED
from emofer.errors import DetectorError
from emofer.io import load_image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_DATA = SHARED / "data" / "faces-boxes"
DEFAULT_YUNET = yunet.BUNDLED_WEIGHTS
EXAMPLE_PHOTO = ROOT / "examples" / "images" / "grace_hopper.jpg"
CANVASES = ((1920, 1080), (3840, 2160), (6000, 4000))
FACE_SIDES = (32, 48, 96)
#: Where the portrait is pasted, as fractions of the canvas (left, top).
PLACES = ((0.13, 0.21), (0.47, 0.52), (0.81, 0.77))
DEFAULT_OUT = ROOT / "docs" / "detectors.md"
IOU_THRESHOLD = 0.3


@dataclass(frozen=True)
class DetectorScore:
    """One detector's counts over a set of photos."""

    name: str
    images: int
    faces: int
    found: int
    false_positives: int
    ms_per_image: float

    @property
    def recall(self) -> float:
        return self.found / self.faces if self.faces else 0.0


def load_boxes(folder: Path) -> dict[Path, tuple[list[Box], list[Box]]]:
    """Image path -> (face boxes, boxes marked ignore) from ``boxes.csv``."""
    boxes: dict[Path, tuple[list[Box], list[Box]]] = {}
    with open(folder / "boxes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            faces, ignored = boxes.setdefault(folder / row["path"], ([], []))
            box = (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"]))
            (ignored if row.get("ignore", "0") not in ("", "0") else faces).append(box)
    return boxes


def evaluate(detector: Detector, boxes: dict[Path, tuple[list[Box], list[Box]]],
             threshold: float = IOU_THRESHOLD) -> DetectorScore:
    """Found faces and false positives of ``detector`` over the photos of ``boxes``."""
    found = false_positives = faces = 0
    times = []
    for path, (truth, ignored) in sorted(boxes.items()):
        image = load_image(path)
        start = time.process_time()
        detected = [d.box for d in detector.detect(image)]
        times.append(time.process_time() - start)
        matched = match(truth, detected, threshold)
        unmatched = [box for j, box in enumerate(detected) if j not in {j for _, j in matched}]
        excused = match(ignored, unmatched, threshold) if ignored else []
        faces += len(truth)
        found += len(matched)
        false_positives += len(unmatched) - len(excused)
    return DetectorScore(detector.name, len(boxes), faces, found, false_positives, 1000 * statistics.median(times))


@dataclass(frozen=True)
class LargeImageScore:
    """Recall of one detector on one canvas size over FACE_SIDES x PLACES pasted portraits."""

    name: str
    canvas: tuple[int, int]
    found: dict[int, int]
    tries: int
    ms_per_image: float


class FirstPassOnly(YuNetDetector):
    """YuNet as it was before the second pass: the whole image scaled to ``max_side`` only."""

    def pass_scales(self, width: int, height: int) -> tuple[float, ...]:
        return super().pass_scales(width, height)[:1]


def large_images(detector: Detector, name: str) -> list[LargeImageScore]:
    """Recall and median time of ``detector`` on the example portrait pasted into large canvases."""
    photo = load_image(EXAMPLE_PHOTO)
    (face,) = YuNetDetector(min_face=yunet.DETECTABLE).detect(photo)
    scores = []
    for width, height in CANVASES:
        found, times = {}, []
        for side in FACE_SIDES:
            factor = side / face.box[2]
            portrait = cv2.resize(photo, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            truth_w, truth_h = round(face.box[2] * factor), round(face.box[3] * factor)
            found[side] = 0
            for fx, fy in PLACES:
                x = min(round(fx * width), width - portrait.shape[1])
                y = min(round(fy * height), height - portrait.shape[0])
                canvas = np.full((height, width, 3), 128, np.uint8)
                canvas[y:y + portrait.shape[0], x:x + portrait.shape[1]] = portrait
                truth = (x + round(face.box[0] * factor), y + round(face.box[1] * factor), truth_w, truth_h)
                start = time.process_time()
                detected = [d.box for d in detector.detect(canvas)]
                times.append(time.process_time() - start)
                found[side] += bool(match([truth], detected, IOU_THRESHOLD))
        scores.append(LargeImageScore(name, (width, height), found, len(PLACES), 1000 * statistics.median(times)))
    return scores


def large_image_lines(scores: list[LargeImageScore]) -> list[str]:
    """The markdown section for :func:`large_images`."""
    lines = [
        "## Small faces in large images",
        "",
        "The example portrait (examples/images/grace_hopper.jpg), scaled so its face is "
        f"{', '.join(map(str, FACE_SIDES))} px wide, pasted into a grey canvas at {len(PLACES)} places; "
        f"found = a detection at IoU >= {IOU_THRESHOLD}.",
        "",
        "| detector | image | " + " | ".join(f"{side} px faces" for side in FACE_SIDES) + " | median ms / image |",
        "|---|---|" + "---|" * len(FACE_SIDES) + "---|",
    ]
    for s in scores:
        cells = " | ".join(f"{s.found[side]}/{s.tries}" for side in FACE_SIDES)
        lines.append(f"| {s.name} | {s.canvas[0]}x{s.canvas[1]} | {cells} | {s.ms_per_image:.0f} |")
    lines += [
        "",
        f"YuNet's first pass scales the image to at most {yunet.MAX_SIDE} px, which shrinks a "
        f"{yunet.MIN_FACE} px face below the {yunet.DETECTABLE} px YuNet needs once the image is larger than "
        f"{yunet.MAX_SIDE * yunet.MIN_FACE // yunet.DETECTABLE} px. There a second pass runs at the "
        f"`min_face` scale ({yunet.DETECTABLE}/{yunet.MIN_FACE} by default) on a copy of at most "
        f"{yunet.FINE_MAX_PIXELS / 1e6:.0f} MP (`FINE_MAX_PIXELS`, the time budget: beyond "
        f"{4 * yunet.FINE_MAX_PIXELS / 1e6:.0f} MP at the default `min_face` the smallest face found grows with the "
        "image), and adds "
        "the faces the first pass did not find. Images up to 1280 px (webcam and 720p frames, the "
        "faces-boxes photos above) run one pass, as before. A larger `min_face` makes large images "
        "faster: `min_face=64` needs no second pass up to 2560 px.",
        "",
    ]
    return lines


def report(scores: list[DetectorScore], command: str,
           large: list[LargeImageScore] | None = None) -> str:
    """docs/detectors.md: a table of the scores and the command that made it."""
    lines = [
        "# Face detectors compared",
        "",
        f"Measured on the faces-boxes photos ({scores[0].images} colour photos, {scores[0].faces} hand-boxed",
        f"faces, 332-500 px): a face is found when a detection overlaps its box at IoU >= {IOU_THRESHOLD};",
        "every face is boxed, so an unmatched detection is a false positive.",
        "",
        "| detector | found | recall | false positives | median ms / image |",
        "|---|---|---|---|---|",
    ]
    for s in scores:
        lines.append(f"| {s.name} | {s.found}/{s.faces} | {s.recall:.0%} | {s.false_positives} | {s.ms_per_image:.1f} |")
    lines += [
        "",
        f"Settings: YuNet score threshold {yunet.SCORE_THRESHOLD}, NMS {yunet.NMS_THRESHOLD}; by default "
        f"(`min_face={yunet.MIN_FACE}`) images are scaled by {yunet.DETECTABLE}/{yunet.MIN_FACE} (longer side "
        f"{yunet.MIN_SIDE}..{yunet.MAX_SIDE} px), so a {yunet.MIN_FACE} px face is detected at {yunet.DETECTABLE} px; "
        f"`YuNetDetector(min_face={yunet.DETECTABLE})` keeps images up to {yunet.MAX_SIDE} px at full size. Haar scaleFactor {haar.SCALE_FACTOR}, minNeighbors {haar.MIN_NEIGHBORS}, "
        f"smallest face {haar.MIN_FACE_FRACTION:.0%} of the shorter side, images scaled to <= {haar.MAX_SIDE} px.",
        f"Timings: CPU time of one thread (cv2.setNumThreads(1); process time, so other work on a shared "
        f"machine does not inflate it) on {platform.machine()}, OpenCV {cv2.__version__}; compare them with each "
        "other, not with other machines.",
        "",
        f"These photos are small (332-500 px) with small faces (37-109 px), the hard case for the default "
        f"scaling: a 640x480 webcam frame is detected at 320x240, about 3x faster than at full size. "
        f"For photos of small faces, pass `min_face=16` (or smaller) to `from_pretrained` (`--min-face 16` in the CLI and emofer-cam).",
        "",
        "`detector=\"auto\"` (the default) is YuNet with the weights bundled in the package: offline, no",
        "download. Haar stays available as `detector=\"haar\"` on opencv-python 4.x (5.x removed it).",
        "",
        *large_image_lines(large or []),
        "Reproduce:",
        "",
        f"    {command}",
        "",
    ]
    return "\n".join(lines)


def registry_detectors(weights: Path) -> list[Detector]:
    """Every detector of emofer.detect.registry that boxes faces (FRAMED), in the registry's order, YuNet from
    ``weights`` and also at min_face=DETECTABLE (never scaled down on these photos); one this OpenCV cannot
    build (Haar on opencv-python 5) is left out."""
    detectors: list[Detector] = []
    for name in (name for name in DETECTORS if name in FRAMED):
        if name == "yunet":
            full = YuNetDetector(weights, min_face=yunet.DETECTABLE)
            full.name = f"yunet min_face={yunet.DETECTABLE}"
            detectors += [YuNetDetector(weights), full]
            continue
        try:
            detectors.append(build_detector(name))
        except DetectorError as exc:
            print(f"{name}: left out ({exc})", file=sys.stderr)
    return detectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detectors", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="faces-boxes folder (images/ + boxes.csv)")
    parser.add_argument("--yunet", type=Path, default=DEFAULT_YUNET, help="YuNet .onnx weights")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown file to write")
    args = parser.parse_args(argv)
    if not (args.data / "boxes.csv").is_file():
        print(f"no boxes.csv in {args.data}; pass --data", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    boxes = load_boxes(args.data)
    scores = [evaluate(detector, boxes) for detector in registry_detectors(args.yunet)]
    large = large_images(YuNetDetector(args.yunet), "yunet") + large_images(
        FirstPassOnly(args.yunet), "yunet, first pass only")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(scores, "python -m benchmarks.detectors", large), encoding="utf-8")
    for s in scores:
        print(f"{s.name}: {s.found}/{s.faces} found, {s.false_positives} false positives, {s.ms_per_image:.1f} ms/image")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
