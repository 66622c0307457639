"""Face detectors: the real YuNet and Haar on real photos, the factory, and the bundled weights."""

from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from emofer import detect
from emofer.boxes import iou
from emofer.detect import (
    CallableDetector,
    Detection,
    Detector,
    HaarDetector,
    WholeImageDetector,
    YuNetDetector,
    build_detector,
)
from emofer.detect import yunet as yunet_module
from emofer.detect.base import ScaledDetector
from emofer.errors import DetectorError, ImageReadError, ParameterError
from emofer.io import load_image

from .conftest import EXAMPLE_PHOTO, FACES_BOXES, YUNET, need, needs_haar
from .test_hub import fill_cache

# Floors a little below what benchmarks/detectors.py measured (docs/detectors.md): YuNet 43/43
# found with 1 false positive at full size (min_face=16), 43/43 with 4 at the default min_face=32
# (these photos' faces are 37-109 px, near that limit), Haar 39/43 with 1.
YUNET_MIN_FOUND, YUNET_MAX_FALSE = 42, 2
YUNET_DEFAULT_MAX_FALSE = 5
HAAR_MIN_FOUND, HAAR_MAX_FALSE = 37, 3


@pytest.fixture
def yunet_path(monkeypatch):
    """The bundled YuNet weights, with EMOFER_YUNET unset (so they are what YuNetDetector() loads)."""
    monkeypatch.delenv(yunet_module.ENV_VAR, raising=False)
    return YUNET


