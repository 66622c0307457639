"""Shared fixtures: real data paths (skip when absent) and small real ONNX model folders."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from emofer.detect.haar import haar_available
from emofer.detect.yunet import BUNDLED_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DATA = SHARED / "data"
FER_ZIP = DATA / "fer2013-images.zip"
FACES_BOXES = DATA / "faces-boxes"
#: The YuNet weights bundled in the package (the same file as ../shared/models' copy).
YUNET = BUNDLED_WEIGHTS
EXAMPLE_PHOTO = ROOT / "examples" / "images" / "grace_hopper.jpg"
#: The repository's folder of the models the wheel no longer bundles (emofer.hub.MOVED_MODELS).
REPO_MODELS = ROOT / "models"

TINY_LABELS = ("angry", "happy", "sad")
#: Whether this OpenCV has the Haar cascade detector (opencv-python 4.x; 5.x removed it).
HAAR = haar_available()
#: Marks tests that need OpenCV's Haar cascade, which opencv-python 5 no longer has. Every test that
#: builds detector="haar" carries it (CI's first venv runs the whole suite on OpenCV 5, its second on 4.x).
needs_haar = pytest.mark.skipif(
    not HAAR, reason=f"OpenCV {cv2.__version__} has no cv2.CascadeClassifier (opencv-python 5 removed Haar)"
)


def need(path: Path, what: str) -> Path:
    """Skip the test with a clear reason when a shared file is absent."""
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (it lives in ../shared beside the checkout)")
    return path


def repo_model(name: str) -> Path:
    """The folder of a model kept in the repository, not the wheel: ``emofer/wild8`` -> ROOT/models/wild8.

    Skips the test with a clear reason where that folder is absent (an installed emofer without a clone).
    """
    folder = REPO_MODELS / name.rsplit("/", 1)[-1]
    if not (folder / "config.json").is_file():
        pytest.skip(f"{name} is not bundled and its folder {folder} is absent (it lives in a clone's models/)")
    return folder


def shipped(name: str) -> str | Path:
    """What from_pretrained takes for a model emofer ships: a bundled name as is, a moved one's models/ folder."""
    from emofer.hub import MOVED_MODELS

    return repo_model(name) if name in MOVED_MODELS else name


def build_tiny_onnx(path: Path, labels=TINY_LABELS, size=(48, 48), channels=1, seed=0) -> None:
    """A real little CNN graph (NHWC input -> Conv -> ReLU -> GAP -> Gemm -> Softmax)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    h, w = size
    conv_w = rng.normal(0, 0.5, (4, channels, 3, 3)).astype(np.float32)
    gemm_w = rng.normal(0, 1.0, (4, len(labels))).astype(np.float32)
    gemm_b = rng.normal(0, 0.1, (len(labels),)).astype(np.float32)
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv_w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "gemm_w", "gemm_b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", h, w, channels])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(labels)])],
        [numpy_helper.from_array(conv_w, "conv_w"), numpy_helper.from_array(gemm_w, "gemm_w"),
         numpy_helper.from_array(gemm_b, "gemm_b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def write_model_folder(folder: Path, labels=TINY_LABELS, **config_overrides) -> Path:
    """A complete model folder (model.onnx + config.json + README.md) for the tiny graph."""
    folder.mkdir(parents=True, exist_ok=True)
    build_tiny_onnx(folder / "model.onnx", labels)
    config = {
        "name": "test/tiny", "format_version": 1, "labels": list(labels),
        "input": {"height": 48, "width": 48, "channels": 1, "layout": "NHWC", "dtype": "float32"},
        "normalize": {"scale": 1 / 255, "mean": 0.0, "std": 1.0},
        "crop": {"margin": 0.0, "square": True},
        "temperature": 1.0,
        "model_sha256": hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest(),
        "trained_on": {"dataset": "none (random weights for tests)"},
        "metrics": {},
    }
    config.update(config_overrides)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "README.md").write_text("# tiny test model\n")
    return folder


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> Path:
    """A real ONNX model folder with random weights and three labels."""
    return write_model_folder(tmp_path / "tiny")


@pytest.fixture(scope="session")
def fer_faces() -> dict[str, np.ndarray]:
    """A few real 48x48 FER2013 PrivateTest faces per class (uint8), read from the shared zip."""
    import cv2

    need(FER_ZIP, "FER2013 archive")
    faces: dict[str, list[np.ndarray]] = {}
    with zipfile.ZipFile(FER_ZIP) as archive:
        for name in sorted(archive.namelist()):
            if "PrivateTest_" not in name:
                continue
            label = Path(name).parent.name
            if len(faces.setdefault(label, [])) < 4:
                data = np.frombuffer(archive.read(name), np.uint8)
                faces[label].append(cv2.imdecode(data, cv2.IMREAD_GRAYSCALE))
    return {label: np.stack(images) for label, images in faces.items()}


@pytest.fixture(scope="session")
def photo_path() -> Path:
    """A real colour photo with several faces (faces-boxes), else the shipped example photo."""
    candidates = sorted((FACES_BOXES / "images").glob("*.jpg")) if FACES_BOXES.exists() else []
    if candidates:
        return candidates[0]
    return need(EXAMPLE_PHOTO, "example photo")
