"""emofer's bundled models and fer's classifier on the same FER2013 PrivateTest crops.

    python -m benchmarks.accuracy [--fer-venv DIR] [--out docs/comparison]

Both classifiers get the dataset's own 48x48 faces (no detection): emofer through
``EmotionRecognizer.classify``, fer through its own resize/scaling and ``_classify_emotions``
(in fer's own venv, see benchmarks/run.py). The 5-emotion figure for fer takes its
probabilities of angry, disgust, happy, sad and surprise, as fer has no 5-class model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.run import DEFAULT_FER_VENV, ROOT, TEMPLATES, Runner, ensure_fer_venv
from benchmarks.wild import model_path
from emofer import EmotionRecognizer
from training import data
from training.report import render, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fer-venv", type=Path, default=DEFAULT_FER_VENV)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "comparison")
    args = parser.parse_args(argv)
    faces = data.load("fer2013", "PrivateTest", data.SUBSETS["fer7"])
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "crops.npz"
        np.savez(inputs, crops=faces.pixels)
        python = ensure_fer_venv(args.fer_venv, args.fer_venv.parent / "setup.log")
        fer = Runner(Path(tmp), inputs, 900.0, {}).run(python, "fer", "probabilities")
    fer_probabilities = np.asarray(fer["probabilities"])
    rows = []
    for model in ("fer7", "fer7-int8", "fer5", "fer5-int8"):
        task = model.split("-")[0]
        classes = data.SUBSETS[task]
        keep = np.isin(faces.labels, [faces.classes.index(c) for c in classes])
        truth = np.array([classes.index(faces.classes[i]) for i in faces.labels[keep]])
        ours = EmotionRecognizer.from_pretrained(model_path(f"emofer/{model}"), detector="none")
        emofer_accuracy = float((ours.classify(faces.pixels[keep]).argmax(1) == truth).mean())
        columns = [fer["labels"].index(c) for c in classes]
        fer_accuracy = float((fer_probabilities[keep][:, columns].argmax(1) == truth).mean())
        rows.append({"task": task, "model": f"emofer/{model}", "faces": int(keep.sum()), "emofer": round(emofer_accuracy, 4),
                     "fer": round(fer_accuracy, 4)})
    command = "python -m benchmarks.accuracy" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(sys.argv[1:] if argv is None else argv))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": command, "split": "PrivateTest", "rows": rows}
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(record))
    print(accuracy_table(rows))
    return 0


def accuracy_table(rows: list[dict]) -> str:
    """One row per bundled model: its task, PrivateTest faces, emofer's and fer's accuracy."""
    return table(["task", "emofer model", "PrivateTest faces", "emofer", "fer 25.10.3"],
                 [[r["task"], f"`{r['model']}`", r["faces"], f"{r['emofer']:.4f}", f"{r['fer']:.4f}"] for r in rows],
                 "llrrr")


def markdown(record: dict) -> str:
    """comparison.md from comparison.json's dict (command, split, rows)."""
    return render("comparison.md.tmpl", {"about": __doc__.split("\n\n", 2)[2].strip(),
                                         "table": accuracy_table(record["rows"]), "command": record["command"]},
                  TEMPLATES)


if __name__ == "__main__":
    raise SystemExit(main())
