"""Train a named recipe: ``python -m training.train --recipe fer5-baseline --out RUN_DIR``.

Resumable: every epoch writes ``last.keras`` (weights + optimiser state) and ``state.json``;
running the same command again continues from there. ``best.keras`` is the epoch with the best
PublicTest accuracy (the only split used for choosing); PrivateTest is never read here.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

#: The Keras backend unless KERAS_BACKEND (or --backend) names another: "torch" trains on a GPU
#: machine; the run folders and .keras files are the same on either.
DEFAULT_BACKEND = "tensorflow"
BACKENDS = ("tensorflow", "torch", "jax")
os.environ.setdefault("KERAS_BACKEND", DEFAULT_BACKEND)

import keras
import numpy as np

from emofer.preprocess import Normalization, normalize
from training import data, distill, nets
from training.augment import Augment, Mix

log = logging.getLogger("emofer.training")
RECIPES = Path(__file__).with_name("recipes")
NORM = Normalization()  # the normalisation written into every exported config.json


def load_recipe(name_or_path: str) -> dict:
    """A recipe by name (training/recipes/NAME.json) or path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPES / f"{name_or_path}.json"
    if not path.exists():
        known = sorted(p.stem for p in RECIPES.glob("*.json"))
        raise SystemExit(f"no recipe {name_or_path!r}; known recipes: {known}")
    return json.loads(path.read_text())


def recipe_classes(recipe: dict) -> tuple[str, ...]:
    """A recipe's class names: a subset name of training.data.SUBSETS or an explicit list."""
    classes = recipe["classes"]
    return data.SUBSETS[classes] if isinstance(classes, str) else data.emotion_names(classes)


class FaceBatches(keras.utils.PyDataset):
    """Shuffled, augmented, normalised batches of one FaceSet."""

    def __init__(self, faces: data.FaceSet, batch_size: int, augment: Augment | None, seed: int,
                 sample_weight: np.ndarray | None = None, targets: np.ndarray | None = None,
                 mix: Mix | None = None):
        super().__init__()
        self.faces, self.batch_size, self.augment, self.mix = faces, batch_size, augment, mix
        self.targets = (faces.targets() if targets is None else targets).astype(np.float32)
        self.sample_weight = sample_weight
        self.seed, self.epoch = seed, 0
        self.order = np.arange(len(faces))
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.faces) / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.faces))

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        pixels = self.faces.pixels[rows]
        if self.augment is not None:
            pixels = self.augment(pixels, np.random.default_rng([self.seed, self.epoch, index]))
        x, y = normalize(pixels, NORM)[..., None], self.targets[rows]
        weights = None if self.sample_weight is None else self.sample_weight[rows]
        if self.mix is not None:
            x, y, weights = self.mix(x, y, weights, np.random.default_rng([self.seed, self.epoch, index, 1]))
        return (x, y) if weights is None else (x, y, weights)


def class_weights(faces: data.FaceSet, power: float) -> np.ndarray:
    """Per-face weights (n_max / n_class) ** power, normalised to mean 1 over the set."""
    counts = np.bincount(faces.labels, minlength=len(faces.classes)).astype(np.float64)
    per_class = (counts.max() / np.maximum(counts, 1)) ** power
    weights = per_class[faces.labels]
    return (weights / weights.mean()).astype(np.float32)


def limit(faces: data.FaceSet, n: int | None, seed: int) -> data.FaceSet:
    """A stratified-ish random sample of ``n`` faces (for smoke runs)."""
    if not n or n >= len(faces):
        return faces
    return faces.take(np.sort(np.random.default_rng(seed).permutation(len(faces))[:n]))


