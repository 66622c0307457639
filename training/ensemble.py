"""Average exported emofer models in one ONNX graph: ``python -m training.ensemble``.

    python -m training.ensemble MODEL MODEL [...] --name emofer/wild-accurate --out DIR [--weight W ...] [--candidate]

``training.export --ensemble`` averages Keras run folders; this averages finished model folders
(bundled ones included, whose run folders may be gone), so a network trained on web faces can
be paired with one trained longer on FER+. Each member's graph is copied in whole under its own
prefix, fed the same input tensor; its probabilities ``p`` are calibrated as emofer serves that
model alone (``softmax(log p / T)`` with the member's temperature) and the weighted mean of the
members is the output. The ensemble's own temperature is 1: what it returns is exactly the
weighted mean of what each member's ``classify`` returns (a test checks it).

Members must share labels (in order), input and normalisation; the crop policies are the first
member's. ``--candidate`` scores PublicTest only; otherwise PrivateTest is evaluated once and the
report and card are written, as ``training.quantize`` does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from emofer.config import CONFIG_NAME, MODEL_NAME, ModelConfig
from emofer.hub import resolve_model
from training import folder
from training.report import command_line

log = logging.getLogger("emofer.training")

OUTPUT = "probabilities"


class EnsembleError(ValueError):
    """The members cannot be averaged (other labels, input or normalisation), or the weights are off."""


def member_folder(model: str | Path) -> Path:
    """A member's model folder: a bundled name, a local folder or a Hub id (through emofer's resolver)."""
    config, _ = resolve_model(model)
    return Path(config).parent


def build_graph(folders: Sequence[Path], configs: Sequence[ModelConfig], weights: Sequence[float]):
    """One ONNX model averaging the members' calibrated probabilities (see the module docstring)."""
    import onnx
    from onnx import compose, helper

    first = onnx.load(str(folders[0] / MODEL_NAME))
    input_value = first.graph.input[0]
    nodes, initializers, values, outputs = [], [], [], []
    opsets: dict[str, int] = {}
    for i, (member_dir, config, weight) in enumerate(zip(folders, configs, weights)):
        member = compose.add_prefix(onnx.load(str(member_dir / MODEL_NAME)), prefix=f"m{i}/")
        graph = member.graph
        for opset in member.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
        nodes.append(helper.make_node("Identity", [input_value.name], [graph.input[0].name]))
        nodes.extend(graph.node)
        initializers.extend(graph.initializer)
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
        for what in ("labels", "input", "normalize"):
            if getattr(config, what) != getattr(head, what):
                raise EnsembleError(f"{config.name} has other {what} than {head.name} "
                                    f"({getattr(config, what)} vs {getattr(head, what)}); members must share them")


def ensemble(models: Sequence[str | Path], out: str | Path, name: str, weights: Sequence[float] | None = None,
             report: str | Path | None = None, data_root: str | Path | None = None, command: str = "",
             final: bool = True) -> ModelConfig:
    """Write the ensemble of ``models`` into the folder ``out``; return its config.json."""
    import onnx

    folders = [member_folder(m) for m in models]
    configs = [ModelConfig.load(f / CONFIG_NAME) for f in folders]
    weights = list(weights) if weights else [1.0] * len(configs)
    check_members(configs, weights)
    total = float(sum(weights))
    weights = [w / total for w in weights]
    head = configs[0]
    trained_on = {**head.trained_on, "ensemble_with": [c.name for c in configs[1:]],
                  "onnx_ensemble": [{"model": c.name, "sha256": c.model_sha256, "weight": round(w, 4),
                                     "temperature": c.temperature} for c, w in zip(configs, weights)]}
    draft = folder.derive(out, head, lambda path: onnx.save(build_graph(folders, configs, weights), str(path)),
                          name=name, temperature=1.0, trained_on=trained_on)
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
    folder.add_finish_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    try:
        config = ensemble(args.models, args.out, args.name, args.weight, args.report, args.data,
                          command_line("training.ensemble", sys.argv[1:] if argv is None else argv),
                          final=not args.candidate)
    except EnsembleError as exc:
        parser.exit(2, f"error: {exc}\n")
    public = config.metrics["PublicTest"]["accuracy"]
    print(f"{config.name}: {'candidate, ' if args.candidate else ''}PublicTest {public:.4f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
