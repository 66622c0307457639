"""Fuzzing: byte-level mutations of real JPEG/PNG/WebP/TIFF/GIF/BMP files and MP4/AVI videos.

Every case must end in a result or an :class:`emofer.errors.EmoferError` within a time limit
and without the process's peak memory passing PEAK_MIB.
Cases run in a child process (tests/fuzz_worker.py), so a decoder that crashes the process
(a segfault) is caught: the test fails naming the signal, and the bytes that did it are saved.

    EMOFER_FUZZ_CASES=20000 python -m pytest -q tests/test_fuzz.py   # a longer, random run

CI runs ``FUZZ_CASES`` image cases and a third as many video cases, derandomized (the same
cases each run); setting EMOFER_FUZZ_CASES also draws new random cases. Crashes and hangs are
saved under EMOFER_FUZZ_CRASHES (default: emofer-fuzz-crashes in the system temp folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import EXAMPLE_PHOTO, ROOT, need, write_model_folder

#: Image cases in CI (video cases: a third of it), unless EMOFER_FUZZ_CASES says otherwise.
FUZZ_CASES = 300
CASES = int(os.environ.get("EMOFER_FUZZ_CASES", FUZZ_CASES))
#: Seconds one case may take (generous: CI machines are shared); longer is a hang.
CASE_SECONDS = 30.0
#: Peak resident memory (MiB) the worker may reach; the seeds are tiny, so more is a memory bomb.
PEAK_MIB = 1024
CRASHES = Path(os.environ.get("EMOFER_FUZZ_CRASHES", Path(tempfile.gettempdir()) / "emofer-fuzz-crashes"))
WORKER = ROOT / "tests" / "fuzz_worker.py"
FUZZ_SETTINGS = settings(max_examples=CASES, deadline=None, database=None,
                         derandomize="EMOFER_FUZZ_CASES" not in os.environ,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: Values that make header fields (sizes, lengths, offsets) extreme.
INTERESTING = [b"\x00\x00", b"\xff\xff", b"\x7f\xff", b"\x80\x00", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff",
               b"\x7f\xff\xff\xff", b"\x00\x01\x00\x00", b"\xff\xd8", b"\xff\xda", b"\xff\xc0", b"\x00\x00\x01\xb3"]


class FuzzFailure(AssertionError):
    """A case that crashed, hung, or raised something other than an emofer error."""


class Worker:
    """The child process that runs cases; restarted after a crash or hang."""

    def __init__(self, model: Path, scratch: Path) -> None:
        self.model, self.scratch = model, scratch
        self.cases = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, str(WORKER), str(self.model), str(self.scratch)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        if self._line(120.0) != {"ready": True}:
            raise RuntimeError(f"the fuzz worker did not start (exit status {self.proc.poll()})")

    def run(self, kind: bytes, data: bytes, label: str) -> dict:
        """One case's outcome; FuzzFailure (bytes saved) on a crash, a hang or an unexpected error."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        self.cases += 1
        try:
            self.proc.stdin.write(kind + struct.pack("<I", len(data)) + data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        outcome = self._line(CASE_SECONDS)
        if outcome is None:
            if self.proc is None:  # _line killed it
                problem = f"hung for more than {CASE_SECONDS:.0f} s"
            else:  # output ended: the process died; reap it for its status
                status = self.proc.wait(timeout=30)
                self.proc = None
                problem = f"crashed the process (exit status {status}" + (
                    f", signal {-status})" if status < 0 else ")")
            raise FuzzFailure(f"{label} {problem}; bytes saved to {save(kind, data, label)}")
        if outcome["peak_mib"] > PEAK_MIB:
            self.stop()  # its peak stays high: the next case needs a fresh process
            raise FuzzFailure(f"{label} made the process allocate {outcome['peak_mib']} MiB (over {PEAK_MIB}); "
                              f"bytes saved to {save(kind, data, label)}")
        if "unexpected" in outcome:
            raise FuzzFailure(f"{label} raised {outcome['unexpected']} instead of an emofer error; "
                              f"bytes saved to {save(kind, data, label)}")
        return outcome

    def _line(self, timeout: float) -> dict | None:
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.stop()  # a hang: kill it so that wait() in run() returns at once
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def save(kind: bytes, data: bytes, label: str) -> Path:
    """Keep a failing case's bytes (video cases: without the suffix prefix) for reproduction."""
    CRASHES.mkdir(parents=True, exist_ok=True)
    suffix = data[:4].decode(errors="replace").strip() if kind == b"v" else ".bin"
    body = data[4:] if kind == b"v" else data
    path = CRASHES / f"{label.split()[0]}-{hashlib.sha256(body).hexdigest()[:12]}{suffix}"
    path.write_bytes(body)
    return path


# -- the seed files: real images and videos made here ---------------------------------------------


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """The example photo shrunk to 64 x 80 (small files: quick to decode, mutations reach the pixels)."""
    return cv2.resize(cv2.imread(str(need(EXAMPLE_PHOTO, "example photo"))), (64, 80), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def image_seeds(picture) -> dict[str, bytes]:
    seeds = {}
    for suffix in (".jpg", ".png", ".webp", ".tiff", ".gif", ".bmp"):
        ok, data = cv2.imencode(suffix, picture)
        if ok:
            seeds[suffix] = data.tobytes()
    assert {".jpg", ".png", ".webp", ".tiff"} <= set(seeds), f"OpenCV encoded only {sorted(seeds)}"
    return seeds


@pytest.fixture(scope="module")
def video_seeds(tmp_path_factory, picture) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("fuzz-seeds")
    seeds = {}
    for suffix, codec in ((".mp4", "mp4v"), (".avi", "MJPG")):
        path = folder / f"seed{suffix}"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 10.0, (64, 80))
        assert writer.isOpened(), f"OpenCV cannot write {codec} here"
        for shift in range(4):
            writer.write(np.ascontiguousarray(np.roll(picture, 6 * shift, axis=1)))
        writer.release()
        seeds[suffix] = path.read_bytes()
    return seeds


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    model = write_model_folder(tmp_path_factory.mktemp("fuzz-model") / "tiny")
    proc = Worker(model, tmp_path_factory.mktemp("fuzz-scratch"))
    proc.start()
    yield proc
    proc.stop()
    print(f"\nfuzz worker ran {proc.cases} cases")


# -- mutations ------------------------------------------------------------------------------------


@st.composite
def mutation(draw, seed: bytes) -> bytes:
    """``seed`` with 1-4 byte-level edits; half of them aimed at the first 128 bytes (the headers)."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        end = min(len(data), 128) if draw(st.booleans()) else len(data)
        at = draw(st.integers(0, max(0, end - 1)))
        op = draw(st.sampled_from(["flip", "byte", "value", "insert", "delete", "truncate", "repeat"]))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "value":
            value = draw(st.sampled_from(INTERESTING))
            data[at:at + len(value)] = value
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 256))]
        elif op == "truncate":
            del data[at:]
        elif op == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 512))] * draw(st.integers(2, 8))
    return bytes(data)


@st.composite
def fuzzed(draw, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from(sorted(seeds)))
    return suffix, draw(mutation(seeds[suffix]))


# -- the tests --------------------------------------------------------------------------------------


def test_mutated_images_give_a_result_or_an_emofer_error(worker, image_seeds):
    outcomes: dict[str, int] = {}

    @FUZZ_SETTINGS
    @given(case=fuzzed(image_seeds))
    def check(case):
        suffix, data = case
        outcome = worker.run(b"i", data, f"image{suffix}")
        key = "ok" if "ok" in outcome else outcome["error"]
        outcomes[key] = outcomes.get(key, 0) + 1

    check()
    print(f"\n{sum(outcomes.values())} fuzzed images: {outcomes}")
    assert sum(outcomes.values()) >= min(CASES, 50)


def test_mutated_videos_give_frames_or_an_emofer_error(worker, video_seeds):
    outcomes: dict[str, int] = {}

    @settings(FUZZ_SETTINGS, max_examples=max(1, CASES // 3))
    @given(case=fuzzed(video_seeds))
    def check(case):
        suffix, data = case
        outcome = worker.run(b"v", suffix.ljust(4).encode() + data, f"video{suffix}")
        key = "ok" if "ok" in outcome else outcome["error"]
        outcomes[key] = outcomes.get(key, 0) + 1

    check()
    print(f"\n{sum(outcomes.values())} fuzzed videos: {outcomes}")
    assert sum(outcomes.values()) >= min(CASES // 3, 20)


def test_the_seeds_themselves_decode(worker, image_seeds, video_seeds):
    for suffix, data in image_seeds.items():
        assert worker.run(b"i", data, f"image{suffix}")["ok"] == "1 faces", suffix
    for suffix, data in video_seeds.items():
        assert worker.run(b"v", suffix.ljust(4).encode() + data, f"video{suffix}")["ok"] == "4 frames", suffix


def test_a_crash_in_the_worker_is_caught_and_its_bytes_saved(tmp_path, monkeypatch):
    """The harness itself: a child that dies of SIGSEGV is reported, not fatal to pytest."""
    script = tmp_path / "crasher.py"
    script.write_text("import ctypes, json, sys\nprint(json.dumps({'ready': True}), flush=True)\n"
                      "sys.stdin.buffer.read(5)\nctypes.string_at(0)\n")
    monkeypatch.setattr(sys.modules[__name__], "WORKER", script)
    monkeypatch.setattr(sys.modules[__name__], "CRASHES", tmp_path / "crashes")
    crasher = Worker(tmp_path, tmp_path)
    with pytest.raises(FuzzFailure, match=r"crashed the process \(exit status -11, signal 11\); bytes saved to"):
        crasher.run(b"i", b"\x89PNG boom", "image.png")
    saved = list((tmp_path / "crashes").iterdir())
    assert [p.read_bytes() for p in saved] == [b"\x89PNG boom"]
