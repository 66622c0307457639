"""A training run folder: the one module that reads and writes its files.

    RUN_DIR/
      recipe.json   the recipe as trained, plus keras, backend, python, machine and command
      config.json   the draft emofer ModelConfig, written before epoch one: labels, input,
                    normalize, crop, trained_on; training.export completes it (sha256, metrics)
      state.json    epoch, best_epoch, best_val_accuracy, train_seconds, stopped_early and the
                    per-epoch history (one dict of Keras logs per epoch)
      best.keras    the epoch with the best PublicTest accuracy
      last.keras    the latest epoch, with optimiser state (what a resumed run starts from)

A recipe may state its input (``"input": {"height": 48, "width": 48, "channels": 1}``),
``"normalize"`` and ``"crop"``; left out, they are emofer's defaults (48x48 grey, pixels / 255).
A folder written before config.json existed gets its draft from recipe.json, so old runs
export as they always did.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path
from typing import Any

from emofer.config import CONFIG_NAME, ModelConfig
from emofer.errors import ModelLoadError
from training import data

__all__ = ["Run", "RunError", "draft_config", "recipe_classes", "write_json", "fresh_state",
           "RECIPE_NAME", "STATE_NAME", "BEST_NAME", "LAST_NAME"]

RECIPE_NAME = "recipe.json"
STATE_NAME = "state.json"
BEST_NAME = "best.keras"
LAST_NAME = "last.keras"
#: The parts of a config.json that decide the pixels a network sees; a resumed run keeps them.
PREPROCESSING = ("labels", "input", "normalize", "crop")
#: config.json's ``trained_on`` keys in written order: the draft holds the ones known before
#: epoch one, export adds epochs, best_epoch, checkpoint, train_seconds, tta_flip, ensemble_with.
TRAINED_ON_KEYS = ("dataset", "split", "selected_on", "recipe", "network", "epochs", "best_epoch", "checkpoint",
                   "train_seconds", "machine", "keras", "backend", "soft_labels", "tta_flip", "ensemble_with",
                   "command")


class RunError(ValueError):
    """A recipe's input is not one training can make, or a resumed run's recipe changed its preprocessing."""


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (a temporary file, then a rename)."""
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def fresh_state() -> dict[str, Any]:
    """state.json of a run that has not finished an epoch."""
    return {"epoch": 0, "best_val_accuracy": -1.0, "best_epoch": 0, "history": []}


def recipe_classes(recipe: dict[str, Any]) -> tuple[str, ...]:
    """A recipe's class names: a subset name of training.data.SUBSETS or an explicit list."""
    classes = recipe["classes"]
    return data.SUBSETS[classes] if isinstance(classes, str) else data.emotion_names(classes)


def training_command(recipe: dict[str, Any]) -> str:
    """The ``python -m training.train ...`` command that produced a run (from its recipe's ``command``)."""
    import shlex

    from training.report import command_line

    argv = shlex.split(str(recipe.get("command", "")))[1:]
    return command_line("training.train", argv or ["--recipe", recipe.get("name", "?"), "--out", "RUN_DIR"])


def draft_config(recipe: dict[str, Any]) -> ModelConfig:
    """The ModelConfig a recipe trains: labels, input, normalisation and crop, ``trained_on``.

    Validated like any config.json, so a recipe with an impossible input fails before training.
    """
    raw = {"name": str(recipe.get("name", "unnamed")), "labels": list(recipe_classes(recipe))}
    raw.update({key: recipe[key] for key in ("input", "normalize", "crop") if recipe.get(key) is not None})
    try:
        config = ModelConfig.from_dict(raw, source=f"recipe {raw['name']!r}")
    except ModelLoadError as error:
        raise RunError(str(error)) from None
    if config.input.layout != "NHWC" or config.input.dtype != "float32":
        raise RunError(f"recipe {raw['name']!r}: training makes NHWC float32 inputs, got "
                       f"{config.input.layout} {config.input.dtype}")
    trained_on = {
        "dataset": recipe.get("dataset"), "split": "Training", "selected_on": "PublicTest",
        "recipe": recipe.get("name"), "network": recipe.get("network"), "machine": recipe.get("machine"),
        "keras": recipe.get("keras") or _version("keras"),
        "backend": recipe.get("backend") or os.environ.get("KERAS_BACKEND", "tensorflow"),
        "soft_labels": bool(recipe.get("soft_labels", False)), "command": training_command(recipe),
    }
    return config.with_updates(trained_on=trained_on)


