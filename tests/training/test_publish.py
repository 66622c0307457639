"""training.publish: validation and the dry run (the upload itself needs the network)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_model_folder
from training import publish

CARD = """---
library_name: emofer
license: mit
tags:
  - emotion-recognition
---

# test/tiny
"""


@pytest.fixture
def model_dir(tmp_path):
    folder = write_model_folder(tmp_path / "tiny")
    (folder / "README.md").write_text(CARD)
    return folder


def test_dry_run_stages_exactly_the_upload_files(model_dir, tmp_path, capsys):
    stage = tmp_path / "stage"
    assert publish.main([str(model_dir), "--repo", "test/tiny", "--revision", "v1", "--dry-run",
                         "--stage", str(stage)]) == 0
    assert sorted(p.name for p in stage.iterdir()) == ["README.md", "config.json", "model.onnx"]
    printed = capsys.readouterr().out
    assert "would upload test/tiny to test/tiny (tag v1)" in printed and "model.onnx" in printed


def test_dry_run_in_a_temporary_folder(model_dir):
    staged = publish.publish(model_dir, "test/tiny", dry_run=True)
    assert [name for name, _ in staged.files] == ["README.md", "config.json", "model.onnx"]
    assert not staged.folder.exists()  # the temporary staging folder is gone


def test_staging_folder_must_be_empty(model_dir, tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    (stage / "secrets.txt").write_text("x")
    with pytest.raises(publish.PublishError, match="not empty"):
        publish.stage(model_dir, stage)


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "README.md").unlink(), r"lacks \['README.md'\]"),
        (lambda f: (f / "README.md").write_text("# no front matter\n"), "front matter"),
        (lambda f: (f / "README.md").write_text("---\nlicense: mit\n---\n"), r"lacks \['library_name', 'tags'\]"),
        (lambda f: (f / "README.md").write_text(CARD.replace("emofer", "timm")), "library_name is 'timm'"),
        (lambda f: _edit_config(f, model_sha256="0" * 64), "does not match model.onnx"),
        (lambda f: _edit_config(f, labels=["a", "b"]), "lists 2 labels"),
        (lambda f: _edit_config(f, input={"height": 64, "width": 64, "channels": 1}), "input of shape"),
        (lambda f: (f / "config.json").write_text("{"), "could not be read as JSON"),
    ],
)
def test_validation_failures_name_the_problem(model_dir, damage, message, capsys):
    damage(model_dir)
    with pytest.raises(publish.PublishError, match=message):
        publish.validate(model_dir)
    assert publish.main([str(model_dir), "--repo", "test/tiny", "--dry-run"]) == 1
    assert "error:" in capsys.readouterr().err
