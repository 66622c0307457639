"""Train a named recipe: ``python -m training.train --recipe fer5-baseline --out RUN_DIR``.

Resumable: every epoch writes ``last.keras`` (weights + optimiser state) and ``state.json``;
running the same command again continues from there. ``best.keras`` is the epoch with the best
PublicTest accuracy (the only split used for choosing); PrivateTest is never read here.

Before epoch one the run folder gets its draft ``config.json`` (training/runs.py): the labels,
input size, channels and normalisation the network is trained on, which every tensor here is
made from (``emofer.preprocess.model_input``) and which export completes.
"""

from __future__ import annotations

import argparse
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

from emofer.config import ModelConfig
from emofer.preprocess import GRAY_FROM_BGR, model_input
from training import data, distill, expw, mixing, nets, second_labels
from training.augment import Augment, Mix
from training.recipe import Recipe, RecipeError
from training.runs import Run, recipe_classes

log = logging.getLogger("emofer.training")
#: What a run's epochs are judged by: PublicTest accuracy (higher is better).
MONITOR = "val_accuracy"


def load_recipe(name_or_path: str) -> dict:
    """A recipe by name (training/recipes/NAME.json) or path, checked, every default filled in
    (:class:`training.recipe.Recipe`), as a dict."""
    try:
        return Recipe.load(name_or_path).to_dict()
    except RecipeError as error:
        raise SystemExit(str(error)) from None


class FaceBatches(keras.utils.PyDataset):
    """Shuffled, augmented batches of one FaceSet, made into ``config``'s model input."""

    def __init__(self, faces: data.FaceSet, config: ModelConfig, batch_size: int, augment: Augment | None,
                 seed: int, sample_weight: np.ndarray | None = None, targets: np.ndarray | None = None,
                 mix: Mix | None = None):
        super().__init__()
        self.faces, self.config, self.batch_size, self.augment, self.mix = faces, config, batch_size, augment, mix
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
        x, y = model_input(pixels, self.config), self.targets[rows]
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


class ResumedEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that a resumed run starts where it left off: its best PublicTest accuracy and
    the epochs since (from state.json), so ``patience`` counts across restarts."""

    def __init__(self, state: dict, patience: int):
        super().__init__(monitor=MONITOR, mode="max", patience=patience)
        self.state = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.state["best_epoch"]:
            self.best = self.state["best_val_accuracy"]
            self.best_epoch = self.state["best_epoch"] - 1
            self.wait = self.state["epoch"] - self.state["best_epoch"]


class RunState(keras.callbacks.Callback):
    """After the Keras checkpoints of an epoch: last.keras moved into place, the epoch appended to
    state.json's history (with best epoch, seconds, early stop), one log line."""

    def __init__(self, run: Run, state: dict, best: keras.callbacks.ModelCheckpoint, last_tmp: Path):
        super().__init__()
        self.run, self.state, self.best, self.last_tmp = run, state, best, last_tmp
        self.started = time.time()

    def on_train_begin(self, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        logs["epoch"] = epoch + 1
        logs["seconds"] = time.time() - self.started
        self.started = time.time()
        self.state["history"].append(logs)
        self.state["epoch"] = epoch + 1
        self.state["train_seconds"] = self.state.get("train_seconds", 0.0) + logs["seconds"]
        if self.best.best is not None and float(self.best.best) > self.state["best_val_accuracy"]:
            self.state.update(best_val_accuracy=float(self.best.best), best_epoch=epoch + 1)  # best.keras saved it
        os.replace(self.last_tmp, self.run.last)  # a whole file or the previous one, never half of one
        if self.model.stop_training:
            log.info("early stop: no PublicTest improvement for %d epochs", epoch + 1 - self.state["best_epoch"])
            self.state["stopped_early"] = True
        self.run.write_state(self.state)
        log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in logs.items()})


def checkpoints(run: Run, state: dict, patience: int) -> list[keras.callbacks.Callback]:
    """The callbacks of one fit: best.keras (ModelCheckpoint on PublicTest accuracy, seeded with the
    run's best so far), last.keras every epoch (ModelCheckpoint to a temporary name that RunState
    renames), early stopping after ``patience`` epochs without improvement, and state.json."""
    best = keras.callbacks.ModelCheckpoint(run.best, monitor=MONITOR, mode="max", save_best_only=True,
                                           initial_value_threshold=state["best_val_accuracy"])
    last_tmp = run.path / f"{run.last.name}.tmp.keras"
    last = keras.callbacks.ModelCheckpoint(last_tmp)
    return [best, last, ResumedEarlyStopping(state, patience), RunState(run, state, best, last_tmp)]


