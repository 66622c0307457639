"""FER2013's own labels as a second signal for FER+ faces, where FER+'s annotators are thin.

FER+ relabelled FER2013's images by 10 votes each, and its annotators seldom chose disgust or
fear (1.5 % and 3.4 % of the training targets), while FER2013's single labels name them on
436 and 4,097 training faces. A recipe block

    "second_labels": {"dataset": "fer2013", "classes": ["disgust", "fear"], "weight": 0.3}

moves ``weight`` of a FER+ face's target onto FER2013's label where that label is one of
``classes``; every other face keeps its target. The two archives share images, not names (the
image-folder copy has other file names and slightly different contrast), so each FER+ face is
matched to its FER2013 image by pixels: the nearest neighbour of 12x12 block means, each image
standardised, accepted below ``max_distance`` (the RMS difference in standard deviations).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from training import data

log = logging.getLogger("emofer.training")
#: Accept a match whose standardised 12x12 block means differ by at most this RMS.
MAX_DISTANCE = 0.45


def _signature(pixels: np.ndarray) -> np.ndarray:
    """(N, 144) block means of 48x48 faces, each row standardised (contrast and brightness drop out)."""
    n = len(pixels)
    means = pixels.astype(np.float32).reshape(n, 12, 4, 12, 4).mean(axis=(2, 4)).reshape(n, -1)
    means -= means.mean(axis=1, keepdims=True)
    return means / (means.std(axis=1, keepdims=True) + 1e-6)


def match(faces: np.ndarray, others: np.ndarray, max_distance: float = MAX_DISTANCE,
          chunk: int = 2000) -> np.ndarray:
    """For each face, the index of the same image among ``others``, or -1 where none is close enough."""
    if faces.shape[1:] != data.FER_SIZE or others.shape[1:] != data.FER_SIZE:
        raise ValueError(f"match needs 48x48 faces, got {faces.shape[1:]} and {others.shape[1:]}")
    a, b = _signature(others), _signature(faces)
    squared = (a * a).sum(axis=1)
    found = np.full(len(b), -1, np.int64)
    for start in range(0, len(b), chunk):
        part = b[start:start + chunk]
        distance = (part * part).sum(axis=1)[:, None] + squared[None] - 2.0 * part @ a.T
        nearest = distance.argmin(axis=1)
        rms = np.sqrt(np.maximum(distance[np.arange(len(part)), nearest], 0.0) / a.shape[1])
        found[start:start + len(part)] = np.where(rms <= max_distance, nearest, -1)
    return found


def labels_from(faces: data.FaceSet, other: data.FaceSet, max_distance: float = MAX_DISTANCE) -> list[str | None]:
    """``other``'s label (by name) of each face in ``faces``; None where no image matched."""
    index = match(faces.pixels, other.pixels, max_distance)
    found = [other.classes[other.labels[i]] if i >= 0 else None for i in index]
    log.info("second labels: %d of %d faces matched to %s %s", sum(f is not None for f in found), len(faces),
             other.split, other.classes)
    return found


def blend(targets: np.ndarray, classes: Sequence[str], second: Sequence[str | None], use: Sequence[str],
          weight: float) -> np.ndarray:
    """Move ``weight`` of each row onto its second label where that label is in ``use``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"second_labels weight must be in [0, 1], got {weight}")
    unknown = [c for c in use if c not in classes]
    if unknown:
        raise ValueError(f"second_labels classes {unknown} are not among the run's classes {tuple(classes)}")
    out = np.array(targets, np.float32, copy=True)
    rows = np.array([label in use for label in second])
    columns = np.array([classes.index(label) for label, hit in zip(second, rows) if hit], np.int64)
    out[rows] *= 1.0 - weight
    out[np.flatnonzero(rows), columns] += weight
    log.info("second labels moved %.2f of the target onto %s for %d faces", weight, list(use), int(rows.sum()))
    return out


def targets(faces: data.FaceSet, base: np.ndarray, dataset: str = "fer2013", classes: Sequence[str] = ("disgust", "fear"),
            weight: float = 0.3, max_distance: float = MAX_DISTANCE) -> np.ndarray:
    """A run's training targets with ``dataset``'s labels of the same images blended in for ``classes``."""
    other = data.load(dataset, faces.split, data.SUBSETS["fer7"])
    return blend(base, faces.classes, labels_from(faces, other, max_distance), tuple(classes), weight)
