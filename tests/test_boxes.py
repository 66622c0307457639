"""Box geometry: IoU, greedy matching, clipping."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from emofer.boxes import clip_boxes, iou, iou_matrix, match

sides = st.integers(1, 200)
coords = st.integers(-100, 400)
boxes = st.tuples(coords, coords, sides, sides)


@given(boxes, boxes)
def test_iou_is_symmetric_and_bounded(a, b):
    assert 0.0 <= iou(a, b) <= 1.0
    assert iou(a, b) == iou(b, a)


@given(boxes)
def test_iou_of_a_box_with_itself_is_one(a):
    assert iou(a, a) == 1.0


def test_iou_known_values():
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == 50 / 150
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0
    assert iou_matrix([], [(0, 0, 1, 1)]).shape == (0, 1)


def test_match_is_greedy_one_to_one_and_thresholded():
    truth = [(0, 0, 10, 10), (100, 100, 10, 10)]
    found = [(1, 0, 10, 10), (0, 1, 10, 10), (300, 300, 5, 5)]
    pairs = match(truth, found, 0.3)
    assert len(pairs) == 1 and pairs[0][0] == 0  # one truth box takes one detection only
    assert match(truth, [], 0.3) == [] and match([], found, 0.3) == []


def test_clip_boxes_rounds_clips_and_drops_empty():
    clipped, keep = clip_boxes(np.array([[-5.4, 2.6, 20, 10], [50, 50, 10, 10], [95, 10, 20, 20]]), 100, 40)
    assert keep.tolist() == [True, False, True]
    assert clipped.tolist() == [[0, 3, 15, 10], [95, 10, 5, 20]]
