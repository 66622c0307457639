"""Classify one face, batch 1, one onnxruntime thread: the per-face budget of a model.

    python -m benchmarks.perface MODEL [MODEL ...] [--out docs/perface.json]

Median of 7 runs of 200 calls of ``EmotionRecognizer.classify`` on one 48x48 face, after 50
warm-up calls, each model in turn in one process (so compare models within one run). The full
benchmark (``python -m benchmarks.run``) measures the same thing beside fer's classifier.
``--out`` writes the figures as JSON (docs/models.md's first table reads docs/perface.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks.wild import model_path
from emofer import EmotionRecognizer

WARMUP, RUNS, CALLS = 50, 7, 200


def per_face_ms(model: str) -> tuple[float, float, float]:
    """(median, fastest, slowest) milliseconds per call over RUNS runs of CALLS calls."""
    face = (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8)
    recognizer = EmotionRecognizer.from_pretrained(model_path(model), detector="none", threads=1)
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
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    results = []
    for model in args.models:
        median, fastest, slowest = per_face_ms(model)
        print(f"{model}: {median:.3f} ms per face (runs {fastest:.3f}-{slowest:.3f})", flush=True)
        name = EmotionRecognizer.from_pretrained(model_path(model), detector="none").config.name
        results.append({"model": name, "ms_per_face": round(median, 3), "fastest": round(fastest, 3),
                        "slowest": round(slowest, 3)})
    if args.out:
        report = {"command": "python -m benchmarks.perface " + " ".join(args.models) + f" --out {args.out}",
                  "machine": f"{platform.machine()} {os.cpu_count()} cpus", "load_average": round(os.getloadavg()[0], 2),
                  "results": results}
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
