"""Quantise an emofer model folder to int8 (static, per-channel), check it and write its card.

    python -m training.quantize models/fer7 --out models/fer7-int8

The float graph's weights become int8 (per output channel) and its activations uint8, with
ranges calibrated on ``--faces`` Training faces (never the test splits), fed through
``emofer.preprocess`` exactly as at run time. The result is a model folder emofer loads like
any other (``model.onnx`` + ``config.json`` + ``README.md``); config.json keeps the float model's
labels, crop policies and temperature and records the quantisation in ``trained_on``.

``--float-stem`` keeps the network's first convolution (the one over the input's channels: one
grey, or B, G, R) in float: onnxruntime's int8 convolution handles few input channels badly (112 us
of a grey 52x52 face's 0.89 ms in its profile, against 22 us in float), so the model runs about
8 % faster for one float convolution. The folder's config.json records the nodes left in float.

The quantised model is kept only if it stays within ``--max-drop`` accuracy points of the float
model on PublicTest (the selection split); PrivateTest is then evaluated once for the report in
``docs/models/<short name>/``. Needs the ``train`` extra (onnx) on top of onnxruntime.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emofer.config import CONFIG_NAME, MODEL_NAME, ModelConfig
from emofer.preprocess import to_tensor
from training import data, evaluate, folder
from training.paths import dataset_of
from training.report import command_line

log = logging.getLogger("emofer.training")

#: Training faces used to calibrate the activation ranges, and the largest PublicTest drop kept.
CALIBRATION_FACES = 512
MAX_DROP = 0.005


class QuantizeError(RuntimeError):
    """The quantised graph lost too much accuracy, or the source folder is not a float model."""


def calibration_tensor(config: ModelConfig, n: int = CALIBRATION_FACES, seed: int = 0,
                       data_root: str | Path | None = None) -> np.ndarray:
    """``n`` Training faces (stratified by class) as the model's float32 input tensor."""
    faces = data.load(dataset_of(config), "Training", config.labels, root=data_root)
    rng = np.random.default_rng(seed)
    per_class = max(1, n // len(config.labels))
    rows = np.concatenate([rng.permutation(np.flatnonzero(faces.labels == k))[:per_class]
                           for k in range(len(config.labels))])
    return to_tensor(faces.pixels[rng.permutation(rows)], config.input.size, config.input.channels, config.normalize)


def stem_convolutions(path: Path) -> list[str]:
    """The names of ``path``'s full convolutions over as many channels as its input has (1 grey,
    3 BGR): the network's first convolution, once per branch of the graph."""
    import onnx

    model = onnx.load(str(path))
    channels = model.graph.input[0].type.tensor_type.shape.dim[-1].dim_value  # NHWC: the last dimension
    over_input = {init.name for init in model.graph.initializer if len(init.dims) == 4 and init.dims[1] == channels}
    return [node.name for node in model.graph.node
            if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in over_input
            and next((a.i for a in node.attribute if a.name == "group"), 1) == 1]


def quantize_graph(source: Path, target: Path, tensor: np.ndarray, batch: int = 32,
                   keep_float: Sequence[str] = ()) -> None:
    """Write the int8 QDQ version of the float graph ``source`` to ``target``, the nodes named in
    ``keep_float`` (e.g. :func:`stem_convolutions`) left in float."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{input_name: tensor[i:i + batch]} for i in range(0, len(tensor), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if keep_float:
            import onnx

            missing = set(keep_float) - {node.name for node in onnx.load(str(prepared)).graph.node}
            if missing:  # quantize_static would quantise them silently
                raise QuantizeError(f"nodes {sorted(missing)} to keep in float are not in {source} once prepared")
        quantize_static(str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=list(keep_float))


def quantize(source: str | Path, out: str | Path, name: str | None = None, faces: int = CALIBRATION_FACES,
             max_drop: float = MAX_DROP, report: str | Path | None = None, data_root: str | Path | None = None,
             command: str | None = None, final: bool = True, float_stem: bool = False) -> ModelConfig:
    """Quantise the model folder ``source`` into ``out``; return the config written there.

    ``final=False`` makes a candidate for choosing: PublicTest only, no test split, report or card.
    ``float_stem`` keeps the first convolution (over the input's channels) in float (see the module's docstring).
    """
    source, out = Path(source), Path(out)
    float_config = ModelConfig.load(source / CONFIG_NAME)
    if float_config.trained_on.get("quantization"):
        raise QuantizeError(f"{source} is already quantised; quantise the float model folder it came from")
    name = name or f"{float_config.name}-int8"
    tensor = calibration_tensor(float_config, faces, data_root=data_root)
    trained_on = dict(float_config.trained_on)
    trained_on["quantization"] = {
        "method": "onnxruntime static QDQ, per-channel int8 weights, uint8 activations",
        "from": float_config.name, "from_sha256": float_config.model_sha256,
        "calibration": f"{len(tensor)} {dataset_of(float_config)} Training faces",
    }
    keep_float = stem_convolutions(source / MODEL_NAME) if float_stem else []
    if float_stem and not keep_float:
        raise QuantizeError(f"--float-stem: {source / MODEL_NAME} has no full convolution over its input's "
                            "channels; leave the flag out")
    if keep_float:
        over = "one grey channel" if float_config.input.channels == 1 else f"{float_config.input.channels} channels"
        trained_on["quantization"]["method"] += f"; the first convolution ({over} in) left in float"
        trained_on["quantization"]["float_nodes"] = sorted(keep_float)
    draft = folder.derive(out, float_config,
                          lambda path: quantize_graph(source / MODEL_NAME, path, tensor, keep_float=keep_float),
                          name=name, trained_on=trained_on)

    float_public = float_config.metrics.get("PublicTest", {}).get("accuracy")
    if float_public is None:
        float_public = evaluate.evaluate(source, "PublicTest", data_root).scores.accuracy
    public = folder.evaluate(draft, "PublicTest", data_root)
    drop = float(float_public) - public.scores.accuracy
    log.info("PublicTest accuracy: float %.4f, int8 %.4f (drop %.4f)", float_public, public.scores.accuracy, drop)
    if drop > max_drop:
        shutil.rmtree(out)
        raise QuantizeError(f"int8 loses {100 * drop:.2f} accuracy points on PublicTest (limit "
                            f"{100 * max_drop:.2f}); keep the float model")
    command = command or command_line("training.quantize", [source, "--out", out])
    return folder.finish(draft, public, {"float_PublicTest": round(float(float_public), 4)}, final=final,
                         final_extra={"float_PrivateTest": float_config.metrics.get("PrivateTest", {}).get("accuracy")},
                         report=folder.Report(report, command), data_root=data_root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="float emofer model folder (model.onnx + config.json)")
    parser.add_argument("--out", required=True, type=Path, help="model folder to write")
    parser.add_argument("--name", help="model name (default: the float model's name + '-int8')")
    parser.add_argument("--faces", type=int, default=CALIBRATION_FACES, help="Training faces for calibration")
    parser.add_argument("--float-stem", action="store_true",
                        help="keep the first convolution (over the input's grey or B, G, R channels) in float: "
                             "faster on CPUs")
    parser.add_argument("--max-drop", type=float, default=MAX_DROP,
                        help="largest PublicTest accuracy drop kept, as a fraction (default 0.005)")
    folder.add_finish_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    try:
        config = quantize(args.source, args.out, args.name, args.faces, args.max_drop, args.report, args.data,
                          command_line("training.quantize", sys.argv[1:] if argv is None else argv),
                          final=not args.candidate, float_stem=args.float_stem)
    except QuantizeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = config.metrics
    if args.candidate:
        print(f"{config.name}: candidate, PublicTest {m['PublicTest']['accuracy']:.4f} "
              f"(float {m['float_PublicTest']}); wrote {args.out}")
        return 0
    print(f"{config.name}: PrivateTest accuracy {m['PrivateTest']['accuracy']:.4f} (float {m['float_PrivateTest']}), "
          f"PublicTest {m['PublicTest']['accuracy']:.4f} (float {m['float_PublicTest']}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