class Checkpoint(keras.callbacks.Callback):
    """last.keras + state.json every epoch, best.keras on a new best PublicTest accuracy,
    history.json appended, early stopping after ``patience`` epochs without improvement."""

    def __init__(self, run: Path, state: dict, patience: int):
        super().__init__()
        self.run, self.state, self.patience = run, state, patience
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        logs["epoch"] = epoch + 1
        logs["seconds"] = time.time() - self.started
        self.started = time.time()
        self.state["history"].append(logs)
        self.state["epoch"] = epoch + 1
        self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + logs["seconds"]
        if logs.get("val_accuracy", -1) > self.state["best_val_accuracy"]:
            self.state.update(best_val_accuracy=logs["val_accuracy"], best_epoch=epoch + 1)
            self.model.save(self.run / "best.keras")
        self.model.save(self.run / "last.keras.tmp.keras")
        os.replace(self.run / "last.keras.tmp.keras", self.run / "last.keras")
        write_json(self.run / "state.json", self.state)
        log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in logs.items()})
        if epoch + 1 - self.state["best_epoch"] >= self.patience:
            log.info("early stop: no PublicTest improvement for %d epochs", self.patience)
            self.state["stopped_early"] = True
            write_json(self.run / "state.json", self.state)
            self.model.stop_training = True


def transfer_weights(checkpoint: Path, model: keras.Model) -> None:
    """Start ``model`` from a trained checkpoint of the same network: every layer is copied,
    the classifier head too when its class count matches (else it starts fresh)."""
    source = nets.load(checkpoint)
    if len(source.layers) != len(model.layers):
        raise SystemExit(f"{checkpoint} is not the same network as the recipe's ({len(source.layers)} vs "
                         f"{len(model.layers)} layers)")
    copied = 0
    for theirs, ours in zip(source.layers, model.layers):
        weights = theirs.get_weights()
        if [w.shape for w in weights] != [w.shape for w in ours.get_weights()]:
            if ours is model.layers[-1]:
                log.info("classifier head left fresh (%s -> %s classes)", weights[-1].shape, ours.get_weights()[-1].shape)
                continue
            raise SystemExit(f"{checkpoint}: layer {theirs.name} does not fit {ours.name}")
        ours.set_weights(weights)
        copied += bool(weights)
    log.info("initialised %d layers from %s", copied, checkpoint)


