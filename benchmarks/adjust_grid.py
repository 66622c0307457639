"""Choose a logit adjustment for a model by the default's rule, on the choosing sets only.

    python -m benchmarks.adjust_grid [MODEL] [--every 1] [--out grid.json]

Runs ``MODEL`` once over expw-dev end to end (as ``benchmarks.wild`` does: photos as bytes
through ``predict``, labelled faces matched at IoU >= 0.3) and once over FER+ Valid
(``classify``), keeps the probabilities, and scores every adjustment of the grid that
``training.adjust`` can build: ``tau`` 0-1.5 in steps of 0.1, the training share taken from the
mean training target or the majority labels, contempt adjusted or excluded. The rule
(docs/ablation.md): the best mean of expw-dev accuracy and FER+ Valid accuracy among the rows
where no emotion's expw-dev recall is below 0.15. No test split is read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.wild import ARCHIVE, predict_photos, read_faces, score
from emofer import EmotionRecognizer
from training import adjust, data, evaluate

TAUS = tuple(round(0.1 * k, 1) for k in range(16))
FLOOR = 0.15


def expw_probabilities(recognizer: EmotionRecognizer, photos: dict, archive: Path = ARCHIVE) -> dict:
    """Per photo: (box, probabilities) of each face found, for rescoring without rerunning the model."""
    return {path: [(f.box, np.array([f.probabilities[label] for label in recognizer.labels])) for f in faces]
            for path, (faces, _) in predict_photos(recognizer, photos, archive).items()}


def grid(recognizer: EmotionRecognizer, photos: dict, found: dict, valid: data.FaceSet) -> list[dict]:
    """Every adjustment of the grid, scored on expw-dev and FER+ Valid."""
    labels = recognizer.labels
    valid_probabilities = recognizer.classify(valid.pixels)
    truth = np.array([labels.index(valid.classes[k]) for k in valid.labels])
    rows = []
    for prior in adjust.PRIORS:
        shares = adjust.training_prior(recognizer.config, prior)
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
                             "floor": min(wild.recall.values()) >= FLOOR})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="emofer/wild8-int8", help="an unadjusted model (default: emofer/wild8-int8)")
    parser.add_argument("--every", type=int, default=1, help="score every N-th labelled face (quick looks)")
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--out", type=Path, help="write the grid as JSON here")
    args = parser.parse_args(argv)
    if not args.archive.exists():
        parser.error(f"{args.archive} not found: expw-dev lives in ../shared/data beside the checkout")
    recognizer = EmotionRecognizer.from_pretrained(args.model)
    if recognizer.config.trained_on.get("logit_adjustment"):
        parser.error(f"{args.model} is already adjusted; give the model it came from")
    photos = read_faces(args.archive, args.every)
    found = expw_probabilities(recognizer, photos, args.archive)
    valid = data.load(evaluate.dataset_of(recognizer.config), "PublicTest", recognizer.labels)
    rows = grid(recognizer, photos, found, valid)
    eligible = [r for r in rows if r["floor"]]
    best = max(eligible, key=lambda r: r["score"]) if eligible else None
    for r in rows:
        if r["floor"] or r["tau"] == 0:
            print(f"{r['prior']:8} exclude={','.join(r['exclude']) or '-':8} tau {r['tau']:.1f}: expw-dev {r['expw_dev']:.3f} "
                  f"FER+ Valid {r['fer_plus_valid']:.4f} score {r['score']:.4f} lowest recall {min(r['recall'].values()):.3f}")
    print("chosen by the rule:", json.dumps(best) if best else "none clears the floor")
    if args.out:
        command = "python -m benchmarks.adjust_grid " + " ".join(sys.argv[1:] if argv is None else argv)
        args.out.write_text(json.dumps({"command": command, "rows": rows, "best": best}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
