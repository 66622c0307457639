"""Face detector recall and false positives on the faces-boxes photos, written to docs/detectors.md.

    python -m benchmarks.detectors [--data ../shared/data/faces-boxes] [--yunet PATH.onnx]

A detection counts as a found face when it overlaps a hand-drawn box at IoU >= 0.3 (the boxes
are tight squares, detectors box faces differently); each box is matched once, greedily by IoU.
Every face in these photos is boxed, so unmatched detections are false positives.
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

from emofer.boxes import Box, match
from emofer.detect import Detector, HaarDetector, YuNetDetector
from emofer.detect import haar, yunet
from emofer.io import load_image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_DATA = SHARED / "data" / "faces-boxes"
DEFAULT_YUNET = SHARED / "models" / "face_detection_yunet_2026may.onnx"
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
        start = time.perf_counter()
        detected = [d.box for d in detector.detect(image)]
        times.append(time.perf_counter() - start)
        matched = match(truth, detected, threshold)
        unmatched = [box for j, box in enumerate(detected) if j not in {j for _, j in matched}]
        excused = match(ignored, unmatched, threshold) if ignored else []
        faces += len(truth)
        found += len(matched)
        false_positives += len(unmatched) - len(excused)
    return DetectorScore(detector.name, len(boxes), faces, found, false_positives, 1000 * statistics.median(times))


def report(scores: list[DetectorScore], command: str) -> str:
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
        f"Timings: one thread of a shared CPU ({platform.machine()}, OpenCV {cv2.__version__}); compare "
        "them with each other, not with other machines.",
        "",
        f"These photos are small (332-500 px) with small faces (37-109 px), the hard case for the default "
        f"scaling: a 640x480 webcam frame is detected at 320x240, about 3x faster than at full size. "
        f"For photos of small faces, pass `min_face=16` (or smaller) to `from_pretrained` (`--min-face 16` in the CLI and emofer-cam).",
        "",
        "`detector=\"auto\"` uses YuNet when its weights are cached (or `EMOFER_YUNET` points at them) and",
        "Haar otherwise, so run once online with `detector=\"yunet\"` for the better detector.",
        "",
        "Reproduce:",
        "",
        f"    {command}",
        "",
    ]
    return "\n".join(lines)


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
    full = YuNetDetector(args.yunet, min_face=yunet.DETECTABLE)  # never scaled down on these photos
    full.name = f"yunet min_face={yunet.DETECTABLE}"
    scores = [evaluate(YuNetDetector(args.yunet), boxes), evaluate(full, boxes), evaluate(HaarDetector(), boxes)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(scores, "python -m benchmarks.detectors"), encoding="utf-8")
    for s in scores:
        print(f"{s.name}: {s.found}/{s.faces} found, {s.false_positives} false positives, {s.ms_per_image:.1f} ms/image")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