def machine() -> str:
    """This machine in a few words for recipe.json: processor, cores and the GPU Keras trains on, if any."""
    words = f"{platform.machine()} {os.cpu_count()} cpus"
    if keras.backend.backend() == "torch":
        import torch
        if torch.cuda.is_available():
            words += f", {torch.cuda.get_device_name(0)}"
    return words


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (a temporary file, then a rename)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def train(recipe: dict, run: Path, threads: int | None = None) -> Path:
    """Train (or resume) ``recipe`` in folder ``run``; return the path of best.keras."""
    run.mkdir(parents=True, exist_ok=True)
    seed = int(recipe.get("seed", 1337))
    classes = recipe_classes(recipe)
    soft = bool(recipe.get("soft_labels", False))
    train_set = limit(data.load(recipe["dataset"], "Training", classes, soft=soft), recipe.get("limit_train"), seed)
    val_set = limit(data.load(recipe["dataset"], "PublicTest", classes), recipe.get("limit_val"), seed)
    log.info("train %d faces %s, PublicTest %d faces", len(train_set), train_set.counts(), len(val_set))

    state_path = run / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {
        "epoch": 0, "best_val_accuracy": -1.0, "best_epoch": 0, "history": []}
    if state.get("stopped_early") or state["epoch"] >= recipe["epochs"]:
        log.info("run %s already finished at epoch %d", run, state["epoch"])
        return run / "best.keras"

    recipe_record = {**recipe, "classes": list(classes), "keras": keras.__version__,
                     "backend": keras.backend.backend(), "python": platform.python_version(),
                     "machine": machine(), "command": " ".join(sys.argv)}
    write_json(run / "recipe.json", recipe_record)

    keras.utils.set_random_seed(seed + state["epoch"])
    batch = int(recipe.get("batch_size", 64))
    aug = Augment(**recipe.get("augment", {})) if recipe.get("augment") is not None else None
    weights = class_weights(train_set, float(recipe.get("class_weight_power", 0.0))) \
        if recipe.get("class_weight_power") else None
    targets = None
    if recipe.get("distill") is not None:
        options = dict(recipe["distill"])
        targets = distill.targets(run, [Path(t) for t in options.pop("teachers", [])], train_set, NORM, **options)
    mix = Mix(**recipe["mix"]) if recipe.get("mix") is not None else None
    batches = FaceBatches(train_set, batch, aug, seed, weights, targets, mix)
    batches.set_epoch(state["epoch"])
    x_val = normalize(val_set.pixels, NORM)[..., None]
    y_val = val_set.targets().astype(np.float32)

    if (run / "last.keras").exists():
        log.info("resuming %s after epoch %d", run, state["epoch"])
        model = nets.load(run / "last.keras")
    else:
        model = nets.build(recipe["network"], (48, 48, 1), len(classes), **recipe.get("network_options", {}))
        if recipe.get("init_from"):
            transfer_weights(Path(recipe["init_from"]), model)
        steps = len(batches) * recipe["epochs"]
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=steps - len(batches) * recipe.get("warmup_epochs", 1),
            warmup_target=recipe.get("lr", 2e-3), warmup_steps=len(batches) * recipe.get("warmup_epochs", 1),
            alpha=0.01)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=recipe.get("weight_decay", 1e-4))
        model.compile(optimizer=optimizer,
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.get("label_smoothing", 0.0)),
                      metrics=["accuracy"])
    log.info("network %s: %d parameters", recipe["network"], model.count_params())
    model.fit(batches, validation_data=(x_val, y_val), epochs=recipe["epochs"], initial_epoch=state["epoch"],
              callbacks=[Checkpoint(run, state, recipe.get("patience", 10))], verbose=2)
    return run / "best.keras"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, help="recipe name in training/recipes or a JSON path")
    parser.add_argument("--out", required=True, type=Path, help="run folder (keep it outside the checkout)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    parser.add_argument("--limit-train", type=int, help="train on this many faces (smoke runs)")
    parser.add_argument("--limit-val", type=int, help="validate on this many faces (smoke runs)")
    parser.add_argument("--init-from", help="start from this .keras checkpoint of the same network (the head too when the classes match)")
    parser.add_argument("--teacher", action="append", type=Path, metavar="RUN_DIR",
                        help="distil from this finished run (repeat for an ensemble); the recipe needs a distill block")
    parser.add_argument("--backend", choices=BACKENDS,
                        help=f"Keras backend (default: $KERAS_BACKEND, else {DEFAULT_BACKEND}); runs in a new process "
                             "when it differs from this one's")
    args = parser.parse_args(argv)
    if args.backend and args.backend != keras.backend.backend():  # fixed at import: start again under it
        env = {**os.environ, "KERAS_BACKEND": args.backend}
        return subprocess.run([sys.executable, "-m", "training.train", *(sys.argv[1:] if argv is None else argv)],
                              env=env).returncode
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    recipe = load_recipe(args.recipe)
    recipe["name"] = recipe.get("name", Path(args.recipe).stem)
    for key in ("epochs", "limit_train", "limit_val", "init_from"):
        if getattr(args, key) is not None:
            recipe[key] = getattr(args, key)
    if args.teacher:
        if recipe.get("distill") is None:
            raise SystemExit(f"recipe {recipe['name']!r} has no distill block; --teacher needs one")
        recipe["distill"] = {**recipe["distill"], "teachers": [str(t.resolve()) for t in args.teacher]}
    elif recipe.get("distill") is not None and not recipe["distill"].get("teachers"):
        raise SystemExit(f"recipe {recipe['name']!r} distils: name its teachers with --teacher RUN_DIR")
    best = train(recipe, args.out)
    log.info("best checkpoint: %s", best)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
