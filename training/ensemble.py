"""Average exported emofer models in one ONNX graph: ``python -m training.ensemble``.

    python -m training.ensemble MODEL MODEL [...] --name emofer/wild-accurate --out DIR [--weight W ...] [--candidate]

``training.export --ensemble`` averages Keras run folders; this averages finished model folders
(bundled ones included, whose run folders may be gone), so a network trained on web faces can
be paired with one trained longer on FER+. Each member's graph is copied in whole under its own
prefix, fed the same input tensor; its probabilities ``p`` are calibrated as emofer serves that
model alone (``softmax(log p / T)`` with the member's temperature) and the weighted mean of the
members is the output. The ensemble's own temperature is 1: what it returns is exactly the
weighted mean of what each member's ``classify`` returns (a test checks it).

Members must share labels (in order), layout and normalisation; the crop policies are the
first member's. Their input sizes may differ: the ensemble takes the largest (or ``--input-size``),
and a member that expects a smaller face gets it shrunk inside the graph by an exact area resize
(two constant matrix products: what ``cv2.resize(..., INTER_AREA)``, emofer's shrinking
interpolation, computes on float pixels), so a 48x48 and a 64x64 network can be averaged.
Grey and colour (BGR) members may be mixed (NHWC): the ensemble takes colour, and a grey member
gets the face made grey in the graph by OpenCV's weights (``cv2.COLOR_BGR2GRAY``'s, on float
pixels: within half a grey level of the rounded grey image emofer gives that member alone).
``--candidate`` scores PublicTest only; otherwise PrivateTest is evaluated once and the report
and card are written, as ``training.quantize`` does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from emofer.config import CONFIG_NAME, MODEL_NAME, InputSpec, ModelConfig
from emofer.hub import resolve_model
from emofer.preprocess import GRAY_FROM_BGR
from training import folder
from training.report import command_line

log = logging.getLogger("emofer.training")

OUTPUT = "probabilities"
#: trained_on entries that describe one member's graph, left out of the ensemble's.
MEMBER_ONLY = ("head_refit", "quantization", "logit_adjustment")


class EnsembleError(ValueError):
    """The members cannot be averaged (other labels, input or normalisation), or the weights are off."""


def member_folder(model: str | Path) -> Path:
    """A member's model folder: a bundled name, a local folder or a Hub id (through emofer's resolver)."""
    config, _ = resolve_model(model)
    return Path(config).parent


def area_matrix(size_out: int, size_in: int) -> np.ndarray:
    """The ``size_out x size_in`` matrix that shrinks one axis by area averaging (cv2.INTER_AREA):
    each output pixel is the mean of the input span it covers, input pixels weighted by their overlap."""
    if not 0 < size_out <= size_in:
        raise EnsembleError(f"an area resize shrinks: cannot take {size_in} pixels to {size_out}")
    scale = size_in / size_out
    edges = np.arange(size_in + 1, dtype=np.float64)
    matrix = np.empty((size_out, size_in), np.float64)
    for o in range(size_out):
        start, stop = o * scale, (o + 1) * scale
        matrix[o] = np.clip(np.minimum(edges[1:], stop) - np.maximum(edges[:-1], start), 0.0, None) / scale
    return matrix.astype(np.float32)


def _shrink_nodes(source: str, target: str, prefix: str, to: InputSpec, frm: InputSpec):
    """Nodes and initializers taking the ensemble's input ``source`` (``frm``'s size) to ``to``'s size as ``target``."""
    from onnx import helper, numpy_helper

    rows = numpy_helper.from_array(area_matrix(to.height, frm.height), f"{prefix}shrink_rows")
    cols = numpy_helper.from_array(area_matrix(to.width, frm.width).T.copy(), f"{prefix}shrink_cols")
    nchw = to.layout == "NCHW"
    first = source if nchw else f"{prefix}shrink_nchw"
    nodes = [] if nchw else [helper.make_node("Transpose", [source], [first], perm=[0, 3, 1, 2])]
    nodes += [helper.make_node("MatMul", [first, cols.name], [f"{prefix}shrunk_cols"]),
              helper.make_node("MatMul", [rows.name, f"{prefix}shrunk_cols"],
                               [target if nchw else f"{prefix}shrunk_nchw"])]
    if not nchw:
        nodes.append(helper.make_node("Transpose", [f"{prefix}shrunk_nchw"], [target], perm=[0, 2, 3, 1]))
    return nodes, [rows, cols]


