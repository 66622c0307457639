"""Fit a float model's classifier layer again on web faces: ``python -m training.refit``.

    python -m training.refit MODEL --web-share 0.5 --name emofer/NAME --out DIR [--candidate]

Every layer but the last is kept, frozen, as exported: the model's own graph computes the
features (the input of its last dense layer) of its training set's Training faces and of
expw-train's faces, framed by the bundled YuNet as ``predict`` frames them (:mod:`training.expw`,
each face and its mirror). A new classifier layer, started from the old one, is fitted on them
by cross-entropy with per-face weights that give the web faces ``--web-share`` of the total
(their one-annotator labels smoothed by ``--label-smoothing``); FER+ faces keep their vote
distributions. Its weights replace the old ones in the graph (in a graph with the mirror inside,
both branches share them), the temperature is fitted again on the model's validation split, and
the folder loads like any other. Chosen on validation data only (expw-dev is never read here).

Float graphs only: quantise the refitted model afterwards (``training.quantize``), and adjust
it afterwards (``training.adjust``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emofer.config import CONFIG_NAME, MODEL_NAME, ModelConfig
from emofer.preprocess import model_input
from training import data, expw, folder, metrics
from training.ensemble import member_folder
from training.mixing import Web
from training.paths import dataset_of
from training.report import command_line

log = logging.getLogger("emofer.training")

BATCH = 256
EPOCHS = 10


class RefitError(ValueError):
    """The model's graph has no single float classifier layer to refit, or its input is not one expw can make."""


@dataclass(frozen=True)
class Head:
    """The classifier layer of a graph: its input tensor and the initializers of its weights and bias."""

    features: str
    weight: str
    bias: str


def find_head(model) -> Head:
    """The dense layer feeding the graph's Softmax nodes (every branch must share its weights)."""
    produced = {out: node for node in model.graph.node for out in node.output}
    initializers = {i.name for i in model.graph.initializer}
    heads = set()
    for softmax in (n for n in model.graph.node if n.op_type == "Softmax"):
        add = produced.get(softmax.input[0])
        matmul = produced.get(add.input[0]) if add is not None and add.op_type == "Add" else None
        if matmul is None or matmul.op_type != "MatMul" or matmul.input[1] not in initializers \
                or add.input[1] not in initializers:
            raise RefitError("the graph's Softmax is not fed by a float dense layer (MatMul + Add of stored "
                             "weights); refit the float model, before quantisation or adjustment")
        heads.add(Head(matmul.input[0], matmul.input[1], add.input[1]))
    if len({(h.weight, h.bias) for h in heads}) != 1:
        raise RefitError(f"expected one classifier layer shared by every branch, found {len(heads)}")
    return sorted(heads, key=lambda h: h.features)[0]


class Features:
    """The model's own graph, with the classifier's input as an extra output."""

    def __init__(self, model_dir: Path, config: ModelConfig):
        import onnx
        import onnxruntime as ort

        graph = onnx.load(str(model_dir / MODEL_NAME))
        self.head = find_head(graph)
        self.weights = {i.name: onnx.numpy_helper.to_array(i) for i in graph.graph.initializer
                        if i.name in (self.head.weight, self.head.bias)}
        graph.graph.output.append(onnx.helper.make_tensor_value_info(self.head.features, onnx.TensorProto.FLOAT, None))
        self.session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.config, self.graph = config, graph

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        out = [self._batch(pixels[i:i + BATCH]) for i in range(0, len(pixels), BATCH)]
        return np.concatenate(out).reshape(len(pixels), -1)

    def _batch(self, pixels: np.ndarray) -> np.ndarray:
        """The features of one batch. A graph that runs the faces and their mirrors as one batch
        (``training.export.with_flip_tta``) gives twice the rows: the faces' own come first."""
        found = self.session.run([self.head.features], {self.input: model_input(pixels, self.config)})[0]
        return found[:len(pixels)] if len(found) == 2 * len(pixels) else found


