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
import json
import logging
import os
import shlex
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

from emofer.config import CONFIG_NAME, MODEL_NAME, InputSpec, ModelConfig
from emofer.model import OnnxClassifier, sha256_of
from emofer.preprocess import CropPolicy, to_tensor
from training import data, evaluate, metrics, nets
from training.framing import DEFAULT_POLICIES, load_policies
from training.train import NORM

log = logging.getLogger("emofer.training")

CARD_NAME = "README.md"
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
    """A model whose output is the mean probability of the face and its horizontal mirror."""
    inputs = keras.Input(model.input_shape[1:], name=INPUT_NAME)
    mirrored = keras.ops.flip(inputs, axis=2)  # NHWC: axis 2 is the width
    outputs = keras.layers.Average(name=OUTPUT_NAME)([model(inputs), model(mirrored)])
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
    return load_checkpoint(run / checkpoint), nets.run_classes(run)


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


def training_command(recipe: dict[str, Any]) -> str:
    """The ``python -m training.train ...`` command that produced a run (from its recipe.json)."""
    argv = shlex.split(str(recipe.get("command", "")))[1:]
    return evaluate.command_line("training.train", argv or ["--recipe", recipe.get("name", "?"), "--out", "RUN_DIR"])


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
    recipe = json.loads((run / "recipe.json").read_text())
    state = json.loads((run / "state.json").read_text())
    labels = nets.run_classes(run)
    model = load_checkpoint(run / checkpoint)
    if ensemble:
        model = with_members(model, labels, [load_member(Path(other)) for other in ensemble])
    if tta_flip:
        model = with_flip_tta(model)
    onnx_path = out / MODEL_NAME
    to_onnx(model, onnx_path)

    spec = InputSpec(*model.input_shape[1:3], model.input_shape[3])
    public = data.load(recipe["dataset"], "PublicTest", labels, root=data_root)
    tensor = to_tensor(public.pixels, spec.size, spec.channels, NORM)
    keras_probabilities = model.predict(tensor, batch_size=256, verbose=0)
    config = ModelConfig(
        name=name, labels=labels, input=spec, normalize=NORM, crop=CropPolicy(), temperature=1.0,
        model_sha256=sha256_of(onnx_path), crop_by_detector=by_detector,
        trained_on={
            "dataset": recipe["dataset"], "split": "Training", "selected_on": "PublicTest",
            "recipe": recipe.get("name"), "network": recipe.get("network"),
            "epochs": int(state.get("epoch", len(state.get("history", [])))),
            "best_epoch": int(state.get("best_epoch", 0)), "checkpoint": checkpoint,
            "train_seconds": round(float(state.get("train_seconds", 0.0)), 1),
            "machine": recipe.get("machine"), "keras": recipe.get("keras", keras.__version__),
            "backend": recipe.get("backend", keras.backend.backend()),
            "soft_labels": bool(recipe.get("soft_labels", False)), "tta_flip": tta_flip,
            "ensemble_with": [json.loads((Path(o) / "recipe.json").read_text()).get("name") for o in ensemble],
            "command": training_command(recipe),
        },
    )
    rows = np.unique(np.linspace(0, len(public) - 1, min(PARITY_FACES, len(public))).astype(int))  # all classes
    try:
        check_parity(keras_probabilities[rows], OnnxClassifier(onnx_path, config).run(tensor[rows]))
    except ExportError:
        onnx_path.unlink()  # never leave a graph that failed the check where emofer would load it
        raise
    if calibrate:
        temperature = metrics.fit_temperature(keras_probabilities, public.labels, probabilities=True)
        log.info("temperature %.4f: PublicTest NLL %.4f -> %.4f", temperature,
                 metrics.nll(keras_probabilities, public.labels, 1.0, True),
                 metrics.nll(keras_probabilities, public.labels, temperature, True))
        if min(abs(temperature - bound) for bound in metrics.TEMPERATURE_RANGE) < 1e-3:
            log.warning("temperature %.4f is at the edge of the searched range %s", temperature,
                        metrics.TEMPERATURE_RANGE)
        config = config.with_updates(temperature=round(temperature, 4))
    config.save(out / CONFIG_NAME)

    public_eval = evaluate.evaluate(out, "PublicTest", data_root)
    if not final:
        config = config.with_updates(metrics={"PublicTest": {"accuracy": round(public_eval.scores.accuracy, 4),
                                                             "n": public_eval.scores.n}})
        config.save(out / CONFIG_NAME)
        log.info("candidate %s written to %s (no test-split evaluation)", name, out)
        return config
    private_eval = evaluate.evaluate(out, "PrivateTest", data_root)
    command = command or evaluate.command_line(
        "training.export", [run, "--name", name, "--out", out, "--checkpoint", checkpoint,
                            *["--tta-flip"] * tta_flip, *["--calibrate"] * calibrate,
                            *[arg for other in ensemble for arg in ("--ensemble", other)]])
    report_dir = Path(report) if report else evaluate.default_out(config)
    evaluate.write_report(private_eval, report_dir, run, command, examples)
    config = config.with_updates(metrics={"PrivateTest": private_eval.headline(),
                                          "PublicTest": {"accuracy": round(public_eval.scores.accuracy, 4),
                                                         "n": public_eval.scores.n}})
    config.save(out / CONFIG_NAME)
    card = model_card(config, private_eval)
    (out / CARD_NAME).write_text(card, encoding="utf-8")
    (report_dir / "card.md").write_text(card.split("---\n", 2)[-1].lstrip(), encoding="utf-8")  # docs copy
    log.info("exported %s to %s", name, out)
    return config