def _grey_nodes(source: str, target: str, prefix: str):
    """Nodes and the initializer taking the NHWC BGR input ``source`` to its grey (N, H, W, 1) as ``target``."""
    from onnx import helper, numpy_helper

    weights = numpy_helper.from_array(GRAY_FROM_BGR.reshape(3, 1), f"{prefix}grey_from_bgr")
    return [helper.make_node("MatMul", [source, weights.name], [target])], [weights]


def ensemble_input(configs: Sequence[ModelConfig], size: tuple[int, int] | None = None) -> InputSpec:
    """The ensemble's input: the members' layout at ``size`` (default: the largest member's), in colour
    when any member takes colour."""
    head = replace(configs[0].input, channels=max(c.input.channels for c in configs))
    if size is None:
        size = max((c.input.size for c in configs), key=lambda hw: hw[0] * hw[1])
    for config in configs:
        if config.input.height > size[0] or config.input.width > size[1]:
            raise EnsembleError(f"{config.name} takes {config.input.height}x{config.input.width} faces, more than "
                                f"the ensemble's {size[0]}x{size[1]}: the input must be at least every member's")
    return replace(head, height=size[0], width=size[1])


def build_graph(folders: Sequence[Path], configs: Sequence[ModelConfig], weights: Sequence[float],
                spec: InputSpec | None = None):
    """One ONNX model averaging the members' calibrated probabilities (see the module docstring);
    ``spec`` is the ensemble's input (default: :func:`ensemble_input` of the members)."""
    import onnx
    from onnx import compose, helper

    spec = spec or ensemble_input(configs)
    first = onnx.load(str(folders[0] / MODEL_NAME))
    input_value = onnx.ValueInfoProto()
    input_value.CopyFrom(first.graph.input[0])  # its name and batch dimension; the face size is the ensemble's
    dims = input_value.type.tensor_type.shape.dim
    shape = (spec.channels, *spec.size) if spec.layout == "NCHW" else (*spec.size, spec.channels)
    for axis, value in zip((1, 2, 3), shape):
        dims[axis].Clear()
        dims[axis].dim_value = value
    nodes, initializers, values, outputs = [], [], [], []
    opsets: dict[str, int] = {}
    for i, (member_dir, config, weight) in enumerate(zip(folders, configs, weights)):
        member = compose.add_prefix(onnx.load(str(member_dir / MODEL_NAME)), prefix=f"m{i}/")
        graph = member.graph
        for opset in member.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
        face = input_value.name
        if config.input.channels != spec.channels:  # a grey member of a colour ensemble (NHWC, check_members)
            grey, matrix = _grey_nodes(face, f"m{i}/grey", f"m{i}/")
            nodes.extend(grey)
            initializers.extend(matrix)
            face = f"m{i}/grey"
        if config.input.size == spec.size:
            nodes.append(helper.make_node("Identity", [face], [graph.input[0].name]))
        else:
            shrink, matrices = _shrink_nodes(face, graph.input[0].name, f"m{i}/", config.input, spec)
            nodes.extend(shrink)
            initializers.extend(matrices)
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
        for value in graph.value_info:  # a symbolic size (e.g. "unk__114") means one size in one graph only
            for dim in value.type.tensor_type.shape.dim:
                if dim.HasField("dim_param"):
                    dim.dim_param = f"m{i}/{dim.dim_param}"
        values.extend(graph.value_info)
        p, k = graph.output[0].name, f"m{i}/"
        scale = helper.make_tensor(f"{k}inverse_temperature", onnx.TensorProto.FLOAT, [], [1.0 / config.temperature])
        share = helper.make_tensor(f"{k}weight", onnx.TensorProto.FLOAT, [], [float(weight)])
        initializers += [scale, share]
        nodes += [helper.make_node("Log", [p], [f"{k}log"]),
                  helper.make_node("Mul", [f"{k}log", scale.name], [f"{k}scaled"]),
                  helper.make_node("Softmax", [f"{k}scaled"], [f"{k}calibrated"], axis=-1),
                  helper.make_node("Mul", [f"{k}calibrated", share.name], [f"{k}weighted"])]
        outputs.append(f"{k}weighted")
    nodes.append(helper.make_node("Sum", outputs, [OUTPUT]))
    output = helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, [None, len(configs[0].labels)])
    graph = helper.make_graph(nodes, "emofer_ensemble", [input_value], [output], initializers, value_info=values)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
                              ir_version=first.ir_version, producer_name="emofer training.ensemble")
    onnx.checker.check_model(model)
    return model


