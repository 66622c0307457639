"""Choose a logit adjustment for a model by the default's rule, on the choosing sets only.

    python -m benchmarks.adjust_grid [MODEL] [--every 1] [--out grid.json]

Runs ``MODEL`` once over expw-dev end to end (as ``benchmarks.wild`` does: photos as bytes
through ``predict``, labelled faces matched at IoU >= 0.3) and once over FER+ Valid
(``classify``), keeps the probabilities, and scores every adjustment of the grid that
``training.adjust`` can build: ``tau`` 0-1.5 in steps of 0.1, the share taken from the mean
training target, the majority labels or the model's mean answer on expw-train's carved
validation part (``--prior web``), contempt adjusted or excluded. The rule
(docs/ablation.md): the best mean of expw-dev accuracy and FER+ Valid accuracy among the rows
where no emotion's expw-dev recall is below 0.15 (``--floor``). No test split is read.

``--ceiling`` also fits one weight per emotion on expw-dev itself (coordinate ascent on its
accuracy): not a candidate, since it is tuned on the faces it is scored on, but an estimate of
how far any re-weighting of this model's probabilities can go on expw-dev (a search, not a proof
of the best).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.wild import ARCHIVE, EMOTIONS, match, model_path, predict_photos, read_faces, score
from emofer import EmotionRecognizer
from training import adjust, data
from training.paths import dataset_of

TAUS = tuple(round(0.1 * k, 1) for k in range(16))
FLOOR = 0.15


def expw_probabilities(recognizer: EmotionRecognizer, photos: dict, archive: Path = ARCHIVE) -> dict:
    """Per photo: (box, probabilities) of each face found, for rescoring without rerunning the model."""
    return {path: [(f.box, np.array([f.probabilities[label] for label in recognizer.labels])) for f in faces]
            for path, (faces, _) in predict_photos(recognizer, photos, archive).items()}


def grid(recognizer: EmotionRecognizer, photos: dict, found: dict, valid: data.FaceSet,
         floor: float = FLOOR) -> list[dict]:
    """Every adjustment of the grid, scored on expw-dev and FER+ Valid."""
    model_dir = recognizer.classifier.model_path.parent
    labels = recognizer.labels
    valid_probabilities = recognizer.classify(valid.pixels)
    truth = np.array([labels.index(valid.classes[k]) for k in valid.labels])
    rows = []
    for prior in adjust.PRIORS:
        shares = adjust.training_prior(recognizer.config, prior, model_dir=model_dir)
        for excluded in [(), *([("contempt",)] if "contempt" in labels else [])]:
            for tau in TAUS:
                weights = adjust.multiplier(shares, labels, tau, exclude=excluded)
                said = {path: ([(box, labels[int(np.argmax(p * weights))]) for box, p in faces], 0.0)
                        for path, faces in found.items()}
                wild = score(said, photos, recognizer.config.name, "auto")
                valid_accuracy = float(((valid_probabilities * weights).argmax(1) == truth).mean())
                rows.append({"prior": prior, "exclude": list(excluded), "tau": tau,
                             "fer_plus_valid": round(valid_accuracy, 4), "expw_dev": wild.accuracy,
                             "macro_recall": wild.macro_recall, "recall": wild.recall,
                             "score": round((wild.accuracy + valid_accuracy) / 2, 4),
                             "floor": min(wild.recall.values()) >= floor})
    return rows


def matched(found: dict, photos: dict, labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each labelled face's probabilities (NaN where no face was found there) and its label's index."""
    rows, truth = [], []
    for path, labelled in photos.items():
        faces = found[path]
        for face in labelled:
            best = match(face.box, [box for box, _ in faces])
            rows.append(faces[best][1] if best >= 0 else np.full(len(labels), np.nan))
            truth.append(labels.index(face.label))
    return np.array(rows, np.float64), np.array(truth)


