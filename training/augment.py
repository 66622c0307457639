"""Training-time augmentation (numpy + OpenCV, backend-agnostic).

:class:`Augment` works per face on uint8 pixels, (N, h, w) grey or (N, h, w, 3) BGR; :class:`Mix`
works per batch on the normalised tensors and their targets (mixup and cutmix).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Augment:
    """Random flip, rotation, zoom, shift, brightness/contrast and erasing, per face.

    The "wild" options imitate what a detector hands the model on real photos and are off by
    default (older recipes reproduce as they were): ``blur_p`` a Gaussian blur, ``downscale_p``
    a shrink to ``downscale_min``..1 of the side and back (a small face in a photo), ``jpeg_p``
    JPEG re-encoding at quality 30..90, ``gamma`` a random gamma in 1 +- gamma.
    """

    flip: bool = True
    rotate_deg: float = 10.0
    zoom: float = 0.1
    shift: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    erase_p: float = 0.0
    blur_p: float = 0.0
    downscale_p: float = 0.0
    downscale_min: float = 0.4
    jpeg_p: float = 0.0
    gamma: float = 0.0

    def __call__(self, faces: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty_like(faces)
        n, h, w = faces.shape[:3]
        per_face = (n,) + (1,) * (faces.ndim - 1)  # broadcasts over rows, columns and channels
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
            out[i] = self._degrade(np.ascontiguousarray(face), rng)
        if self.brightness or self.contrast:
            gain = rng.uniform(1 - self.contrast, 1 + self.contrast, per_face)
            bias = rng.uniform(-self.brightness, self.brightness, per_face) * 255.0
            mean = out.mean(axis=tuple(range(1, faces.ndim)), keepdims=True)
            out = np.clip((out - mean) * gain + mean + bias, 0, 255).astype(np.uint8)
        if self.erase_p:
            for i in np.flatnonzero(rng.random(n) < self.erase_p):
                eh, ew = (rng.uniform(0.1, 0.4, 2) * (h, w)).astype(int)
                y, x = rng.integers(0, h - eh), rng.integers(0, w - ew)
                out[i, y:y + eh, x:x + ew] = rng.integers(0, 256, (eh, ew, *faces.shape[3:]), dtype=np.uint8)
        return out

    def _degrade(self, face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Blur, resolution loss, JPEG artefacts and gamma, each with its own probability."""
        h, w = face.shape[:2]
        if self.blur_p and rng.random() < self.blur_p:
            face = cv2.GaussianBlur(face, (0, 0), rng.uniform(0.4, 1.2))
        if self.downscale_p and rng.random() < self.downscale_p:
            side = rng.uniform(self.downscale_min, 1.0)
            small = cv2.resize(face, (max(8, int(w * side)), max(8, int(h * side))), interpolation=cv2.INTER_AREA)
            face = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.jpeg_p and rng.random() < self.jpeg_p:
            ok, data = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
            face = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if face.ndim == 2 else cv2.IMREAD_COLOR) if ok else face
        if self.gamma:
            lut = 255.0 * (np.arange(256) / 255.0) ** rng.uniform(1 - self.gamma, 1 + self.gamma)
            face = lut.astype(np.uint8)[face]
        return face


@dataclass(frozen=True)
class Mix:
    """Mixup or cutmix on a fraction ``p`` of the batches.

    A mixed batch pairs each face with another of the same batch. Mixup blends the two whole
    faces with weight lam ~ Beta(mixup_alpha, mixup_alpha); cutmix pastes a box of the partner
    covering 1 - lam of the face, lam ~ Beta(cutmix_alpha, cutmix_alpha). Targets (and sample
    weights) are blended with the same lam, the share of the face each source contributes.
    ``cutmix_share`` of the mixed batches use cutmix, the rest mixup.
    """

    p: float = 0.5
    mixup_alpha: float = 0.2
    cutmix_alpha: float = 1.0
    cutmix_share: float = 0.5

    def __call__(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if len(x) < 2 or rng.random() >= self.p:
            return x, y, weights
        partner = rng.permutation(len(x))
        if rng.random() < self.cutmix_share:
            x, lam = self._cutmix(x, partner, rng.beta(self.cutmix_alpha, self.cutmix_alpha), rng)
        else:
            lam = float(rng.beta(self.mixup_alpha, self.mixup_alpha))
            x = (lam * x + (1.0 - lam) * x[partner]).astype(x.dtype)
        y = (lam * y + (1.0 - lam) * y[partner]).astype(y.dtype)
        if weights is not None:
            weights = (lam * weights + (1.0 - lam) * weights[partner]).astype(weights.dtype)
        return x, y, weights

    @staticmethod
    def _cutmix(x: np.ndarray, partner: np.ndarray, lam: float,
                rng: np.random.Generator) -> tuple[np.ndarray, float]:
        h, w = x.shape[1:3]
        cut_h, cut_w = int(round(h * np.sqrt(1.0 - lam))), int(round(w * np.sqrt(1.0 - lam)))
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        y0, y1 = np.clip([cy - cut_h // 2, cy + cut_h - cut_h // 2], 0, h)
        x0, x1 = np.clip([cx - cut_w // 2, cx + cut_w - cut_w // 2], 0, w)
        out = x.copy()
        out[:, y0:y1, x0:x1] = x[partner, y0:y1, x0:x1]
        return out, 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)  # the share the face kept
