"""Face box geometry shared by detectors, the video tracker and the benchmarks.

A box is ``(x, y, w, h)``: top-left corner, width and height, in image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["Box", "iou", "iou_matrix", "coverage_matrix", "match", "clip_boxes"]

Box = tuple[int, int, int, int]


def _intersections(
    a: Sequence[Sequence[float]] | np.ndarray, b: Sequence[Sequence[float]] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection areas (len(a), len(b)) and the areas of ``a`` (len(a), 1) and ``b`` (len(b),)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax0, ay0 = a[:, 0:1], a[:, 1:2]
    ax1, ay1 = ax0 + a[:, 2:3], ay0 + a[:, 3:4]
    bx0, by0 = b[:, 0], b[:, 1]
    bx1, by1 = bx0 + b[:, 2], by0 + b[:, 3]
    inter_w = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0.0, None)
    inter_h = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0.0, None)
    return inter_w * inter_h, a[:, 2:3] * a[:, 3:4], b[:, 2] * b[:, 3]


def iou_matrix(a: Sequence[Sequence[float]] | np.ndarray, b: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` with every box in ``b``: shape (len(a), len(b))."""
    inter, area_a, area_b = _intersections(a, b)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0.0, inter / union, 0.0)


def coverage_matrix(a: Sequence[Sequence[float]] | np.ndarray, b: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """The fraction of each box in ``a`` that lies inside each box in ``b``: shape (len(a), len(b))."""
    inter, area_a, _ = _intersections(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(area_a > 0.0, inter / area_a, 0.0)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (0.0 when they do not overlap)."""
    return float(iou_matrix([a], [b])[0, 0])


def match(
    a: Sequence[Sequence[float]] | np.ndarray, b: Sequence[Sequence[float]] | np.ndarray, threshold: float
) -> list[tuple[int, int]]:
    """Greedy one-to-one matching: pairs (i, j) of ``a[i]`` and ``b[j]``, highest IoU first,
    each box used at most once, only pairs with IoU >= ``threshold``."""
    overlaps = iou_matrix(a, b)
    pairs: list[tuple[int, int]] = []
    used_a: set[int] = set()
    used_b: set[int] = set()
    for flat in np.argsort(-overlaps, axis=None, kind="stable"):
        i, j = divmod(int(flat), overlaps.shape[1])
        if overlaps[i, j] < threshold or overlaps[i, j] <= 0.0:
            break
        if i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    return pairs


def clip_boxes(boxes: npt.ArrayLike, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Round float (N, 4) boxes to whole pixels inside a ``width`` x ``height`` image.

    Returns the int (M, 4) boxes that keep at least one pixel and the boolean (N,) mask of
    which input rows they came from.
    """
    table = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows are dropped below
        x0 = np.clip(np.rint(table[:, 0]), 0, width)
        y0 = np.clip(np.rint(table[:, 1]), 0, height)
        x1 = np.clip(np.rint(table[:, 0] + table[:, 2]), 0, width)
        y1 = np.clip(np.rint(table[:, 1] + table[:, 3]), 0, height)
    keep = (x1 > x0) & (y1 > y0) & np.isfinite(table).all(axis=1)
    clipped = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)[keep].astype(np.int64)
    return clipped, keep
