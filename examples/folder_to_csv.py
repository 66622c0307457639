"""A folder of images -> a CSV table with one row per face.

    python examples/folder_to_csv.py photos/ --out faces.csv
    python examples/folder_to_csv.py --quick          # a few real photos, or copies of the example photo

Images that cannot be read are reported and skipped; images without a face add no row.
The command line does the same with ``emofer predict photos/ --csv > faces.csv``.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import cv2

from emofer import EmotionRecognizer, ImageReadError
from _helpers import EXAMPLE_PHOTO, FACES_BOXES, OUTPUT, skip

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
QUICK_IMAGES = 3


def write_faces_csv(folder: Path, out: Path, limit: int | None = None) -> tuple[int, int]:
    """Write one CSV row per face found in the images under ``folder``; return (images, faces)."""
    recognizer = EmotionRecognizer.from_pretrained()
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)[:limit]
    columns = ["file", "x", "y", "w", "h", "emotion", "confidence", *recognizer.labels]
    faces_written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as stream:
        table = csv.DictWriter(stream, columns)
        table.writeheader()
        for path in images:
            try:
                faces = recognizer.predict(path)
            except ImageReadError as exc:        # a damaged or non-image file: say so, go on
                print(f"skipping {path}: {exc}")
                continue
            print(f"{path.relative_to(folder)}: {len(faces)} face(s)")
            for face in faces:
                x, y, w, h = face.box
                table.writerow({"file": str(path.relative_to(folder)), "x": x, "y": y, "w": w, "h": h,
                                "emotion": face.emotion, "confidence": round(face.confidence, 4),
                                **{label: round(p, 4) for label, p in face.probabilities.items()}})
                faces_written += 1
    return len(images), faces_written


def example_folder(into: Path) -> Path:
    """A folder of a few variants of the example photo (original, mirrored, smaller)."""
    photo = cv2.imread(str(EXAMPLE_PHOTO))
    cv2.imwrite(str(into / "original.jpg"), photo)
    cv2.imwrite(str(into / "mirrored.jpg"), cv2.flip(photo, 1))
    cv2.imwrite(str(into / "small.png"), cv2.resize(photo, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="folder of images (default: sample photos)")
    parser.add_argument("--out", type=Path, default=OUTPUT / "faces.csv", help="CSV file to write")
    parser.add_argument("--quick", action="store_true", help=f"only the first {QUICK_IMAGES} images")
    args = parser.parse_args()
    limit = QUICK_IMAGES if args.quick else None

    with tempfile.TemporaryDirectory(prefix="emofer-example-") as tmp:
        folder = args.folder
        if folder is None:
            if (FACES_BOXES / "images").is_dir():
                folder = FACES_BOXES / "images"
            elif EXAMPLE_PHOTO.is_file():
                folder = example_folder(Path(tmp))
            else:
                skip(f"no folder given, and neither {FACES_BOXES} nor {EXAMPLE_PHOTO} exists")
        elif not folder.is_dir():
            skip(f"{folder} is not a folder")
        images, faces = write_faces_csv(folder, args.out, limit)
    print(f"{images} images from {folder}, {faces} faces: wrote {args.out}")


if __name__ == "__main__":
    main()
