"""training.evaluate's report.md rendered from the committed report.json files (byte for byte)."""

from __future__ import annotations

import pytest

from training import evaluate

from .test_report import DOCS, MODELS, report_json


@pytest.mark.parametrize("short", MODELS)
def test_evaluation_report_from_report_json(short):
    report = report_json(short)
    text = evaluate.markdown(report)
    assert text.startswith(f"# {report['model']} on {report['dataset']} {report['split']}\n")
    assert f"| accuracy | | | {report['accuracy']:.4f} |" in text
    assert "| true \\ predicted | " + " | ".join(report["labels"]) + " |" in text
    assert text == (DOCS / "models" / short / "report.md").read_text(encoding="utf-8")
