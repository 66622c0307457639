"""expw-train as a training source: framed by the bundled YuNet the way predict frames a face,
carved by photo, and mixed into a recipe's sets with the weights the recipe gives."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from emofer import EmotionRecognizer
from emofer.preprocess import crop_face, model_input, to_tensor
from tests.conftest import DATA, EXAMPLE_PHOTO, need
from training import expw, mixing
from training.data import SUBSETS, DatasetError, FaceSet
from training.framing import DEFAULT_POLICIES, load_policies

EXPW_TRAIN = DATA / "expw-train.zip"
FERPLUS8 = SUBSETS["ferplus8"]


def _crop_of(photo: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A 160x160 crop twice ``box`` around it, as expw-train stores faces (black outside the photo)."""
    x, y, w, h = box
    side = 2 * w
    canvas = np.zeros((side, side, 3), np.uint8)
    x0, y0 = x - w // 2, y - h // 2
    sy, sx = max(0, y0), max(0, x0)
    part = photo[sy:y0 + side, sx:x0 + side]
    canvas[sy - y0:sy - y0 + part.shape[0], sx - x0:sx - x0 + part.shape[1]] = part
    return cv2.resize(canvas, (160, 160), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def tiny_expw(tmp_path_factory) -> Path:
    """A real expw-train-shaped zip made from the project's example photo: one readable face
    (under two photo names) and one crop with no face, which must fall back to the stored box."""
    photo = cv2.imread(str(EXAMPLE_PHOTO))
    face = EmotionRecognizer.from_pretrained().detect(photo)[0].box
    crop = _crop_of(photo, tuple(int(v) for v in face))
    blank = np.full((160, 160, 3), 90, np.uint8)
    root = tmp_path_factory.mktemp("expw") / "expw-train.zip"
    rows = [("crops/a.jpg", "happy", "images/a.jpg", crop), ("crops/b.jpg", "sad", "images/b.jpg", blank)]
    rows += [(f"crops/p{i}.jpg", "angry", f"images/p{i}.jpg", crop) for i in range(40)]
    with zipfile.ZipFile(root, "w") as archive:
        lines = ["file,label,source,face_id,x,y,w,h,box_conf"]
        for name, label, source, pixels in rows:
            archive.writestr(f"expw-train/{name}", cv2.imencode(".jpg", pixels)[1].tobytes())
            lines.append(f"{name},{label},{source},0,0,0,80,80,50")
        archive.writestr("expw-train/faces.csv", "\n".join(lines) + "\n")
    return root


def test_faces_are_framed_by_yunet_exactly_as_predict_frames_them(tiny_expw):
    policy = load_policies(DEFAULT_POLICIES)["yunet"]
    rec = EmotionRecognizer.from_pretrained()
    size, channels = rec.config.input.size, rec.config.input.channels  # framed as the default model takes faces
    faces, framing = expw.load_expw(tiny_expw, "Training", FERPLUS8, policy, size, channels=channels)
    faces_val, _ = expw.load_expw(tiny_expw, "PublicTest", FERPLUS8, policy, size, channels=channels)
    assert len(faces) + len(faces_val) == 42
    assert faces.classes == FERPLUS8 and faces.pixels.shape[1:3] == size
    # The runtime's own path on the stored crop: its detector, its crop policy for YuNet, its tensor.
    with zipfile.ZipFile(tiny_expw) as archive:
        crop = cv2.imdecode(np.frombuffer(archive.read("expw-train/crops/a.jpg"), np.uint8), cv2.IMREAD_COLOR)
    box = rec.detect(crop)[0].box
    want = to_tensor([crop_face(crop, box, policy)], size, channels, rec.config.normalize)
    got_faces = faces if "crops/a.jpg" in faces.names else faces_val
    row = got_faces.names.index("crops/a.jpg")
    np.testing.assert_array_equal(model_input(got_faces.pixels[row:row + 1], rec.config), want)


def test_a_crop_yunet_cannot_read_falls_back_to_the_stored_box_and_is_counted(tiny_expw):
    policy = load_policies(DEFAULT_POLICIES)["yunet"]
    train, framing_train = expw.load_expw(tiny_expw, "Training", FERPLUS8, policy)
    val, framing_val = expw.load_expw(tiny_expw, "PublicTest", FERPLUS8, policy)
    assert framing_train.fallback + framing_val.fallback == 1
    assert framing_train.faces + framing_val.faces == 42
    blank = train if "crops/b.jpg" in train.names else val
    row = blank.names.index("crops/b.jpg")
    assert int(blank.pixels[row].std()) == 0  # the flat crop's stored box, not a detection


def test_the_validation_part_is_carved_by_photo_and_stable(tiny_expw):
    policy = load_policies(DEFAULT_POLICIES)["yunet"]
    train, _ = expw.load_expw(tiny_expw, "Training", FERPLUS8, policy)
    val, _ = expw.load_expw(tiny_expw, "PublicTest", FERPLUS8, policy)
    assert not set(train.names) & set(val.names)
    assert all(expw.is_val(f"images/{Path(n).stem}.jpg") for n in val.names)
    assert 0 < len(val) < len(train)


def test_there_is_no_test_part_and_unknown_labels_are_refused(tiny_expw, tmp_path):
    policy = load_policies(DEFAULT_POLICIES)["yunet"]
    with pytest.raises(DatasetError, match="no test split: expw-dev"):
        expw.load_expw(tiny_expw, "PrivateTest", FERPLUS8, policy)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "faces.csv").write_text("file,label,source\ncrops/x.jpg,bored,images/x.jpg\n")
    with pytest.raises(DatasetError, match="unknown labels \\['bored'\\]"):
        expw.load_expw(bad, "Training", FERPLUS8, policy)