def fit_head(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, weight: np.ndarray, bias: np.ndarray,
             epochs: int = EPOCHS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cross-entropy fit of a dense softmax layer started from (weight, bias); returns the new pair."""
    import keras

    keras.utils.set_random_seed(seed)
    head = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(y.shape[1], activation="softmax")])
    head.layers[-1].set_weights([weight, bias])
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    head.fit(x, y, sample_weight=sample_weight, epochs=epochs, batch_size=BATCH, verbose=0, shuffle=True)
    new_weight, new_bias = head.layers[-1].get_weights()
    return new_weight.astype(np.float32), new_bias.astype(np.float32)


def training_features(model_dir: Path, source: ModelConfig, dataset: str, data_root: str | Path | None,
              cache: dict[tuple, tuple] | None = None) -> tuple:
    """The graph's features of the main and web training faces; ``cache`` (the caller's) keeps them, so
    refits at several shares of one model compute them once."""
    key = (str(model_dir), source.model_sha256, dataset, str(data_root))
    if cache is not None and key in cache:
        return cache[key]
    features = Features(model_dir, source)
    main = data.load(dataset, "Training", source.labels, soft=dataset == "ferplus", root=data_root)
    web, framing = expw.load("Training", source.labels, source.crop_for("yunet"), source.input.size,
                             channels=source.input.channels)
    log.info("features of %d %s Training faces and %d expw-train faces (x2 with mirrors; YuNet framed %d)",
             len(main), dataset, len(web), framing.yunet)
    x_web = np.concatenate([features(web.pixels), features(web.pixels[:, :, ::-1].copy())])
    found = (features, main, features(main.pixels), web, x_web, framing)
    if cache is not None:
        cache[key] = found
    return found


def refit(model: str | Path, out: str | Path, name: str, web_share: float = 0.5, label_smoothing: float = 0.1,
          report: str | Path | None = None, data_root: str | Path | None = None, command: str = "",
          final: bool = True, cache: dict[tuple, tuple] | None = None) -> ModelConfig:
    """Write ``model`` with its classifier refitted on web faces into the folder ``out``; return its config.

    ``cache``: a dict kept between calls that refit the same model (its features are computed once).
    """
    import onnx

    options = Web(share=web_share, label_smoothing=label_smoothing)
    model_dir = member_folder(model)
    source = ModelConfig.load(model_dir / CONFIG_NAME)
    if source.trained_on.get("quantization") or source.trained_on.get("logit_adjustment"):
        raise RefitError(f"{source.name} is quantised or adjusted; refit the float model it came from")
    dataset = dataset_of(source)
    features, main, x_main, web, x_web, framing = training_features(model_dir, source, dataset, data_root, cache)
    present = np.array([label in expw.EXPW_CLASSES for label in source.labels])
    y_web = np.concatenate([options.targets(web, present)] * 2)
    x, y = np.concatenate([x_main, x_web]), np.concatenate([main.targets().astype(np.float32), y_web])
    sample_weight = np.concatenate([np.full(len(x_main), (1 - web_share) / len(x_main)),
                                    np.full(len(x_web), web_share / len(x_web))]).astype(np.float32) * len(x)
    head = features.head
    weight, bias = fit_head(x, y, sample_weight, features.weights[head.weight], features.weights[head.bias])

    graph = onnx.ModelProto()
    graph.CopyFrom(features.graph)
    del graph.graph.output[-1]  # the feature output added for fitting
    for initializer in graph.graph.initializer:
        if initializer.name in (head.weight, head.bias):
            initializer.CopyFrom(onnx.numpy_helper.from_array(weight if initializer.name == head.weight else bias,
                                                              initializer.name))
    trained_on = {**source.trained_on, "head_refit": {
        "from": source.name, "from_sha256": source.model_sha256, "web_share": web_share,
        "label_smoothing": label_smoothing, "faces": {dataset: len(main), "expw-train": len(web)},
        "yunet_framed": framing.yunet, "epochs": EPOCHS}}
    draft = folder.derive(out, source, lambda path: onnx.save(graph, str(path)), name=name, temperature=1.0,
                          trained_on=trained_on)
    public = data.load(dataset, "PublicTest", source.labels, root=data_root)
    temperature = round(metrics.fit_temperature(folder.classify(draft, public.pixels), public.labels,
                                                probabilities=True), 4)
    draft = draft.with_updates(temperature=temperature)
    scored = folder.evaluate(draft, "PublicTest", data_root)
    source_public = source.metrics.get("PublicTest", {}).get("accuracy")
    log.info("PublicTest %.4f (source %s); temperature %.4f", scored.scores.accuracy, source_public, temperature)
    return folder.finish(draft, scored, {"source_PublicTest": source_public}, final=final, data_root=data_root,
                         report=folder.Report(report, command or command_line("training.refit",
                                                                              [str(model), "--out", out])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="float model folder or bundled name")
    parser.add_argument("--name", required=True, help="the refitted model's name, e.g. emofer/ferplus8-web")
    parser.add_argument("--out", required=True, type=Path, help="model folder to write")
    parser.add_argument("--web-share", type=float, action="append",
                        help="share of the fit's weight on web faces (0-0.95; default 0.5); repeat for several "
                             "refits, written to OUT-sSHARE with NAME-sSHARE (features computed once)")
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="for the web faces' one-annotator labels")
    folder.add_finish_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    shares = args.web_share or [0.5]
    cache: dict[tuple, tuple] = {}  # the model's features, computed for the first share
    for share in shares:
        suffix = f"-s{round(share * 100):02d}" if len(shares) > 1 else ""
        out, name = args.out.with_name(args.out.name + suffix), args.name + suffix
        try:
            config = refit(args.model, out, name, share, args.label_smoothing, args.report, args.data,
                           command_line("training.refit", sys.argv[1:] if argv is None else argv),
                           final=not args.candidate, cache=cache)
        except ValueError as exc:  # RefitError is one
            parser.exit(2, f"error: {exc}\n")
        print(f"{config.name}: {'candidate, ' if args.candidate else ''}PublicTest "
              f"{config.metrics['PublicTest']['accuracy']:.4f}; wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
