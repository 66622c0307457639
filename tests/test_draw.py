"""draw(): annotated copies, never in place, readable at any image size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emofer import Face, draw
from emofer.draw import ABSTAINED_COLOR, EMOTION_COLORS, draw_text, label_color
from emofer.io import load_image

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def face(box, top="happy", track_id=None):
    probabilities = {label: 0.04 for label in LABELS}
    probabilities[top] = 1.0 - 0.04 * (len(LABELS) - 1)
    return Face(box=box, probabilities=probabilities, score=0.9, track_id=track_id)


@pytest.fixture
def photo(photo_path):
    return load_image(photo_path)


def test_draws_on_a_copy_and_leaves_the_input_alone(photo):
    before = photo.copy()
    out = draw(photo, [face((100, 80, 60, 60))], bars=True)
    np.testing.assert_array_equal(photo, before)
    assert out is not photo and not np.shares_memory(out, photo)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert (out != photo).any()


def test_no_faces_gives_an_equal_copy(photo):
    out = draw(photo, [])
    assert out is not photo
    np.testing.assert_array_equal(out, photo)


def test_paths_and_grey_arrays_are_accepted(photo_path):
    assert draw(photo_path, [face((10, 10, 40, 40))]).shape[2] == 3
    grey = np.full((60, 80), 128, np.uint8)
    assert draw(grey, [face((10, 10, 30, 30))]).shape == (60, 80, 3)


def test_rgb_in_rgb_out(photo):
    faces = [face((100, 80, 60, 60), "angry")]
    rgb = np.ascontiguousarray(photo[:, :, ::-1])
    np.testing.assert_array_equal(draw(rgb, faces, color="rgb"), draw(photo, faces)[:, :, ::-1])


def test_the_box_is_drawn_in_the_emotion_colour():
    blank = np.zeros((200, 200, 3), np.uint8)
    out = draw(blank, [face((50, 100, 80, 80), "angry")])
    assert tuple(out[140, 50]) == EMOTION_COLORS["angry"]  # the box's left edge, below the tag


def test_an_abstained_face_is_drawn_grey_and_tagged_unsure():
    blank = np.zeros((200, 200, 3), np.uint8)
    sure = face((50, 100, 80, 80), "angry")  # top probability 0.76
    unsure = Face(box=sure.box, probabilities=sure.probabilities, min_confidence=0.8)
    assert not sure.abstained and unsure.abstained and unsure.emotion == "angry"
    drawn_sure, drawn_unsure = draw(blank, [sure]), draw(blank, [unsure])
    assert tuple(drawn_unsure[140, 50]) == ABSTAINED_COLOR != tuple(drawn_sure[140, 50])
    tag = (slice(60, 100), slice(50, 200))  # the tag above the box: longer text for "unsure: angry 76%"
    assert (drawn_unsure[tag] != 0).any(axis=2).sum() > (drawn_sure[tag] != 0).any(axis=2).sum()


def test_bars_track_ids_and_text_add_ink(photo):
    faces = [face((100, 80, 60, 60))]
    plain = draw(photo, faces)
    assert (draw(photo, faces, bars=True) != plain).sum() > (plain != photo).sum()
    assert (draw(photo, [face((100, 80, 60, 60), track_id=7)]) != plain).any()


@pytest.mark.parametrize("box", [(0, 0, 50, 50), (-30, -30, 60, 60), (170, 170, 60, 60), (0, 0, 200, 200),
                                 (190, 5, 10, 10)])
def test_faces_at_edges_and_beyond_stay_inside_the_canvas(box):
    out = draw(np.zeros((200, 200, 3), np.uint8), [face(box)], bars=True)
    assert out.shape == (200, 200, 3) and out.any()


def test_marks_scale_with_the_image():
    """The same scene at 4x the size (above the minimum sizes) is covered by about the same fraction of ink."""
    def ink(side):
        scale = side / 250
        box = tuple(round(v * scale) for v in (60, 90, 70, 70))
        return (draw(np.zeros((side, side, 3), np.uint8), [face(box)], bars=True) != 0).any(axis=2).mean()

    small, large = ink(500), ink(2000)
    assert 0.5 < large / small < 2.0


def test_label_colours_are_stable_and_distinct():
    colours = {label_color(label) for label in LABELS}
    assert len(colours) == len(LABELS)
    assert label_color("Happy") == EMOTION_COLORS["happy"]
    assert label_color("confused") == label_color("confused")


def test_draw_text_writes_in_place():
    canvas = np.zeros((100, 200, 3), np.uint8)
    draw_text(canvas, "12.5 FPS", (0, 0), background=(255, 255, 255))
    assert canvas[:10, :30].any() and not canvas[60:].any()


def test_drawn_photo_stays_a_valid_image(photo, tmp_path):
    out = draw(photo, [face((100, 80, 60, 60), "surprise", 3)], bars=True)
    assert cv2.imwrite(str(tmp_path / "annotated.png"), out)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "annotated.png")), out)


# -- layout: panels never cover a face, a tag or another panel (issue #27) ---------------------------

#: expw-dev photos where YuNet finds 8 or more faces (20 to 76).
CROWDS = ("fighting_people_96.jpg", "angry_european_638.jpg", "hostile_people_806.jpg", "awe_student_528.jpg")


def _boxes_csv_photos():
    import csv

    from .conftest import FACES_BOXES, need

    table = need(FACES_BOXES / "boxes.csv", "faces-boxes photos")
    boxes: dict[str, list] = {}
    with open(table, newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            boxes.setdefault(row["path"], []).append(tuple(int(row[k]) for k in "xywh"))
    return [(cv2.imread(str(FACES_BOXES / path)), found) for path, found in sorted(boxes.items())]


def _crowd_photos():
    import zipfile

    from emofer.detect import YuNetDetector

    from .conftest import DATA, need

    photos = []
    with zipfile.ZipFile(need(DATA / "expw-dev.zip", "expw-dev archive")) as archive:
        for name in CROWDS:
            image = cv2.imdecode(np.frombuffer(archive.read(f"expw-dev/images/{name}"), np.uint8), cv2.IMREAD_COLOR)
            photos.append((image, [d.box for d in YuNetDetector().detect(image)]))
    return photos


def _overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("photos", [_boxes_csv_photos, _crowd_photos], ids=["faces-boxes", "expw-dev-crowds"])
def test_bar_panels_cover_no_face_no_tag_and_no_other_panel(photos):
    from emofer.draw import layout

    placed = 0
    for image, boxes in photos():
        faces = [face(box, LABELS[i % len(LABELS)]) for i, box in enumerate(boxes)]
        places = layout(image.shape, faces, bars=True)
        height, width = image.shape[:2]
        for i, place in enumerate(places):
            if place.panel is None:
                continue
            placed += 1
            x, y, w, h = place.panel
            assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
            for j, other in enumerate(places):
                assert not _overlaps(place.panel, other.box) and not _overlaps(place.panel, other.tag)
                assert j == i or other.panel is None or not _overlaps(place.panel, other.panel)
        assert draw(image, faces, bars=True).shape == image.shape
    assert placed > 0  # there was room for some


def test_a_box_at_the_top_left_corner_keeps_its_tag_visible():
    from emofer.draw import layout

    blank = np.zeros((300, 400, 3), np.uint8)
    (place,) = layout(blank.shape, [face((0, 0, 80, 80))], bars=True)
    assert place.tag[:2] == (0, 0) and place.panel is not None and not _overlaps(place.panel, place.tag)


def test_tags_of_adjacent_video_faces_do_not_clip_each_other():
    from emofer.draw import layout

    frame = np.zeros((240, 320, 3), np.uint8)
    faces = [face((60, 60, 50, 50), track_id=1), face((115, 62, 50, 50), "sad", track_id=2)]
    first, second = layout(frame.shape, faces)
    assert not _overlaps(first.tag, second.tag)


def test_the_draw_module_is_reachable_and_calling_it_draws():
    """emofer.draw is the module (emofer.draw.draw_text, as docs/api/draw.md documents) and emofer.draw(...)
    still draws, as the examples and the quickstart call it."""
    import emofer
    import emofer.draw as module

    assert emofer.draw is module and emofer.draw.draw_text is draw_text
    image = np.full((120, 160, 3), 80, np.uint8)
    face = Face(box=(40, 30, 60, 60), probabilities={"happy": 0.9, "sad": 0.1})
    assert np.array_equal(emofer.draw(image, [face], bars=True), module.draw(image, [face], bars=True))
    assert not np.array_equal(emofer.draw(image, [face]), image)
