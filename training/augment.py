"""Training-time augmentation on uint8 48x48 faces (numpy + OpenCV, backend-agnostic)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Augment:
    """Random flip, rotation, zoom, shift, brightness/contrast and erasing, per face."""

    flip: bool = True
    rotate_deg: float = 10.0
    zoom: float = 0.1
    shift: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    erase_p: float = 0.0

    def __call__(self, faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty_like(faces)
        n, h, w = faces.shape
        centre = (w / 2.0, h / 2.0)
        for i in range(n):
            angle = rng.uniform(-self.rotate_deg, self.rotate_deg)
            scale = rng.uniform(1.0 - self.zoom, 1.0 + self.zoom)
            matrix = cv2.getRotationMatrix2D(centre, angle, scale)
            matrix[:, 2] += rng.uniform(-self.shift, self.shift, 2) * (w, h)
            face = cv2.warpAffine(faces[i], matrix, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT_101)
            if self.flip and rng.random() < 0.5:
                face = face[:, ::-1]
            out[i] = face
        if self.brightness or self.contrast:
            gain = rng.uniform(1 - self.contrast, 1 + self.contrast, (n, 1, 1))
            bias = rng.uniform(-self.brightness, self.brightness, (n, 1, 1)) * 255.0
            mean = out.mean(axis=(1, 2), keepdims=True)
            out = np.clip((out - mean) * gain + mean + bias, 0, 255).astype(np.uint8)
        if self.erase_p:
            for i in np.flatnonzero(rng.random(n) < self.erase_p):
                eh, ew = (rng.uniform(0.1, 0.4, 2) * (h, w)).astype(int)
                y, x = rng.integers(0, h - eh), rng.integers(0, w - ew)
                out[i, y:y + eh, x:x + ew] = rng.integers(0, 256, (eh, ew), dtype=np.uint8)
        return out
