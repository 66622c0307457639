"""Logit adjustment: make a model say its rare emotions, without retraining.

    python -m training.adjust models/wild8-int8 --tau 1.0 --out CAND/wild8-int8-tau1

A network trained on FER+ has seen few disgusted or fearful faces, so it rarely says them on
real photos. Dividing each emotion's probability by its share of the training targets raised
to ``tau`` (post-hoc logit adjustment, Menon et al., ICLR 2021: ``log p - tau * log prior``)
moves answers towards the rare emotions; ``tau = 0`` leaves the model as it is, ``tau = 1``
is the balanced-error choice. The adjustment is appended to the ONNX graph (a multiply and a
renormalisation after the model's probabilities), so the folder loads like any other and
nothing changes at run time. The config's temperature stays: the graph multiplies by
``prior ** (-tau * temperature)``, so the probabilities emofer returns are exactly the source
model's calibrated probabilities times ``prior ** -tau``, renormalised.

``--prior`` says where each emotion's share comes from: ``targets`` (the mean training target),
``majority`` (the share of each majority label) or ``web``: the model's own mean answer on
expw-train's carved validation part (``training.expw``; never expw-dev). ExpW's emotions are
about equally common there, so a share above the others says the model over-answers that emotion
on web faces; dividing by it (Saerens et al., 2002, the first step of their prior estimate) moves
answers towards the emotions the model is shy of on real photos, whatever it learnt from.

``--exclude LABEL`` leaves an emotion out: it is treated as common as the most common one, so
its odds against that emotion stay the source model's (for an emotion the choosing data cannot
measure, such as FER+'s contempt, which expw-dev does not label).

``--candidate`` scores PublicTest only (choosing); otherwise PrivateTest is evaluated once and
the report and model card are written, as ``training.quantize`` does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emofer.config import CONFIG_NAME, MODEL_NAME, ModelConfig
from training import data, folder
from training.paths import dataset_of
from training.report import command_line

log = logging.getLogger("emofer.training")

#: Where the prior comes from: the mean training target (vote distributions for FER+ models,
#: one-hot labels otherwise), the share of each majority label, or the model's mean answer on
#: expw-train's carved validation part (web faces).
PRIORS = ("targets", "majority", "web")


def training_prior(config: ModelConfig, kind: str = "targets", data_root: str | Path | None = None,
                   model_dir: str | Path | None = None) -> np.ndarray:
    """Each of ``config.labels``' share of the training targets the model learnt from (``targets``,
    ``majority``), or of the answers of the model in ``model_dir`` on web faces (``web``)."""
    if kind not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {kind!r}")
    if kind == "web":
        if model_dir is None:
            raise ValueError("the web prior is the model's own answers: give model_dir")
        return web_prior(Path(model_dir), config)
    dataset = dataset_of(config)
    soft = kind == "targets" and bool(config.trained_on.get("soft_labels"))
    faces = data.load(dataset, "Training", config.labels, soft=soft, root=data_root)
    targets = faces.soft if soft else np.eye(len(faces.classes))[faces.labels]
    share = targets.mean(axis=0)
    return np.array([share[list(faces.classes).index(label)] for label in config.labels], np.float64)


def web_prior(model_dir: Path, config: ModelConfig) -> np.ndarray:
    """The model's mean probabilities (as emofer returns them) over expw-train's carved validation
    part, framed as ``predict`` frames a detection (``training.expw``)."""
    from training import expw
    from training.evaluate import classify

    faces, _ = expw.load("PublicTest", config.labels, config.crop_for("yunet"), config.input.size,
                         channels=config.input.channels)
    return classify(model_dir, faces.pixels, config).mean(axis=0)


def multiplier(shares: np.ndarray, labels: Sequence[str], tau: float, temperature: float = 1.0,
               exclude: Sequence[str] = ()) -> np.ndarray:
    """What the graph multiplies the probabilities by: ``shares ** (-tau * temperature)``, with each
    excluded label given the multiplier of the most common included one."""
    unknown = sorted(set(exclude) - set(labels))
    if unknown:
        raise ValueError(f"cannot exclude {unknown}: the model's labels are {list(labels)}")
    weights = np.asarray(shares, np.float64) ** (-tau * temperature)
    included = [k for k, label in enumerate(labels) if label not in exclude]
    if not included:
        raise ValueError("every label is excluded; nothing to adjust")
    for k, label in enumerate(labels):
        if label in exclude:
            weights[k] = weights[included].min()
    return weights


def adjust_graph(source: Path, target: Path, multiplier: np.ndarray) -> None:
    """Write ``source`` with its probabilities multiplied by ``multiplier`` and renormalised."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    if len(graph.output) != 1:
        raise ValueError(f"{source}: expected one output (the probabilities), found {len(graph.output)}")
    output = graph.output[0]
    raw = output.name + "_unadjusted"
    for node in graph.node:  # the producer of the output now writes the unadjusted probabilities
        node.output[:] = [raw if name == output.name else name for name in node.output]
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    weight = numpy_helper.from_array(multiplier.astype(np.float32)[None, :], "logit_adjustment_multiplier")
    graph.initializer.append(weight)
    nodes = [helper.make_node("Mul", [raw, weight.name], ["logit_adjusted_unnormalised"])]
    if opset >= 13:  # ReduceSum takes its axes as an input from opset 13
        axes = numpy_helper.from_array(np.array([1], np.int64), "logit_adjustment_axes")
        graph.initializer.append(axes)
        nodes.append(helper.make_node("ReduceSum", ["logit_adjusted_unnormalised", axes.name],
                                      ["logit_adjusted_total"], keepdims=1))
    else:
        nodes.append(helper.make_node("ReduceSum", ["logit_adjusted_unnormalised"], ["logit_adjusted_total"],
                                      axes=[1], keepdims=1))
    nodes.append(helper.make_node("Div", ["logit_adjusted_unnormalised", "logit_adjusted_total"], [output.name]))
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def adjust(source: str | Path, out: str | Path, tau: float, prior: str = "targets", name: str | None = None,
           report: str | Path | None = None, data_root: str | Path | None = None, command: str | None = None,
           final: bool = True, exclude: Sequence[str] = ()) -> ModelConfig:
    """Write the logit-adjusted copy of the model folder ``source`` to ``out``; return its config."""
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    source, out = Path(source), Path(out)
    base = ModelConfig.load(source / CONFIG_NAME)
    if base.trained_on.get("logit_adjustment"):
        raise ValueError(f"{source} is already adjusted; adjust the folder it came from")
    shares = training_prior(base, prior, data_root, source)
    weights = multiplier(shares, base.labels, tau, base.temperature, exclude)
    trained_on = {**base.trained_on, "logit_adjustment": {
        "tau": tau, "prior": prior, "excluded": list(exclude),
        "shares": {label: round(float(s), 6) for label, s in zip(base.labels, shares)},
        "from": base.name, "from_sha256": base.model_sha256}}
    draft = folder.derive(out, base, lambda path: adjust_graph(source / MODEL_NAME, path, weights),
                          name=name or f"{base.name}-adjusted", trained_on=trained_on)
    public = folder.evaluate(draft, "PublicTest", data_root)
    unadjusted = base.metrics.get("PublicTest", {}).get("accuracy")
    log.info("PublicTest accuracy %.4f (unadjusted %s)", public.scores.accuracy, unadjusted)
    return folder.finish(draft, public, {"unadjusted_PublicTest": unadjusted}, final=final,
                         final_extra={"unadjusted_PrivateTest": base.metrics.get("PrivateTest", {}).get("accuracy")},
                         report=folder.Report(report, command or command_line(
                             "training.adjust", [source, "--tau", tau, "--out", out])), data_root=data_root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="emofer model folder (model.onnx + config.json)")
    parser.add_argument("--out", required=True, type=Path, help="model folder to write")
    parser.add_argument("--tau", required=True, type=float, help="strength: 0 = unchanged, 1 = balanced")
    parser.add_argument("--prior", choices=PRIORS, default="targets",
                        help="share per emotion: mean training target (default), majority labels, or the "
                             "model's mean answer on expw-train's validation web faces")
    parser.add_argument("--exclude", action="append", default=[], metavar="LABEL",
                        help="leave this emotion unadjusted (as common as the most common one); repeatable")
    parser.add_argument("--name", help="model name (default: the source's name + '-adjusted')")
    folder.add_finish_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    config = adjust(args.source, args.out, args.tau, args.prior, args.name, args.report, args.data,
                    command_line("training.adjust", sys.argv[1:] if argv is None else argv),
                    final=not args.candidate, exclude=args.exclude)
    m = config.metrics
    tail = "" if args.candidate else f", PrivateTest {m['PrivateTest']['accuracy']:.4f}"
    print(f"{config.name}: PublicTest {m['PublicTest']['accuracy']:.4f} (unadjusted {m['unadjusted_PublicTest']})"
          f"{tail}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
