"""End to end on real FER2013 faces: smoke training -> ONNX export -> emofer -> report -> publish.

The train/serve-skew test lives here: emofer's ``classify`` on raw uint8 faces must give what
Keras gives on the tensors training feeds it, to 1e-4.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.data]

keras = pytest.importorskip("keras", reason="training extras not installed (pip install -r training/requirements.txt)")
pytest.importorskip("tf2onnx", reason="keras ONNX export needs tf2onnx")
pytest.importorskip("matplotlib", reason="the report needs matplotlib")

from emofer import EmotionRecognizer  # noqa: E402
from emofer.config import ModelConfig  # noqa: E402
from emofer.model import sha256_of  # noqa: E402
from emofer.preprocess import model_input  # noqa: E402
from training import data, export, framing, metrics, publish  # noqa: E402
from training.runs import Run  # noqa: E402
from training.train import load_recipe, train  # noqa: E402

NAME = "emofer/smoke5"


@pytest.fixture(scope="module")
def run_dir(shared_data, tmp_path_factory) -> Path:
    """A finished smoke training run (a few hundred faces, one epoch)."""
    run = tmp_path_factory.mktemp("run")
    recipe = {**load_recipe("smoke"), "name": "smoke"}
    train(recipe, run)
    return run


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory) -> tuple[Path, Path, ModelConfig]:
    """(model folder, report folder, config) of the calibrated export of the smoke run."""
    root = tmp_path_factory.mktemp("export")
    config = export.export(run_dir, NAME, root / "smoke5", calibrate=True, report=root / "report")
    return root / "smoke5", root / "report", config


@pytest.fixture(scope="module")
def checkpoint(run_dir):
    return export.load_checkpoint(run_dir / "best.keras")


def _strided(faces: data.FaceSet, n: int) -> data.FaceSet:
    return faces.take(np.linspace(0, len(faces) - 1, n).astype(int))  # every class of the sorted split


def test_crop_by_detector_comes_from_framing_json(exported):
    """export copies docs/framing.json's crop_by_detector (training/framing.py) into config.json."""
    folder, _, config = exported
    expected = framing.load_policies(framing.DEFAULT_POLICIES) if framing.DEFAULT_POLICIES.is_file() else {}
    assert config.crop_by_detector == expected
    assert ModelConfig.load(folder / "config.json").crop_by_detector == expected


def test_model_folder(run_dir, exported):
    folder, _, config = exported
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.onnx"]
    saved = ModelConfig.load(folder / "config.json")
    assert saved == config
    draft = Run(run_dir).config  # the run's config.json from epoch one, which export completed
    assert (saved.labels, saved.input, saved.normalize, saved.crop) == (draft.labels, draft.input, draft.normalize,
                                                                        draft.crop)
    assert saved.labels == data.SUBSETS["fer5"] and saved.input.size == (48, 48) and saved.normalize.scale == 1 / 255
    assert saved.model_sha256 == sha256_of(folder / "model.onnx")
    assert saved.trained_on["recipe"] == "smoke" and saved.trained_on["selected_on"] == "PublicTest"
    assert saved.trained_on["tta_flip"] is False and saved.trained_on["command"].startswith("python -m training.train")
    private = saved.metrics["PrivateTest"]
    assert private["n"] == 2435 and 0.0 <= private["accuracy"] <= 1.0
    assert set(private) == {"accuracy", "macro_f1", "weighted_f1", "n", "ece"}
    assert 0.5 <= saved.temperature <= 5.0
    assert (folder / "model.onnx").stat().st_size < 4 * 2**20