@pytest.mark.data
def test_the_shared_expw_train_is_framed_by_yunet_almost_always():
    need(EXPW_TRAIN, "expw-train archive")
    policy = load_policies(DEFAULT_POLICIES)["yunet"]
    val, framing = expw.load_expw(EXPW_TRAIN, "PublicTest", FERPLUS8, policy)
    with zipfile.ZipFile(EXPW_TRAIN) as archive:
        rows = list(csv.DictReader(archive.read("expw-train/faces.csv").decode().splitlines()))
    photos = {r["source"] for r in rows}
    assert len(rows) == 4223 and len(photos) == 3992
    assert 300 < len(val) < 550  # about one photo in ten
    assert framing.fallback_rate < 0.05 and framing.median_iou > 0.5
    assert val.counts()["contempt"] == 0 and min(v for k, v in val.counts().items() if k != "contempt") > 30


def _set(labels, classes=FERPLUS8) -> FaceSet:
    labels = np.asarray(labels)
    return FaceSet(np.zeros((len(labels), 48, 48), np.uint8), labels, classes, "Training", None,
                   tuple(f"f{i}" for i in range(len(labels))))


def test_mixing_gives_the_web_set_its_share_and_smooths_only_over_its_own_emotions():
    main, web = _set(np.arange(1000) % 8), _set(np.arange(100) % 7)
    options = mixing.Web(share=0.3, label_smoothing=0.1)
    faces, targets, weights = mixing.combine(main, main.targets(), None, web, options, ("neutral", "happy",
                                             "surprise", "sad", "angry", "disgust", "fear"))
    n_web = len(faces) - len(main)
    assert options.repeats(1000, 100) == 4 and n_web == 400
    assert abs(n_web / len(faces) - 0.3) < 0.03
    np.testing.assert_allclose(targets.sum(1), 1.0, rtol=1e-6)
    web_targets = targets[len(main):]
    assert (web_targets[:, FERPLUS8.index("contempt")] == 0).all()
    assert np.allclose(web_targets.max(1), 0.9 + 0.1 / 7)
    assert weights.shape == (len(faces),) and (weights == 1).all()


