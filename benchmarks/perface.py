"""Classify one face, batch 1, one onnxruntime thread: the per-face budget of a model.

    python -m benchmarks.perface MODEL [MODEL ...]

Median of 7 runs of 200 calls of ``EmotionRecognizer.classify`` on one 48x48 face, after 50
warm-up calls, each model in turn in one process (so compare models within one run). The full
benchmark (``python -m benchmarks.run``) measures the same thing beside fer's classifier.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from emofer import EmotionRecognizer

WARMUP, RUNS, CALLS = 50, 7, 200


def per_face_ms(model: str) -> tuple[float, float, float]:
    """(median, fastest, slowest) milliseconds per call over RUNS runs of CALLS calls."""
    face = (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)
    recognizer = EmotionRecognizer.from_pretrained(model, detector="none", threads=1)
    for _ in range(WARMUP):
        recognizer.classify([face])
    runs = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for _ in range(CALLS):
            recognizer.classify([face])
        runs.append((time.perf_counter() - start) / CALLS * 1000)
    return float(np.median(runs)), min(runs), max(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", metavar="MODEL")
    args = parser.parse_args(argv)
    for model in args.models:
        median, fastest, slowest = per_face_ms(model)
        print(f"{model}: {median:.3f} ms per face (runs {fastest:.3f}-{slowest:.3f})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
