"""Where things are in the checkout, and which dataset a model was trained on.

    from training.paths import REPO_ROOT, DOCS_MODELS, dataset_of, default_out

A leaf module (it imports only ``training.data``), so the steps that write, evaluate, describe
or benchmark a model folder can all use it without importing each other.
"""

from __future__ import annotations

from pathlib import Path

from emofer.config import ModelConfig
from training import data

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Each model's report, figures and card copy: docs/models/<short name>/.
DOCS_MODELS = REPO_ROOT / "docs" / "models"
#: config.trained_on["dataset"] spellings -> training.data.load names.
DATASETS = {"fer2013": "fer2013", "ferplus": "ferplus", "fer+": "ferplus"}
#: Each dataset's full class set (a training.data.SUBSETS name).
DATASET_CLASSES = {"fer2013": "fer7", "ferplus": "ferplus8"}


def dataset_of(config: ModelConfig) -> str:
    """The ``training.data.load`` name of the dataset a model was trained on."""
    raw = str(config.trained_on.get("dataset", "fer2013")).lower()
    if raw not in DATASETS:
        raise data.DatasetError(f"{config.name}: trained_on.dataset {raw!r} is not one of {sorted(DATASETS)}")
    return DATASETS[raw]


def short_name(config: ModelConfig) -> str:
    """The model's name without its owner: ``emofer/fer5`` -> ``fer5``."""
    return config.name.rsplit("/", 1)[-1]


def default_out(config: ModelConfig) -> Path:
    """docs/models/<short name>/ of the checkout."""
    return DOCS_MODELS / short_name(config)
