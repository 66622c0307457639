"""Annotated copies of images: face boxes, "happy 87%" tags and optional probability bars.

Everything is drawn on a copy; the caller's image is never changed. Line widths and text
size follow the image size, so a phone photo and a webcam frame both stay readable.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from .io import ImageInput, load_image
from .results import Face

__all__ = ["draw", "draw_text", "label_color", "EMOTION_COLORS"]

Color = tuple[int, int, int]

#: Image side (longer edge, pixels) at which lines are BASE_THICKNESS wide and text BASE_FONT_SCALE.
REFERENCE_SIDE = 640
BASE_THICKNESS = 2
BASE_FONT_SCALE = 0.5
MIN_FONT_SCALE = 0.35
FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Length of a full (100%) probability bar at REFERENCE_SIDE, pixels.
BASE_BAR_LENGTH = 70
#: Opacity of the dark panel behind the probability bars.
PANEL_OPACITY = 0.6

#: BGR colour per emotion (FER2013 and FER+ names); other labels get one from FALLBACK_COLORS.
EMOTION_COLORS: dict[str, Color] = {
    "angry": (40, 40, 220), "anger": (40, 40, 220),
    "disgust": (40, 150, 40),
    "fear": (170, 60, 160),
    "happy": (0, 210, 255), "happiness": (0, 210, 255),
    "sad": (200, 120, 30), "sadness": (200, 120, 30),
    "surprise": (0, 130, 255),
    "neutral": (185, 185, 185),
    "contempt": (150, 150, 0),
}
#: BGR colour of a face the recognizer abstained on (its top probability below min_confidence).
ABSTAINED_COLOR: Color = (110, 110, 110)
FALLBACK_COLORS: tuple[Color, ...] = ((255, 128, 0), (128, 0, 255), (0, 255, 128), (255, 0, 128), (128, 255, 0), (0, 128, 255))


@dataclass(frozen=True)
class _Style:
    """Sizes for one image: line thickness, font scale, text thickness, padding, bar length."""

    thickness: int
    font_scale: float
    text_thickness: int
    pad: int
    bar_length: int

    @classmethod
    def for_image(cls, image: np.ndarray) -> _Style:
        scale = max(image.shape[:2]) / REFERENCE_SIDE
        return cls(
            thickness=max(1, round(BASE_THICKNESS * scale)),
            font_scale=max(MIN_FONT_SCALE, BASE_FONT_SCALE * scale),
            text_thickness=max(1, round(scale)),
            pad=max(2, round(3 * scale)),
            bar_length=max(30, round(BASE_BAR_LENGTH * scale)),
        )

    def text_size(self, text: str) -> tuple[int, int]:
        (width, height), baseline = cv2.getTextSize(text, FONT, self.font_scale, self.text_thickness)
        return width + 2 * self.pad, height + baseline + 2 * self.pad


def draw(image: ImageInput, faces: Iterable[Face], *, bars: bool = False, color: str = "bgr") -> np.ndarray:
    """An annotated copy of ``image``: each face's box and "emotion 87%" tag (with its track id
    when set), and with ``bars=True`` a bar per class beside the face.

    ``image`` is anything :func:`emofer.io.load_image` reads; ``color`` is the channel order of
    an array input ("bgr" or "rgb"), and the copy comes back in that order (3 channels).
    """
    canvas = load_image(image, color)
    if isinstance(image, np.ndarray) and np.shares_memory(canvas, image):
        canvas = canvas.copy()
    style = _Style.for_image(canvas)
    for face in faces:
        if face.probabilities:
            _draw_face(canvas, face, style, bars)
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB) if color == "rgb" else canvas


def draw_text(canvas: np.ndarray, text: str, origin: tuple[int, int], background: Color = (0, 0, 0)) -> None:
    """Write ``text`` on a filled box whose top-left corner is ``origin``, in place, sized for ``canvas``."""
    _tag(canvas, text, origin[0], origin[1], background, _Style.for_image(canvas))


def label_color(label: str) -> Color:
    """The BGR colour used for an emotion label (stable across runs)."""
    return EMOTION_COLORS.get(label.lower(), FALLBACK_COLORS[zlib.crc32(label.encode()) % len(FALLBACK_COLORS)])


def _draw_face(canvas: np.ndarray, face: Face, style: _Style, bars: bool) -> None:
    x, y, w, h = (int(v) for v in face.box)
    color = ABSTAINED_COLOR if face.abstained else label_color(face.emotion)
    cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), color, style.thickness)
    text = f"{'unsure: ' if face.abstained else ''}{face.emotion} {face.confidence:.0%}"
    if face.track_id is not None:
        text = f"#{face.track_id} {text}"
    tag_height = style.text_size(text)[1]
    tag_y = y - tag_height if y - tag_height >= 0 else y  # above the box, or inside it at the top
    _tag(canvas, text, x, tag_y, color, style)
    if bars:
        _bars(canvas, face, style)


def _tag(canvas: np.ndarray, text: str, x: int, y: int, background: Color, style: _Style) -> None:
    width, height = style.text_size(text)
    x = int(np.clip(x, 0, max(0, canvas.shape[1] - width)))
    y = int(np.clip(y, 0, max(0, canvas.shape[0] - height)))
    cv2.rectangle(canvas, (x, y), (x + width, y + height), background, cv2.FILLED)
    ink = (0, 0, 0) if sum(background) > 3 * 140 else (255, 255, 255)
    _, baseline = cv2.getTextSize(text, FONT, style.font_scale, style.text_thickness)
    origin = (x + style.pad, y + height - style.pad - baseline)
    cv2.putText(canvas, text, origin, FONT, style.font_scale, ink, style.text_thickness, cv2.LINE_AA)


def _bars(canvas: np.ndarray, face: Face, style: _Style) -> None:
    """A dark panel beside the box with one labelled bar per class."""
    labels = list(face.probabilities)
    label_width = max(style.text_size(label)[0] for label in labels)
    row_height = style.text_size("Ag")[1]
    panel_w = label_width + style.bar_length + 2 * style.pad
    panel_h = row_height * len(labels)
    x, y, w, _ = (int(v) for v in face.box)
    image_h, image_w = canvas.shape[:2]
    left = x + w + style.pad if x + w + style.pad + panel_w <= image_w else x - style.pad - panel_w
    left = int(np.clip(left, 0, max(0, image_w - panel_w)))
    top = int(np.clip(y, 0, max(0, image_h - panel_h)))
    region = canvas[top : top + panel_h, left : left + panel_w]
    region[:] = cv2.addWeighted(region, 1.0 - PANEL_OPACITY, np.zeros_like(region), PANEL_OPACITY, 0.0)
    _, baseline = cv2.getTextSize("Ag", FONT, style.font_scale, style.text_thickness)
    for row, label in enumerate(labels):
        row_top = top + row * row_height
        baseline_y = row_top + row_height - style.pad - baseline
        cv2.putText(canvas, label, (left + style.pad, baseline_y), FONT, style.font_scale,
                    (255, 255, 255), style.text_thickness, cv2.LINE_AA)
        bar_left = left + label_width + style.pad
        length = round(style.bar_length * float(np.clip(face.probabilities[label], 0.0, 1.0)))
        bar_top, bar_bottom = row_top + style.pad, row_top + row_height - style.pad
        if length > 0:
            cv2.rectangle(canvas, (bar_left, bar_top), (bar_left + length, bar_bottom), label_color(label), cv2.FILLED)
        cv2.rectangle(canvas, (bar_left, bar_top), (bar_left + style.bar_length, bar_bottom), (90, 90, 90), 1)
