"""ModelConfig: config.json parsed and validated, the contract between training and runtime."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ModelLoadError
from .preprocess import CropPolicy, Normalization

__all__ = ["ModelConfig", "InputSpec", "FORMAT_VERSION", "CONFIG_NAME", "MODEL_NAME"]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
MODEL_NAME = "model.onnx"


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
                raise ModelLoadError(f"{source}: 'labels' must be a JSON list of names, got {raw['labels']!r}")
            labels = tuple(str(label) for label in raw["labels"])
            if len(labels) < 2 or len(set(labels)) != len(labels):
                raise ModelLoadError(f"{source}: 'labels' must list at least two distinct names")
            spec = InputSpec(**raw.get("input", {}))
            if spec.layout not in ("NHWC", "NCHW") or spec.channels not in (1, 3):
                raise ModelLoadError(
                    f"{source}: input layout must be NHWC or NCHW with 1 or 3 channels, "
                    f"got {spec.layout} with {spec.channels}"
                )
            if spec.height < 8 or spec.width < 8:
                raise ModelLoadError(f"{source}: input size {spec.height}x{spec.width} is too small")
            norm = Normalization(**{k: float(v) for k, v in raw.get("normalize", {}).items()})
            if not all(math.isfinite(v) for v in vars(norm).values()) or norm.std == 0.0 or norm.scale <= 0.0:
                raise ModelLoadError(f"{source}: normalize values must be finite, std non-zero, scale positive")
            crop = _crop(raw.get("crop", {}))
            by_detector = {k: _crop(v) for k, v in raw.get("crop_by_detector", {}).items()}
            temperature = float(raw.get("temperature", 1.0))
            if not 0.0 < temperature < math.inf:
                raise ModelLoadError(f"{source}: temperature must be positive and finite, got {temperature}")
            sha256 = raw.get("model_sha256")
            if sha256 is not None and not isinstance(sha256, str):
                raise ModelLoadError(f"{source}: model_sha256 must be a hex string or null, got {sha256!r}")
            return cls(
                name=str(raw.get("name", "unnamed")),
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
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # AttributeError: a block is not an object
            raise ModelLoadError(
                f"{source} is not a valid emofer model config ({type(exc).__name__}: {exc}); "
                "re-export the model with training/export.py or re-download it"
            ) from exc

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        """Read and validate a config.json file."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelLoadError(
                f"{path} is missing: a model folder needs model.onnx and config.json"
            ) from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"{path} could not be read as JSON ({exc}); re-download the model") from exc
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
        margin=float(raw.get("margin", 0.0)),
        square=square,
        shift_y=float(raw.get("shift_y", 0.0)),
    )
    if not (math.isfinite(policy.margin) and math.isfinite(policy.shift_y)):
        raise ValueError(f"crop margin and shift_y must be finite numbers, got {raw}")
    return policy
