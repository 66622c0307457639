"""Knowledge distillation targets: trained runs label the training faces for a student.

A recipe with a ``distill`` block trains on ``alpha * one-hot + (1 - alpha) * teacher`` instead
of the one-hot labels, where ``teacher`` is the averaged probability of the teacher runs (each
face and, with ``flip``, its mirror image), softened by ``temperature`` (p ** (1 / T),
renormalised). Teachers are computed once per run folder and cached there
(``teacher_targets.npz``), so a resumed run trains on the same targets.

A teacher is a finished training run (a folder with ``best.keras``) or any model
``EmotionRecognizer.from_pretrained`` loads: a bundled name such as ``emofer/fer5`` or an
exported model folder such as the repository's ``models/ferplus8``. Exported teachers see the faces through emofer's own preprocessing
(``classify``), so a bundled model whose Keras run is gone can still teach.

    python -m training.train --recipe fer5-distill --out RUN --init-from START/best.keras \\
        --teacher TEACHER_RUN_A --teacher TEACHER_RUN_B
    python -m training.train --recipe wild8-distill --out RUN --init-from WILD8_RUN/best.keras \\
        --teacher models/wild8 --teacher models/ferplus8
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emofer import EmotionRecognizer
from emofer.preprocess import model_input
from training import data, nets
from training.runs import Run

log = logging.getLogger("emofer.training")
CACHE_NAME = "teacher_targets.npz"


def is_run(teacher: str | Path) -> bool:
    """True for a training run folder (Keras weights); otherwise the teacher is an emofer model."""
    return (Path(teacher) / "best.keras").is_file()


def teacher_id(teacher: str | Path) -> str:
    """A stable name for the cache key: the resolved folder, or the model name as given."""
    path = Path(teacher)
    return str(path.resolve()) if path.exists() else str(teacher)


def _run_probabilities(run: Run, faces: data.FaceSet, flip: bool, batch_size: int) -> list[np.ndarray]:
    model = nets.load(run.best, compile=False)
    x = model_input(faces.pixels, run.config)
    views = [x, x[:, :, ::-1]] if flip else [x]  # NHWC: axis 2 is the width
    return [np.asarray(nets.pick_classes(np.asarray(model.predict(view, batch_size=batch_size, verbose=0), np.float64),
                                         run.classes, faces.classes, f"teacher {run.path}")) for view in views]


def _model_probabilities(name: str, faces: data.FaceSet, flip: bool, batch_size: int) -> list[np.ndarray]:
    recognizer = EmotionRecognizer.from_pretrained(name)
    views = [faces.pixels, faces.pixels[:, :, ::-1]] if flip else [faces.pixels]  # (N, H, W) grey crops
    return [np.asarray(nets.pick_classes(recognizer.classify(view, batch_size=batch_size).astype(np.float64),
                                         recognizer.labels, faces.classes, f"teacher {name}")) for view in views]


def teacher_probabilities(teachers: Sequence[str | Path], faces: data.FaceSet, flip: bool = True,
                          batch_size: int = 256) -> np.ndarray:
    """Mean probability over ``faces.classes`` of every teacher (and mirror, with ``flip``).

    A run folder sees the faces as its own config.json says (size, channels, normalisation); an
    emofer model sees them through its ``classify``. A teacher trained on more classes contributes
    its probabilities of ``faces.classes`` renormalised to sum to 1; one that lacks a class is an error.
    """
    if not teachers:
        raise ValueError("distillation needs at least one teacher (--teacher RUN_DIR or MODEL)")
    total = np.zeros((len(faces), len(faces.classes)), np.float64)
    views = 0
    for teacher in teachers:
        if is_run(teacher):
            probabilities = _run_probabilities(Run(teacher), faces, flip, batch_size)
        else:
            probabilities = _model_probabilities(str(teacher), faces, flip, batch_size)
        log.info("teacher %s: training accuracy %.4f", teacher, float((probabilities[0].argmax(1) == faces.labels).mean()))
        total += sum(probabilities)
        views += len(probabilities)
    return (total / views).astype(np.float32)


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """p ** (1 / T) renormalised per row: T > 1 flattens, T = 1 leaves them as they are."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    scaled = np.power(np.clip(probabilities, 1e-12, 1.0).astype(np.float64), 1.0 / temperature)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def blend(hard: np.ndarray, teacher: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * hard + (1 - alpha) * teacher``: rows still sum to 1."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if hard.shape != teacher.shape:
        raise ValueError(f"targets {hard.shape} and teacher probabilities {teacher.shape} differ in shape")
    return (alpha * hard + (1.0 - alpha) * teacher).astype(np.float32)


def targets(run: Path, teachers: Sequence[str | Path], faces: data.FaceSet, alpha: float = 0.5,
            temperature: float = 2.0, flip: bool = True) -> np.ndarray:
    """The student's training targets, from the cache in ``run`` when it matches these faces."""
    key = hashlib.sha256(faces.pixels.tobytes() + faces.labels.tobytes()
                         + json.dumps([sorted(teacher_id(t) for t in teachers), flip]).encode()).hexdigest()
    cache = Path(run) / CACHE_NAME
    if cache.exists():
        stored = np.load(cache)
        if str(stored["key"]) == key:
            teacher = stored["probabilities"]
        else:
            raise ValueError(f"{cache} was computed for other faces or teachers; remove it or use a new run folder")
    else:
        teacher = teacher_probabilities(teachers, faces, flip)
        np.savez(cache, key=key, probabilities=teacher)
    agree = float((teacher.argmax(1) == faces.labels).mean())
    log.info("teacher ensemble agrees with the training labels on %.4f of %d faces", agree, len(faces))
    return blend(faces.targets().astype(np.float32), soften(teacher, temperature), alpha)
