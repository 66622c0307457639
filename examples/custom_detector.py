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
from _helpers import EXAMPLE_PHOTO, FACES_BOXES, skip

#: Stands in for "another detector": OpenCV's alt2 cascade, with its own settings.
CASCADE = cv2.data.haarcascades + "haarcascade_frontalface_alt2.xml" if hasattr(cv2, "data") else None


def alt2_faces(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Any function of a uint8 BGR image that returns face boxes can be a detector."""
    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    boxes = alt2_faces.cascade.detectMultiScale(gray, scaleFactor=1.05, minNeighbors=4, minSize=(24, 24))
    return [tuple(int(v) for v in box) for box in boxes]


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
    if CASCADE is None or not hasattr(cv2, "CascadeClassifier"):
        skip("this OpenCV build has no Haar cascades (opencv-python 5); the example's stand-in detector needs them")
    alt2_faces.cascade = cv2.CascadeClassifier(CASCADE)

    # 1. A function as the detector: used by every predict() call of this recognizer.
    recognizer = EmotionRecognizer.from_pretrained(detector=alt2_faces)
    faces = recognizer.predict(image)
    print(f"1. detector=alt2_faces on {image.name}: {len(faces)} face(s)")
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