class Run:
    """One run folder of ``python -m training.train``: its recipe, state, draft config and checkpoints."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def best(self) -> Path:
        """best.keras: the epoch with the best PublicTest accuracy."""
        return self.path / BEST_NAME

    @property
    def last(self) -> Path:
        """last.keras: the latest finished epoch, with optimiser state."""
        return self.path / LAST_NAME

    @property
    def recipe(self) -> dict[str, Any]:
        """recipe.json (the recipe as trained, with where and how)."""
        return self._read(RECIPE_NAME)

    @property
    def state(self) -> dict[str, Any]:
        """state.json; a fresh state when no epoch has finished yet."""
        path = self.path / STATE_NAME
        return json.loads(path.read_text()) if path.is_file() else fresh_state()

    @property
    def started(self) -> bool:
        """Whether an epoch has finished (state.json exists)."""
        return (self.path / STATE_NAME).is_file()

    @property
    def history(self) -> list[dict[str, float]]:
        """One dict of Keras logs per finished epoch (loss, accuracy, val_*, epoch, seconds)."""
        return list(self.state.get("history", []))

    @property
    def best_epoch(self) -> int:
        """The 1-based epoch saved as best.keras (0: none yet)."""
        return int(self.state.get("best_epoch", 0))

    @property
    def name(self) -> str | None:
        """The recipe's name (a soup's names its ingredients)."""
        return self.recipe.get("name")

    @property
    def dataset(self) -> str:
        """The training.data.load name of the dataset the run trained on."""
        return self.recipe["dataset"]

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names in output order, in emofer's vocabulary (old FER+ runs say "happiness")."""
        return recipe_classes(self.recipe)

    @property
    def config(self) -> ModelConfig:
        """The run's draft ModelConfig: config.json, or for an older folder, the one its recipe.json implies."""
        path = self.path / CONFIG_NAME
        return ModelConfig.load(path) if path.is_file() else draft_config(self.recipe)

    def write_recipe(self, recipe: dict[str, Any]) -> None:
        """Write recipe.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / RECIPE_NAME, recipe)

    def write_state(self, state: dict[str, Any]) -> None:
        """Write state.json."""
        write_json(self.path / STATE_NAME, state)

    def write_config(self, config: ModelConfig) -> None:
        """Write the draft config.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f"{CONFIG_NAME}.tmp"
        config.save(tmp)
        os.replace(tmp, self.path / CONFIG_NAME)

    def start(self, recipe: dict[str, Any]) -> ModelConfig:
        """Record ``recipe`` (recipe.json) and its draft config.json before an epoch is trained.

        A resumed run must keep the labels and preprocessing it started with (RunError if the
        recipe now says otherwise); its command, machine and versions are updated.
        """
        config = draft_config(recipe)
        if (self.path / RECIPE_NAME).is_file() and self.state["epoch"] > 0:
            before = self.config.to_dict()
            changed = [key for key in PREPROCESSING if before[key] != config.to_dict()[key]]
            if changed:
                raise RunError(f"{self.path} was trained with other {', '.join(changed)} than recipe "
                               f"{recipe.get('name')!r} gives ({[before[k] for k in changed]}); "
                               "train it in a new run folder")
        self.write_recipe(recipe)
        self.write_config(config)
        return config

    def trained_on(self, checkpoint: str = BEST_NAME, tta_flip: bool = False,
                   ensemble_with: list[str | None] | tuple[str | None, ...] = ()) -> dict[str, Any]:
        """The draft's ``trained_on`` completed with what the state and the export say."""
        state = self.state
        merged = {**self.config.trained_on,
                  "epochs": int(state.get("epoch", len(state.get("history", [])))),
                  "best_epoch": int(state.get("best_epoch", 0)), "checkpoint": checkpoint,
                  "train_seconds": round(float(state.get("train_seconds", 0.0)), 1),
                  "tta_flip": tta_flip, "ensemble_with": list(ensemble_with)}
        ordered = {key: merged[key] for key in TRAINED_ON_KEYS if key in merged}
        return {**ordered, **{key: value for key, value in merged.items() if key not in ordered}}

    def _read(self, name: str) -> dict[str, Any]:
        path = self.path / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; is {self.path} a run folder of python -m training.train?")
        return json.loads(path.read_text())


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
