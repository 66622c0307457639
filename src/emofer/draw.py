"""Annotated copies of images: face boxes, "happy 87%" tags and optional probability bars.

Everything is drawn on a copy; the caller's image is never changed. Line widths and text
size follow the image size, so a phone photo and a webcam frame both stay readable.

``emofer.draw`` is this module, and calling it calls :func:`draw`: ``emofer.draw(image, faces)``
and ``emofer.draw.draw_text(...)`` both work. (Type checkers do not know a module can be
called: there, write ``from emofer.draw import draw``.)
"""

from __future__ import annotations

import sys
import types
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from .io import ImageInput, load_image
from .results import Face

__all__ = ["draw", "layout", "Placement", "draw_text", "label_color", "EMOTION_COLORS"]

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
    "angry": (40, 40, 220),
    "anger": (40, 40, 220),
    "disgust": (40, 150, 40),
    "fear": (170, 60, 160),
    "happy": (0, 210, 255),
    "happiness": (0, 210, 255),
    "sad": (200, 120, 30),
    "sadness": (200, 120, 30),
    "surprise": (0, 130, 255),
    "neutral": (185, 185, 185),
    "contempt": (150, 150, 0),
}
#: BGR colour of a face the recognizer abstained on (its top probability below min_confidence).
ABSTAINED_COLOR: Color = (110, 110, 110)
FALLBACK_COLORS: tuple[Color, ...] = (
    (255, 128, 0),
    (128, 0, 255),
    (0, 255, 128),
    (255, 0, 128),
    (128, 255, 0),
    (0, 128, 255),
)


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
        return cls.for_size(*image.shape[:2])

    @classmethod
    def for_size(cls, height: int, width: int) -> _Style:
        scale = max(height, width) / REFERENCE_SIDE
        return cls(
            thickness=max(1, round(BASE_THICKNESS * scale)),
            font_scale=max(MIN_FONT_SCALE, BASE_FONT_SCALE * scale),
            text_thickness=max(1, round(scale)),
            pad=max(2, round(3 * scale)),
            bar_length=max(30, round(BASE_BAR_LENGTH * scale)),
        )

    def scaled(self, factor: float) -> _Style:
        """This style with text, padding and bars ``factor`` times the size (lines as they are)."""
        if factor == 1.0:
            return self
        return replace(
            self,
            font_scale=self.font_scale * factor,
            pad=max(1, round(self.pad * factor)),
            bar_length=max(12, round(self.bar_length * factor)),
        )

    def panel_size(self, face: Face) -> tuple[int, int]:
        """(width, height) of the probability panel of ``face``: a row per label."""
        labels = list(face.probabilities)
        label_width = max(self.text_size(label)[0] for label in labels)
        return label_width + self.bar_length + 2 * self.pad, self.text_size("Ag")[1] * len(labels)

    def text_size(self, text: str) -> tuple[int, int]:
        (width, height), baseline = cv2.getTextSize(text, FONT, self.font_scale, self.text_thickness)
        return width + 2 * self.pad, height + baseline + 2 * self.pad


Rect = tuple[int, int, int, int]  # x, y, w, h

#: Sizes tried for a probability panel, as fractions of the full size, before it is left out.
PANEL_SCALES = (1.0, 0.8, 0.6)


@dataclass(frozen=True)
class Placement:
    """Where one face's annotations go: its box, its tag, and its bar panel (None: no room for one)."""

    box: Rect
    tag: Rect
    panel: Rect | None
    panel_scale: float = 1.0