def transfer_weights(checkpoint: Path, model: keras.Model) -> None:
    """Start ``model`` from a trained checkpoint of the same network: every layer is copied,
    the classifier head too when its class count matches (else it starts fresh). A grey network
    starts a colour one: its first convolution's kernel is spread over B, G and R by
    ``emofer.preprocess.GRAY_FROM_BGR``, so the colour network begins as the grey one on every face."""
    source = nets.load(checkpoint)
    if len(source.layers) != len(model.layers):
        raise SystemExit(f"{checkpoint} is not the same network as the recipe's ({len(source.layers)} vs "
                         f"{len(model.layers)} layers)")
    copied = 0
    for theirs, ours in zip(source.layers, model.layers):
        weights = theirs.get_weights()
        shapes = [w.shape for w in ours.get_weights()]
        if weights and weights[0].ndim == 4 and weights[0].shape[2] == 1 and shapes[0][2] == 3 \
                and weights[0].shape[:2] + weights[0].shape[3:] == shapes[0][:2] + shapes[0][3:]:
            weights = [weights[0] * GRAY_FROM_BGR[None, None, :, None], *weights[1:]]
            log.info("%s: grey kernel spread over B, G, R", ours.name)
        if [w.shape for w in weights] != shapes:
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


def train(recipe: Recipe | dict, run: Path, threads: int | None = None) -> Path:
    """Train (or resume) ``recipe`` in folder ``run``; return the path of best.keras."""
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(recipe)
    folder = Run(run)
    state = folder.state
    if state.get("stopped_early") or state["epoch"] >= recipe.epochs:
        log.info("run %s already finished at epoch %d", run, state["epoch"])
        return folder.best
    seed = recipe.seed
    classes = recipe.class_names
    config = folder.start({**recipe.to_dict(), "classes": list(classes), "keras": keras.__version__,
                           "backend": keras.backend.backend(), "python": platform.python_version(),
                           "machine": machine(), "command": " ".join(sys.argv)})
    train_set = limit(data.load(recipe.dataset, "Training", classes, soft=recipe.soft_labels), recipe.limit_train, seed)
    val_set = limit(data.load(recipe.dataset, "PublicTest", classes), recipe.limit_val, seed)
    log.info("train %d faces %s, PublicTest %d faces; input %s", len(train_set), train_set.counts(), len(val_set),
             vars(config.input))

    keras.utils.set_random_seed(seed + state["epoch"])
    aug = Augment(**recipe.augment) if recipe.augment is not None else None
    weights = class_weights(train_set, recipe.class_weight_power) if recipe.class_weight_power else None
    targets = None
    if recipe.distill is not None:
        options = dict(recipe.distill)
        targets = distill.targets(run, options.pop("teachers", []), train_set, **options)
    if recipe.second_labels is not None:
        base = targets if targets is not None else train_set.targets().astype(np.float32)
        targets = second_labels.targets(train_set, base, **recipe.second_labels)
    if config.input.size != data.FER_SIZE:  # a larger input: the 48x48 faces enlarged once, after matching them
        train_set, val_set = train_set.resized(config.input.size), val_set.resized(config.input.size)
    if config.input.channels != 1:  # a colour network: the grey faces as BGR, beside colour web faces
        channels = config.input.channels
        train_set, val_set = train_set.with_channels(channels), val_set.with_channels(channels)
    val_weights, web_rows = None, None
    if recipe.web is not None:
        train_set, targets, weights, val_set, val_weights, web_rows = add_web(
            recipe.web, train_set, targets, weights, val_set, config)
    mix = Mix(**recipe.mix) if recipe.mix is not None else None
    batches = FaceBatches(train_set, config, recipe.batch_size, aug, seed, weights, targets, mix)
    batches.set_epoch(state["epoch"])
    x_val = model_input(val_set.pixels, config)
    y_val = val_set.targets().astype(np.float32)
    validation = (x_val, y_val) if val_weights is None else (x_val, y_val, val_weights)

    if folder.last.exists():
        log.info("resuming %s after epoch %d", run, state["epoch"])
        model = nets.load(folder.last)
    else:
        spec = config.input
        model = nets.build(recipe.network, (spec.height, spec.width, spec.channels), len(classes),
                           **recipe.network_options)
        if recipe.init_from:
            transfer_weights(Path(recipe.init_from), model)
        model.compile(optimizer=optimizer(recipe, len(batches)),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                      metrics=["accuracy"])
    log.info("network %s: %d parameters", recipe.network, model.count_params())
    parts = [] if web_rows is None else [ValidationParts(x_val, val_set.labels, web_rows,
                                                         mixing.Web.from_recipe(recipe.web).val_weight)]
    model.fit(batches, validation_data=validation, epochs=recipe.epochs, initial_epoch=state["epoch"],
              callbacks=parts + checkpoints(folder, state, recipe.patience), verbose=2)
    return folder.best


