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


def test_area_matrix_is_cv2_inter_area():
    """The in-graph shrink is emofer's shrinking interpolation (cv2.INTER_AREA) on float pixels, to rounding."""
    import cv2

    rng = np.random.default_rng(1)
    for out_hw, in_hw in [((48, 48), (64, 64)), ((48, 40), (96, 64)), ((48, 48), (48, 48))]:
        x = rng.uniform(0, 255, in_hw).astype(np.float32)
        want = cv2.resize(x, out_hw[::-1], interpolation=cv2.INTER_AREA)
        got = ensemble.area_matrix(out_hw[0], in_hw[0]) @ x @ ensemble.area_matrix(out_hw[1], in_hw[1]).T
        np.testing.assert_allclose(got, want, atol=1e-3)
    with pytest.raises(ensemble.EnsembleError, match="shrinks"):
        ensemble.area_matrix(64, 48)


def test_members_smaller_than_the_input_get_their_faces_shrunk_in_the_graph(tmp_path, faces, monkeypatch):
    """A 64x56 ensemble of 48x48 networks gives what each member gives on the faces emofer shrinks to 48x48
    (not square, so rows and columns cannot be mixed up unnoticed)."""
    monkeypatch.setattr(evaluate, "evaluate", _no_dataset)
    out = tmp_path / "big"
    config = ensemble.ensemble([repo_model("ferplus8-int8"), repo_model("wild8")], out, "emofer/test-big",
                               final=False, input_size=(64, 56))
    assert config.input.size == (64, 56)
    assert "quantization" not in config.trained_on  # the first member's int8 step is its own, not the ensemble's
    from training import card

    assert card._export_line(config) == ("python -m training.ensemble emofer/ferplus8-int8 emofer/wild8 --weight 0.5 "
                                         "--weight 0.5 --name emofer/test-big --out src/emofer/models/test-big")
    import cv2

    faces64 = [cv2.resize(face, (56, 64), interpolation=cv2.INTER_AREA) for face in faces[:2]]
    faces64.append(np.random.default_rng(2).integers(0, 256, (64, 56, 3), dtype=np.uint8))
    got = EmotionRecognizer.from_pretrained(out).classify(faces64, color="bgr")
    a = EmotionRecognizer.from_pretrained(repo_model("wild8")).classify(faces64, color="bgr")
    b = EmotionRecognizer.from_pretrained(repo_model("ferplus8-int8")).classify(faces64, color="bgr")
    # the members' path rounds the shrunk face to 8 bits; the graph keeps it in float
    np.testing.assert_allclose(got, 0.5 * b + 0.5 * a, atol=0.01)
    assert (got.argmax(1) == (a + b).argmax(1)).all()
    with pytest.raises(ensemble.EnsembleError, match="more than the ensemble's 40x40"):
        ensemble.ensemble([repo_model("wild8"), repo_model("ferplus8")], tmp_path / "small", "emofer/s",
                          final=False, input_size=(40, 40))


def test_no_symbolic_size_is_shared_between_members(tmp_path):
    """int8 graphs name their inner sizes (unk__0, unk__2, ...) alike; in one graph onnxruntime takes one
    name for one size, so a 64x64 member beside a 48x48 one failed to run ("Shape mismatch attempting to
    re-use buffer {48} != {64}") until each member's names were made its own."""
    import onnx

    folders = [repo_model("wild8-int8"), repo_model("ferplus8-int8")]
    configs = [ensemble.ModelConfig.load(f / CONFIG_NAME) for f in folders]
    graph = ensemble.build_graph(folders, configs, [0.5, 0.5])
    named = {(d.dim_param.split("/", 1)[0], v.name.split("/", 1)[0]) for v in graph.graph.value_info
             for d in v.type.tensor_type.shape.dim if d.HasField("dim_param")}
    assert named and all(size == member for size, member in named)  # m0's names in m0's tensors only
    assert {member for _, member in named} == {"m0", "m1"}
    onnx.checker.check_model(graph)


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


