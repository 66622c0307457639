"""Export a training run to an emofer model folder, check it, evaluate it and write its card.

    python -m training.export RUN_DIR --name emofer/fer5 --out src/emofer/models/fer5 \
        [--checkpoint best.keras] [--tta-flip] [--calibrate] [--report DIR]

Writes ``model.onnx`` (dynamic batch, input "input", output "probabilities"), ``config.json``
(emofer.config.ModelConfig) and ``README.md`` (the Hub model card) into ``--out``, and the
PrivateTest report into ``docs/models/<short name>/``. The ONNX graph must reproduce Keras on
real PublicTest faces (max |difference| <= 1e-4, same argmax) or the export fails.

``crop_by_detector`` in config.json comes from ``docs/framing.json`` (written by
``python -m training.framing``: how each face detector frames a face compared with FER2013)
when that file exists, from ``--framing PATH``, or is left out with ``--no-framing``.

``--tta-flip`` builds the average of the face's and its mirror image's probabilities into the
graph. ``--calibrate`` fits a temperature on PublicTest; emofer serves
``softmax(log(p) / T)`` of the network's probabilities ``p``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Export goes through tf2onnx, so it runs on TensorFlow whatever backend trained the run: a .keras
#: checkpoint is backend-agnostic (a torch-trained run loads here as it is). Set before keras loads.
EXPORT_BACKEND = "tensorflow"
os.environ["KERAS_BACKEND"] = EXPORT_BACKEND

import keras
import numpy as np

from emofer.config import MODEL_NAME, ModelConfig
from emofer.model import OnnxClassifier
from emofer.preprocess import CropPolicy, model_input
from training import data, folder, metrics, nets
from training.framing import DEFAULT_POLICIES, load_policies
from training.report import command_line
from training.runs import Run

log = logging.getLogger("emofer.training")

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
BATCH_DIM = "batch"
#: Parity check: this many PublicTest faces, this largest |keras - onnx| probability gap.
PARITY_FACES = 256
PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The exported graph does not reproduce the Keras model, or the run folder is incomplete."""


@dataclass(frozen=True)
class Parity:
    """How closely the ONNX graph reproduces Keras on real faces."""

    n: int
    max_abs_diff: float
    argmax_agree: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= PARITY_TOLERANCE and self.argmax_agree == self.n


def load_checkpoint(path: Path) -> keras.Model:
    """A .keras checkpoint of training/nets.py (custom layers registered)."""
    if not path.is_file():
        raise ExportError(f"{path} does not exist; is the run finished (python -m training.train ...)?")
    return nets.load(path, compile=False)


def with_flip_tta(model: keras.Model) -> keras.Model:
    """A model whose output is the mean probability of the face and its horizontal mirror.

    The N faces and their N mirrors go through the network as one batch of 2N (rows N.. are the
    mirrors), then each face's two rows are averaged: one pass of the network instead of two
    branches, about 5 % less time per face on one CPU thread at batch 1.
    """
    inputs = keras.Input(model.input_shape[1:], name=INPUT_NAME)
    mirrored = keras.ops.flip(inputs, axis=2)  # NHWC: axis 2 is the width
    both = model(keras.ops.concatenate([inputs, mirrored], axis=0))
    pairs = keras.ops.reshape(both, (2, -1, model.output_shape[-1]))  # [faces, mirrors]
    outputs = keras.layers.Identity(name=OUTPUT_NAME)(keras.ops.mean(pairs, axis=0))
    return keras.Model(inputs, outputs, name=f"{model.name}_flip_tta")


def with_members(model: keras.Model, labels: tuple[str, ...],
                 members: list[tuple[keras.Model, tuple[str, ...]]]) -> keras.Model:
    """One graph averaging ``model`` with other checkpoints over ``labels``.

    A member trained on more classes contributes its probabilities of ``labels`` renormalised to
    sum to 1 (e.g. a 7-emotion model inside the 5-emotion ensemble).
    """
    inputs = keras.Input(model.input_shape[1:], name=INPUT_NAME)
    outputs = [model(inputs)]
    for number, (member, member_labels) in enumerate(members, start=1):
        member.name = f"{member.name}_member{number}"  # layer names must be unique in one graph
        try:
            outputs.append(nets.pick_classes(member(inputs), member_labels, labels, f"ensemble member {member.name}"))
        except ValueError as error:
            raise ExportError(str(error)) from None
    return keras.Model(inputs, keras.layers.Average(name=OUTPUT_NAME)(outputs), name=f"{model.name}_ensemble")


def load_member(run: Path, checkpoint: str = "best.keras") -> tuple[keras.Model, tuple[str, ...]]:
    """A run's checkpoint and its class names (from recipe.json), for ``with_members``."""
    return load_checkpoint(Path(run) / checkpoint), Run(run).classes


