"""ModelConfig: config.json parsed and validated, the contract between training and runtime.

A config.json may come from anywhere (a Hub repo, a download), so it is read as data only:
bounded in size, every field checked for type and range (see the limits below), labels plain
names. Nothing in a model folder is ever imported or executed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ModelLoadError
from .preprocess import CropPolicy, Normalization

__all__ = ["ModelConfig", "InputSpec", "FORMAT_VERSION", "CONFIG_NAME", "MODEL_NAME"]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
MODEL_NAME = "model.onnx"
#: Largest config.json read (the bundled ones are 2-3 KB).
MAX_CONFIG_BYTES = 1 << 20
#: Most labels a model may have.
MAX_LABELS = 1000
#: Largest network input side, in pixels.
MAX_INPUT_SIDE = 1024
#: Range of a crop policy's margin and shift_y (fractions of the face box side).
CROP_MARGIN_RANGE = (-0.4, 2.0)
CROP_SHIFT_RANGE = (-1.0, 1.0)
#: A label: a plain name of 1-64 letters, digits, spaces, or _ - + ' . ( ), not starting with a dot.
_LABEL = re.compile(r"^(?!\.)[\w \-+'.()]{1,64}$")


@dataclass(frozen=True)
class InputSpec:
    """The network's input: size, channel count, layout and dtype."""

    height: int = 48
    width: int = 48
    channels: int = 1
    layout: str = "NHWC"
    dtype: str = "float32"

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)