def ceiling(found: dict, photos: dict, labels: tuple[str, ...], sweeps: int = 4) -> dict:
    """The best expw-dev accuracy that coordinate ascent finds for per-emotion weights fitted on expw-dev itself."""
    probabilities, truth = matched(found, photos, labels)
    hit = ~np.isnan(probabilities[:, 0])
    logs = np.log(np.clip(np.nan_to_num(probabilities, nan=1.0), 1e-6, 1.0))

    def accuracy(bias: np.ndarray) -> float:
        return float(((logs + bias).argmax(1) == truth)[hit].sum() / len(truth))

    bias, best = np.zeros(len(labels)), accuracy(np.zeros(len(labels)))
    for _ in range(sweeps):
        for k in range(len(labels)):
            for value in np.round(np.arange(-3.0, 3.01, 0.1), 1):
                trial = bias.copy()
                trial[k] = value
                if (got := accuracy(trial)) > best:
                    best, bias = got, trial
    said = (logs + bias).argmax(1)
    recall = {e: round(float(((said == truth) & hit)[truth == labels.index(e)].mean()), 4) for e in EMOTIONS}
    return {"expw_dev": round(best, 4), "unweighted": round(accuracy(np.zeros(len(labels))), 4),
            "faces_found": round(float(hit.mean()), 4), "recall": recall,
            "weights": {label: round(float(np.exp(b)), 3) for label, b in zip(labels, bias)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="emofer/wild8-int8",
                        help="an unadjusted model (default: emofer/wild8-int8, read from this checkout's models/)")
    parser.add_argument("--every", type=int, default=1, help="score every N-th labelled face (quick looks)")
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--out", type=Path, help="write the grid as JSON here")
    parser.add_argument("--floor", type=float, default=FLOOR,
                        help=f"lowest expw-dev recall any emotion may have (default {FLOOR}: the wild8 rule; "
                             "the webmix rule of docs/ablation.md says 0.25)")
    parser.add_argument("--ceiling", action="store_true",
                        help="also fit per-emotion weights on expw-dev itself: how far re-weighting goes, never a candidate")
    args = parser.parse_args(argv)
    if not args.archive.exists():
        parser.error(f"{args.archive} not found: expw-dev lives in ../shared/data beside the checkout")
    recognizer = EmotionRecognizer.from_pretrained(model_path(args.model))
    if recognizer.config.trained_on.get("logit_adjustment"):
        parser.error(f"{args.model} is already adjusted; give the model it came from")
    photos = read_faces(args.archive, args.every)
    found = expw_probabilities(recognizer, photos, args.archive)
    valid = data.load(dataset_of(recognizer.config), "PublicTest", recognizer.labels)
    rows = grid(recognizer, photos, found, valid, args.floor)
    eligible = [r for r in rows if r["floor"]]
    best = max(eligible, key=lambda r: r["score"]) if eligible else None
    for r in rows:
        if r["floor"] or r["tau"] == 0:
            print(f"{r['prior']:8} exclude={','.join(r['exclude']) or '-':8} tau {r['tau']:.1f}: expw-dev {r['expw_dev']:.3f} "
                  f"FER+ Valid {r['fer_plus_valid']:.4f} score {r['score']:.4f} lowest recall {min(r['recall'].values()):.3f}")
    print("chosen by the rule:", json.dumps(best) if best else "none clears the floor")
    report = {"rows": rows, "best": best}
    if args.ceiling:
        report["ceiling"] = top = ceiling(found, photos, recognizer.labels)
        print(f"ceiling (weights fitted on expw-dev itself, not a candidate): expw-dev {top['expw_dev']:.3f} "
              f"(unweighted {top['unweighted']:.3f}; faces found {top['faces_found']:.3f})")
    if args.out:
        command = "python -m benchmarks.adjust_grid " + " ".join(sys.argv[1:] if argv is None else argv)
        args.out.write_text(json.dumps({"command": command, **report}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
