"""Face boxes from somewhere else: a detector function, or boxes you already have.

    python examples/custom_detector.py [IMAGE] [--quick]

1. ``detector=`` takes any function ``image -> [(x, y, w, h), ...]`` (or ``(x, y, w, h, score)``);
   emofer checks and clips its boxes, then crops and classifies each face.
2. ``predict(image, boxes=[...])`` skips detection for one call: boxes drawn by hand, from a
   database, or from a detector that runs elsewhere.

Boxes are (x, y, w, h) in the image's pixels. Many detectors give corners (x1, y1, x2, y2):
convert with ``(x1, y1, x2 - x1, y2 - y1)``. For ready-made face crops use
``detector="none"`` (the whole image is the face) or ``recognizer.classify(crops)``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from emofer import EmotionRecognizer
from emofer.detect.yunet import bundled_weights
from _helpers import EXAMPLE_PHOTO, FACES_BOXES, skip

#: Stands in for "another detector": OpenCV's own FaceDetectorYN on the YuNet weights bundled with emofer,
#: called directly with settings of its own (works on every OpenCV, 4.x and 5.x).
WEIGHTS = str(bundled_weights())
SCORE_THRESHOLD = 0.5


cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV 5 warns about its graph engine


def yunet_faces(image: np.ndarray) -> list[tuple[int, int, int, int, float]]:
    """Any function of a uint8 BGR image that returns face boxes (here with a score) can be a detector."""
    height, width = image.shape[:2]
    detector = cv2.FaceDetectorYN.create(WEIGHTS, "", (width, height), score_threshold=SCORE_THRESHOLD)
    _, faces = detector.detect(image)
    if faces is None:
        return []
    return [(int(x), int(y), int(w), int(h), float(row[-1])) for row in faces for x, y, w, h in [row[:4]]]


def hand_drawn_boxes(image: Path) -> list[tuple[int, int, int, int]]:
    """The hand-drawn face boxes of a faces-boxes photo (../shared/data), if it is one."""
    table = FACES_BOXES / "boxes.csv"
    if not table.is_file():
        return []
    with open(table, newline="", encoding="utf-8") as stream:
        return [(int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"]))
                for row in csv.DictReader(stream) if Path(row["path"]).name == image.name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", type=Path, help="image file (default: a sample photo)")
    parser.add_argument("--quick", action="store_true", help="accepted for uniformity: this example is quick")
    args = parser.parse_args()
    image = args.image
    if image is None:
        photos = sorted((FACES_BOXES / "images").glob("*.jpg"))
        image = photos[0] if photos else EXAMPLE_PHOTO
    if not image.is_file():
        skip(f"{image} does not exist")
    # 1. A function as the detector: used by every predict() call of this recognizer.
    recognizer = EmotionRecognizer.from_pretrained(detector=yunet_faces)
    faces = recognizer.predict(image)
    print(f"1. detector=yunet_faces on {image.name}: {len(faces)} face(s)")
    for face in faces:
        print(f"   {face.box}: {face.emotion} {face.confidence:.0%}")

    # 2. Boxes given for one call: no detection at all.
    boxes, source = hand_drawn_boxes(image), "drawn by hand (faces-boxes/boxes.csv)"
    if not boxes:
        boxes, source = [face.box for face in faces][:1], "found in step 1"
    if not boxes:
        skip(f"no box to give: no hand-drawn boxes for {image.name} and the detector found none")
    faces = recognizer.predict(image, boxes=boxes)
    print(f"2. predict(image, boxes=...) with {len(boxes)} box(es) {source}:")
    for face in faces:
        print(f"   {face.box}: {face.emotion} {face.confidence:.0%} (score {face.score}: the box came from you)")


if __name__ == "__main__":
    main()
