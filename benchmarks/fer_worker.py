"""fer's side of the speed benchmark, run with the Python of fer's own virtual environment.

    FER-VENV/bin/python -m benchmarks.fer_worker TASK --inputs inputs.npz --params '{...}' --result out.json

TASK is cold | classify | e2e | video | size, measured like ``benchmarks/emofer_worker.py`` on
the same ``inputs.npz``. This file must not import emofer (fer's venv does not have it); it
uses only the standard library, numpy, OpenCV and fer (25.10.3, imported as ``fer.fer.FER``).

How fer is driven:
- ``FER()`` is fer's default: OpenCV's Haar cascade (min face 50 px) and the bundled quantised
  TFLite emotion model, invoked once per face; ``FER(use_tflite=False)`` runs the Keras .hdf5
  model on a whole batch; ``FER(mtcnn=True)`` detects faces with facenet-pytorch's MTCNN.
- classification of pre-cropped faces repeats what ``detect_emotions`` does to a face crop:
  ``cv2.resize`` to 64x64, scale to [-1, 1], ``FER._classify_emotions``.
- threads=1 gives the TFLite interpreter ``num_threads=1`` (through the interpreter cache that
  ``FER`` reads) and TensorFlow one intra-op and one inter-op thread.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import warnings
from typing import Any

from . import _worker

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")


def _fer(params: dict[str, Any]) -> Any:
    """A FER instance set up as ``params`` says (detector, backend, threads)."""
    threads = params.get("threads")
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from fer.fer import FER

    tflite = params.get("backend", "tflite") == "tflite"
    if tflite and threads:
        import pkg_resources

        path = pkg_resources.resource_filename("fer", "data/emotion_model_quantized.tflite")
        interpreter = tf.lite.Interpreter(model_path=path, num_threads=int(threads))
        interpreter.allocate_tensors()
        FER._tflite_interpreter_cache = interpreter
    return FER(mtcnn=params.get("detector") == "mtcnn", use_tflite=tflite)


def cold(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """``from fer.fer import FER`` + ``FER()`` in this fresh process, then the first detect_emotions."""
    _, times = _worker.cold(inputs, lambda: importlib.import_module("fer.fer"),
                            lambda library: library.FER(mtcnn=params.get("detector") == "mtcnn"),
                            lambda detector, frame: detector.detect_emotions(frame))
    return {**times, "detector": params.get("detector", "haar")}


def classify(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """Per-face latency at batch 1 and faces/s at larger batches, on the same FER2013 crops."""
    import cv2
    import numpy as np

    from . import _timing as t

    fer = _fer(params)
    crops = np.load(inputs)["crops"]

    def run(faces: list) -> np.ndarray:
        # detect_emotions' own steps for a grey face crop
        gray = np.array([cv2.resize(face, (64, 64)) for face in faces], dtype="float32")
        gray = (gray / 255.0 - 0.5) * 2.0
        return np.asarray(fer._classify_emotions(gray))

    tensors = (np.array([cv2.resize(c, (64, 64)) for c in crops], dtype="float32") / 255.0 - 0.5) * 2.0
    backend = params.get("backend", "tflite")
    return t.time_classifier(crops, tensors, run, lambda tensor: np.asarray(fer._classify_emotions(tensor)), params,
                             f"fer {backend} (emotion_model{'_quantized.tflite' if backend == 'tflite' else '.hdf5'})",
                             "64x64x1")


def probabilities(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """fer's emotion probabilities for every crop of ``inputs`` (its own resize and scaling), in batches."""
    import cv2
    import numpy as np

    fer = _fer(params)
    crops = np.load(inputs)["crops"]
    rows = []
    for start in range(0, len(crops), 256):
        gray = np.array([cv2.resize(face, (64, 64)) for face in crops[start:start + 256]], dtype="float32")
        rows.append(np.asarray(fer._classify_emotions((gray / 255.0 - 0.5) * 2.0)).reshape(len(gray), -1))
    labels = fer._get_labels()
    return {"labels": [labels[i] for i in range(len(labels))], "probabilities": np.concatenate(rows).tolist()}