# --- the model card ---

def model_card(config: ModelConfig, evaluation: evaluate.Evaluation) -> str:
    """README.md for the Hub: front matter, metrics, intended use, limitations, data licences."""
    trained, s = config.trained_on, evaluation.scores
    private, public = config.metrics["PrivateTest"], config.metrics["PublicTest"]
    short = config.name.rsplit("/", 1)[-1]
    ferplus = evaluate.dataset_of(config) == "ferplus"
    per_class = "\n".join(f"| {c.label} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | {c.support} |"
                          for c in s.per_class)
    members = list(trained.get("ensemble_with") or [])
    flags = ("".join(f" --ensemble runs/{m}" for m in members) + " --tta-flip" * bool(trained.get("tta_flip"))
             + " --calibrate" * (config.temperature != 1.0))
    network = f"`{trained.get('network', '?')}`"
    what = (f"A small convolutional network ({network})" if not members else
            f"{len(members) + 1} small convolutional networks averaged in one graph ({network} from run "
            f"`{trained.get('recipe', '?')}`, with {', '.join(f'`{m}`' for m in members)})")
    about_graph = ("\nThe graph averages the probabilities of the face and of its mirror image (flip "
           "test-time augmentation).\n") if trained.get("tta_flip") else ""
    quant = trained.get("quantization")
    if quant:
        about_graph += (f"\nQuantised to int8 from `{quant['from']}` ({quant['method']}; activation ranges "
                f"calibrated on {quant['calibration']}): a smaller file and faster on CPUs (sizes and per-face "
                f"times: docs/models.md in the emofer repository). The float model scores "
                f"{config.metrics.get('float_PrivateTest')} on PrivateTest and {config.metrics.get('float_PublicTest')} "
                f"on PublicTest.\n")
    export_line = (f"python -m training.quantize src/emofer/models/{quant['from'].rsplit('/', 1)[-1]} "
                   f"--out src/emofer/models/{short}" if quant else
                   f"python -m training.export RUN_DIR --name {config.name} --out src/emofer/models/{short}{flags}")
    ferplus_yaml = "\n  - ferplus" if ferplus else ""
    ferplus_licence = ("- FER+ (Barsoum et al., 2016): FER2013 relabelled by 10 annotators per face; the labels\n"
                       "  are released by Microsoft under the MIT licence.\n") if ferplus else ""
    return f"""---
library_name: emofer
license: mit
pipeline_tag: image-classification
tags:
  - emotion-recognition
  - facial-expression-recognition
  - onnx
  - {evaluate.dataset_of(config)}
datasets:
  - fer2013{ferplus_yaml}
metrics:
  - accuracy
  - f1
---

# {config.name}

{what} that classif{'y' if members else 'ies'} a cropped, grey
48x48 face into {len(config.labels)} facial expressions: {", ".join(config.labels)}. It is an
emofer model: `model.onnx` runs on ONNX Runtime, and `config.json` carries the labels, input
size, normalisation, crop policy and temperature.
{about_graph}
## How to use

```python
from emofer import EmotionRecognizer

recognizer = EmotionRecognizer.from_pretrained("{config.name}")
faces = recognizer.predict("photo.jpg")          # detect faces, then classify each one
probabilities = recognizer.classify(face_crops)  # or classify crops you already have
```

## Metrics

Trained on {"FER+" if ferplus else "FER2013"} Training, checkpoint chosen on PublicTest, reported
once on PrivateTest (the standard protocol), through `EmotionRecognizer.classify` on the
dataset's own 48x48 faces.

| split | faces | accuracy | macro F1 | weighted F1 | ECE |
|---|---:|---:|---:|---:|---:|
| PrivateTest | {private["n"]} | {private["accuracy"]:.4f} | {private["macro_f1"]:.4f} | {private["weighted_f1"]:.4f} | {private["ece"]:.4f} |
| PublicTest (model selection) | {public["n"]} | {public["accuracy"]:.4f} | | | |

| class | precision | recall | F1 | support |
|---|---:|---:|---:|---:|
{per_class}

Confusion matrix on PrivateTest (rows: true, columns: predicted):

{evaluate.confusion_table(s)}

Temperature {config.temperature:.4f}: emofer serves `softmax(log(p) / T)` of the network's
probabilities `p` (1.0 leaves them as they are). The full report with figures is
`docs/models/{short}/report.md` in the emofer repository.

## Intended use

Research, teaching and prototyping on facial *expression* recognition: labelling the visible
expression of a clearly visible, roughly frontal face, and aggregate analyses where a single
error harms no one (studying a dataset, demonstrating a pipeline).

## Out-of-scope uses

- Inferring a person's internal emotional state, intentions, personality, honesty or mental
  health. A facial expression is not an emotion; the model only labels what a face looks like.
- Any decision about people: hiring, education or exam proctoring, policing, border control,
  credit, insurance, medical diagnosis, or surveillance and tracking of individuals.
- Use on people who have not agreed to it, or where the law restricts emotion recognition
  (the EU AI Act, for one, bans it in workplaces and schools).

## Limitations

- FER2013 was gathered by web image search: its faces are largely posed, skewed towards young,
  light-skinned adults, and its labels are noisy (human agreement is about 65%). Accuracy may
  differ between demographic groups; it has not been measured per group.
- The input is a 48x48 grey crop: colour and fine detail are lost; profile views, occlusion,
  harsh lighting and small faces degrade the results.
- Posed expressions are easier than spontaneous ones: expect lower accuracy on everyday video.
- The classes are imbalanced (PrivateTest faces: {", ".join(f"{c.label} {c.support}" for c in s.per_class)});
  the per-class table shows where the model is weak.
- The figures above use the dataset's own crops; a face detector's crops may score lower.

## Training data and licences

- FER2013 (Goodfellow et al., "Challenges in Representation Learning", ICML 2013 workshop
  challenge): 35,887 grey 48x48 faces, distributed for research use. Check its terms before
  any commercial use of models trained on it.
{ferplus_licence}- These weights are released under the MIT licence; the data's own terms still apply to it.

## Training

- Recipe `{trained.get("recipe")}` (`training/recipes/` in the emofer repository), Keras
  {trained.get("keras")} with the {trained.get("backend")} backend.
- Command: `{trained.get("command")}`
- Export: `{export_line}`
- {trained.get("epochs")} epochs, best epoch {trained.get("best_epoch")} on PublicTest,
  {_duration(float(trained.get("train_seconds", 0.0)))} of training on {trained.get("machine")}.
- model.onnx sha256: `{config.model_sha256}`
"""


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="training run folder (recipe.json, state.json, best.keras)")
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
                    args.data, evaluate.command_line("training.export", sys.argv[1:] if argv is None else argv),
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