def _colour_model(out, source: str = "ferplus8-int8", mix=(0.2, 0.5, 0.3)):
    """A real colour emofer model: a grey repository model behind an input MatMul that mixes B, G, R
    by ``mix`` (not OpenCV's grey weights, so it answers otherwise than its grey source)."""
    from dataclasses import replace

    import onnx
    from onnx import helper, numpy_helper

    from emofer.config import ModelConfig
    from training import folder

    source_dir = repo_model(source)
    graph = onnx.load(str(source_dir / "model.onnx"))
    grey_input = graph.graph.input[0]
    colour_input = onnx.ValueInfoProto()
    colour_input.CopyFrom(grey_input)
    colour_input.name = "colour_input"
    colour_input.type.tensor_type.shape.dim[3].dim_value = 3
    graph.graph.initializer.append(numpy_helper.from_array(np.array(mix, np.float32).reshape(3, 1), "bgr_mix"))
    graph.graph.node.insert(0, helper.make_node("MatMul", ["colour_input", "bgr_mix"], [grey_input.name]))
    graph.graph.input.remove(grey_input)
    graph.graph.input.insert(0, colour_input)
    config = ModelConfig.load(source_dir / CONFIG_NAME)
    draft = folder.derive(out, config, lambda path: onnx.save(graph, str(path)), name="emofer/test-colour",
                          input=replace(config.input, channels=3))
    draft.config.save(out / CONFIG_NAME)
    return out


def test_a_grey_member_in_a_colour_ensemble_gets_the_face_made_grey_in_the_graph(tmp_path, faces, monkeypatch):
    """A colour 48x48 model with a grey 48x48 one: the ensemble takes colour, and gives the weighted
    mean of what each member gives alone (the grey member's face made grey in the graph, on float
    pixels: within rounding of emofer's own grey image)."""
    monkeypatch.setattr(evaluate, "evaluate", _no_dataset)
    colour_dir = _colour_model(tmp_path / "colour")
    colour = EmotionRecognizer.from_pretrained(colour_dir)
    assert colour.config.input.channels == 3
    out = tmp_path / "mixed"
    config = ensemble.ensemble([colour_dir, repo_model("wild8")], out, "emofer/test-mixed", final=False)
    assert config.input.channels == 3 and config.input.size == (48, 48)
    import cv2

    faces48 = [cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA) for face in faces[:2]]
    faces48.append(np.random.default_rng(3).integers(0, 256, (48, 48, 3), dtype=np.uint8))
    got = EmotionRecognizer.from_pretrained(out).classify(faces48, color="bgr")
    a = colour.classify(faces48, color="bgr")
    b = EmotionRecognizer.from_pretrained(repo_model("wild8")).classify(faces48, color="bgr")
    assert np.abs(a - b).max() > 0.05  # two different answers, so a swapped member would show
    # exactly: the grey member on the float grey image, as the graph computes it
    import onnxruntime as ort

    from emofer.config import ModelConfig
    from emofer.preprocess import GRAY_FROM_BGR, normalize

    grey_config = ModelConfig.load(repo_model("wild8") / CONFIG_NAME)
    grey = np.stack(faces48).astype(np.float32) @ GRAY_FROM_BGR
    x = normalize(grey, grey_config.normalize)[..., None].astype(np.float32)
    session = ort.InferenceSession(str(repo_model("wild8") / "model.onnx"), providers=["CPUExecutionProvider"])
    z = np.log(session.run(None, {session.get_inputs()[0].name: x})[0]) / grey_config.temperature
    b_float = np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
    np.testing.assert_allclose(got, 0.5 * a + 0.5 * b_float, atol=1e-4)
    # and near what the grey member says alone on emofer's rounded grey image
    np.testing.assert_allclose(got, 0.5 * a + 0.5 * b, atol=2e-2)
