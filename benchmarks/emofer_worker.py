"""emofer's side of the speed benchmark: one measurement per fresh process, JSON out.

    python -m benchmarks.emofer_worker TASK --inputs inputs.npz --params '{...}' --result out.json

TASK is cold | classify | e2e | video | size (see ``benchmarks/run.py``, which starts this with
emofer's Python; ``benchmarks/fer_worker.py`` measures fer the same way in fer's venv).
Module-level imports are the standard library only, so ``cold`` times emofer's own imports.
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any

from . import _worker


def cold(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """import emofer + from_pretrained in this fresh process, then the first predict."""

    def load(library: Any) -> Any:
        return library.EmotionRecognizer.from_pretrained(params["model"], detector=params.get("detector", "auto"),
                                                         threads=params.get("threads"))

    recognizer, times = _worker.cold(inputs, lambda: importlib.import_module("emofer"), load,
                                     lambda recognizer, frame: recognizer.predict(frame))
    return {**times, "detector": recognizer.detector.name, "model": recognizer.config.name}


def _recognizer(params: dict[str, Any]) -> Any:
    from emofer import EmotionRecognizer

    return EmotionRecognizer.from_pretrained(params["model"], detector=params.get("detector", "none"),
                                             threads=params.get("threads"))


def classify(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """Per-face latency at batch 1 and faces/s at larger batches, on pre-cropped FER2013 faces."""
    import numpy as np

    from . import _timing as t

    recognizer = _recognizer(params)
    crops = np.load(inputs)["crops"]
    n = len(crops)
    # the network alone (no resize / normalise) times the same faces already made into tensors
    spec = recognizer.config.input
    from emofer.preprocess import to_tensor

    tensors = to_tensor(list(crops), spec.size, spec.channels, recognizer.config.normalize)
    result = t.time_classifier(crops, tensors, recognizer.classify,
                               lambda tensor: recognizer.classifier.run(tensor, len(tensor)), params,
                               recognizer.config.name, f"{spec.height}x{spec.width}x{spec.channels}")
    # the network alone over a range of batch sizes (one session.run per batch)
    sweep = {}
    for batch in params.get("sweep", []):
        batch_tensor = tensors[np.arange(batch) % n]
        times = t.time_calls(lambda i: recognizer.classifier.run(batch_tensor, batch),
                             params["batch_warmup"] or 1, params["batch_repeats"])
        sweep[str(batch)] = t.rate(times, batch)
    if sweep:
        result["network_batch_sweep_faces_per_s"] = sweep
    return result


def e2e(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """predict(frame) on each frame set (detection + classification), and detection alone."""
    import numpy as np

    from . import _timing as t

    recognizer = _recognizer(params)
    data = np.load(inputs)
    out: dict[str, Any] = {"detector": recognizer.detector.name, "threads": params.get("threads"),
                           "frames": t.time_frame_sets(data, recognizer.predict, recognizer.detect, params["warmup"], params["repeats"])}
    return out


def video(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """analyze_video over a video file: frames/s overall and the time of each frame (decode included)."""
    from emofer.video import analyze_video

    from . import _timing as t

    recognizer = _recognizer(params)
    gaps, faces = [], 0
    start = last = time.perf_counter()
    for result in analyze_video(recognizer, params["path"], max_frames=params.get("max_frames")):
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
        faces += len(result.faces)
    total = last - start
    return {
        "detector": recognizer.detector.name,
        "frames": len(gaps),
        "seconds": round(total, 3),
        "fps": round(len(gaps) / total, 2),
        "frame_ms": t.ms(gaps),
        "faces_per_frame": round(faces / max(1, len(gaps)), 2),
    }


def size(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """Installed size of emofer's runtime dependency closure (and of emofer's own files)."""
    from pathlib import Path

    import emofer

    from . import _timing as t

    deps = t.closure_size(["emofer"], skip=["emofer"])
    package = Path(emofer.__file__).parent
    own = sum(p.stat().st_size for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return {"dependencies": deps, "emofer_package_mib": round(own / 2**20, 2),
            "total_mib": round(deps["total_mib"] + own / 2**20, 1)}


TASKS = {"cold": cold, "classify": classify, "e2e": e2e, "video": video, "size": size}


def main(argv: list[str] | None = None) -> int:
    return _worker.main("emofer", TASKS, argv)


if __name__ == "__main__":
    sys.exit(main())
