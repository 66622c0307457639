"""training.metrics against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training import metrics

TRUE = np.array([0, 0, 1, 1, 2, 2, 2])
PREDICTED = np.array([0, 1, 1, 1, 2, 0, 2])
LABELS = ("angry", "happy", "sad")


def test_confusion_matrix_rows_true_columns_predicted():
    confusion = metrics.confusion_matrix(TRUE, PREDICTED, 3)
    np.testing.assert_array_equal(confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    assert confusion.sum() == len(TRUE)


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.confusion_matrix(TRUE, PREDICTED[:-1], 3)
    with pytest.raises(ValueError, match="0..2"):
        metrics.confusion_matrix(TRUE, PREDICTED + 1, 3)


def test_per_class_counts_and_ratios():
    s = metrics.scores(metrics.confusion_matrix(TRUE, PREDICTED, 3), LABELS)
    angry, happy, sad = s.per_class
    assert (angry.tp, angry.fp, angry.fn, angry.support) == (1, 1, 1, 2)
    assert (happy.tp, happy.fp, happy.fn, happy.support) == (2, 1, 0, 2)
    assert (sad.tp, sad.fp, sad.fn, sad.support) == (2, 0, 1, 3)
    assert [c.precision for c in s.per_class] == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert [c.recall for c in s.per_class] == pytest.approx([1 / 2, 1.0, 2 / 3])
    assert [c.f1 for c in s.per_class] == pytest.approx([1 / 2, 0.8, 0.8])
    assert s.accuracy == pytest.approx(5 / 7) and s.n == 7


def test_averages():
    s = metrics.scores(metrics.confusion_matrix(TRUE, PREDICTED, 3), LABELS)
    # single-label multi-class: micro precision = micro recall = micro F1 = accuracy
    assert (s.micro.precision, s.micro.recall, s.micro.f1) == pytest.approx((s.accuracy,) * 3)
    assert s.macro.precision == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert s.macro.recall == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    assert s.macro.f1 == pytest.approx((0.5 + 0.8 + 0.8) / 3)
    assert s.weighted.recall == pytest.approx(s.accuracy)  # support-weighted recall is accuracy
    assert s.weighted.f1 == pytest.approx((2 * 0.5 + 2 * 0.8 + 3 * 0.8) / 7)


def test_class_never_predicted_or_absent_scores_zero_not_nan():
    s = metrics.scores(np.array([[3, 0, 0], [2, 0, 0], [0, 0, 0]]), LABELS)
    happy, sad = s.per_class[1], s.per_class[2]
    assert (happy.precision, happy.recall, happy.f1) == (0.0, 0.0, 0.0)
    assert (sad.support, sad.precision, sad.recall) == (0, 0.0, 0.0)
    assert s.accuracy == pytest.approx(0.6)
    assert not np.isnan([s.macro.f1, s.weighted.f1]).any()
    with pytest.raises(ValueError, match="expected"):
        metrics.scores(np.eye(2, dtype=int), LABELS)


def test_scores_to_dict_is_json():
    s = metrics.scores(metrics.confusion_matrix(TRUE, PREDICTED, 3), LABELS)
    as_json = json.loads(json.dumps(s.to_dict()))
    assert as_json["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert as_json["per_class"]["happy"]["fp"] == 1
    assert set(as_json) >= {"accuracy", "micro", "macro", "weighted", "labels", "n"}


def _with_confidence(confidence: float, n: int, correct: int) -> tuple[np.ndarray, np.ndarray]:
    """n two-class rows of top-1 probability ``confidence`` on class 0, ``correct`` of them right."""
    probabilities = np.tile([confidence, 1 - confidence], (n, 1))
    labels = np.array([0] * correct + [1] * (n - correct))
    return probabilities, labels


def test_ece_is_zero_when_confidence_matches_accuracy():
    p1, y1 = _with_confidence(0.8, 10, 8)
    p2, y2 = _with_confidence(0.6, 10, 6)
    cal = metrics.calibration(np.vstack([p1, p2]), np.concatenate([y1, y2]))
    assert cal.ece == pytest.approx(0.0, abs=1e-12)
    assert cal.count.sum() == 20 and len(cal.count) == metrics.ECE_BINS
    filled = cal.count > 0
    np.testing.assert_allclose(cal.accuracy[filled], cal.confidence[filled])


def test_ece_of_overconfident_and_mixed_bins():
    p, y = _with_confidence(1.0, 10, 5)
    assert metrics.calibration(p, y).ece == pytest.approx(0.5)  # always sure, right half the time
    p1, y1 = _with_confidence(0.9, 30, 15)  # gap 0.4, weight 30/40
    p2, y2 = _with_confidence(0.55, 10, 10)  # gap 0.45, weight 10/40
    cal = metrics.calibration(np.vstack([p1, p2]), np.concatenate([y1, y2]))
    assert cal.ece == pytest.approx(0.75 * 0.4 + 0.25 * 0.45)
    assert json.loads(json.dumps(cal.to_dict()))["count"][13] == 30  # 0.9 falls in (13/15, 14/15]


def test_temperature_fit_recovers_the_true_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 5))
    true_temperature = 2.0
    truth = metrics.apply_temperature(logits, true_temperature, probabilities=False)
    labels = (rng.random((len(truth), 1)) > truth.cumsum(1)).sum(1)  # sample from the tempered softmax
    probabilities = metrics.apply_temperature(logits, 1.0, probabilities=False)  # the overconfident model
    fitted = metrics.fit_temperature(probabilities, labels)  # probabilities detected, taken as log(p)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    assert metrics.fit_temperature(logits, labels, probabilities=False) == pytest.approx(fitted, abs=1e-3)
    assert metrics.nll(probabilities, labels, fitted) < metrics.nll(probabilities, labels, 1.0)
    calibrated = metrics.apply_temperature(probabilities, fitted)
    assert metrics.calibration(calibrated, labels).ece < metrics.calibration(probabilities, labels).ece


def test_temperature_fit_stays_in_range():
    labels = np.array([0, 1, 0, 1])
    certain_and_wrong = np.array([[0.999, 0.001], [0.999, 0.001], [0.999, 0.001], [0.999, 0.001]])
    assert metrics.fit_temperature(certain_and_wrong, labels) == pytest.approx(metrics.TEMPERATURE_RANGE[1], abs=1e-3)


def test_apply_temperature_on_probabilities_is_softmax_of_log():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(metrics.apply_temperature(p, 1.0), p, atol=1e-12)
    flat = metrics.apply_temperature(p, 3.0)
    np.testing.assert_allclose(flat.sum(1), 1.0)
    np.testing.assert_array_equal(flat.argmax(1), p.argmax(1))
    assert (flat.max(1) < p.max(1)).all()
    expected = p ** (1 / 3.0) / (p ** (1 / 3.0)).sum(1, keepdims=True)  # softmax(log p / T) = p^(1/T), renormalised
    np.testing.assert_allclose(flat, expected)


def test_to_logits_detects_probabilities():
    p = np.array([[0.5, 0.5]])
    np.testing.assert_allclose(metrics.to_logits(p), np.log(p))
    logits = np.array([[2.0, -1.0]])
    np.testing.assert_allclose(metrics.to_logits(logits), logits)
    np.testing.assert_allclose(metrics.to_logits(p, probabilities=False), p)