def test_onnx_graph_names_and_dynamic_batch(exported):
    import onnx

    graph = onnx.load(str(exported[0] / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["probabilities"]
    for value in (graph.input[0], graph.output[0]):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"


def test_emofer_classify_matches_keras_on_real_faces(run_dir, exported, checkpoint):
    """The train/serve-skew test: same faces, emofer's pipeline vs the training pipeline."""
    folder, _, config = exported
    faces = _strided(data.load("fer2013", "PrivateTest", config.labels), 256)
    served = EmotionRecognizer.from_pretrained(folder, detector="none").classify(faces.pixels)
    trained = checkpoint.predict(model_input(faces.pixels, Run(run_dir).config), verbose=0)  # as train.py feeds it
    expected = metrics.apply_temperature(trained, config.temperature, probabilities=True)
    assert np.abs(served - expected).max() <= 1e-4
    np.testing.assert_array_equal(served.argmax(1), trained.argmax(1))


def test_report_written(exported):
    folder, report, config = exported
    names = {p.name for p in report.iterdir()}
    assert names == {"report.json", "report.md", "confusion_matrix.png", "per_class.png", "reliability.png",
                     "examples.png", "curves.png", "distributions.png", "card.md"}
    assert all((report / n).stat().st_size < 200_000 for n in names)
    saved = json.loads((report / "report.json").read_text())
    assert saved["split"] == "PrivateTest" and saved["n"] == 2435
    assert round(saved["accuracy"], 4) == config.metrics["PrivateTest"]["accuracy"]
    assert saved["model_sha256"] == config.model_sha256
    assert saved["command"].startswith("python -m training.export")


def test_model_card(exported):
    text = (exported[0] / "README.md").read_text()
    docs_copy = (exported[1] / "card.md").read_text()
    assert text.endswith(docs_copy) and not docs_copy.startswith("---")
    assert text.startswith("---\nlibrary_name: emofer\nlicense: mit\n")
    for section in ("## How to use", "## Metrics", "## Intended use", "## Out-of-scope uses", "## Limitations",
                    "## Training data and licences", "## Training"):
        assert section in text
    assert f'EmotionRecognizer.from_pretrained("{NAME}")' in text
    assert f"{exported[2].metrics['PrivateTest']['accuracy']:.4f}" in text


def test_publish_dry_run(exported, tmp_path):
    assert publish.main([str(exported[0]), "--repo", NAME, "--revision", "v1", "--dry-run",
                         "--stage", str(tmp_path / "stage")]) == 0
    assert sorted(p.name for p in (tmp_path / "stage").iterdir()) == ["README.md", "config.json", "model.onnx"]


def test_flip_tta_export_averages_the_mirror_image(run_dir, checkpoint, tmp_path, capsys):
    out = tmp_path / "tta"
    assert export.main([str(run_dir), "--name", NAME, "--out", str(out), "--tta-flip",
                        "--report", str(tmp_path / "report")]) == 0
    assert re.search(r"PrivateTest accuracy \d\.\d{4} on 2435 faces", capsys.readouterr().out)
    config = ModelConfig.load(out / "config.json")
    assert config.trained_on["tta_flip"] is True and config.temperature == 1.0
    faces = _strided(data.load("fer2013", "PublicTest", config.labels), 64)
    x = model_input(faces.pixels, Run(run_dir).config)
    expected = (checkpoint.predict(x, verbose=0) + checkpoint.predict(x[:, :, ::-1], verbose=0)) / 2
    served = EmotionRecognizer.from_pretrained(out, detector="none").classify(faces.pixels)
    assert np.abs(served - expected).max() <= 1e-4


def test_ensemble_export_averages_the_member_runs(run_dir, checkpoint, tmp_path):
    """--ensemble RUN averages that run's best checkpoint in the graph; the card and config name it."""
    member = tmp_path / "member"
    member.mkdir()
    Run(member).write_recipe({**Run(run_dir).recipe, "name": "smoke-member"})
    other = export.load_checkpoint(run_dir / "best.keras")
    weights = other.get_weights()
    weights[-2] = -weights[-2]  # the head's kernel negated: a member that disagrees with the main run
    other.set_weights(weights)
    other.save(member / "best.keras")
    out = tmp_path / "pair"
    assert export.main([str(run_dir), "--name", NAME, "--out", str(out), "--ensemble", str(member),
                        "--report", str(tmp_path / "report"), "--no-examples"]) == 0
    config = ModelConfig.load(out / "config.json")
    assert config.trained_on["ensemble_with"] == ["smoke-member"]
    faces = _strided(data.load("fer2013", "PublicTest", config.labels), 64)
    x = model_input(faces.pixels, Run(run_dir).config)
    alone = checkpoint.predict(x, verbose=0)
    expected = (alone + other.predict(x, verbose=0)) / 2
    served = EmotionRecognizer.from_pretrained(out, detector="none").classify(faces.pixels)
    assert np.abs(served - expected).max() <= 1e-4 and np.abs(served - alone).max() > 1e-2
    card = (out / "README.md").read_text()
    assert "2 small convolutional networks averaged in one graph" in card and "`smoke-member`" in card
    assert "--ensemble runs/smoke-member" in card


def test_parity_check_fails_loudly():
    p = np.array([[0.6, 0.4], [0.3, 0.7]], np.float32)
    assert export.check_parity(p, p + 5e-5).ok
    with pytest.raises(export.ExportError, match="max \\|difference\\| 1.00e-03"):
        export.check_parity(p, p + np.float32(1e-3))
    with pytest.raises(export.ExportError, match="argmax agrees on 1/2"):
        export.check_parity(p, np.array([[0.6, 0.4], [0.7, 0.3]], np.float32))


# -- int8 quantisation (training/quantize.py) of the exported smoke model ---------------------------------


@pytest.fixture(scope="module")
def quantized(exported, tmp_path_factory) -> tuple[Path, ModelConfig]:
    from training import quantize

    folder, _, _ = exported
    root = tmp_path_factory.mktemp("int8")
    config = quantize.quantize(folder, root / "smoke5-int8", faces=70, max_drop=1.0, report=root / "report")
    return root / "smoke5-int8", config


def test_quantized_folder_loads_and_records_what_it_came_from(exported, quantized):
    folder, _, float_config = exported
    q_folder, config = quantized
    assert sorted(p.name for p in q_folder.iterdir()) == ["README.md", "config.json", "model.onnx"]
    saved = ModelConfig.load(q_folder / "config.json")
    assert saved == config and saved.name == NAME + "-int8"
    assert saved.labels == float_config.labels and saved.temperature == float_config.temperature
    assert saved.crop_by_detector == float_config.crop_by_detector
    q = saved.trained_on["quantization"]
    assert q["from"] == NAME and q["from_sha256"] == float_config.model_sha256
    assert q["calibration"].startswith("70 fer2013 Training faces")
    assert saved.model_sha256 == sha256_of(q_folder / "model.onnx")
    assert saved.metrics["PrivateTest"]["n"] == 2435
    assert saved.metrics["float_PublicTest"] == float_config.metrics["PublicTest"]["accuracy"]
    # int8 weights (the bundled models shrink to about 27%; this tiny smoke network less so)
    assert (q_folder / "model.onnx").stat().st_size < (folder / "model.onnx").stat().st_size
    assert "Quantised to int8" in (q_folder / "README.md").read_text()


def test_quantized_model_agrees_with_the_float_model(exported, quantized):
    folder, _, _ = exported
    q_folder, _ = quantized
    faces = _strided(data.load("fer2013", "PublicTest", data.SUBSETS["fer5"]), 300)
    full = EmotionRecognizer.from_pretrained(folder, detector="none").classify(faces.pixels)
    small = EmotionRecognizer.from_pretrained(q_folder, detector="none").classify(faces.pixels)
    assert np.allclose(small.sum(1), 1.0, atol=1e-4)
    assert np.abs(full - small).max() < 0.15
    assert (full.argmax(1) == small.argmax(1)).mean() >= 0.9


def test_float_stem_leaves_the_one_channel_convolution_in_float_and_says_so(exported, tmp_path):
    import onnx

    from training import card, quantize

    folder, _, _ = exported
    config = quantize.quantize(folder, tmp_path / "stem", faces=35, max_drop=1.0, final=False, float_stem=True)
    graph = onnx.load(str(tmp_path / "stem" / "model.onnx")).graph
    weights = {init.name: init for init in graph.initializer}
    float_convs = [n.name for n in graph.node if n.op_type == "Conv" and weights.get(n.input[1]) is not None
                   and weights[n.input[1]].data_type == onnx.TensorProto.FLOAT]
    quantization = config.trained_on["quantization"]
    assert float_convs == quantization["float_nodes"] and len(float_convs) == 1  # the first convolution only
    assert weights[next(n for n in graph.node if n.name == float_convs[0]).input[1]].dims[1] == 1
    assert "left in float" in quantization["method"]
    assert "--float-stem" in card._export_line(config)
    # the same model, within int8's usual distance of the float one
    faces = _strided(data.load("fer2013", "PublicTest", data.SUBSETS["fer5"]), 200)
    full = EmotionRecognizer.from_pretrained(folder, detector="none").classify(faces.pixels)
    small = EmotionRecognizer.from_pretrained(tmp_path / "stem", detector="none").classify(faces.pixels)
    assert (full.argmax(1) == small.argmax(1)).mean() >= 0.9
    with pytest.raises(quantize.QuantizeError, match="already quantised"):
        quantize.quantize(tmp_path / "stem", tmp_path / "again", float_stem=True)


def test_quantize_refuses_a_quantized_source_and_too_large_a_drop(exported, quantized, tmp_path):
    from training import quantize

    with pytest.raises(quantize.QuantizeError, match="already quantised"):
        quantize.quantize(quantized[0], tmp_path / "again")
    folder, _, _ = exported
    with pytest.raises(quantize.QuantizeError, match="accuracy points on PublicTest"):
        quantize.quantize(folder, tmp_path / "strict", faces=35, max_drop=-1.0, report=tmp_path / "report")
    assert not (tmp_path / "strict").exists()


def test_flip_tta_runs_the_network_once_on_the_faces_and_their_mirrors(run_dir, tmp_path):
    """The mirror goes through the network in the same batch as the face (one pass, not two
    branches): one Softmax in the graph, and a refit's feature tap still reads the faces' own rows."""
    import onnx

    from training import refit

    out = tmp_path / "tta1"
    assert export.main([str(run_dir), "--name", NAME, "--out", str(out), "--tta-flip", "--candidate"]) == 0
    graph = onnx.load(str(out / "model.onnx")).graph
    assert sum(node.op_type == "Softmax" for node in graph.node) == 1
    config = ModelConfig.load(out / "config.json")
    faces = _strided(data.load("fer2013", "PublicTest", config.labels), 64).pixels[:5]
    features = refit.Features(out, config)
    weight, bias = features.weights[features.head.weight], features.weights[features.head.bias]
    assert features(faces).shape == (5, weight.shape[0])

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    mine = (softmax(features(faces) @ weight + bias) + softmax(features(faces[:, :, ::-1].copy()) @ weight + bias)) / 2
    served = EmotionRecognizer.from_pretrained(out, detector="none").classify(faces)
    np.testing.assert_allclose(mine, served, atol=1e-5)