@pytest.fixture
def no_network(monkeypatch, yunet_path):
    """No EMOFER_YUNET, and any attempt to reach the Hub fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"the Hub was asked for {args}")

    monkeypatch.setattr("emofer.hub.resolve_file", refuse)
    return yunet_path


@pytest.fixture(scope="module")
def benchmark():
    need(FACES_BOXES / "boxes.csv", "faces-boxes photos")
    from benchmarks import detectors

    return detectors, detectors.load_boxes(FACES_BOXES)


# -- accuracy on real photos ---------------------------------------------------------------


@pytest.mark.data
def test_yunet_finds_the_faces_of_real_photos(benchmark):
    detectors, boxes = benchmark
    score = detectors.evaluate(YuNetDetector(need(YUNET, "YuNet weights"), min_face=16), boxes)
    assert score.faces == 43
    assert score.found >= YUNET_MIN_FOUND and score.false_positives <= YUNET_MAX_FALSE, score
    default = detectors.evaluate(YuNetDetector(YUNET), boxes)
    assert default.found >= YUNET_MIN_FOUND and default.false_positives <= YUNET_DEFAULT_MAX_FALSE, default


def test_yunet_scales_images_so_the_smallest_face_asked_for_stays_detectable():
    detector = YuNetDetector(need(YUNET, "YuNet weights"))
    assert detector.min_face == yunet_module.MIN_FACE == 32
    assert detector.working_scale(640, 480) == 0.5                 # a webcam frame: 320x240
    assert detector.working_scale(1920, 1080) == 640 / 1920        # max_side still caps large images
    assert detector.working_scale(480, 360) == 320 / 480           # never below MIN_SIDE px
    assert detector.working_scale(320, 240) == 1.0                 # small frames stay as they are
    assert detector.working_scale(100, 80) == 1.0                  # never enlarged
    assert YuNetDetector(YUNET, min_face=16).working_scale(640, 480) == 1.0
    assert YuNetDetector(YUNET, min_face=8, max_side=320).working_scale(640, 480) == 0.5
    with pytest.raises(ParameterError, match="min_face must be a positive number of pixels, got 0"):
        YuNetDetector(YUNET, min_face=0)


def test_yunet_boxes_map_back_to_the_original_pixels_after_scaling():
    image = load_image(Path(__file__).resolve().parents[1] / "examples" / "images" / "grace_hopper.jpg")
    small = YuNetDetector(need(YUNET, "YuNet weights")).detect(image)       # detected at half size
    full = YuNetDetector(YUNET, min_face=16).detect(image)                  # at full size
    assert len(small) == len(full) == 1
    assert iou(small[0].box, full[0].box) > 0.8
    assert all(0 <= x < image.shape[1] and 0 <= y < image.shape[0] for x, y in small[0].landmarks)


@pytest.mark.data
@needs_haar
def test_haar_finds_most_faces_of_real_photos(benchmark):
    detectors, boxes = benchmark
    score = detectors.evaluate(HaarDetector(), boxes)
    assert score.found >= HAAR_MIN_FOUND and score.false_positives <= HAAR_MAX_FALSE, score


@pytest.mark.data
def test_yunet_scores_and_landmarks(photo_path, yunet_path):
    image = load_image(photo_path)
    found = YuNetDetector().detect(image)
    assert found
    for detection in found:
        x, y, w, h = detection.box
        assert 0.6 <= detection.score <= 1.0
        assert len(detection.landmarks) == 5
        for px, py in detection.landmarks:  # eyes, nose and mouth corners lie near the box
            assert x - w / 2 <= px <= x + 1.5 * w and y - h / 2 <= py <= y + 1.5 * h
    assert found[0].to_dict()["box"] == list(found[0].box)


@pytest.mark.data
@pytest.mark.parametrize("make", [lambda: YuNetDetector(need(YUNET, "YuNet weights")),
                                  pytest.param(HaarDetector, marks=needs_haar)])
def test_large_images_are_scaled_down_and_boxes_mapped_back(photo_path, make):
    detector = make()
    image = load_image(photo_path)
    big = cv2.resize(image, None, fx=3.0, fy=3.0, interpolation=cv2.INTER_CUBIC)
    assert max(big.shape[:2]) > detector.max_side
    small_boxes = [d.box for d in detector.detect(image)]
    big_boxes = [d.box for d in detector.detect(big)]
    assert small_boxes and len(big_boxes) >= len(small_boxes) - 1
    for box in small_boxes:
        scaled = tuple(3 * v for v in box)
        assert max(iou(scaled, other) for other in big_boxes) > 0.5


def test_scaled_detector_maps_boxes_and_landmarks_to_original_pixels():
    class Fixed(ScaledDetector):
        name, max_side = "fixed", 100

        def _detect(self, image):
            self.seen = image.shape
            return np.array([[10.0, 5.0, 30.0, 40.0]]), np.array([0.9]), np.array([[[25.0, 40.0]]])

    detector = Fixed()
    (found,) = detector.detect(np.zeros((200, 400, 3), np.uint8))
    assert detector.seen == (50, 100, 3)
    assert found == Detection(box=(40, 20, 120, 160), score=pytest.approx(0.9), landmarks=((100.0, 160.0),))
    detector.detect(np.zeros((60, 80, 3), np.uint8))
    assert detector.seen == (60, 80, 3)  # small images are not touched


def test_scaled_detectors_sort_by_score_else_left_to_right():
    class Fixed(ScaledDetector):
        name = "fixed"

        def __init__(self, scores):
            self.scores = scores
            super().__init__()

        def _detect(self, image):
            return np.array([[50.0, 0, 9, 9], [10, 20, 9, 9], [10, 5, 9, 9]]), self.scores, None

    image = np.zeros((40, 80, 3), np.uint8)
    assert [d.box[:2] for d in Fixed(None).detect(image)] == [(10, 5), (10, 20), (50, 0)]
    assert [d.score for d in Fixed(np.array([0.7, 0.9, 0.8])).detect(image)] == pytest.approx([0.9, 0.8, 0.7])


@pytest.mark.data
@needs_haar
def test_one_detector_serves_many_threads(photo_path, yunet_path):
    images = [load_image(photo_path)]
    images.append(cv2.resize(images[0], None, fx=0.7, fy=0.7))  # another size: another setInputSize
    for detector in (YuNetDetector(), HaarDetector()):
        expected = [detector.detect(image) for image in images]
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(detector.detect, images * 6))
        assert results == expected * 6


@pytest.mark.data
@needs_haar
def test_detectors_survive_pickling(photo_path, yunet_path):
    image = load_image(photo_path)
    for detector in (YuNetDetector(score_threshold=0.7), HaarDetector(min_neighbors=4), WholeImageDetector()):
        clone = pickle.loads(pickle.dumps(detector))
        assert type(clone) is type(detector) and clone.detect(image) == detector.detect(image)
    clone = pickle.loads(pickle.dumps(YuNetDetector(score_threshold=0.7)))
    assert (clone.score_threshold, clone.nms_threshold) == (0.7, yunet_module.NMS_THRESHOLD)


@pytest.mark.parametrize("name", [pytest.param("haar", marks=needs_haar), "none"])
def test_tiny_and_blank_images_give_no_error(name):
    detector = build_detector(name)
    for shape in [(1, 1, 3), (10, 7, 3), (120, 160, 3)]:
        found = detector.detect(np.zeros(shape, np.uint8))
        assert found == ([] if name == "haar" else [Detection(box=(0, 0, shape[1], shape[0]))])


def test_yunet_on_tiny_and_blank_images(yunet_path):
    detector = YuNetDetector()
    for shape in [(0, 0, 3), (0, 5, 3), (1, 1, 3), (10, 7, 3), (1000, 1200, 3)]:
        assert detector.detect(np.zeros(shape, np.uint8)) == []


@pytest.mark.parametrize("name", [pytest.param("haar", marks=needs_haar), "none"])
@pytest.mark.parametrize("bad", [np.zeros((20, 20), np.uint8), np.zeros((20, 20, 3), np.float32),
                                 np.zeros((20, 20, 4), np.uint8), "photo.jpg"])
def test_detectors_reject_what_is_not_uint8_bgr(name, bad):
    with pytest.raises(ImageReadError, match="load_image"):
        build_detector(name).detect(bad)


# -- build_detector --------------------------------------------------------------------------


@needs_haar
def test_names_build_their_detectors(yunet_path):
    assert isinstance(build_detector("haar"), HaarDetector)
    assert isinstance(build_detector(" YuNet "), YuNetDetector)
    assert isinstance(build_detector("none"), WholeImageDetector)
    for built in (build_detector(name) for name in detect.NAMES):
        assert isinstance(built, Detector) and built.name in ("yunet", "haar", "none")


def test_unknown_names_and_types_are_refused():
    with pytest.raises(ParameterError, match="unknown detector 'retinaface'; use one of auto, yunet, haar, none"):
        build_detector("retinaface")
    with pytest.raises(ParameterError, match="got int"):
        build_detector(3)


def test_a_detector_instance_is_used_as_is():
    mine = WholeImageDetector()
    assert build_detector(mine) is mine


def test_a_box_function_becomes_a_custom_detector():
    detector = build_detector(lambda image: [(-10, 5, 30, 20, 0.8), np.array([90.0, 90.0, 50.0, 50.0, 0.5]),
                                             (500, 500, 10, 10, 0.9)])
    assert isinstance(detector, CallableDetector) and detector.name == "custom"
    found = detector.detect(np.zeros((100, 120, 3), np.uint8))
    assert found == [Detection((0, 5, 20, 20), pytest.approx(0.8)), Detection((90, 90, 30, 10), pytest.approx(0.5))]
    assert build_detector(lambda image: [(1, 2, 3, 4)]).detect(np.zeros((9, 9, 3), np.uint8)) == [
        Detection((1, 2, 3, 4), None)
    ]
    assert build_detector(lambda image: []).detect(np.zeros((9, 9, 3), np.uint8)) == []


@pytest.mark.parametrize("boxes, message", [
    ([(1, 2, 3)], "positive width"),
    ([(1, 2, 0, 4)], "positive width"),
    ([(1, 2, float("nan"), 4)], "finite"),
    ([("a", 2, 3, 4)], "numbers"),
    ([5], "numbers"),
    ([(1, 2, 3, 4), (1, 2, 3, 4, 0.5)], "with and without scores"),
])
def test_a_box_function_with_bad_boxes_is_reported(boxes, message):
    def find_faces(image):
        return boxes

    with pytest.raises(DetectorError, match=message) as info:
        build_detector(find_faces).detect(np.zeros((9, 9, 3), np.uint8))
    assert "find_faces" in str(info.value)


# -- YuNet weights and the "auto" choice -----------------------------------------------------


def test_auto_and_yunet_are_the_bundled_yunet_offline_without_a_warning(no_network, caplog):
    with caplog.at_level(logging.WARNING, logger="emofer"):
        auto, named = build_detector("auto"), build_detector("yunet")
    assert isinstance(auto, YuNetDetector) and isinstance(named, YuNetDetector)
    assert auto.weights == named.weights == yunet_module.BUNDLED_WEIGHTS and not caplog.records
    assert len(auto.detect(load_image(EXAMPLE_PHOTO))) == 1


def test_the_bundled_weights_are_recorded_beside_them_and_checked(yunet_path, monkeypatch, tmp_path):
    source = (yunet_module.BUNDLED_WEIGHTS.parent / "SOURCE.md").read_text()
    assert yunet_module.BUNDLED_SHA256 in source and "MIT" in source
    assert f"{yunet_module.BUNDLED_WEIGHTS.stat().st_size:,} bytes" in source
    damaged = tmp_path / yunet_module.BUNDLED_WEIGHTS.name
    damaged.write_bytes(yunet_module.BUNDLED_WEIGHTS.read_bytes()[:-1] + b"x")
    monkeypatch.setattr(yunet_module, "BUNDLED_WEIGHTS", damaged)
    with pytest.raises(DetectorError, match=r"damaged \(sha256 .*force-reinstall"):
        build_detector("auto")
    monkeypatch.setattr(yunet_module, "BUNDLED_WEIGHTS", tmp_path / "gone.onnx")
    with pytest.raises(DetectorError, match="cannot be read"):
        YuNetDetector()


def test_yunet_weights_from_a_path_and_from_the_environment(yunet_path, monkeypatch, tmp_path):
    mine = tmp_path / "my-yunet.onnx"
    shutil.copy(yunet_path, mine)
    assert YuNetDetector(mine).weights == mine
    monkeypatch.setenv(yunet_module.ENV_VAR, str(mine))
    assert YuNetDetector().weights == build_detector("auto").weights == mine


def test_yunet_with_missing_or_broken_weights(monkeypatch, tmp_path):
    monkeypatch.setenv(yunet_module.ENV_VAR, str(tmp_path / "nowhere.onnx"))
    with pytest.raises(DetectorError, match="EMOFER_YUNET.*bundled"):
        YuNetDetector()
    with pytest.raises(DetectorError, match="not found"):
        YuNetDetector(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(DetectorError, match="could not load YuNet"):
        YuNetDetector(broken)


def test_yunet_from_the_hub_cache(yunet_path, tmp_path, caplog):
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(yunet_path, folder / yunet_module.HUB_FILENAME)
    fill_cache(tmp_path / "cache", yunet_module.HUB_REPO, folder)
    detector = YuNetDetector(yunet_module.HUB_REPO, cache_dir=tmp_path / "cache", local_files_only=True)
    assert detector.weights.name == yunet_module.HUB_FILENAME and detector.weights.is_file()


def test_yunet_from_the_hub_offline_and_not_cached_gives_a_command_that_works(yunet_path, tmp_path):
    with pytest.raises(DetectorError) as info:
        YuNetDetector(yunet_module.HUB_REPO, cache_dir=tmp_path / "empty", local_files_only=True)
    message = str(info.value)
    assert "emofer download" not in message and "pass no weights" in message
    command = message.split("`")[1]  # the python -c command, run as it is printed
    assert command.startswith('python -c "from huggingface_hub import hf_hub_download; ')
    code = command[len('python -c "'):-1]
    compile(code, "<hint>", "exec")
    assert f"hf_hub_download('{yunet_module.HUB_REPO}', '{yunet_module.HUB_FILENAME}')" in code


def test_haar_on_opencv_without_cascades_says_what_to_do(monkeypatch):
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)
    with pytest.raises(DetectorError, match=r'needs cv2.CascadeClassifier, which OpenCV .* does not have.*detector="yunet".*"opencv-python>=4.13,<5"'):
        HaarDetector()
    with pytest.raises(DetectorError, match="opencv-python 5 removed it"):
        build_detector("haar")


def test_haar_available_follows_what_the_opencv_install_has(monkeypatch, capsys):
    """One check of "can this OpenCV run Haar", used by the detector, `emofer info`, the benchmark and
    the tests' skip marks: without the class or without its cascade files, it says no."""
    from emofer.cli import main
    from emofer.detect.haar import haar_available

    assert haar_available() == (hasattr(cv2, "CascadeClassifier") and hasattr(cv2, "data"))
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)
    assert not haar_available()
    assert main(["info"]) == 0
    line = next(row for row in capsys.readouterr().out.splitlines() if row.lstrip().startswith("haar cascades"))
    assert "missing (opencv-python 5)" in line
    monkeypatch.undo()
    if hasattr(cv2, "CascadeClassifier"):  # OpenCV 4: the class without its files is not enough either
        monkeypatch.delattr(cv2, "data", raising=False)
        assert not haar_available()


