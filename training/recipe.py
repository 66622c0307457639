"""A training recipe: the one schema of ``training/recipes/*.json``, its defaults and its checks.

    recipe = Recipe.load("webmix8")            # by name, or a path to a JSON file
    recipe.seed, recipe.epochs, recipe.web     # every key, its default filled in once, here
    recipe.to_dict()                            # what a run folder's recipe.json records

Unknown keys are refused with the known ones listed (a typo fails at load, not an hour into a
background run); each block is checked by the class that uses it (``Augment``, ``Mix``,
``mixing.Web``) or here (``distill``, ``second_labels``). ``train``, ``device`` and ``runs``
read recipes through this class; ``tests/training/test_recipes.py`` loads every file with it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from training import data

RECIPES = Path(__file__).with_name("recipes")
DISTILL_KEYS = {"alpha", "temperature", "flip", "teachers"}
SECOND_LABEL_KEYS = {"dataset", "classes", "weight", "max_distance"}


class RecipeError(ValueError):
    """A recipe file that does not exist, does not parse, or names a key or value training cannot use."""


@dataclass(frozen=True)
class Recipe:
    """One training recipe with every default filled in (see the module docstring)."""

    name: str
    dataset: str
    classes: str | tuple[str, ...]
    network: str
    epochs: int
    description: str = ""
    network_options: dict[str, Any] = field(default_factory=dict)
    soft_labels: bool = False
    warmup_epochs: int = 1
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    class_weight_power: float = 0.0
    augment: dict[str, Any] | None = None
    mix: dict[str, Any] | None = None
    distill: dict[str, Any] | None = None
    second_labels: dict[str, Any] | None = None
    web: dict[str, Any] | None = None
    patience: int = 10
    seed: int = 1337
    limit_train: int | None = None
    limit_val: int | None = None
    init_from: str | None = None
    input: dict[str, Any] | None = None
    normalize: dict[str, Any] | None = None
    crop: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.dataset not in data.ARCHIVES:
            raise RecipeError(f"recipe {self.name!r}: dataset {self.dataset!r} is not one of {sorted(data.ARCHIVES)}")
        if isinstance(self.classes, str) and self.classes not in data.SUBSETS:
            raise RecipeError(f"recipe {self.name!r}: classes {self.classes!r} is not one of {sorted(data.SUBSETS)} "
                              "or a list of emotions")
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise RecipeError(f"recipe {self.name!r}: {name} must be a positive whole number, got {value!r}")
        if not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise RecipeError(f"recipe {self.name!r}: warmup_epochs must be a whole number >= 0, got {self.warmup_epochs!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise RecipeError(f"recipe {self.name!r}: label_smoothing must be in [0, 1), got {self.label_smoothing}")
        self._check_blocks()

    def _check_blocks(self) -> None:
        from training.augment import Augment, Mix
        from training.mixing import Web

        try:
            if self.augment is not None:
                Augment(**self.augment)
            if self.mix is not None:
                Mix(**self.mix)
            if self.web is not None:
                Web.from_recipe(self.web)
        except (TypeError, ValueError) as error:
            raise RecipeError(f"recipe {self.name!r}: {error}") from None
        if self.distill is not None:
            _known(self.name, "distill", self.distill, DISTILL_KEYS)
            if not 0.0 <= self.distill.get("alpha", 0.5) <= 1.0:
                raise RecipeError(f"recipe {self.name!r}: distill.alpha must be in [0, 1]")
        if self.second_labels is not None:
            block = self.second_labels
            _known(self.name, "second_labels", block, SECOND_LABEL_KEYS)
            if block.get("dataset", "fer2013") not in data.ARCHIVES or not set(block.get("classes", ())) <= set(
                    self.class_names):
                raise RecipeError(f"recipe {self.name!r}: second_labels names a dataset or classes the recipe lacks")
            if not 0.0 <= block.get("weight", 0.3) <= 1.0:
                raise RecipeError(f"recipe {self.name!r}: second_labels.weight must be in [0, 1]")

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes in output order, in emofer's vocabulary."""
        return data.SUBSETS[self.classes] if isinstance(self.classes, str) else data.emotion_names(self.classes)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], name: str | None = None) -> Recipe:
        """A Recipe from a parsed recipe file; unknown keys are refused, naming the known ones."""
        raw = dict(raw)
        raw["name"] = raw.get("name") or name or "unnamed"
        _known(raw["name"], "recipe", raw, KEYS)
        missing = sorted(f.name for f in fields(cls) if f.name in REQUIRED and f.name not in raw)
        if missing:
            raise RecipeError(f"recipe {raw['name']!r} lacks {missing}")
        if isinstance(raw.get("classes"), list):
            raw["classes"] = tuple(raw["classes"])
        return cls(**raw)

    @classmethod
    def load(cls, name_or_path: str | Path) -> Recipe:
        """A recipe by name (training/recipes/NAME.json) or path."""
        path = Path(name_or_path)
        if not path.suffix:
            path = RECIPES / f"{name_or_path}.json"
        if not path.is_file():
            known = sorted(p.stem for p in RECIPES.glob("*.json"))
            raise RecipeError(f"no recipe {str(name_or_path)!r}; known recipes: {known}")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise RecipeError(f"{path}: not valid JSON ({error})") from None
        return cls.from_dict(raw, path.stem)

    def with_updates(self, **changes: Any) -> Recipe:
        """A copy with ``changes`` (checked like a loaded recipe)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every key with its value, defaults included (classes as a list when given as one)."""
        out = asdict(self)
        if isinstance(self.classes, tuple):
            out["classes"] = list(self.classes)
        return out


def _known(recipe: str, where: str, block: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(block) - known)
    if unknown:
        raise RecipeError(f"recipe {recipe!r}: {where} has unknown keys {unknown}; known: {sorted(known)}")


KEYS = {f.name for f in fields(Recipe)}
REQUIRED = {"dataset", "classes", "network", "epochs"}
