"""Classification and calibration metrics in plain numpy (no scikit-learn, no scipy).

Conventions: ``labels`` are integer class ids, ``probabilities`` are (N, K) rows that sum to 1.
A ratio whose denominator is zero (precision of a class never predicted) counts as 0.0.
Temperature scaling works on log-probabilities, exactly as emofer serves a model:
``softmax(log(p) / T)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ECE_BINS",
    "TEMPERATURE_RANGE",
    "ClassScores",
    "Averages",
    "Scores",
    "Calibration",
    "confusion_matrix",
    "scores",
    "calibration",
    "to_logits",
    "apply_temperature",
    "nll",
    "fit_temperature",
]

#: Equal-width confidence bins of the expected calibration error (Guo et al., 2017).
ECE_BINS = 15
#: The temperatures fit_temperature searches.
TEMPERATURE_RANGE = (0.5, 5.0)
_EPS = 1e-12


@dataclass(frozen=True)
class ClassScores:
    """One class: counts and the ratios made from them."""

    label: str
    tp: int
    fp: int
    fn: int
    support: int
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class Averages:
    """Precision, recall and F1 averaged one way (micro, macro or weighted)."""

    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class Scores:
    """Everything read off one confusion matrix (rows = true class, columns = predicted)."""

    labels: tuple[str, ...]
    confusion: np.ndarray
    per_class: tuple[ClassScores, ...]
    micro: Averages
    macro: Averages
    weighted: Averages
    accuracy: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (for report.json)."""
        return {
            "labels": list(self.labels),
            "n": self.n,
            "accuracy": self.accuracy,
            "per_class": {c.label: {k: v for k, v in vars(c).items() if k != "label"} for c in self.per_class},
            "micro": vars(self.micro).copy(),
            "macro": vars(self.macro).copy(),
            "weighted": vars(self.weighted).copy(),
            "confusion_matrix": self.confusion.tolist(),
        }


@dataclass(frozen=True)
class Calibration:
    """Reliability per confidence bin and the expected calibration error (ECE)."""

    ece: float
    edges: np.ndarray  # (bins + 1,)
    confidence: np.ndarray  # (bins,) mean top-1 probability per bin (nan where empty)
    accuracy: np.ndarray  # (bins,) fraction correct per bin (nan where empty)
    count: np.ndarray  # (bins,) faces per bin

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (for report.json); empty bins become null."""
        def clean(values: np.ndarray) -> list[float | None]:
            return [None if np.isnan(v) else float(v) for v in values]

        return {"ece": self.ece, "bins": len(self.count), "edges": self.edges.tolist(),
                "confidence": clean(self.confidence), "accuracy": clean(self.accuracy),
                "count": self.count.tolist()}


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) int64 counts: row = true class, column = predicted class."""
    true, predicted = np.asarray(true, np.int64), np.asarray(predicted, np.int64)
    if true.shape != predicted.shape:
        raise ValueError(f"true {true.shape} and predicted {predicted.shape} differ in shape")
    if true.size and (min(true.min(), predicted.min()) < 0 or max(true.max(), predicted.max()) >= n_classes):
        raise ValueError(f"class ids must lie in 0..{n_classes - 1}")
    return np.bincount(true * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    return _ratio(2 * precision * recall, precision + recall)


def scores(confusion: np.ndarray, labels: Sequence[str]) -> Scores:
    """Per-class TP/FP/FN, precision, recall, F1, support and their averages from a confusion matrix."""
    confusion = np.asarray(confusion, np.int64)
    k = len(labels)
    if confusion.shape != (k, k):
        raise ValueError(f"confusion matrix is {confusion.shape}, expected ({k}, {k}) for {k} labels")
    tp = np.diag(confusion)
    support = confusion.sum(1)
    fp = confusion.sum(0) - tp
    fn = support - tp
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, support)
    f1 = _f1(precision, recall)
    n = int(support.sum())
    micro_p, micro_r = float(_ratio(tp.sum(), tp.sum() + fp.sum())), float(_ratio(tp.sum(), n))
    weights = _ratio(support, n)
    per_class = tuple(
        ClassScores(str(labels[i]), int(tp[i]), int(fp[i]), int(fn[i]), int(support[i]),
                    float(precision[i]), float(recall[i]), float(f1[i]))
        for i in range(k)
    )
    return Scores(
        labels=tuple(str(label) for label in labels),
        confusion=confusion,
        per_class=per_class,
        micro=Averages(micro_p, micro_r, float(_f1(np.float64(micro_p), np.float64(micro_r)))),
        macro=Averages(float(precision.mean()), float(recall.mean()), float(f1.mean())),
        weighted=Averages(float(weights @ precision), float(weights @ recall), float(weights @ f1)),
        accuracy=float(_ratio(tp.sum(), n)),
        n=n,
    )


def calibration(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> Calibration:
    """Top-1 reliability in ``bins`` equal-width confidence bins and the ECE.

    ECE = sum over bins of (faces in bin / N) * |accuracy in bin - mean confidence in bin|.
    """
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(1)
    correct = (probabilities.argmax(1) == np.asarray(labels)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin i holds confidences in (edges[i], edges[i+1]]; a confidence of exactly 0 goes to bin 0
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, bins) / count
        mean_accuracy = np.bincount(which, correct, bins) / count
    gaps = np.where(count > 0, np.abs(mean_accuracy - mean_confidence), 0.0)
    ece = float((count * gaps).sum() / max(len(confidence), 1))
    return Calibration(ece, edges, mean_confidence, mean_accuracy, count)


def to_logits(scores: np.ndarray, probabilities: bool | None = None) -> np.ndarray:
    """Logits from logits or probabilities (log of probabilities; detected when ``probabilities`` is None)."""
    scores = np.asarray(scores, np.float64)
    if probabilities is None:
        probabilities = bool(scores.min() >= 0.0 and np.allclose(scores.sum(1), 1.0, atol=1e-3))
    return np.log(np.clip(scores, _EPS, None)) if probabilities else scores


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def apply_temperature(scores: np.ndarray, temperature: float, probabilities: bool | None = None) -> np.ndarray:
    """``softmax(logits / T)``, the logits being log(p) when given probabilities."""
    return np.exp(_log_softmax(to_logits(scores, probabilities) / temperature))


def nll(scores: np.ndarray, labels: np.ndarray, temperature: float = 1.0,
        probabilities: bool | None = None) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / T)``."""
    log_p = _log_softmax(to_logits(scores, probabilities) / temperature)
    return float(-log_p[np.arange(len(log_p)), np.asarray(labels)].mean())


def fit_temperature(scores: np.ndarray, labels: np.ndarray, probabilities: bool | None = None,
                    bounds: tuple[float, float] = TEMPERATURE_RANGE, tolerance: float = 1e-4) -> float:
    """The temperature in ``bounds`` that minimises the NLL of ``labels`` (golden-section search).

    NLL is convex in 1/T, hence unimodal in T, so golden-section search finds the minimum.
    """
    logits = to_logits(scores, probabilities)
    labels = np.asarray(labels)
    golden = (np.sqrt(5.0) - 1.0) / 2.0
    low, high = bounds
    a, b = high - golden * (high - low), low + golden * (high - low)
    loss_a, loss_b = nll(logits, labels, a, False), nll(logits, labels, b, False)
    while high - low > tolerance:
        if loss_a <= loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - golden * (high - low)
            loss_a = nll(logits, labels, a, False)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + golden * (high - low)
            loss_b = nll(logits, labels, b, False)
    return float((low + high) / 2.0)
