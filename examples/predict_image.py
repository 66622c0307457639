"""Faces and emotions in one image: prints the faces as JSON and writes an annotated PNG.

    python examples/predict_image.py                       # the example photo
    python examples/predict_image.py photo.jpg --bars --out photo_annotated.png
    python examples/predict_image.py photo.jpg > faces.json

The JSON goes to stdout, everything else to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import emofer
from emofer import EmotionRecognizer, OutputError
from emofer.outputs import Inputs, write_image
from _helpers import EXAMPLE_PHOTO, OUTPUT, skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", type=Path, default=EXAMPLE_PHOTO, help="image file (default: the example photo)")
    parser.add_argument("--out", type=Path, help="annotated PNG to write (default: examples/output/<name>_annotated.png)")
    parser.add_argument("--bars", action="store_true", help="draw a probability bar per emotion beside each face")
    parser.add_argument("--quick", action="store_true", help="accepted for uniformity: one image is already quick")
    args = parser.parse_args()
    if not args.image.is_file():
        skip(f"{args.image} does not exist")

    recognizer = EmotionRecognizer.from_pretrained()  # the bundled default model, offline
    faces = recognizer.predict(args.image)         # list[Face], one per face found
    annotated = emofer.draw(args.image, faces, bars=args.bars)   # a BGR copy with boxes and labels

    out = args.out or OUTPUT / f"{args.image.stem}_annotated.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    # emofer's output policy: never over the input, a whole file or none (replaces an earlier copy)
    try:
        write_image(annotated, out, overwrite=True, inputs=Inputs([args.image]))
    except OutputError as exc:
        raise SystemExit(f"not written: {exc}") from None

    print(json.dumps([face.to_dict() for face in faces], indent=2))
    summary = ", ".join(f"{face.emotion} {face.confidence:.0%} at {face.box}" for face in faces) or "no face found"
    print(f"{args.image} ({recognizer.config.name}, detector {recognizer.detector.name}): {summary}", file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
