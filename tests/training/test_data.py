"""training.data on small real datasets written here: loaders, subsets, FER+ votes, bad data."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.conftest import (CSV_ROWS, TREE, encode, face, write_csv, write_ferplus, write_tree,
                                     zip_folder)
from training import data
from training.data import FER2013_LABELS, SUBSETS, DatasetError


# --- image folders ---

def test_image_folders_read_each_split_with_labels_from_folders(fer_folder):
    training = data.load_image_folders(fer_folder, "Training")
    assert training.classes == FER2013_LABELS
    assert training.split == "Training" and len(training) == 5
    assert training.pixels.shape == (5, 48, 48) and training.pixels.dtype == np.uint8
    assert list(training.names) == sorted(n for n in TREE if "Training_" in n)  # sorted by name
    expected = [FER2013_LABELS.index(TREE[n][0]) for n in training.names]
    assert training.labels.tolist() == expected
    png = training.names.index("train/happy/Training_00002.png")
    np.testing.assert_array_equal(training.pixels[png], face(2))  # PNG is lossless
    jpg = training.names.index("train/angry/Training_00001.jpg")
    assert np.abs(training.pixels[jpg].astype(int) - face(1)).mean() < 8  # JPEG nearly so
    assert len(data.load_image_folders(fer_folder, "PublicTest")) == 2
    assert data.load_image_folders(fer_folder, "PrivateTest").counts() == {
        "angry": 1, "disgust": 0, "fear": 0, "happy": 1, "sad": 2, "surprise": 0, "neutral": 0}


def test_image_folders_zip_equals_folder(fer_folder, tmp_path):
    archive = zip_folder(fer_folder, tmp_path / "fer.zip")
    from_zip = data.load_image_folders(archive, "PrivateTest")
    from_folder = data.load_image_folders(fer_folder, "PrivateTest")
    np.testing.assert_array_equal(from_zip.pixels, from_folder.pixels)
    np.testing.assert_array_equal(from_zip.labels, from_folder.labels)
    assert from_zip.names == from_folder.names


def test_colour_images_become_grey(tmp_path):
    colour = np.dstack([face(1), face(2), face(3)])
    root = write_tree(tmp_path / "fer", {"test/sad/PrivateTest_1.png": encode(colour, ".png")})
    faces = data.load_image_folders(root, "PrivateTest")
    assert faces.pixels.shape == (1, 48, 48)


# --- fer2013.csv ---

def test_csv_reads_usage_split_exactly(fer_csv):
    training = data.load_fer2013_csv(fer_csv, "Training")
    assert training.labels.tolist() == [label for label, _, usage in CSV_ROWS if usage == "Training"]
    np.testing.assert_array_equal(training.pixels[0], face(20))
    private = data.load_fer2013_csv(fer_csv, "PrivateTest")
    assert [FER2013_LABELS[i] for i in private.labels] == ["sad", "disgust"]
    assert private.names == ("row000005", "row000006")  # file rows, header is row 1


# --- FER+ ---

def test_ferplus_majority_vote_drops_unknown_not_a_face_and_ties(ferplus_folder):
    faces = data.load_ferplus(ferplus_folder, "Training")
    assert faces.classes == SUBSETS["ferplus8"]
    assert faces.names == ("fer0000000.png", "fer0000004.png", "fer0000005.png")
    assert [faces.classes[i] for i in faces.labels] == ["happy", "neutral", "angry"]
    assert faces.soft is None
    np.testing.assert_array_equal(faces.pixels[1], face(104))


def test_ferplus_soft_targets_are_vote_distributions(ferplus_folder):
    faces = data.load_ferplus(ferplus_folder, "Training", soft=True)
    classes = faces.classes
    np.testing.assert_allclose(faces.soft.sum(1), 1.0)
    np.testing.assert_allclose(faces.soft[1, [classes.index("neutral"), classes.index("surprise")]], [0.6, 0.4])
    np.testing.assert_allclose(faces.soft[2, [classes.index("angry"), classes.index("contempt")]], [0.7, 0.3])
    np.testing.assert_allclose(faces.targets(), faces.soft)


def test_ferplus_subset_keeps_only_faces_whose_majority_is_in_it(ferplus_folder):
    faces = data.load_ferplus(ferplus_folder, "Training", classes=("neutral", "surprise"))
    assert faces.names == ("fer0000004.png",)


def test_ferplus_speaks_emofers_emotion_names_and_accepts_its_own(ferplus_folder):
    # One vocabulary across models: FER+'s happiness/sadness/anger are emofer's happy/sad/angry,
    # and run folders recorded before the rename (FER+'s names) still load.
    assert SUBSETS["ferplus8"] == ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")
    assert set(SUBSETS["ferplus8"]) >= set(SUBSETS["fer7"])
    old = data.load_ferplus(ferplus_folder, "Training", classes=("neutral", "happiness", "anger"))
    assert old.classes == ("neutral", "happy", "angry") and old.labels.tolist() == [1, 0, 2]
    with pytest.raises(DatasetError, match="not FER\\+ emotions"):
        data.load_ferplus(ferplus_folder, "Training", classes=("neutral", "joy"))


# --- subsets and FaceSet ---

def test_subset_relabels_in_the_given_order_and_renormalises_soft(ferplus_folder):
    faces = data.load_ferplus(ferplus_folder, "Training", soft=True)
    kept = data.subset(faces, ("neutral", "happy"))
    assert kept.classes == ("neutral", "happy")
    assert kept.names == ("fer0000000.png", "fer0000004.png")
    assert kept.labels.tolist() == [1, 0]
    np.testing.assert_allclose(kept.soft, [[0.0, 1.0], [1.0, 0.0]])


def test_subset_fer5_of_image_folders(fer_folder):
    faces = data.subset(data.load_image_folders(fer_folder, "Training"), SUBSETS["fer5"])
    assert faces.counts() == {"angry": 2, "disgust": 1, "happy": 1, "sad": 1, "surprise": 0}
    np.testing.assert_array_equal(faces.targets(), np.eye(5, dtype=np.float32)[faces.labels])
    first = faces.take(np.array([0]))
    assert len(first) == 1 and first.names == faces.names[:1]


def test_subset_errors(fer_folder):
    faces = data.load_image_folders(fer_folder, "PublicTest")
    with pytest.raises(DatasetError, match="contempt"):
        data.subset(faces, ("happy", "contempt"))
    with pytest.raises(DatasetError, match="no faces of classes"):
        data.subset(faces, ("fear", "neutral"))


def test_load_caches_and_subsets(fer_folder, tmp_path, isolated_cache):
    archive = zip_folder(fer_folder, tmp_path / "fer.zip")
    first = data.load("fer2013", "PrivateTest", ("happy", "sad"), root=archive)
    assert len(list(isolated_cache.glob("fer2013-PrivateTest-*.npz"))) == 1
    again = data.load("fer2013", "PrivateTest", ("happy", "sad"), root=archive)
    assert first.classes == again.classes == ("happy", "sad")
    assert first.labels.tolist() == again.labels.tolist() == [0, 1, 1]
    np.testing.assert_array_equal(first.pixels, again.pixels)


def test_load_ferplus_soft_and_hard(ferplus_folder, isolated_cache):
    hard = data.load("ferplus", "Training", ("neutral", "happy", "angry"), root=ferplus_folder)
    assert hard.soft is None and hard.labels.tolist() == [1, 0, 2]
    soft = data.load("ferplus", "Training", ("neutral", "happy", "angry"), soft=True, root=ferplus_folder)
    np.testing.assert_allclose(soft.soft[1], [1.0, 0.0, 0.0])  # surprise votes renormalised away


def test_load_ferplus_reads_a_cache_written_with_ferplus_names(ferplus_folder, isolated_cache):
    data.load("ferplus", "Training", ("neutral", "happy"), root=ferplus_folder)
    (cached,) = isolated_cache.glob("ferplus-Training-*.npz")
    with np.load(cached) as z:
        arrays = dict(z)
    arrays["classes"] = np.array(data.FERPLUS_VOTES[:8])  # as a cache from before the rename holds it
    np.savez(cached, **arrays)
    faces = data.load("ferplus", "Training", ("happiness", "angry"), root=ferplus_folder)
    assert faces.classes == ("happy", "angry") and faces.names == ("fer0000000.png", "fer0000005.png")


# --- bad data raises DatasetError naming the file or row ---

def test_unreadable_image_names_the_file(tmp_path):
    root = write_tree(tmp_path / "fer", {"train/angry/Training_9.jpg": b"this is not a JPEG"})
    with pytest.raises(DatasetError, match=r"train/angry/Training_9\.jpg: not a readable image"):
        data.load_image_folders(root, "Training")


def test_wrong_size_names_the_file(tmp_path):
    root = write_tree(tmp_path / "fer", {"train/sad/Training_3.png": encode(face(1, (40, 44)), ".png")})
    with pytest.raises(DatasetError, match=r"Training_3\.png: image is 44x40, expected 48x48"):
        data.load_image_folders(root, "Training")


def test_unknown_class_folder_names_the_file(tmp_path):
    root = write_tree(tmp_path / "fer", {"train/bored/Training_1.png": encode(face(1), ".png")})
    with pytest.raises(DatasetError, match=r"bored/Training_1\.png: unknown class folder 'bored'"):
        data.load_image_folders(root, "Training")


def test_empty_split(fer_folder, tmp_path, ferplus_folder):
    only_training = write_tree(tmp_path / "only", {"train/sad/Training_1.png": encode(face(1), ".png")})
    with pytest.raises(DatasetError, match="split PrivateTest is empty"):
        data.load_image_folders(only_training, "PrivateTest")
    csv_path = write_csv(tmp_path / "train-only.csv", [["3", " ".join(["7"] * 2304), "Training"]])
    with pytest.raises(DatasetError, match=f"{csv_path.name}: split PublicTest is empty"):
        data.load_fer2013_csv(csv_path, "PublicTest")
    dropped = write_ferplus(tmp_path / "dropped", {"fer1.png": [0, 0, 0, 0, 0, 0, 0, 0, 10, 0]})
    with pytest.raises(DatasetError, match="FER2013Train: split Training is empty"):
        data.load_ferplus(dropped, "Training")


def test_unknown_split_and_source(fer_folder, tmp_path, isolated_cache):
    with pytest.raises(DatasetError, match="unknown split 'Validation'"):
        data.load_image_folders(fer_folder, "Validation")
    with pytest.raises(DatasetError, match="unknown dataset 'affectnet'"):
        data.load("affectnet", "Training", ("happy",))
    with pytest.raises(DatasetError, match="not found"):
        data.load("fer2013", "Training", ("happy",), root=tmp_path / "missing.zip")


@pytest.mark.parametrize(
    "row, message",
    [
        (["x", "1 2 3", "Training"], r"row 2: invalid literal"),
        (["3", "1 2 x " * 768, "Training"], r"row 2: could not convert|row 2: invalid literal"),
        (["3", " ".join(["7"] * 2303), "Training"], r"row 2: expected 2304 grey values 0-255, got 2303"),
        (["3", " ".join(["300"] * 2304), "Training"], r"row 2: expected 2304 grey values 0-255"),
        (["9", " ".join(["7"] * 2304), "Training"], r"row 2: unknown emotion id 9"),
    ],
)
def test_bad_csv_row_names_the_row(tmp_path, row, message):
    path = write_csv(tmp_path / "fer2013.csv", [row])
    with pytest.raises(DatasetError, match=message) as raised:
        data.load_fer2013_csv(path, "Training")
    assert str(path) in str(raised.value)


def test_csv_missing_columns(tmp_path):
    path = write_csv(tmp_path / "fer2013.csv", [["3", "1"]], header=("emotion", "pixels"))
    with pytest.raises(DatasetError, match=r"missing columns \['Usage'\]"):
        data.load_fer2013_csv(path, "Training")


def test_bad_ferplus_rows_name_the_row_or_file(tmp_path):
    root = write_ferplus(tmp_path / "short", {"fer1.png": [1, 9]})
    with pytest.raises(DatasetError, match=r"label\.csv, row 1: expected 12 columns"):
        data.load_ferplus(root, "Training")
    root = write_ferplus(tmp_path / "votes", {"fer1.png": [0] * 9 + ["many"]})
    with pytest.raises(DatasetError, match=r"label\.csv, row 1: could not convert"):
        data.load_ferplus(root, "Training")
    root = write_ferplus(tmp_path / "lost", {"fer1.png": [0, 9, 0, 0, 0, 0, 0, 0, 1, 0]})
    (root / "FER2013Train" / "fer1.png").unlink()
    with pytest.raises(DatasetError, match=r"missing FER2013Train/fer1\.png"):
        data.load_ferplus(root, "Training")
    with pytest.raises(DatasetError, match="neither a FER\\+ folder"):
        data.load_ferplus(tmp_path / "nowhere", "Training")


def test_fit_size_resizes_any_face_to_48():
    big = np.dstack([face(1, (96, 96))] * 3)
    assert data.fit_size(big).shape == (48, 48)


def test_resized_enlarges_each_face_as_the_runtime_would(ferplus_folder):
    """A 64x64 network's FER faces: each one through emofer.preprocess.resize_face, labels and targets kept."""
    from emofer.preprocess import resize_face

    faces = data.load_ferplus(ferplus_folder, "Training", soft=True)
    big = faces.resized((64, 64))
    assert big.pixels.shape == (len(faces), 64, 64) and big.pixels.dtype == np.uint8
    assert all(np.array_equal(b, resize_face(f, (64, 64))) for b, f in zip(big.pixels, faces.pixels))
    assert np.array_equal(big.labels, faces.labels) and np.array_equal(big.targets(), faces.targets())
    assert faces.resized((48, 48)) is faces
