"""Expected calibration error and NLL of emofer models before and after their temperature,
and what an abstain threshold (``min_confidence``) keeps.

    python -m training.calibration emofer/fer5 models/fer7    # a bundled name, a folder of the repo's models/

The temperature T in config.json was fitted on PublicTest by ``training/export.py --calibrate``;
emofer serves softmax(log(p) / T). This undoes T to show what it changed, on both splits. The
second table gives, for each threshold, the share of faces the model still names (coverage)
and its accuracy on them, on PrivateTest (a report: nothing is chosen with it).
"""

from __future__ import annotations

import argparse

import numpy as np

from emofer import EmotionRecognizer
from emofer.model import softmax
from training import data, metrics


#: The abstain thresholds of the coverage table.
THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def coverage(probabilities: np.ndarray, labels: np.ndarray,
             thresholds: tuple[float, ...] = THRESHOLDS) -> list[tuple[float, float, float]]:
    """(threshold, share of faces whose top probability reaches it, accuracy on those) per threshold."""
    top = probabilities.max(1)
    right = probabilities.argmax(1) == labels
    rows = []
    for t in thresholds:
        kept = top >= t
        rows.append((t, float(kept.mean()), float(right[kept].mean()) if kept.any() else float("nan")))
    return rows


def probabilities_on(model: str, split: str) -> tuple[EmotionRecognizer, np.ndarray, np.ndarray]:
    """The recognizer, its (calibrated) probabilities on ``split`` of its dataset, and the true labels."""
    recognizer = EmotionRecognizer.from_pretrained(model, detector="none")
    faces = data.load(recognizer.config.trained_on.get("dataset", "fer2013"), split, recognizer.labels)
    return recognizer, recognizer.classify(faces.pixels), faces.labels


def before_after(model: str, split: str) -> dict[str, float]:
    """ECE and NLL of ``model`` on ``split`` with T = 1 and with its config temperature."""
    recognizer, calibrated, labels = probabilities_on(model, split)
    return scores(recognizer.config.temperature, calibrated, labels)


def scores(temperature: float, calibrated: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ECE and NLL of probabilities served at ``temperature``, with T undone and applied."""
    raw = softmax(np.log(np.maximum(calibrated, 1e-12)), 1.0 / temperature)  # undo softmax(log p / T)
    return {
        "temperature": temperature,
        "ece_before": metrics.calibration(raw, labels).ece,
        "ece_after": metrics.calibration(calibrated, labels).ece,
        "nll_before": metrics.nll(raw, labels, 1.0, True),
        "nll_after": metrics.nll(calibrated, labels, 1.0, True),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="bundled names, folders or Hub repo ids")
    args = parser.parse_args(argv)
    print("| model | split | T | ECE before | ECE after | NLL before | NLL after |\n|---|---|---:|---:|---:|---:|---:|")
    private = {}  # model -> its PrivateTest (probabilities, labels), classified once for both tables
    for model in args.models:
        for split in ("PublicTest", "PrivateTest"):
            recognizer, probabilities, labels = probabilities_on(model, split)
            r = scores(recognizer.config.temperature, probabilities, labels)
            print(f"| {model} | {split} | {r['temperature']} | {r['ece_before']:.4f} | {r['ece_after']:.4f} "
                  f"| {r['nll_before']:.4f} | {r['nll_after']:.4f} |")
        private[model] = probabilities, labels
    print("\nPrivateTest faces named / accuracy on them, by min_confidence:\n")
    print("| model | " + " | ".join(f"{t:g}" for t in THRESHOLDS) + " |\n|---|" + "---:|" * len(THRESHOLDS))
    for model, (probabilities, labels) in private.items():
        cells = [f"{share:.0%} / {accuracy:.1%}" for _, share, accuracy in coverage(probabilities, labels)]
        print(f"| {model} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