def draw(image: ImageInput, faces: Iterable[Face], *, bars: bool = False, color: str = "bgr") -> np.ndarray:
    """An annotated copy of ``image``: each face's box and "emotion 87%" tag (with its track id
    when set), and with ``bars=True`` a bar per class beside the face.

    Tags and panels are placed by :func:`layout`: no panel covers a face, a tag or another panel
    (panels shrink, or are left out, where there is no room). ``image`` is anything
    :func:`emofer.io.load_image` reads; ``color`` is the channel order of an array input ("bgr" or
    "rgb"), and the copy comes back in that order (3 channels).
    """
    canvas = load_image(image, color)
    if isinstance(image, np.ndarray) and np.shares_memory(canvas, image):
        canvas = canvas.copy()
    style = _Style.for_image(canvas)
    faces = [face for face in faces if face.probabilities]
    placements = layout(canvas.shape, faces, bars=bars)
    for face in faces:
        _draw_box(canvas, face, style)
    for face, place in zip(faces, placements):  # tags and panels over every box
        _tag(canvas, _tag_text(face), place.tag[0], place.tag[1], _face_color(face), style)
        if place.panel is not None:
            _bars(canvas, face, style.scaled(place.panel_scale), place.panel)
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB) if color == "rgb" else canvas


def layout(shape: tuple[int, ...], faces: Sequence[Face], *, bars: bool = False) -> list[Placement]:
    """Where :func:`draw` puts each face's tag and bar panel in an image of ``shape``.

    A tag goes above its box, else below it, else inside its top edge, else beside it: the first
    place that covers no other face and no earlier tag (in a crowd, the one that covers least).
    A panel goes right of, left of, below or above its box at full size, then smaller: the first
    place inside the image that covers no face box, no tag and no other panel; with no such place
    the face has no panel.
    """
    height, width = shape[:2]
    style = _Style.for_size(height, width)
    boxes = [_rect(face.box) for face in faces]
    tags: list[Rect] = []
    for index, face in enumerate(faces):
        others = boxes[:index] + boxes[index + 1 :]
        tags.append(_place_tag(boxes[index], style.text_size(_tag_text(face)), (width, height), others + tags))
    placements = []
    panels: list[Rect] = []
    for box, tag, face in zip(boxes, tags, faces):
        panel, scale = _place_panel(box, face, style, (width, height), boxes + tags + panels) if bars else (None, 1.0)
        if panel is not None:
            panels.append(panel)
        placements.append(Placement(box, tag, panel, scale))
    return placements


def _place_tag(box: Rect, size: tuple[int, int], image: tuple[int, int], taken: list[Rect]) -> Rect:
    x, y, w, h = box
    tag_w, tag_h = size
    candidates = [
        (x, y - tag_h),
        (x, y + h),
        (x, y),  # above, below, inside the top edge
        (x + w - tag_w, y - tag_h),
        (x + w - tag_w, y + h),
        (x + w, y),
        (x - tag_w, y),
    ]
    placed = [_clip((cx, cy, tag_w, tag_h), image) for cx, cy in candidates]
    return min(placed, key=lambda rect: sum(_overlap_area(rect, other) for other in taken))  # first of the least


def _overlap_area(a: Rect, b: Rect) -> int:
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, width) * max(0, height)


def _place_panel(
    box: Rect, face: Face, style: _Style, image: tuple[int, int], taken: list[Rect]
) -> tuple[Rect | None, float]:
    x, y, w, h = box
    gap = style.pad
    for scale in PANEL_SCALES:
        panel_w, panel_h = style.scaled(scale).panel_size(face)
        candidates = [
            (x + w + gap, y),
            (x - gap - panel_w, y),
            (x + w + gap, y + h - panel_h),
            (x - gap - panel_w, y + h - panel_h),
            (x, y + h + gap),
            (x, y - gap - panel_h),
            (x + w - panel_w, y + h + gap),
            (x + w - panel_w, y - gap - panel_h),
        ]
        for left, top in candidates:
            rect = (left, top, panel_w, panel_h)
            if _inside(rect, image) and not any(_overlap(rect, other) for other in taken):
                return rect, scale
    return None, 1.0


def _rect(box: Sequence[float]) -> Rect:
    x, y, w, h = (int(v) for v in box)
    return x, y, w, h


def _overlap(a: Rect, b: Rect) -> bool:
    return _overlap_area(a, b) > 0


def _inside(rect: Rect, image: tuple[int, int]) -> bool:
    return rect[0] >= 0 and rect[1] >= 0 and rect[0] + rect[2] <= image[0] and rect[1] + rect[3] <= image[1]


