"""The fitted temperature of a bundled model improves its calibration on the split it was fitted on."""

from __future__ import annotations

import pytest

from tests.conftest import FER_ZIP, need, repo_model


@pytest.mark.data
def test_temperature_lowers_ece_and_nll_on_publictest():
    need(FER_ZIP, "FER2013 archive")
    from training.calibration import before_after

    result = before_after("emofer/fer5", "PublicTest")
    assert result["temperature"] != 1.0
    assert result["ece_after"] < result["ece_before"]
    assert result["nll_after"] < result["nll_before"]


def test_coverage_counts_the_faces_a_threshold_keeps_and_their_accuracy():
    import numpy as np

    from training.calibration import coverage

    probabilities = np.array([[0.9, 0.1], [0.55, 0.45], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 0])  # right, wrong, right, right
    rows = coverage(probabilities, labels, (0.5, 0.6, 0.8, 0.95))
    assert rows[:3] == [(0.5, 1.0, 0.75), (0.6, 0.75, 1.0), (0.8, 0.25, 1.0)]
    assert rows[3][1] == 0.0 and np.isnan(rows[3][2])


@pytest.mark.data
def test_a_higher_threshold_names_fewer_publictest_faces_more_accurately():
    need(FER_ZIP, "FER2013 archive")
    from training.calibration import coverage, probabilities_on

    _, probabilities, labels = probabilities_on(str(repo_model("fer7")), "PublicTest")
    (_, share_low, accuracy_low), (_, share_high, accuracy_high) = coverage(probabilities, labels, (0.4, 0.8))
    assert 0 < share_high < share_low <= 1 and accuracy_high > accuracy_low + 0.1
