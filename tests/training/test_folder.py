"""training.folder: the one writer of a model folder, and the folders it makes again as committed."""

from __future__ import annotations

import json

import pytest

from emofer.config import CONFIG_NAME, MODEL_NAME, ModelConfig
from emofer.hub import bundled_models
from tests.conftest import FER_ZIP, need, repo_model, write_model_folder
from tests.training.conftest import zip_folder
from training import folder

LABELS = ("angry", "happy", "sad")


@pytest.fixture
def source(tmp_path):
    return write_model_folder(tmp_path / "source", LABELS, name="emofer/tiny3", trained_on={"dataset": "FER2013"})


@pytest.fixture
def archive(fer_folder, tmp_path, isolated_cache):
    return zip_folder(fer_folder, tmp_path / "fer2013-images.zip")


def derived(source, out):
    base = ModelConfig.load(source / CONFIG_NAME)
    return folder.derive(out, base, folder.copy_graph(source), name="emofer/tiny3-copy",
                         trained_on={**base.trained_on, "copied_from": base.name})


def test_derive_writes_the_graph_and_no_config(source, tmp_path):
    draft = derived(source, tmp_path / "out")
    assert (tmp_path / "out" / MODEL_NAME).read_bytes() == (source / MODEL_NAME).read_bytes()
    assert not (tmp_path / "out" / CONFIG_NAME).exists()  # config.json is written once, by finish
    assert draft.config.name == "emofer/tiny3-copy" and draft.config.metrics == {}
    assert draft.config.trained_on["copied_from"] == "emofer/tiny3"


def test_a_candidate_gets_publictest_only(source, tmp_path, archive):
    draft = derived(source, tmp_path / "cand").with_updates(temperature=2.0)
    public = folder.evaluate(draft, "PublicTest", archive)
    assert public.config.temperature == 2.0  # scored with the draft's config, not a config.json
    config = folder.finish(draft, public, {"source_PublicTest": 0.5}, final=False, final_extra={"never": 1},
                           data_root=archive)
    assert list(config.metrics) == ["PublicTest", "source_PublicTest"]
    assert ModelConfig.load(tmp_path / "cand" / CONFIG_NAME) == config
    assert sorted(p.name for p in (tmp_path / "cand").iterdir()) == [CONFIG_NAME, MODEL_NAME]


def test_a_final_model_gets_its_report_and_card(source, tmp_path, archive):
    pytest.importorskip("matplotlib", reason='training extras not installed: pip install -e ".[train]"')
    draft = derived(source, tmp_path / "final")
    report = tmp_path / "report"
    config = folder.finish(draft, folder.evaluate(draft, "PublicTest", archive), {"source_PublicTest": 0.5},
                           final_extra={"source_PrivateTest": 0.4}, data_root=archive,
                           report=folder.Report(report, "python -m training.something"))
    assert list(config.metrics) == ["PrivateTest", "PublicTest", "source_PublicTest", "source_PrivateTest"]
    assert config.metrics["PrivateTest"]["n"] == 4 and config.metrics["PublicTest"]["n"] == 2
    assert sorted(p.name for p in (tmp_path / "final").iterdir()) == sorted(folder.FILES)
    written = json.loads((report / "report.json").read_text())
    assert written["command"] == "python -m training.something" and written["model"] == "emofer/tiny3-copy"
    assert "examples.png" not in written["figures"]
    assert (report / "card.md").is_file()


def test_the_model_folders_of_the_checkout():
    found = folder.model_folders()
    assert found[:len(bundled_models())] == list(bundled_models().values())
    assert len(set(found)) == len(found)


def test_a_model_folder_regenerates_as_committed():
    """config.json, README.md, the report and its card copy made again through the writer, byte for byte
    (``python -m training.folder --check`` does it for every model folder)."""
    pytest.importorskip("matplotlib", reason='training extras not installed: pip install -e ".[train]"')
    need(FER_ZIP, "FER2013 (fer2013-images.zip)")
    found = folder.differences(repo_model("fer5-int8"))
    assert {name: how for name, how in found.items() if how != "figure differs"} == {}  # PNGs: matplotlib's own
