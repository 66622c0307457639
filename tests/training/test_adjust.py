"""training.adjust: the logit-adjusted graph returns the source's probabilities times prior ** -tau."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from emofer import EmotionRecognizer
from emofer.config import CONFIG_NAME, MODEL_NAME, ModelConfig
from emofer.model import sha256_of
from tests.conftest import DATA, need, repo_model
from training import adjust


@pytest.fixture()
def wild8_int8() -> Path:
    """A real int8 graph, kept in the repository (models/wild8-int8), not in the wheel."""
    return repo_model("wild8-int8")


def crops(n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def adjusted_copy(tmp_path, source: Path, multiplier: np.ndarray):
    """A model folder whose graph is wild8-int8's (models/) with ``multiplier`` appended."""
    out = tmp_path / "adjusted"
    out.mkdir()
    adjust.adjust_graph(source / MODEL_NAME, out / MODEL_NAME, multiplier)
    config = ModelConfig.load(source / CONFIG_NAME)
    config.with_updates(name="test/adjusted", model_sha256=sha256_of(out / MODEL_NAME)).save(out / CONFIG_NAME)
    return out


def test_ones_leave_the_model_unchanged(tmp_path, wild8_int8):
    before = EmotionRecognizer.from_pretrained(wild8_int8, detector="none").classify(crops())
    after = EmotionRecognizer.from_pretrained(adjusted_copy(tmp_path, wild8_int8, np.ones(8)), detector="none").classify(crops())
    np.testing.assert_allclose(after, before, atol=1e-6)


def test_the_returned_probabilities_are_the_sources_times_prior_to_minus_tau(tmp_path, wild8_int8):
    source = EmotionRecognizer.from_pretrained(wild8_int8, detector="none")
    shares = np.array([0.32, 0.27, 0.12, 0.14, 0.08, 0.015, 0.034, 0.017])
    tau = 1.0
    folder = adjusted_copy(tmp_path, wild8_int8, shares ** (-tau * source.config.temperature))
    before = source.classify(crops())
    after = EmotionRecognizer.from_pretrained(folder, detector="none").classify(crops())
    expected = before * shares ** -tau
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(after, expected, rtol=1e-4, atol=1e-6)
    disgust = source.config.labels.index("disgust")
    assert after[:, disgust].mean() > 2 * before[:, disgust].mean()  # the rarest emotions gain most


def test_an_adjusted_folder_cannot_be_adjusted_again(tmp_path, wild8_int8):
    folder = tmp_path / "twice"
    shutil.copytree(wild8_int8, folder)
    config = ModelConfig.load(folder / CONFIG_NAME)
    config.with_updates(trained_on={**config.trained_on, "logit_adjustment": {"tau": 1.0}}).save(folder / CONFIG_NAME)
    with pytest.raises(ValueError, match="already adjusted"):
        adjust.adjust(folder, tmp_path / "out", 1.0)


def test_candidate_writes_a_loadable_folder_and_scores_publictest(tmp_path, wild8_int8):
    need(DATA / "ferplus.zip", "FER+ (ferplus.zip)")
    config = adjust.adjust(wild8_int8, tmp_path / "cand", 0.5, name="test/cand", final=False, exclude=["contempt"])
    assert set(config.metrics) == {"PublicTest", "unadjusted_PublicTest"}
    assert config.trained_on["logit_adjustment"]["excluded"] == ["contempt"]
    shares = config.trained_on["logit_adjustment"]["shares"]
    assert abs(sum(shares.values()) - 1) < 1e-3 and shares["disgust"] < shares["happy"]
    rec = EmotionRecognizer.from_pretrained(tmp_path / "cand", detector="none")
    assert rec.config.name == "test/cand" and rec.classify(crops(2)).shape == (2, 8)


