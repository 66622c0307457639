"""Mixing a second face source into a recipe's training and validation sets.

A recipe's ``web`` block adds expw-train (web faces framed by YuNet, :mod:`training.expw`)::

    "web": {"share": 0.3, "label_smoothing": 0.1, "val_weight": 0.5}

- ``share``: the part of each epoch's samples that are web faces; the web set is repeated
  (each repeat augmented anew) to about ``share / (1 - share)`` times the main set's size.
- ``label_smoothing``: one annotator labelled each web face, so its one-hot target keeps
  ``1 - label_smoothing`` and spreads the rest evenly over the web set's emotions.
- ``val_weight``: the weight of expw-train's carved validation part in ``val_accuracy`` (the
  number best.keras and early stopping follow); the main set's validation split has the rest.
  Both accuracies are also logged per epoch (``val_main_accuracy``, ``val_web_accuracy``).
- ``keep`` (default 1): the part of expw-train's training faces used, the same part of each
  emotion, drawn once by a fixed seed, so a smaller ``keep`` takes a subset of a larger one's
  faces. ``share`` is unchanged, so the kept faces are repeated more: the same number of web
  samples per epoch from fewer faces (a learning curve over the amount of web data). The
  carved validation part is always whole.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from training.data import FaceSet

__all__ = ["Web", "combine", "draw_rows", "validation"]

KEEP_SEED = 26  # the draw behind ``web.keep``: fixed, so every run with the same keep has the same faces


@dataclass(frozen=True)
class Web:
    """A recipe's ``web`` block, checked."""

    share: float = 0.3
    label_smoothing: float = 0.1
    val_weight: float = 0.5
    keep: float = 1.0

    def __post_init__(self) -> None:
        for name, low, high in (("share", 0.0, 0.95), ("label_smoothing", 0.0, 0.9), ("val_weight", 0.0, 1.0),
                                ("keep", 0.0, 1.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"recipe web.{name} must be a number in [{low}, {high}], got {value!r}")
        if self.keep == 0:
            raise ValueError("recipe web.keep must be above 0 (the part of expw-train's training faces used), got 0")

    @classmethod
    def from_recipe(cls, block: dict[str, Any]) -> Web:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ValueError(f"recipe web block has unknown keys {unknown}; known: {sorted(known)}")
        return cls(**block)

    def kept(self, web: FaceSet) -> FaceSet:
        """``web`` with ``keep`` of each emotion's faces (at least one of each), in their order; nested:
        the faces kept at a smaller ``keep`` are among those kept at a larger one."""
        return web if self.keep == 1 else web.take(draw_rows(web.labels, self.keep, KEEP_SEED))

    def repeats(self, n_main: int, n_web: int) -> int:
        """How many times the web set goes into one epoch so that it makes about ``share`` of it."""
        if self.share == 0:
            return 0
        return max(1, round(self.share / (1.0 - self.share) * n_main / max(1, n_web)))

    def targets(self, web: FaceSet, present: np.ndarray) -> np.ndarray:
        """One-hot targets of ``web`` smoothed over the classes ``present`` (a boolean mask)."""
        k = len(web.classes)
        one_hot = np.eye(k, dtype=np.float32)[web.labels]
        spread = present.astype(np.float32) / present.sum()
        return (1.0 - self.label_smoothing) * one_hot + self.label_smoothing * spread[None, :]


def draw_rows(labels: np.ndarray, keep: float, seed: int) -> np.ndarray:
    """Sorted rows holding ``keep`` of each label's rows (at least one of each), drawn by ``seed``.
    A smaller ``keep`` with the same seed takes the first rows of the same draw: a subset."""
    rng = np.random.default_rng(seed)
    index = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        index.append(rows[rng.permutation(len(rows))][:max(1, round(keep * len(rows)))])
    return np.sort(np.concatenate(index))


def combine(main: FaceSet, main_targets: np.ndarray, main_weights: np.ndarray | None, web: FaceSet,
            options: Web, web_classes: tuple[str, ...]) -> tuple[FaceSet, np.ndarray, np.ndarray]:
    """The main set followed by ``options.repeats`` copies of ``web``, their targets and per-face weights.

    Main faces keep their weights (class weights, or 1); web faces weigh 1 (the set is balanced).
    """
    if main.classes != web.classes:
        raise ValueError(f"web faces are labelled {web.classes}, the recipe trains {main.classes}")
    present = np.array([c in web_classes for c in main.classes])
    repeats = options.repeats(len(main), len(web))
    index = np.tile(np.arange(len(web)), repeats)
    pixels = np.concatenate([main.pixels, web.pixels[index]])
    labels = np.concatenate([main.labels, web.labels[index]])
    names = main.names + tuple(np.asarray(web.names)[index]) if main.names and web.names else ()
    faces = FaceSet(pixels, labels, main.classes, main.split, None, names)
    targets = np.concatenate([main_targets.astype(np.float32), options.targets(web, present)[index]])
    weights = np.concatenate([np.ones(len(main), np.float32) if main_weights is None else main_weights,
                              np.ones(len(index), np.float32)])
    return faces, targets, weights


def validation(main: FaceSet, web: FaceSet, options: Web) -> tuple[FaceSet, np.ndarray, np.ndarray]:
    """Both validation sets as one, with per-face weights that give each part its share of
    ``val_loss`` (``(1 - val_weight)`` and ``val_weight``), and a mask of the web rows. Keras does not
    weight ``val_accuracy``; ``training.train.ValidationParts`` mixes it from the two parts."""
    n_main, n_web = len(main), len(web)
    total = n_main + n_web
    weights = np.concatenate([np.full(n_main, (1.0 - options.val_weight) * total / n_main, np.float32),
                              np.full(n_web, options.val_weight * total / n_web, np.float32)])
    faces = FaceSet(np.concatenate([main.pixels, web.pixels]), np.concatenate([main.labels, web.labels]),
                    main.classes, main.split, None, main.names + web.names)
    return faces, weights, np.arange(total) >= n_main