def check_input(model: keras.Model, config: ModelConfig, where: str | Path = "the checkpoint") -> keras.Model:
    """``model`` if its graph takes the input ``config`` (the run's config.json) says, else ExportError."""
    spec = config.input
    if tuple(model.input_shape[1:]) != (spec.height, spec.width, spec.channels):
        raise ExportError(f"{where} takes input {model.input_shape[1:]}, but the run's config.json says "
                          f"{spec.height}x{spec.width}x{spec.channels}; the config does not belong to this run")
    return model


def to_onnx(model: keras.Model, path: Path) -> None:
    """Export ``model`` to ONNX at ``path`` with a dynamic batch dim and named input/output."""
    import onnx

    model.predict(np.zeros((1, *model.input_shape[1:]), np.float32), verbose=0)  # export needs a built model
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / MODEL_NAME
        model.export(str(raw), format="onnx")
        graph_model = onnx.load(str(raw))
    graph = graph_model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ExportError(f"expected one input and one output, got {len(graph.input)} and {len(graph.output)}")
    for value, name in ((graph.input[0], INPUT_NAME), (graph.output[0], OUTPUT_NAME)):
        _rename(graph, value.name, name)
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    onnx.checker.check_model(graph_model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(graph_model, str(path))
    log.info("wrote %s (%.2f MiB)", path, path.stat().st_size / 2**20)


def _rename(graph: Any, old: str, new: str) -> None:
    if old == new:
        return
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.name == old:
            value.name = new


def check_parity(keras_probabilities: np.ndarray, onnx_probabilities: np.ndarray) -> Parity:
    """Compare probabilities of the same faces; raise ExportError unless they agree."""
    parity = Parity(len(keras_probabilities), float(np.abs(keras_probabilities - onnx_probabilities).max()),
                    int((keras_probabilities.argmax(1) == onnx_probabilities.argmax(1)).sum()))
    if not parity.ok:
        raise ExportError(
            f"ONNX graph does not reproduce Keras on {parity.n} PublicTest faces: max |difference| "
            f"{parity.max_abs_diff:.2e} (limit {PARITY_TOLERANCE:.0e}), argmax agrees on "
            f"{parity.argmax_agree}/{parity.n}; do not ship this model"
        )
    log.info("parity on %d PublicTest faces: max |keras - onnx| %.2e, argmax agrees on all",
             parity.n, parity.max_abs_diff)
    return parity


def crop_policies(framing: str | Path | None) -> dict[str, CropPolicy]:
    """``crop_by_detector`` from a framing.json of training/framing.py; {} for None or an absent default."""
    if framing is None:
        return {}
    path = Path(framing)
    if not path.is_file():
        if path == DEFAULT_POLICIES:
            log.warning("%s not found: config.json gets no crop_by_detector (run python -m training.framing)", path)
            return {}
        raise ExportError(f"{path} not found; pass the framing.json written by python -m training.framing")
    policies = load_policies(path)
    log.info("crop_by_detector from %s: %s", path, {k: vars(v) for k, v in policies.items()})
    return policies


def export(run: str | Path, name: str, out: str | Path, checkpoint: str = "best.keras", tta_flip: bool = False,
           calibrate: bool = False, report: str | Path | None = None, data_root: str | Path | None = None,
           command: str | None = None, examples: bool = True,
           framing: str | Path | None = DEFAULT_POLICIES, ensemble: tuple[str | Path, ...] = (),
           final: bool = True) -> ModelConfig:
    """Export, check, calibrate and evaluate run ``run``; return the config written to ``out``.

    ``report`` is the folder of the PrivateTest report (default docs/models/<short name>/);
    ``command`` is recorded in it (default: the equivalent export command line); ``examples=False``
    leaves the dataset faces (examples.png) out of it. ``framing`` is the framing.json whose
    ``crop_by_detector`` goes into config.json (None: none). ``ensemble`` lists other run folders
    whose best checkpoints are averaged with this one inside the graph. ``final=False`` makes a
    candidate for choosing: PublicTest only, no test-split evaluation, report or card.
    """
    run, out = Path(run), Path(out)
    if keras.backend.backend() != EXPORT_BACKEND:
        raise ExportError(f"export needs Keras on {EXPORT_BACKEND} (tf2onnx); keras was loaded on "
                          f"{keras.backend.backend()} before training.export: run python -m training.export on its own")
    by_detector = crop_policies(framing)  # before the slow part: a wrong --framing fails at once
    run_folder = Run(run)
    draft_config, labels = run_folder.config, run_folder.classes  # the run's config.json from epoch one
    model = check_input(load_checkpoint(run / checkpoint), draft_config, run / checkpoint)
    if ensemble:
        members = [Run(other) for other in ensemble]
        for member in members:
            if (member.config.input, member.config.normalize) != (draft_config.input, draft_config.normalize):
                raise ExportError(f"ensemble member {member.path} was trained on other input than {run} "
                                  f"({vars(member.config.input)}, {vars(member.config.normalize)})")
        model = with_members(model, labels, [load_member(member.path) for member in members])
    if tta_flip:
        model = with_flip_tta(model)
    draft = folder.derive(  # the run's draft completed: name, sha256, framing, epochs and how it was exported
        out, draft_config, lambda path: to_onnx(model, path), name=name, labels=labels, crop_by_detector=by_detector,
        trained_on=run_folder.trained_on(checkpoint, tta_flip, [Run(other).name for other in ensemble]))

    public = data.load(run_folder.dataset, "PublicTest", labels, root=data_root)
    tensor = model_input(public.pixels, draft_config)
    keras_probabilities = model.predict(tensor, batch_size=256, verbose=0)
    rows = np.unique(np.linspace(0, len(public) - 1, min(PARITY_FACES, len(public))).astype(int))  # all classes
    try:
        check_parity(keras_probabilities[rows], OnnxClassifier(draft.graph, draft.config).run(tensor[rows]))
    except ExportError:
        draft.graph.unlink()  # never leave a graph that failed the check where emofer would load it
        raise
    if calibrate:
        temperature = metrics.fit_temperature(keras_probabilities, public.labels, probabilities=True)
        log.info("temperature %.4f: PublicTest NLL %.4f -> %.4f", temperature,
                 metrics.nll(keras_probabilities, public.labels, 1.0, True),
                 metrics.nll(keras_probabilities, public.labels, temperature, True))
        if min(abs(temperature - bound) for bound in metrics.TEMPERATURE_RANGE) < 1e-3:
            log.warning("temperature %.4f is at the edge of the searched range %s", temperature,
                        metrics.TEMPERATURE_RANGE)
        draft = draft.with_updates(temperature=round(temperature, 4))

    command = command or command_line(
        "training.export", [run, "--name", name, "--out", out, "--checkpoint", checkpoint,
                            *["--tta-flip"] * tta_flip, *["--calibrate"] * calibrate,
                            *[arg for other in ensemble for arg in ("--ensemble", other)]])
    config = folder.finish(draft, folder.evaluate(draft, "PublicTest", data_root), final=final, data_root=data_root,
                           report=folder.Report(report, command, run, examples))
    if final:
        log.info("exported %s to %s", name, out)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="training run folder (recipe.json, config.json, state.json, best.keras)")
    parser.add_argument("--name", required=True, help="model name = Hub repo id, e.g. emofer/fer5")
    parser.add_argument("--out", required=True, type=Path, help="model folder to write")
    parser.add_argument("--checkpoint", default="best.keras", help="checkpoint file in the run folder")
    parser.add_argument("--tta-flip", action="store_true", help="average with the mirrored face inside the graph")
    parser.add_argument("--calibrate", action="store_true", help="fit the temperature on PublicTest")
    parser.add_argument("--report", type=Path, help="report folder (default docs/models/<short name>/)")
    parser.add_argument("--data", type=Path, help="dataset archive or folder (default: ../shared/data)")
    parser.add_argument("--no-examples", action="store_true",
                        help="leave examples.png (dataset faces) out of the report")
    parser.add_argument("--framing", type=Path, default=DEFAULT_POLICIES,
                        help="framing.json whose crop_by_detector goes into config.json (default: docs/framing.json "
                             "when present)")
    parser.add_argument("--no-framing", action="store_true", help="write no crop_by_detector")
    parser.add_argument("--ensemble", action="append", default=[], type=Path, metavar="RUN_DIR",
                        help="average with this run's best.keras inside the graph (repeatable)")
    parser.add_argument("--candidate", action="store_true",
                        help="a model to choose between: PublicTest only, the test split is not read")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    config = export(args.run, args.name, args.out, args.checkpoint, args.tta_flip, args.calibrate, args.report,
                    args.data, command_line("training.export", sys.argv[1:] if argv is None else argv),
                    examples=not args.no_examples, framing=None if args.no_framing else args.framing,
                    ensemble=tuple(args.ensemble), final=not args.candidate)
    if args.candidate:
        print(f"{config.name}: candidate, PublicTest {config.metrics['PublicTest']['accuracy']:.4f}; wrote {args.out}")
        return 0
    private = config.metrics["PrivateTest"]
    print(f"{config.name}: PrivateTest accuracy {private['accuracy']:.4f} on {private['n']} faces, "
          f"PublicTest {config.metrics['PublicTest']['accuracy']:.4f}, temperature {config.temperature}; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
