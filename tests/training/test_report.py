"""Reports as templates: training/report.py's helpers, and each training template rendered from committed JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emofer.config import ModelConfig
from training import card, framing
from training.report import TEMPLATES, bullets, render, row, table

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: Every shipped model's folder: bundled in the wheel, or moved out of it into the repository's models/.
FOLDERS = {p.parent.name: p.parent for root in (ROOT / "src" / "emofer" / "models", ROOT / "models")
           for p in root.glob("*/config.json")}
MODELS = sorted(FOLDERS)


def report_json(short: str) -> dict:
    return json.loads((DOCS / "models" / short / "report.json").read_text(encoding="utf-8"))


def test_table_aligns_columns_and_leaves_none_cells_blank():
    assert table(["a", "b"], [["x", 1], ["", None]], "lr") == "| a | b |\n|---|---:|\n| x | 1 |\n|  | |"
    assert row(["x", None, 0]) == "| x | | 0 |"
    assert bullets(["one", "two"]) == "- one\n- two"
    with pytest.raises(ValueError):
        table(["a", "b"], [], "l")


def test_render_fills_placeholders_and_refuses_missing_ones(tmp_path):
    (tmp_path / "t.md.tmpl").write_text("# ${title}\n\n${body}\n")
    assert render("t.md.tmpl", {"title": "T", "body": 3}, tmp_path) == "# T\n\n3\n"
    with pytest.raises(KeyError):
        render("t.md.tmpl", {"title": "T"}, tmp_path)


def test_every_training_template_is_used():
    assert {p.name for p in TEMPLATES.glob("*.md.tmpl")} == {
        card.TEMPLATE, "evaluation.md.tmpl", framing.TEMPLATE, framing.FINAL_TEMPLATE}


@pytest.mark.parametrize("short", MODELS)
def test_model_card_from_config_and_report_json_is_the_shipped_readme(short):
    folder = FOLDERS[short]
    config = ModelConfig.load(folder / "config.json")
    text = card.model_card(config, report_json(short))
    assert text.startswith("---\nlibrary_name: emofer\n") and f"\n# {config.name}\n" in text
    assert f'EmotionRecognizer.from_pretrained("{config.name}")' in text
    assert f"| PrivateTest | {config.metrics['PrivateTest']['n']} | {config.metrics['PrivateTest']['accuracy']:.4f} |" \
        in text
    assert "${" not in text
    assert text == (folder / "README.md").read_text(encoding="utf-8")
    assert card.docs_copy(text) == (DOCS / "models" / short / "card.md").read_text(encoding="utf-8")


def test_card_write_reads_the_json_and_writes_both_copies(tmp_path):
    model, report = tmp_path / "model", tmp_path / "report"
    model.mkdir(), report.mkdir()
    (model / "config.json").write_text((ROOT / "src/emofer/models/fer5/config.json").read_text())
    (report / "report.json").write_text((DOCS / "models/fer5/report.json").read_text())
    assert card.write(model, report) == model / "README.md"
    assert (model / "README.md").read_text().endswith((report / "card.md").read_text())


def test_framing_report_from_framing_json():
    result = json.loads((DOCS / "framing.json").read_text(encoding="utf-8"))
    text = framing.markdown(result)
    assert text.startswith("# Framing: detector boxes vs FER2013's crops\n")
    assert f"## Final numbers on {result['final']['split']}" in text
    assert f"    {result['command']}\n" in text
    assert text == (DOCS / "framing.md").read_text(encoding="utf-8")
    result.pop("final")
    assert "## Final numbers" not in framing.markdown(result)