def _clip(rect: Rect, image: tuple[int, int]) -> Rect:
    x, y, w, h = rect
    return int(np.clip(x, 0, max(0, image[0] - w))), int(np.clip(y, 0, max(0, image[1] - h))), w, h


def draw_text(canvas: np.ndarray, text: str, origin: tuple[int, int], background: Color = (0, 0, 0)) -> None:
    """Write ``text`` on a filled box whose top-left corner is ``origin``, in place, sized for ``canvas``."""
    _tag(canvas, text, origin[0], origin[1], background, _Style.for_image(canvas))


def label_color(label: str) -> Color:
    """The BGR colour used for an emotion label (stable across runs)."""
    return EMOTION_COLORS.get(label.lower(), FALLBACK_COLORS[zlib.crc32(label.encode()) % len(FALLBACK_COLORS)])


def _face_color(face: Face) -> Color:
    return ABSTAINED_COLOR if face.abstained else label_color(face.emotion)


def _tag_text(face: Face) -> str:
    text = f"{'unsure: ' if face.abstained else ''}{face.emotion} {face.confidence:.0%}"
    return text if face.track_id is None else f"#{face.track_id} {text}"


def _draw_box(canvas: np.ndarray, face: Face, style: _Style) -> None:
    x, y, w, h = _rect(face.box)
    cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), _face_color(face), style.thickness)


def _tag(canvas: np.ndarray, text: str, x: int, y: int, background: Color, style: _Style) -> None:
    width, height = style.text_size(text)
    x = int(np.clip(x, 0, max(0, canvas.shape[1] - width)))
    y = int(np.clip(y, 0, max(0, canvas.shape[0] - height)))
    cv2.rectangle(canvas, (x, y), (x + width, y + height), background, cv2.FILLED)
    ink = (0, 0, 0) if sum(background) > 3 * 140 else (255, 255, 255)
    _, baseline = cv2.getTextSize(text, FONT, style.font_scale, style.text_thickness)
    origin = (x + style.pad, y + height - style.pad - baseline)
    cv2.putText(canvas, text, origin, FONT, style.font_scale, ink, style.text_thickness, cv2.LINE_AA)


def _bars(canvas: np.ndarray, face: Face, style: _Style, panel: Rect) -> None:
    """A dark panel at ``panel`` with one labelled bar per class."""
    labels = list(face.probabilities)
    label_width = max(style.text_size(label)[0] for label in labels)
    row_height = style.text_size("Ag")[1]
    left, top, panel_w, panel_h = panel
    region = canvas[top : top + panel_h, left : left + panel_w]
    region[:] = cv2.addWeighted(region, 1.0 - PANEL_OPACITY, np.zeros_like(region), PANEL_OPACITY, 0.0)
    _, baseline = cv2.getTextSize("Ag", FONT, style.font_scale, style.text_thickness)
    for row, label in enumerate(labels):
        row_top = top + row * row_height
        baseline_y = row_top + row_height - style.pad - baseline
        cv2.putText(
            canvas,
            label,
            (left + style.pad, baseline_y),
            FONT,
            style.font_scale,
            (255, 255, 255),
            style.text_thickness,
            cv2.LINE_AA,
        )
        bar_left = left + label_width + style.pad
        length = round(style.bar_length * float(np.clip(face.probabilities[label], 0.0, 1.0)))
        bar_top, bar_bottom = row_top + style.pad, row_top + row_height - style.pad
        if length > 0:
            cv2.rectangle(canvas, (bar_left, bar_top), (bar_left + length, bar_bottom), label_color(label), cv2.FILLED)
        cv2.rectangle(canvas, (bar_left, bar_top), (bar_left + style.bar_length, bar_bottom), (90, 90, 90), 1)


class _CallableModule(types.ModuleType):
    """This module's type: ``emofer.draw(...)`` is :func:`draw`, and the module's names stay reachable."""

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        return draw(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