def test_auto_on_opencv_without_cascades_is_still_the_bundled_yunet(monkeypatch, no_network):
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)
    assert build_detector("auto").weights == yunet_module.BUNDLED_WEIGHTS


# -- small faces in large images -------------------------------------------------------------


def pasted(width: int, height: int, at: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The example portrait resized to 256x300 and pasted at ``at`` into a grey canvas; its face box."""
    photo = load_image(EXAMPLE_PHOTO)
    (face,) = YuNetDetector(YUNET, min_face=16).detect(photo)
    sx, sy = 256 / photo.shape[1], 300 / photo.shape[0]
    canvas = np.full((height, width, 3), 128, np.uint8)
    x, y = at
    canvas[y:y + 300, x:x + 256] = cv2.resize(photo, (256, 300), interpolation=cv2.INTER_AREA)
    fx, fy, fw, fh = face.box
    return canvas, (x + round(fx * sx), y + round(fy * sy), round(fw * sx), round(fh * sy))


@pytest.mark.parametrize("size", [(6000, 4000), (3840, 2160)])
def test_a_small_face_in_a_large_image_is_found(size, yunet_path):
    canvas, truth = pasted(*size, at=(size[0] // 2 + 17, size[1] // 3))
    detector = YuNetDetector()
    assert detector.detect(cv2.resize(canvas, None, fx=0.1, fy=0.1)) == []  # too small once scaled
    (found,) = detector.detect(canvas)
    assert iou(found.box, truth) > 0.5 and found.score > 0.6


def test_a_second_pass_runs_only_where_the_first_would_miss_min_face(yunet_path):
    detector = YuNetDetector()
    assert detector.pass_scales(640, 480) == (0.5,)              # a webcam frame: one pass, as before
    assert detector.pass_scales(1280, 720) == (0.5,)             # 640 px already keeps 32 px faces 16 px
    assert detector.pass_scales(6000, 4000) == (640 / 6000, 0.5)
    coarse, fine = detector.pass_scales(12000, 9000)             # beyond the budget: as fine as it allows
    assert fine == pytest.approx((yunet_module.FINE_MAX_PIXELS / (12000 * 9000)) ** 0.5) and fine < 0.5
    assert YuNetDetector(min_face=64).pass_scales(2560, 1440) == (0.25,)
    assert YuNetDetector(min_face=8).pass_scales(640, 480) == (1.0,)


def test_a_large_face_is_found_once_in_a_large_image(yunet_path):
    photo = load_image(EXAMPLE_PHOTO)
    big = cv2.resize(photo, None, fx=5, fy=5, interpolation=cv2.INTER_CUBIC)  # a face of about 850 px
    assert len(YuNetDetector().detect(big)) == 1
