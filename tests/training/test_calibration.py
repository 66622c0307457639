"""The fitted temperature of a bundled model improves its calibration on the split it was fitted on."""

from __future__ import annotations

import pytest

from tests.conftest import FER_ZIP, need


@pytest.mark.data
def test_temperature_lowers_ece_and_nll_on_publictest():
    need(FER_ZIP, "FER2013 archive")
    from training.calibration import before_after

    result = before_after("emofer/fer5", "PublicTest")
    assert result["temperature"] != 1.0
    assert result["ece_after"] < result["ece_before"]
    assert result["nll_after"] < result["nll_before"]