def check_members(configs: Sequence[ModelConfig], weights: Sequence[float]) -> None:
    """Refuse members that do not make and mean the same thing, and weights that are not positive."""
    if len(configs) < 2:
        raise EnsembleError("an ensemble needs at least two models")
    if len(weights) != len(configs) or any(not w > 0 for w in weights):
        raise EnsembleError(f"give one positive --weight per model ({len(configs)}), got {list(weights)}")
    head = configs[0]
    for config in configs[1:]:
        for what, mine, theirs in [("labels", config.labels, head.labels),
                                   ("normalize", config.normalize, head.normalize),
                                   ("layout", config.input.layout, head.input.layout)]:
            if mine != theirs:
                raise EnsembleError(f"{config.name} has other {what} than {head.name} "
                                    f"({mine} vs {theirs}); members must share them")
    # a grey member is made grey after the shared normalisation: emofer's is one scale, mean and std for
    # every channel and OpenCV's grey weights sum to 1, so that equals normalising the grey face
    if len({c.input.channels for c in configs}) > 1 and head.input.layout != "NHWC":
        raise EnsembleError("grey and colour members can be mixed in NHWC graphs only")


def ensemble(models: Sequence[str | Path], out: str | Path, name: str, weights: Sequence[float] | None = None,
             report: str | Path | None = None, data_root: str | Path | None = None, command: str = "",
             final: bool = True, input_size: tuple[int, int] | None = None) -> ModelConfig:
    """Write the ensemble of ``models`` into the folder ``out``; return its config.json.

    ``input_size``: (height, width) of the faces the ensemble takes (default: the largest member's).
    """
    import onnx

    folders = [member_folder(m) for m in models]
    configs = [ModelConfig.load(f / CONFIG_NAME) for f in folders]
    weights = list(weights) if weights else [1.0] * len(configs)
    check_members(configs, weights)
    total = float(sum(weights))
    weights = [w / total for w in weights]
    head = configs[0]
    # what made the first member's graph alone (its refit, int8, adjustment) is not the ensemble's: each
    # member's own config.json keeps it, named by the sha256 below
    shared = {k: v for k, v in head.trained_on.items() if k not in MEMBER_ONLY}
    trained_on = {**shared, "ensemble_with": [c.name for c in configs[1:]],
                  "onnx_ensemble": [{"model": c.name, "sha256": c.model_sha256, "weight": round(w, 4),
                                     "temperature": c.temperature, "input": list(c.input.size)}
                                    for c, w in zip(configs, weights)]}
    spec = ensemble_input(configs, input_size)
    graph = build_graph(folders, configs, weights, spec)
    draft = folder.derive(out, head, lambda path: onnx.save(graph, str(path)), name=name, temperature=1.0,
                          trained_on=trained_on, input=spec)
    public = folder.evaluate(draft, "PublicTest", data_root)
    members = [c.metrics.get("PublicTest", {}).get("accuracy") for c in configs]
    log.info("PublicTest: ensemble %.4f, members %s", public.scores.accuracy, members)
    return folder.finish(draft, public, {"member_PublicTest": members}, final=final, data_root=data_root,
                         report=folder.Report(report, command or command_line(
                             "training.ensemble", [*map(str, models), "--out", out])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model folders or bundled names (two or more)")
    parser.add_argument("--name", required=True, help="the ensemble's name, e.g. emofer/wild-accurate")
    parser.add_argument("--out", required=True, type=Path, help="model folder to write")
    parser.add_argument("--weight", type=float, action="append", help="one per model, in order (default: equal)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="faces the ensemble takes (default: the largest member's input); smaller members get "
                             "an exact area resize in the graph")
    folder.add_finish_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    try:
        config = ensemble(args.models, args.out, args.name, args.weight, args.report, args.data,
                          command_line("training.ensemble", sys.argv[1:] if argv is None else argv),
                          final=not args.candidate, input_size=tuple(args.input_size) if args.input_size else None)
    except EnsembleError as exc:
        parser.exit(2, f"error: {exc}\n")
    public = config.metrics["PublicTest"]["accuracy"]
    print(f"{config.name}: {'candidate, ' if args.candidate else ''}PublicTest {public:.4f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
