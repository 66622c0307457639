"""The whole path a user runs, on real web photos: expw-dev end to end.

    python -m benchmarks.wild [MODEL ...] [--detector auto] [--every 1] [--out docs/wild]

Each photo of ``../shared/data/expw-dev.zip`` goes through ``EmotionRecognizer.predict`` as
encoded bytes (decode -> detector -> crop -> model), as a user's photo would. Each labelled
face is matched to the detection with the highest IoU; below IoU 0.3 (no face found there)
it counts as wrong. Reported: accuracy over the labelled faces, recall per emotion, macro
recall, the confusion matrix (rows: label, columns: what the model said, ``missed`` when no
face was found), the detector's recall, and the median time per photo. A model that cannot
say an emotion (fer5 has no fear or neutral) is wrong on those faces.

expw-dev is a development set: choose models with it, never train on it. Its labels are noisy
(web photos, one annotator): compare models on it rather than reading figures as absolute.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emofer import EmotionRecognizer
from emofer.boxes import iou

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "expw-dev.zip"
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
MATCH_IOU = 0.3
MISSED = "missed"


@dataclass(frozen=True)
class LabelledFace:
    path: str
    box: tuple[int, int, int, int]
    label: str


def read_faces(archive: Path = ARCHIVE, every: int = 1) -> dict[str, list[LabelledFace]]:
    """expw-dev's labelled faces grouped by photo (every ``every``-th face, in file order)."""
    with zipfile.ZipFile(archive) as z:
        rows = list(csv.DictReader(io.TextIOWrapper(z.open("expw-dev/faces.csv"), encoding="utf-8")))
    photos: dict[str, list[LabelledFace]] = defaultdict(list)
    for row in rows[::every]:
        box = tuple(int(row[k]) for k in "xywh")
        photos[row["path"]].append(LabelledFace(row["path"], box, row["label"]))
    return dict(photos)


@dataclass(frozen=True)
class WildResult:
    model: str
    detector: str
    faces: int
    photos: int
    accuracy: float
    macro_recall: float
    recall: dict[str, float]
    detector_recall: float
    confusion: dict[str, dict[str, int]]
    said: dict[str, int]
    median_ms_per_photo: float

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(recognizer: EmotionRecognizer, photos: dict[str, list[LabelledFace]],
             archive: Path = ARCHIVE, model: str = "", detector: str = "auto") -> WildResult:
    """Run ``recognizer.predict`` on every photo and score its labelled faces."""
    confusion = {e: defaultdict(int) for e in EMOTIONS}
    said: dict[str, int] = defaultdict(int)
    times = []
    found = right = total = 0
    with zipfile.ZipFile(archive) as z:
        for path, labelled in photos.items():
            encoded = z.read(f"expw-dev/{path}")
            start = time.perf_counter()
            faces = recognizer.predict(encoded)
            times.append(time.perf_counter() - start)
            for face in labelled:
                scores = [iou(face.box, f.box) for f in faces]
                best = int(np.argmax(scores)) if scores else -1
                answer = faces[best].emotion if best >= 0 and scores[best] >= MATCH_IOU else MISSED
                confusion[face.label][answer] += 1
                said[answer] += 1
                total += 1
                found += answer != MISSED
                right += answer == face.label
    recall = {e: round(confusion[e][e] / max(1, sum(confusion[e].values())), 4) for e in EMOTIONS}
    return WildResult(
        model=model or recognizer.config.name, detector=detector, faces=total, photos=len(photos),
        accuracy=round(right / total, 4), macro_recall=round(float(np.mean(list(recall.values()))), 4),
        recall=recall, detector_recall=round(found / total, 4),
        confusion={e: dict(confusion[e]) for e in EMOTIONS}, said=dict(said),
        median_ms_per_photo=round(1000 * float(np.median(times)), 2))


def markdown(results: Sequence[dict], command: str) -> str:
    """docs/wild.md: one row per model, then each model's confusion matrix."""
    lines = ["# Real photos: expw-dev end to end", "", __doc__.split("\n\n", 1)[1].strip(), "",
             f"Command: `{command}`", "",
             "| model | detector | accuracy | macro recall | " + " | ".join(EMOTIONS)
             + " | faces found | ms per photo |",
             "|---|---|---:|---:|" + "---:|" * len(EMOTIONS) + "---:|---:|"]
    for r in results:
        lines.append(f"| `{r['model']}` | {r['detector']} | {r['accuracy']:.3f} | {r['macro_recall']:.3f} | "
                     + " | ".join(f"{r['recall'][e]:.2f}" for e in EMOTIONS)
                     + f" | {r['detector_recall']:.3f} | {r['median_ms_per_photo']:.1f} |")
    for r in results:
        columns = [c for c in (*EMOTIONS, "contempt", MISSED) if r["said"].get(c)]
        lines += ["", f"## `{r['model']}` ({r['detector']}): label (rows) vs what it said", "",
                  "| label | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        lines += [f"| {e} | " + " | ".join(str(r["confusion"][e].get(c, 0)) for c in columns) + " |"
                  for e in EMOTIONS]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=[None], metavar="MODEL",
                        help="bundled name, folder or Hub id (default: the default model)")
    parser.add_argument("--detector", default="auto", help="detector for every model (default: auto)")
    parser.add_argument("--every", type=int, default=1, help="score every N-th labelled face (quick looks)")
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md (e.g. docs/wild)")
    args = parser.parse_args(argv)
    if not args.archive.exists():
        parser.error(f"{args.archive} not found: expw-dev lives in ../shared/data beside the checkout")
    photos = read_faces(args.archive, args.every)
    results = []
    for model in args.models:
        recognizer = EmotionRecognizer.from_pretrained(model, detector=args.detector, threads=args.threads)
        result = evaluate(recognizer, photos, args.archive, model=recognizer.config.name or str(model),
                          detector=args.detector)
        results.append(result.to_dict())
        print(f"{result.model} ({result.detector}): accuracy {result.accuracy:.3f}, macro recall "
              f"{result.macro_recall:.3f}, faces found {result.detector_recall:.3f}, "
              f"{result.median_ms_per_photo:.1f} ms per photo; recall "
              + ", ".join(f"{e} {v:.2f}" for e, v in result.recall.items()), flush=True)
    if args.out:
        command = "python -m benchmarks.wild " + " ".join(sys.argv[1:] if argv is None else argv)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps({"command": command, "results": results}, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(results, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
