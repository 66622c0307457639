"""Fixtures for training/: tiny real datasets written in tmp_path, and the shared data folder."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import FER_ZIP, need
from training import data

#: The image-folder tree of ``fer_folder``: relative path -> (class name, seed of its pixels).
TREE = {
    "train/angry/Training_00003.png": ("angry", 3),
    "train/angry/Training_00001.jpg": ("angry", 1),
    "train/happy/Training_00002.png": ("happy", 2),
    "train/sad/Training_00004.png": ("sad", 4),
    "train/disgust/Training_00005.png": ("disgust", 5),
    "test/happy/PublicTest_00006.png": ("happy", 6),
    "test/sad/PublicTest_00007.png": ("sad", 7),
    "test/angry/PrivateTest_00008.png": ("angry", 8),
    "test/happy/PrivateTest_00009.png": ("happy", 9),
    "test/sad/PrivateTest_00010.png": ("sad", 10),
    "test/sad/PrivateTest_00011.png": ("sad", 11),
}


def face(seed: int, size: tuple[int, int] = (48, 48)) -> np.ndarray:
    """A reproducible uint8 grey 'face' (a gradient plus noise, so JPEG keeps it recognisable)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, size[1], dtype=np.float64)[None, :] + rng.normal(0, 20, size)
    return np.clip(ramp + seed, 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray, suffix: str) -> bytes:
    """Real image bytes (cv2-encoded PNG or JPEG)."""
    ok, buffer = cv2.imencode(suffix, pixels)
    assert ok
    return buffer.tobytes()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, payload in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    return root


def tree_files(tree: dict[str, tuple[str, int]] = TREE) -> dict[str, bytes]:
    return {name: encode(face(seed), Path(name).suffix) for name, (_, seed) in tree.items()}


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, str(path.relative_to(folder)))
    return archive


@pytest.fixture
def fer_folder(tmp_path: Path) -> Path:
    """A Kaggle image-folder tree (train/<class>/Training_*.png, test/<class>/P*Test_*.png)."""
    return write_tree(tmp_path / "fer2013", tree_files())


#: fer2013.csv rows of ``fer_csv``: (emotion id, seed, Usage).
CSV_ROWS = [(3, 20, "Training"), (0, 21, "Training"), (6, 22, "PublicTest"), (4, 23, "PrivateTest"),
            (1, 24, "PrivateTest")]


def write_csv(path: Path, rows: list[list[str]], header: tuple[str, ...] = ("emotion", "pixels", "Usage")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def fer_csv(tmp_path: Path) -> Path:
    """The Kaggle challenge layout: fer2013.csv with emotion,pixels,Usage."""
    rows = [[str(label), " ".join(map(str, face(seed).ravel())), usage] for label, seed, usage in CSV_ROWS]
    return write_csv(tmp_path / "fer2013.csv", rows)


#: FER+ FER2013Train/label.csv rows of ``ferplus_folder``: file -> 10 votes
#: (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF).
FERPLUS_VOTES = {
    "fer0000000.png": [0, 8, 1, 0, 0, 0, 0, 0, 1, 0],   # happiness
    "fer0000001.png": [1, 0, 0, 0, 0, 0, 0, 0, 9, 0],   # majority unknown: dropped
    "fer0000002.png": [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face: dropped
    "fer0000003.png": [5, 0, 0, 5, 0, 0, 0, 0, 0, 0],   # tie neutral / sadness: dropped
    "fer0000004.png": [6, 0, 4, 0, 0, 0, 0, 0, 0, 0],   # neutral, soft 0.6 / 0.4 surprise
    "fer0000005.png": [0, 0, 0, 0, 7, 0, 0, 3, 0, 0],   # anger, soft 0.7 / 0.3 contempt
}


def write_ferplus(root: Path, votes: dict[str, list[int]] = FERPLUS_VOTES, folder: str = "FER2013Train") -> Path:
    rows = [[name, "(0, 0, 48, 48)", *map(str, v)] for name, v in votes.items()]
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    with open(target / "label.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    for seed, name in enumerate(votes):
        (target / name).write_bytes(encode(face(100 + seed), ".png"))
    return root


@pytest.fixture
def ferplus_folder(tmp_path: Path) -> Path:
    """A FER+ tree: FER2013Train/label.csv + PNGs, and one Valid face."""
    root = write_ferplus(tmp_path / "ferplus")
    return write_ferplus(root, {"fer0000100.png": [0, 0, 0, 0, 0, 0, 9, 0, 1, 0]}, "FER2013Valid")


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point training.data's decoded-split cache at tmp_path."""
    cache = tmp_path / "cache"
    monkeypatch.setattr(data, "CACHE", cache)
    return cache


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (tests/conftest.py's DATA); skips the test when absent."""
    return need(FER_ZIP, "FER2013 image archive").parent
