"""The whole path a user runs, on real web photos: expw-dev end to end.

    python -m benchmarks.wild [MODEL ...] [--detector auto] [--every 1] [--fer] [--out docs/wild]

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
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emofer import EmotionRecognizer, Face
from emofer.boxes import iou
from training.report import render, table

ROOT = Path(__file__).resolve().parents[1]
#: The Markdown templates of the benchmark reports.
TEMPLATES = Path(__file__).resolve().parent / "templates"
ARCHIVE = ROOT.parent / "shared" / "data" / "expw-dev.zip"
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
MATCH_IOU = 0.3
MISSED = "missed"


def model_path(name: str) -> str:
    """``name`` as from_pretrained takes it: a model moved out of the wheel (emofer.hub.MOVED_MODELS,
    e.g. emofer/wild8) is its folder in this checkout's models/; any other name or path is left as is."""
    from emofer.hub import MOVED_MODELS

    return str(ROOT / "models" / name.rsplit("/", 1)[-1]) if name in MOVED_MODELS else name


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


#: What a path said about one photo: (box, emotion) per face found, and the seconds it took.
Said = tuple[list[tuple[Sequence[float], str]], float]


def match(box: Sequence[float], found: Sequence[Sequence[float]]) -> int:
    """Index of the found box with the highest IoU with ``box``, or -1 when none reaches MATCH_IOU."""
    overlaps = [iou(box, other) for other in found]
    best = int(np.argmax(overlaps)) if overlaps else -1
    return best if best >= 0 and overlaps[best] >= MATCH_IOU else -1


def score(said: dict[str, Said], photos: dict[str, list[LabelledFace]], model: str, detector: str) -> WildResult:
    """Match each labelled face to the found face with the highest IoU and tally the answers."""
    confusion = {e: defaultdict(int) for e in EMOTIONS}
    answers: dict[str, int] = defaultdict(int)
    for path, labelled in photos.items():
        found = said[path][0]
        for face in labelled:
            best = match(face.box, [box for box, _ in found])
            answer = found[best][1] if best >= 0 else MISSED
            confusion[face.label][answer] += 1
            answers[answer] += 1
    total = sum(answers.values())
    recall = {e: round(confusion[e][e] / max(1, sum(confusion[e].values())), 4) for e in EMOTIONS}
    return WildResult(
        model=model, detector=detector, faces=total, photos=len(photos),
        accuracy=round(sum(confusion[e][e] for e in EMOTIONS) / total, 4),
        macro_recall=round(float(np.mean(list(recall.values()))), 4), recall=recall,
        detector_recall=round((total - answers[MISSED]) / total, 4),
        confusion={e: dict(confusion[e]) for e in EMOTIONS}, said=dict(answers),
        median_ms_per_photo=round(1000 * float(np.median([s[1] for s in said.values()])), 2))


def predict_photos(recognizer: EmotionRecognizer, photos: Iterable[str],
                   archive: Path = ARCHIVE) -> dict[str, tuple[list[Face], float]]:
    """Each photo through ``recognizer.predict`` as encoded bytes: the faces found and the seconds it took."""
    found = {}
    with zipfile.ZipFile(archive) as z:
        for path in photos:
            encoded = z.read(f"expw-dev/{path}")
            start = time.perf_counter()
            faces = recognizer.predict(encoded)
            found[path] = (faces, time.perf_counter() - start)
    return found


def evaluate(recognizer: EmotionRecognizer, photos: dict[str, list[LabelledFace]],
             archive: Path = ARCHIVE, model: str = "", detector: str = "auto") -> WildResult:
    """Run ``recognizer.predict`` on every photo (as encoded bytes) and score its labelled faces."""
    said = {path: ([(f.box, f.emotion) for f in faces], seconds)
            for path, (faces, seconds) in predict_photos(recognizer, photos, archive).items()}
    return score(said, photos, model or recognizer.config.name, detector)


def evaluate_fer(photos: dict[str, list[LabelledFace]], archive: Path = ARCHIVE,
                 fer_venv: Path | None = None) -> WildResult:
    """fer 25.10.3's ``detect_emotions`` (its default Haar detector) on the same photos, in fer's venv."""
    from benchmarks.run import DEFAULT_FER_VENV, Runner, ensure_fer_venv

    venv = fer_venv or DEFAULT_FER_VENV
    python = ensure_fer_venv(venv, venv.parent / "setup.log")
    with tempfile.TemporaryDirectory() as tmp:
        result = Runner(Path(tmp), archive, 3600.0, {}).run(
            python, "fer", "photos", paths=[f"expw-dev/{p}" for p in photos])
    said: dict[str, Said] = {}
    for photo in result["photos"]:
        faces = [(f["box"], max(f["emotions"], key=f["emotions"].get)) for f in photo["faces"]]
        said[photo["path"].removeprefix("expw-dev/")] = (faces, photo["seconds"])
    return score(said, photos, "fer 25.10.3", "fer's Haar")


def markdown(results: Sequence[dict], command: str) -> str:
    """docs/wild.md (from wild.json's results and command): one row per model, then each model's confusion matrix."""
    usage, about = __doc__.split("\n\n", 2)[1:]
    rows = [[f"`{r['model']}`", r["detector"], f"{r['accuracy']:.3f}", f"{r['macro_recall']:.3f}",
             *(f"{r['recall'][e]:.2f}" for e in EMOTIONS), f"{r['detector_recall']:.3f}",
             f"{r['median_ms_per_photo']:.1f}"] for r in results]
    return render("wild.md.tmpl", {
        "usage": usage.strip(), "about": about.strip(), "command": command,
        "results_table": table(["model", "detector", "accuracy", "macro recall", *EMOTIONS, "faces found",
                                "ms per photo"], rows, "llrr" + "r" * len(EMOTIONS) + "rr"),
        "confusions": "\n\n".join(_confusion(r) for r in results),
    }, TEMPLATES)


def _confusion(result: dict) -> str:
    """One model's label (rows) vs what it said (columns said at least once, ``missed`` for no face)."""
    columns = [c for c in (*EMOTIONS, "contempt", MISSED) if result["said"].get(c)]
    return (f"## `{result['model']}` ({result['detector']}): label (rows) vs what it said\n\n"
            + table(["label", *columns], [[e, *(result["confusion"][e].get(c, 0) for c in columns)] for e in EMOTIONS],
                    "l" + "r" * len(columns)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=[None], metavar="MODEL",
                        help="bundled name, folder or Hub id (default: the default model)")
    parser.add_argument("--detector", default="auto", help="detector for every model (default: auto)")
    parser.add_argument("--every", type=int, default=1, help="score every N-th labelled face (quick looks)")
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md (e.g. docs/wild)")
    parser.add_argument("--fer", action="store_true", help="also run fer's detect_emotions (in its own venv)")
    parser.add_argument("--fer-venv", type=Path, help="fer's venv (default: benchmarks.run's, created when missing)")
    args = parser.parse_args(argv)
    if not args.archive.exists():
        parser.error(f"{args.archive} not found: expw-dev lives in ../shared/data beside the checkout")
    photos = read_faces(args.archive, args.every)
    results = []
    runs = [lambda model=model: evaluate(
        EmotionRecognizer.from_pretrained(model_path(model), detector=args.detector, threads=args.threads), photos,
        args.archive, detector=args.detector) for model in args.models]
    if args.fer:
        runs.append(lambda: evaluate_fer(photos, args.archive, args.fer_venv))
    for run in runs:
        result = run()
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