def test_validation_weights_make_val_accuracy_the_mean_of_both_parts():
    main, web = _set(np.arange(300) % 8), _set(np.arange(50) % 7)
    faces, weights, web_rows = mixing.validation(main, web, mixing.Web(val_weight=0.5))
    right = np.zeros(len(faces), bool)
    right[:150] = True   # main accuracy 0.5
    right[web_rows] = True  # web accuracy 1.0
    assert np.isclose((weights * right).sum() / weights.sum(), 0.75)


def test_keep_takes_the_same_part_of_each_emotion_nested_and_leaves_the_rest_unchanged():
    web = _set(np.repeat(np.arange(7), [60, 61, 62, 63, 64, 65, 66]))
    assert mixing.Web().kept(web) is web
    half, quarter = mixing.Web(keep=0.5).kept(web), mixing.Web(keep=0.25).kept(web)
    assert [half.counts()[c] for c in FERPLUS8[:7]] == [round(0.5 * n) for n in (60, 61, 62, 63, 64, 65, 66)]
    assert set(quarter.names) < set(half.names)  # a smaller keep is a subset of a larger one's faces
    assert half.names == mixing.Web(keep=0.5).kept(web).names  # the same draw every run
    by_name = dict(zip(web.names, web.labels))
    assert all(by_name[n] == label for n, label in zip(half.names, half.labels))
    # the web part keeps its share of each epoch: fewer faces, repeated more
    assert mixing.Web(share=0.3, keep=0.5).repeats(1000, len(half)) > mixing.Web(share=0.3).repeats(1000, len(web))
    with pytest.raises(ValueError, match="web.keep must be above 0"):
        mixing.Web.from_recipe({"keep": 0})
    with pytest.raises(ValueError, match="web.keep"):
        mixing.Web.from_recipe({"keep": 1.5})


def test_a_web_block_with_a_typo_or_out_of_range_value_is_refused():
    with pytest.raises(ValueError, match="unknown keys \\['shares'\\]"):
        mixing.Web.from_recipe({"shares": 0.3})
    with pytest.raises(ValueError, match="web.label_smoothing"):
        mixing.Web.from_recipe({"label_smoothing": 1.5})


def test_a_colour_network_gets_the_bgr_face_predict_would_hand_it(tiny_expw):
    """channels=3 frames the same face, kept in colour: its grey version is the grey framing, up to
    the rounding of resizing before or after the conversion."""
    policy = load_policies(DEFAULT_POLICIES)["yunet"]
    grey, _ = expw.load_expw(tiny_expw, "Training", FERPLUS8, policy, (52, 52))
    colour, framing = expw.load_expw(tiny_expw, "Training", FERPLUS8, policy, (52, 52), channels=3)
    assert colour.pixels.shape == (*grey.pixels.shape, 3) and colour.names == grey.names
    made_grey = np.stack([cv2.cvtColor(face, cv2.COLOR_BGR2GRAY) for face in colour.pixels])
    assert np.abs(made_grey.astype(int) - grey.pixels).max() <= 2
    assert np.abs(colour.pixels[..., 0].astype(int) - colour.pixels[..., 2]).mean() > 3  # a colour photo
    with pytest.raises(DatasetError, match="channels must be 1"):
        expw.load_expw(tiny_expw, "Training", FERPLUS8, policy, channels=4)


def test_a_grey_face_set_goes_to_bgr_as_to_tensor_makes_it():
    grey = FaceSet(np.random.default_rng(0).integers(0, 256, (3, 52, 52), dtype=np.uint8), np.array([0, 1, 2]),
                   FERPLUS8, "Training")
    colour = grey.with_channels(3)
    assert colour.pixels.shape == (3, 52, 52, 3) and colour.with_channels(3) is colour
    want = to_tensor(list(grey.pixels), (52, 52), 3, EmotionRecognizer.from_pretrained().config.normalize)
    got = to_tensor(colour.pixels, (52, 52), 3, EmotionRecognizer.from_pretrained().config.normalize)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(colour.with_channels(1).pixels, grey.pixels)
