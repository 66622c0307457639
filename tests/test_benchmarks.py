"""The speed benchmark (benchmarks/run.py) in quick mode, so it keeps working."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import FACES_BOXES, FER_ZIP, HAAR, YUNET, need


@pytest.mark.data
def test_quick_benchmark_writes_the_expected_report(tmp_path, capsys):
    """On OpenCV 4 it measures emofer's Haar detector too (fer's own); on OpenCV 5, which has none,
    it measures YuNet alone and says so in the notes."""
    need(FER_ZIP, "FER2013 image archive")
    need(FACES_BOXES / "boxes.csv", "faces-boxes photos")
    pytest.importorskip("onnx")
    from benchmarks import run

    out = tmp_path / "bench" / "benchmarks"
    assert run.main(["--quick", "--emofer-only", "--out", str(out), "--model", "emofer/fer5"]) == 0

    result = json.loads(out.with_suffix(".json").read_text())
    assert {"schema", "command", "mode", "machine", "versions", "settings", "inputs", "emofer", "fer", "floor",
            "notes", "duration_s"} <= set(result)
    assert result["command"].startswith("python -m benchmarks.run --quick --emofer-only")
    assert result["mode"] == "quick"
    assert result["fer"] == {"skipped": "--emofer-only"}
    assert {"cpu_model", "logical_cpus", "ram_gib", "python"} <= set(result["machine"])

    emofer = result["emofer"]
    assert {"cold", "classify", "e2e", "video", "size"} <= set(emofer)
    for stat in ("import_load_s", "first_predict_s", "peak_rss_mib"):
        assert emofer["cold"][stat]["median"] > 0
    for key in ("threads_1", "threads_default"):
        classify = emofer["classify"][key]
        assert {"median", "q25", "q75", "p10", "p90", "n"} <= set(classify["latency_ms"])
        assert set(classify["throughput"]) == {"32", "256"}
        assert classify["throughput"]["256"]["faces_per_s"]["median"] > 0
        assert classify["peak_rss_mib"] > 0
    detectors = ({"haar"} if HAAR else set()) | ({"yunet"} if YUNET.is_file() else set())
    assert set(emofer["e2e"]) == detectors
    assert HAAR or any("no Haar cascades" in note for note in result["notes"])
    frames = emofer["e2e"][sorted(detectors)[0]]["frames"]
    assert set(frames) == {"frame_640x480_1", "frame_640x480_5", "frame_1280x720_1", "frame_1280x720_5", "photos"}
    assert frames["frame_640x480_1"]["ms"]["median"] > 0
    if YUNET.is_file():  # the scenes hold faces that YuNet finds
        assert emofer["e2e"]["yunet"]["frames"]["frame_640x480_1"]["faces_found_per_frame"] == 1
    video = next(iter(emofer["video"].values()))
    assert video["frames"] == result["inputs"]["video_frames"] > 0 and video["fps"] > 0
    assert emofer["size"]["dependencies"]["total_mib"] > 0

    floor = result["floor"]
    assert floor["model_macs"]["macs"] > 1_000_000 and not floor["model_macs"]["nodes_not_counted"]
    assert floor["peak"]["gflops_best"] > 0 and floor["floor_ms_per_face"] > 0

    markdown = out.with_suffix(".md").read_text()
    assert "## Physical floor" in markdown and result["command"] in markdown
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert out.with_suffix(".png").stat().st_size > 1000


def test_count_macs_of_a_tiny_graph(tmp_path):
    """Conv and Gemm MACs from shapes: Conv 4x1x3x3 on 48x48 (same padding) + Gemm 4x3."""
    pytest.importorskip("onnx")
    from benchmarks.floor import count_macs

    from .conftest import build_tiny_onnx

    build_tiny_onnx(tmp_path / "tiny.onnx")
    macs = count_macs(tmp_path / "tiny.onnx")
    assert macs["macs_by_op"] == {"Conv": 48 * 48 * 4 * 9, "Gemm": 4 * 3}
    assert macs["macs"] == 48 * 48 * 4 * 9 + 12


def test_summaries_and_closure_size():
    from benchmarks import _timing

    stats = _timing.summarize([1, 2, 3, 4, 100])
    assert stats["median"] == 3 and stats["n"] == 5 and stats["min"] == 1 and stats["max"] == 100
    size = _timing.closure_size(["emofer"], skip=["emofer"])
    names = {name.split("==")[0].lower().replace("_", "-") for name in size["mib_by_distribution"]}
    assert {"numpy", "onnxruntime", "huggingface-hub"} <= names
    assert size["total_mib"] > 10


DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_benchmark_template_renders_its_committed_json():
    """docs/*.md as the benchmarks write them, from the committed JSON (comparison.md adds a hand-written part)."""
    from benchmarks import accuracy, run, scale, wild
    from benchmarks.run import TEMPLATES

    def load(name: str) -> dict:
        return json.loads((DOCS / name).read_text(encoding="utf-8"))

    assert {p.name for p in TEMPLATES.glob("*.md.tmpl")} == {
        "benchmarks.md.tmpl", "benchmarks_fer_model.md.tmpl", "scaling.md.tmpl", "wild.md.tmpl", "comparison.md.tmpl"}
    speed = run.markdown(load("benchmarks.json"))
    assert speed.startswith("# Speed: emofer and fer\n") and "| figure | emofer | fer |\n|---|---|---|\n" in speed
    assert speed == (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    scaling = scale.markdown(load("scaling.json"))
    assert "| nodes | actors | images/s | input MiB/s | 1 M images |" in scaling
    assert scaling == (DOCS / "scaling.md").read_text(encoding="utf-8")
    photos = load("wild.json")
    text = wild.markdown(photos["results"], photos["command"])
    assert f"Command: `{photos['command']}`" in text and text.endswith(" |\n")
    assert text == (DOCS / "wild.md").read_text(encoding="utf-8")
    comparison = accuracy.markdown(load("comparison.json"))
    assert comparison.startswith("# Accuracy: emofer and fer on the same crops\n")
    assert (DOCS / "comparison.md").read_text(encoding="utf-8").startswith(comparison.rstrip("\n"))