def add_web(block: dict, train_set: data.FaceSet, targets: np.ndarray | None, weights: np.ndarray | None,
            val_set: data.FaceSet, config: ModelConfig):
    """Mix expw-train into the training and validation sets as the recipe's ``web`` block says
    (:mod:`training.mixing`); the faces are framed by YuNet with the crop policy the model will carry."""
    from training.framing import DEFAULT_POLICIES, load_policies

    options = mixing.Web.from_recipe(block)
    policy = load_policies(DEFAULT_POLICIES)["yunet"]
    size, channels = config.input.size, config.input.channels
    web_train, framing = expw.load("Training", train_set.classes, policy, size, channels=channels)
    web_train = options.kept(web_train)
    web_val, val_framing = expw.load("PublicTest", train_set.classes, policy, size, channels=channels)
    log.info("expw-train: %d training faces %s (YuNet framed %d, stored box %d), %d validation faces "
             "(stored box %d); keep %.3g, share %.2f -> %d repeats", len(web_train), web_train.counts(), framing.yunet,
             framing.fallback, len(web_val), val_framing.fallback, options.keep, options.share,
             options.repeats(len(train_set), len(web_train)))
    base = train_set.targets().astype(np.float32) if targets is None else targets
    mixed, mixed_targets, mixed_weights = mixing.combine(train_set, base, weights, web_train, options,
                                                         expw.EXPW_CLASSES)
    val, val_weights, web_rows = mixing.validation(val_set, web_val, options)
    return mixed, mixed_targets, mixed_weights, val, val_weights, web_rows


class ValidationParts(keras.callbacks.Callback):
    """The accuracy of each validation part (the main split and expw-train's) per epoch, and
    ``val_accuracy`` as the recipe's ``web.val_weight`` mixes them.

    Keras's own ``val_accuracy`` ignores the validation sample weights (``metrics`` are not
    weighted; only ``weighted_metrics`` are): it is the accuracy over the pooled faces, where the
    main split has about nine faces in ten. It is kept as ``val_pooled_accuracy``; this callback
    runs before the checkpoints, so best.keras and early stopping follow the weighted number.
    """

    def __init__(self, x: np.ndarray, labels: np.ndarray, web_rows: np.ndarray, web_weight: float):
        super().__init__()
        self.x, self.labels, self.web_rows, self.web_weight = x, labels, web_rows, web_weight

    def on_epoch_end(self, epoch, logs=None):
        right = self.model.predict(self.x, batch_size=256, verbose=0).argmax(1) == self.labels
        if logs is not None:
            main, web = float(right[~self.web_rows].mean()), float(right[self.web_rows].mean())
            logs["val_main_accuracy"], logs["val_web_accuracy"] = main, web
            if MONITOR in logs:
                logs["val_pooled_accuracy"] = logs[MONITOR]
            logs[MONITOR] = (1.0 - self.web_weight) * main + self.web_weight * web


def optimizer(recipe: Recipe, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """AdamW on a linear warm-up to ``lr`` over ``warmup_epochs``, then cosine decay to 1% of it.

    A run no longer than its warm-up keeps one decay step (CosineDecay needs at least one).
    """
    warmup_steps = steps_per_epoch * recipe.warmup_epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, steps_per_epoch * recipe.epochs - warmup_steps),
        warmup_target=recipe.lr, warmup_steps=warmup_steps, alpha=0.01)
    return keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True, help="recipe name in training/recipes or a JSON path")
    parser.add_argument("--out", required=True, type=Path, help="run folder (keep it outside the checkout)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epoch count")
    parser.add_argument("--limit-train", type=int, help="train on this many faces (smoke runs)")
    parser.add_argument("--limit-val", type=int, help="validate on this many faces (smoke runs)")
    parser.add_argument("--init-from", help="start from this .keras checkpoint of the same network (the head too when the classes match)")
    parser.add_argument("--teacher", action="append", metavar="RUN_DIR|MODEL",
                        help="distil from this finished run or emofer model (a bundled name such as emofer/fer5, "
                             "or an exported folder such as models/ferplus8); repeat for an ensemble; the recipe needs a distill block")
    parser.add_argument("--backend", choices=BACKENDS,
                        help=f"Keras backend (default: $KERAS_BACKEND, else {DEFAULT_BACKEND}); runs in a new process "
                             "when it differs from this one's")
    args = parser.parse_args(argv)
    if args.backend and args.backend != keras.backend.backend():  # fixed at import: start again under it
        env = {**os.environ, "KERAS_BACKEND": args.backend}
        return subprocess.run([sys.executable, "-m", "training.train", *(sys.argv[1:] if argv is None else argv)],
                              env=env).returncode
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    try:
        recipe = Recipe.load(args.recipe)
        recipe = recipe.with_updates(**{key: getattr(args, key) for key in ("epochs", "limit_train", "limit_val",
                                                                           "init_from") if getattr(args, key) is not None})
    except RecipeError as error:
        raise SystemExit(str(error)) from None
    if args.teacher:
        if recipe.distill is None:
            raise SystemExit(f"recipe {recipe.name!r} has no distill block; --teacher needs one")
        recipe = recipe.with_updates(distill={**recipe.distill, "teachers": [distill.teacher_id(t) for t in args.teacher]})
    elif recipe.distill is not None and not recipe.distill.get("teachers"):
        raise SystemExit(f"recipe {recipe.name!r} distils: name its teachers with --teacher RUN_DIR or MODEL")
    best = train(recipe, args.out)
    log.info("best checkpoint: %s", best)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