def test_the_web_prior_is_the_models_mean_answer_on_expw_trains_validation_faces(tmp_path, wild8_int8):
    """``--prior web``: the shares are what the model says, on average, over expw-train's carved
    validation part framed by YuNet, so the emotion it over-answers there is the one turned down."""
    need(DATA / "expw-train.zip", "expw-train (expw-train.zip)")
    need(DATA / "ferplus.zip", "FER+ (ferplus.zip)")
    from training import expw

    config = ModelConfig.load(wild8_int8 / CONFIG_NAME)
    shares = adjust.training_prior(config, "web", model_dir=wild8_int8)
    faces, _ = expw.load("PublicTest", config.labels, config.crop_for("yunet"), config.input.size)
    answers = EmotionRecognizer.from_pretrained(wild8_int8, detector="none").classify(faces.pixels)
    np.testing.assert_allclose(shares, answers.mean(axis=0), atol=1e-6)
    assert abs(shares.sum() - 1) < 1e-5
    with pytest.raises(ValueError, match="give model_dir"):
        adjust.training_prior(config, "web")
    out = adjust.adjust(wild8_int8, tmp_path / "web", 1.0, prior="web", name="test/web", final=False)
    rec = EmotionRecognizer.from_pretrained(tmp_path / "web", detector="none")
    adjusted = rec.classify(faces.pixels)
    top = int(np.argmax(shares))
    assert adjusted[:, top].mean() < answers[:, top].mean()
    assert out.trained_on["logit_adjustment"]["prior"] == "web"


def test_an_excluded_label_keeps_its_odds_against_the_most_common_one():
    labels = ("neutral", "happy", "disgust", "contempt")
    shares = np.array([0.5, 0.3, 0.1, 0.1])
    weights = adjust.multiplier(shares, labels, tau=1.0, exclude=("contempt",))
    np.testing.assert_allclose(weights, [2.0, 1 / 0.3, 10.0, 2.0])
    np.testing.assert_allclose(adjust.multiplier(shares, labels, tau=0.5, temperature=2.0), shares ** -1.0)
    with pytest.raises(ValueError, match="cannot exclude"):
        adjust.multiplier(shares, labels, tau=1.0, exclude=("contempts",))


def test_the_card_of_an_adjusted_model_made_from_candidates_gives_the_whole_chain():
    """The default's parents were candidates (not bundled, test split unread): its card says how it was made."""
    from emofer.config import ModelConfig
    from emofer.hub import BUNDLED_ROOT
    from training import card

    shipped = ModelConfig.load(repo_model("wild8-balanced-int8") / "config.json")  # made when wild8-int8 was bundled
    assert card._export_line(shipped).startswith("python -m training.adjust src/emofer/models/wild8-int8 ")
    assert "0.8139 on PrivateTest" in card._about_graph(shipped)

    default = ModelConfig.load(BUNDLED_ROOT / "wild8v2-balanced-int8" / "config.json")
    assert not (BUNDLED_ROOT / "wild8v2-int8").exists()
    line = card._export_line(default)
    assert line.startswith("python -m training.export RUN_DIR --name emofer/wild8v2 --out CAND/wild8v2 --candidate")
    assert "training.quantize CAND/wild8v2 --out CAND/wild8v2-int8 --candidate" in line
    assert line.endswith("--tau 0.5 --prior majority --exclude contempt --name emofer/wild8v2-balanced-int8 "
                         "--out src/emofer/models/wild8v2-balanced-int8")
    about = card._about_graph(default)
    assert "None" not in about and "its test split was not read" in about


def test_the_card_of_a_refitted_default_starts_its_chain_at_the_export_and_says_its_epoch():
    """The 52x52 default was refitted from a candidate export: the card's chain starts with that
    export (reproducible from the run), and names the epoch; a run exported from last.keras says so."""
    from emofer.config import ModelConfig
    from emofer.hub import BUNDLED_ROOT, DEFAULT_MODEL
    from training import card

    default = ModelConfig.load(BUNDLED_ROOT / DEFAULT_MODEL.split("/")[1] / "config.json")
    line = card._export_line(default)
    refit = default.trained_on["head_refit"]
    source = refit["from"].split("/")[1]
    assert line.startswith(f"python -m training.export RUN_DIR --name {refit['from']} --out CAND/{source} --candidate "
                           "--tta-flip`, then `python -m training.refit CAND/")
    assert card._epochs_line(default.trained_on) == (f"{default.trained_on['epochs']} epochs, best epoch "
                                                     f"{default.trained_on['best_epoch']} on PublicTest")
    last = default.with_updates(trained_on={**default.trained_on, "checkpoint": "last.keras"})
    assert card._export_line(last).startswith("python -m training.export RUN_DIR --checkpoint last.keras --name ")
    epochs = default.trained_on["epochs"]
    assert card._epochs_line(last.trained_on).startswith(
        f"{epochs} epochs; the weights are the last epoch's (`last.keras`, epoch {epochs}")
