"""training.ensemble: real emofer models (the repository's models/ folder) averaged in one ONNX graph return exactly the weighted mean
of what each member's classify returns, and members that do not fit together are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx", reason="training extras not installed (pip install -e '.[train]')")

from emofer import EmotionRecognizer  # noqa: E402
from emofer.config import CONFIG_NAME  # noqa: E402
from tests.conftest import EXAMPLE_PHOTO, repo_model  # noqa: E402
from training import ensemble, evaluate  # noqa: E402


@pytest.fixture()
def faces():
    rec = EmotionRecognizer.from_pretrained(repo_model("wild8"))
    import cv2

    photo = cv2.imread(str(EXAMPLE_PHOTO))
    box = rec.detect(photo)[0].box
    from emofer.preprocess import crop_face

    crop = crop_face(photo, box, rec.config.crop_for("yunet"))
    rng = np.random.default_rng(0)
    return [crop, crop[:, ::-1].copy(), rng.integers(0, 256, (48, 48), dtype=np.uint8)]


def test_the_ensemble_returns_the_weighted_mean_of_its_members(tmp_path, faces, monkeypatch):
    monkeypatch.setattr(evaluate, "evaluate", _no_dataset)
    out = tmp_path / "pair"
    config = ensemble.ensemble([repo_model("wild8"), repo_model("ferplus8-int8")], out, "emofer/test-pair", [3, 1],
                               final=False)
    assert config.temperature == 1.0 and config.trained_on["ensemble_with"] == ["emofer/ferplus8-int8"]
    got = EmotionRecognizer.from_pretrained(out).classify(faces, color="bgr")
    a = EmotionRecognizer.from_pretrained(repo_model("wild8")).classify(faces, color="bgr")
    b = EmotionRecognizer.from_pretrained(repo_model("ferplus8-int8")).classify(faces, color="bgr")
    np.testing.assert_allclose(got, 0.75 * a + 0.25 * b, atol=1e-5)
    saved = json.loads((out / CONFIG_NAME).read_text())
    assert [m["weight"] for m in saved["trained_on"]["onnx_ensemble"]] == [0.75, 0.25]


def test_members_with_other_labels_or_bad_weights_are_refused(tmp_path):
    with pytest.raises(ensemble.EnsembleError, match="other labels"):
        ensemble.ensemble([repo_model("wild8"), repo_model("fer7")], tmp_path / "x", "emofer/x", final=False)
    with pytest.raises(ensemble.EnsembleError, match="one positive --weight per model"):
        ensemble.ensemble([repo_model("wild8"), repo_model("ferplus8")], tmp_path / "y", "emofer/y", [1.0, 0.0], final=False)
    with pytest.raises(ensemble.EnsembleError, match="at least two"):
        ensemble.ensemble([repo_model("wild8")], tmp_path / "z", "emofer/z", final=False)


class _Scores:
    accuracy, n = 0.5, 2


class _Evaluation:
    scores = _Scores()


def _no_dataset(*args, **kwargs):
    """PublicTest needs ../shared; the graph's arithmetic does not."""
    return _Evaluation()