@dataclass(frozen=True)
class ModelConfig:
    """Everything emofer needs to serve a model, read from its config.json."""

    name: str
    labels: tuple[str, ...]
    input: InputSpec = InputSpec()
    normalize: Normalization = Normalization()
    crop: CropPolicy = CropPolicy()
    temperature: float = 1.0
    model_sha256: str | None = None
    trained_on: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    crop_by_detector: dict[str, CropPolicy] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def crop_for(self, detector: str) -> CropPolicy:
        """The crop policy to use for boxes from ``detector`` (falls back to ``crop``)."""
        return self.crop_by_detector.get(detector, self.crop)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config.json") -> ModelConfig:
        """Validate a parsed config.json; raise ModelLoadError naming the bad field."""
        try:
            version = int(raw.get("format_version", FORMAT_VERSION))
            if version > FORMAT_VERSION:
                raise ModelLoadError(
                    f"{source}: format_version {version} is newer than this emofer understands "
                    f"({FORMAT_VERSION}); upgrade emofer (pip install -U emofer)"
                )
            if not isinstance(raw["labels"], (list, tuple)):
                raise ModelLoadError(f"{source}: 'labels' must be a JSON list of names, got {_short(raw['labels'])}")
            if len(raw["labels"]) > MAX_LABELS:
                raise ModelLoadError(
                    f"{source}: 'labels' lists {len(raw['labels'])} names; at most {MAX_LABELS} "
                    "are allowed (is this an emofer model?)"
                )
            bad = [label for label in raw["labels"] if not (isinstance(label, str) and _LABEL.match(label))]
            if bad:
                raise ModelLoadError(
                    f"{source}: label {_short(bad[0])} is not a plain name (1-64 letters, digits, "
                    "spaces or _-+'.(), no path separators); fix the labels list"
                )
            labels = tuple(raw["labels"])
            if len(labels) < 2 or len(set(labels)) != len(labels):
                raise ModelLoadError(f"{source}: 'labels' must list at least two distinct names")
            spec = InputSpec(**raw.get("input", {}))
            for key in ("height", "width", "channels"):
                value = getattr(spec, key)
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"input {key} must be a whole number, got {_short(value)}")
            if max(spec.height, spec.width) > MAX_INPUT_SIDE:
                raise ModelLoadError(
                    f"{source}: input size {spec.height}x{spec.width} is over the "
                    f"{MAX_INPUT_SIDE} px emofer allows; the config is damaged or not an emofer model"
                )
            if spec.layout not in ("NHWC", "NCHW") or spec.channels not in (1, 3):
                raise ModelLoadError(
                    f"{source}: input layout must be NHWC or NCHW with 1 or 3 channels, "
                    f"got {spec.layout} with {spec.channels}"
                )
            if spec.height < 8 or spec.width < 8:
                raise ModelLoadError(f"{source}: input size {spec.height}x{spec.width} is too small")
            norm = Normalization(**{k: _number(v, f"normalize {k}") for k, v in raw.get("normalize", {}).items()})
            if not all(math.isfinite(v) for v in vars(norm).values()) or norm.std == 0.0 or norm.scale <= 0.0:
                raise ModelLoadError(f"{source}: normalize values must be finite, std non-zero, scale positive")
            crop = _crop(raw.get("crop", {}))
            by_detector = {k: _crop(v) for k, v in raw.get("crop_by_detector", {}).items()}
            temperature = _number(raw.get("temperature", 1.0), "temperature")
            if not 0.0 < temperature < math.inf:
                raise ModelLoadError(f"{source}: temperature must be positive and finite, got {temperature}")
            sha256 = raw.get("model_sha256")
            if sha256 is not None and not isinstance(sha256, str):
                raise ModelLoadError(f"{source}: model_sha256 must be a hex string or null, got {sha256!r}")
            name = raw.get("name", "unnamed")
            if not isinstance(name, str) or len(name) > 200:
                raise ModelLoadError(f"{source}: 'name' must be a string of at most 200 characters, got {_short(name)}")
            if isinstance(raw.get("format_version", FORMAT_VERSION), bool):
                raise ModelLoadError(f"{source}: format_version must be a whole number")
            return cls(
                name=name,
                labels=labels,
                input=spec,
                normalize=norm,
                crop=crop,
                temperature=temperature,
                model_sha256=sha256,
                trained_on=dict(raw.get("trained_on", {})),
                metrics=dict(raw.get("metrics", {})),
                crop_by_detector=by_detector,
                format_version=version,
            )
        except ModelLoadError:
            raise
        # AttributeError: a block is not an object
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ModelLoadError(
                f"{source} is not a valid emofer model config ({type(exc).__name__}: {str(exc)[:200]}); "
                "re-export the model with training/export.py or re-download it"
            ) from exc

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        """Read and validate a config.json file."""
        path = Path(path)
        try:
            if path.is_file() and path.stat().st_size > MAX_CONFIG_BYTES:
                raise ModelLoadError(
                    f"{path} is {path.stat().st_size:,} bytes, over the {MAX_CONFIG_BYTES:,} a "
                    "config.json may have; it is damaged or not an emofer config"
                )
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelLoadError(f"{path} is missing: a model folder needs model.onnx and config.json") from exc
        # ValueError: bad JSON, ints of > 4300 digits
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ModelLoadError(f"{path} could not be read as JSON ({str(exc)[:200]}); re-download the model") from exc
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{path} must hold a JSON object")
        return cls.from_dict(raw, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written next to model.onnx."""
        out: dict[str, Any] = {
            "name": self.name,
            "format_version": self.format_version,
            "labels": list(self.labels),
            "input": vars(self.input).copy(),
            "normalize": vars(self.normalize).copy(),
            "crop": vars(self.crop).copy(),
            "temperature": self.temperature,
            "model_sha256": self.model_sha256,
            "trained_on": self.trained_on,
            "metrics": self.metrics,
        }
        if self.crop_by_detector:
            out["crop_by_detector"] = {k: vars(v).copy() for k, v in self.crop_by_detector.items()}
        return out

    def save(self, path: str | Path) -> None:
        """Write config.json (indented, stable key order)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def with_updates(self, **changes: Any) -> ModelConfig:
        """A copy with some fields replaced."""
        return replace(self, **changes)


def _crop(raw: dict[str, Any]) -> CropPolicy:
    square = raw.get("square", True)
    if not isinstance(square, bool):
        raise ValueError(f"crop square must be true or false, got {square!r}")
    policy = CropPolicy(
        margin=_number(raw.get("margin", 0.0), "crop margin"),
        square=square,
        shift_y=_number(raw.get("shift_y", 0.0), "crop shift_y"),
    )
    if not (
        CROP_MARGIN_RANGE[0] <= policy.margin <= CROP_MARGIN_RANGE[1]
        and CROP_SHIFT_RANGE[0] <= policy.shift_y <= CROP_SHIFT_RANGE[1]
    ):
        raise ValueError(
            f"crop margin and shift_y must be finite, margin in {CROP_MARGIN_RANGE} and shift_y in {CROP_SHIFT_RANGE}, "
            f"got {_short(raw)}"
        )
    return policy


def _number(value: Any, what: str) -> float:
    """A JSON number as float; ValueError for bools, strings, lists and the like."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {_short(value)}")
    return float(value)


def _short(value: Any) -> str:
    """repr of a config value, cut to 80 characters for messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