def photos(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """detect_emotions on each photo of a zip archive (``inputs``): boxes, emotions, seconds per photo."""
    import time
    import zipfile

    import cv2
    import numpy as np

    fer = _fer(params)
    out = []
    with zipfile.ZipFile(inputs) as archive:
        for name in params["paths"]:
            encoded = np.frombuffer(archive.read(name), np.uint8)
            start = time.perf_counter()
            faces = fer.detect_emotions(cv2.imdecode(encoded, cv2.IMREAD_COLOR))
            seconds = time.perf_counter() - start
            out.append({"path": name, "seconds": seconds,
                        "faces": [{"box": [int(v) for v in f["box"]],
                                   "emotions": {k: float(v) for k, v in f["emotions"].items()}} for f in faces]})
    return {"photos": out}


def e2e(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """detect_emotions(frame) on each frame set (detection + classification), and find_faces alone."""
    import numpy as np

    from . import _timing as t

    fer = _fer(params)
    data = np.load(inputs)
    out: dict[str, Any] = {"detector": params.get("detector", "haar"), "threads": params.get("threads"),
                           "frames": t.time_frame_sets(data, fer.detect_emotions, fer.find_faces, params["warmup"], params["repeats"])}
    return out


def video(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """Each frame of the video file decoded with OpenCV and passed to detect_emotions.

    (fer's own ``Video`` class also writes an annotated copy of the video; this loop is the
    smallest fer program that analyses every frame, for comparison with emofer's analyze_video.)
    """
    import cv2

    from . import _timing as t

    fer = _fer(params)
    capture = cv2.VideoCapture(params["path"])
    limit = params.get("max_frames")
    gaps, faces = [], 0
    start = last = time.perf_counter()
    try:
        while limit is None or len(gaps) < limit:
            ok, frame = capture.read()
            if not ok:
                break
            faces += len(fer.detect_emotions(frame))
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
    finally:
        capture.release()
    total = last - start
    return {
        "detector": params.get("detector", "haar"),
        "frames": len(gaps),
        "seconds": round(total, 3),
        "fps": round(len(gaps) / total, 2) if total > 0 else None,
        "frame_ms": t.ms(gaps) if gaps else None,
        "faces_per_frame": round(faces / max(1, len(gaps)), 2),
    }


def size(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """Installed size of fer's dependency closure in this venv (fer included) and of the whole venv."""
    import site
    from pathlib import Path

    from . import _timing as t

    closure = t.closure_size(["fer"])
    site_packages = Path(site.getsitepackages()[0])
    whole = sum(p.stat().st_size for p in site_packages.rglob("*") if p.is_file() and not p.is_symlink())
    return {"dependencies": closure, "total_mib": closure["total_mib"],
            "site_packages_mib": round(whole / 2**20, 1)}


def versions(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """Versions of fer and the libraries it runs on, in this venv."""
    from importlib import metadata

    found = {}
    for name in ("fer", "tensorflow-cpu", "tensorflow", "keras", "torch", "torchvision", "facenet-pytorch",
                 "opencv-contrib-python", "opencv-python", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        import facenet_pytorch  # noqa: F401

        mtcnn = None
    except Exception as exc:  # torchvision without its compiled ops, etc.
        mtcnn = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return {"versions": found, "python": sys.version.split()[0], "mtcnn_unavailable": mtcnn}


def macs(inputs: str, params: dict[str, Any]) -> dict[str, Any]:
    """Multiply-accumulates of one face through fer's emotion model (the Keras .hdf5 layers)."""
    import numpy as np
    import pkg_resources
    from tensorflow.keras.models import load_model

    model = load_model(pkg_resources.resource_filename("fer", "data/emotion_model.hdf5"), compile=False)
    total, by_type = 0, {}
    for layer in model.layers:
        kind = type(layer).__name__
        try:
            out = layer.output.shape
            inp = layer.input.shape
        except (AttributeError, ValueError):
            continue
        if kind == "Conv2D":
            kh, kw = layer.kernel_size
            count = out[1] * out[2] * out[3] * kh * kw * inp[3] // getattr(layer, "groups", 1)
        elif kind == "SeparableConv2D":
            kh, kw = layer.kernel_size
            mult = layer.depth_multiplier
            count = out[1] * out[2] * (inp[3] * mult * kh * kw + inp[3] * mult * out[3])
        elif kind == "DepthwiseConv2D":
            kh, kw = layer.kernel_size
            count = out[1] * out[2] * inp[3] * layer.depth_multiplier * kh * kw
        elif kind == "Dense":
            count = int(np.prod(inp[1:])) * out[-1]
        else:
            continue
        total += int(count)
        by_type[kind] = by_type.get(kind, 0) + int(count)
    return {"macs": total, "macs_by_op": by_type, "params": int(model.count_params()),
            "input": [int(d) for d in model.input_shape[1:]], "model": "fer/data/emotion_model.hdf5"}


TASKS = {"macs": macs, "cold": cold, "classify": classify, "probabilities": probabilities, "e2e": e2e, "photos": photos, "video": video, "size": size, "versions": versions}


def main(argv: list[str] | None = None) -> int:
    return _worker.main("fer", TASKS, argv)


if __name__ == "__main__":
    sys.exit(main())
