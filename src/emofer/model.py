"""OnnxClassifier: one onnxruntime session over a face tensor, with its config checked."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .errors import ModelLoadError

__all__ = ["OnnxClassifier", "softmax", "DEFAULT_BATCH_SIZE"]

log = logging.getLogger("emofer")

#: Faces per onnxruntime call in ``run``; large enough to amortise the call, small for memory.
DEFAULT_BATCH_SIZE = 64


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (numerically stable, float32)."""
    z = logits.astype(np.float32, copy=False) / np.float32(temperature)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class OnnxClassifier:
    """Runs a model.onnx whose input and output match its config.json.

    The network outputs class probabilities (a softmax layer); the config's temperature is
    applied as ``softmax(log(p) / T)``, so T = 1 leaves them unchanged. ``threads`` sets
    onnxruntime's intra-op threads; ``allow_spinning=True`` lets idle worker threads busy-wait
    (slightly lower latency for back-to-back classify calls, at the detector's expense).
    onnxruntime sessions are safe to call from several threads at once, and so is this class.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        config: ModelConfig,
        *,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        verify: bool = True,
        allow_spinning: bool = False,
    ) -> None:
        import onnxruntime as ort

        self.model_path = Path(model_path)
        self.config = config
        self.providers = list(providers) if providers else ["CPUExecutionProvider"]
        self.threads = threads
        self.allow_spinning = allow_spinning
        if not self.model_path.is_file():
            raise ModelLoadError(f"{self.model_path} is missing; re-download or re-export the model")
        if verify and config.model_sha256:
            actual = sha256_of(self.model_path)
            if actual != config.model_sha256:
                raise ModelLoadError(
                    f"{self.model_path} is damaged or not the file its config.json describes "
                    f"(sha256 {actual[:12]}..., expected {config.model_sha256[:12]}...); "
                    "delete it and download it again (emofer download MODEL), or re-export the folder"
                )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle onnxruntime worker threads spin by default, holding a core that the face detector
        # (OpenCV's own threads) needs next: predict on a 640x480 frame measured 6.7-8.1 ms with
        # spinning and 4.8-6.4 ms without on 2 cores, for +0.2 ms on classify alone.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        available = ort.get_available_providers()
        unknown = [p for p in self.providers if p not in available]
        if unknown:
            raise ModelLoadError(
                f"onnxruntime providers {unknown} are not available here (available: {available}); "
                "install the matching onnxruntime build (e.g. onnxruntime-gpu) or leave providers=None"
            )
        try:
            self.session = ort.InferenceSession(str(self.model_path), options, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelLoadError(
                f"{self.model_path} could not be loaded by onnxruntime ({type(exc).__name__}: "
                f"{(str(exc).splitlines() or [''])[0][:200]}); the file is truncated or not an ONNX model: "
                "re-download or re-export it"
            ) from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelLoadError(
                f"{self.model_path} must have one input and one output, has {len(inputs)} and {len(outputs)}"
            )
        if inputs[0].type != "tensor(float)":
            raise ModelLoadError(
                f"{self.model_path} takes {inputs[0].type} input, but emofer feeds float32 tensors; "
                "re-export the model with a float32 input"
            )
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self._check_shapes(inputs[0].shape, outputs[0].shape)

    def _check_shapes(self, input_shape: list, output_shape: list) -> None:
        spec = self.config.input
        expected = (
            (spec.height, spec.width, spec.channels)
            if spec.layout == "NHWC"
            else (spec.channels, spec.height, spec.width)
        )
        actual = tuple(input_shape[1:])
        if len(input_shape) != 4 or any(isinstance(a, int) and a != e for a, e in zip(actual, expected)):
            raise ModelLoadError(
                f"{self.model_path} takes input of shape {input_shape}, but its config.json says "
                f"{spec.layout} {expected}; the config does not belong to this model"
            )
        classes = output_shape[-1] if output_shape else None
        if len(output_shape) != 2 or (isinstance(classes, int) and classes != len(self.config.labels)):
            raise ModelLoadError(
                f"{self.model_path} outputs shape {output_shape}, but its config.json lists "
                f"{len(self.config.labels)} labels; the config does not belong to this model"
            )

    def run(self, tensor: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Probabilities (N, len(labels)) for a float32 (N, H, W, C) tensor, ``batch_size`` at a time."""
        if self.config.input.layout == "NCHW":
            tensor = np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))
        if len(tensor) == 0:
            return np.zeros((0, len(self.config.labels)), np.float32)
        parts = [
            self.session.run([self.output_name], {self.input_name: tensor[i : i + batch_size]})[0]
            for i in range(0, len(tensor), batch_size)
        ]
        probabilities = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return self._calibrate(probabilities)

    def _calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        temperature = self.config.temperature
        if temperature == 1.0:
            return probabilities.astype(np.float32, copy=False)
        return softmax(np.log(np.maximum(probabilities, 1e-12)), temperature)
