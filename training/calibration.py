"""Expected calibration error and NLL of bundled models before and after their temperature.

    python -m training.calibration emofer/fer5 emofer/fer7

The temperature T in config.json was fitted on PublicTest by ``training/export.py --calibrate``;
emofer serves softmax(log(p) / T). This undoes T to show what it changed, on both splits.
"""

from __future__ import annotations

import argparse

import numpy as np

from emofer import EmotionRecognizer
from emofer.model import softmax
from training import data, metrics


def before_after(model: str, split: str) -> dict[str, float]:
    """ECE and NLL of ``model`` on ``split`` with T = 1 and with its config temperature."""
    recognizer = EmotionRecognizer.from_pretrained(model, detector="none")
    temperature = recognizer.config.temperature
    faces = data.load(recognizer.config.trained_on.get("dataset", "fer2013"), split, recognizer.labels)
    calibrated = recognizer.classify(faces.pixels)
    raw = softmax(np.log(np.maximum(calibrated, 1e-12)), 1.0 / temperature)  # undo softmax(log p / T)
    return {
        "temperature": temperature,
        "ece_before": metrics.calibration(raw, faces.labels).ece,
        "ece_after": metrics.calibration(calibrated, faces.labels).ece,
        "nll_before": metrics.nll(raw, faces.labels, 1.0, True),
        "nll_after": metrics.nll(calibrated, faces.labels, 1.0, True),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="bundled names, folders or Hub repo ids")
    args = parser.parse_args(argv)
    print("| model | split | T | ECE before | ECE after | NLL before | NLL after |\n|---|---|---:|---:|---:|---:|---:|")
    for model in args.models:
        for split in ("PublicTest", "PrivateTest"):
            r = before_after(model, split)
            print(f"| {model} | {split} | {r['temperature']} | {r['ece_before']:.4f} | {r['ece_after']:.4f} "
                  f"| {r['nll_before']:.4f} | {r['nll_after']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
