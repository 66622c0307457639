"""emofer.ray under faults: a worker killed mid-job, a task that raises, a job stopped and resumed.

Each job's table must hold every input's rows exactly once, equal to sequential
``EmotionRecognizer.predict``, with the corrupt files' error rows. One local Ray (2 CPUs) for the
module; the drivers that are killed run in subprocesses joined to it by address, so killing them
never touches the cluster, which the fixture shuts down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import EXAMPLE_PHOTO, FACES_BOXES, need
from .test_ray import write_corrupt

TOLERANCE = 1e-6
#: Images per shard in these tests: small, so a job has many tasks and a fault lands mid-job.
SHARD = 2


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 2 CPUs for this module; shut down after it."""
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def variants(folder: Path, count: int) -> list[Path]:
    """``count`` images made from the example photo: mirrored, scaled, shifted, darker or lighter."""
    photo = cv2.imread(str(need(EXAMPLE_PHOTO, "example photo")))
    paths = []
    for i in range(count):
        image = cv2.flip(photo, 1) if i % 2 else photo
        image = cv2.resize(image, None, fx=0.45 + 0.05 * (i % 6), fy=0.45 + 0.05 * (i % 6),
                           interpolation=cv2.INTER_AREA)
        image = np.roll(image, 7 * i, axis=1)
        image = cv2.convertScaleAbs(image, alpha=0.8 + 0.04 * i, beta=0)
        paths.append(folder / f"variant_{i:02d}.{'png' if i % 3 == 0 else 'jpg'}")
        cv2.imwrite(str(paths[-1]), image)
    return paths


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, list[Path], list[Path]]:
    """(folder, readable images, corrupt files): example-photo variants, the faces-boxes photos when
    ../shared is there (multi-face), an empty, a truncated and a text file."""
    folder = tmp_path_factory.mktemp("ray-faults") / "photos"
    folder.mkdir()
    images = variants(folder, 16)
    if (FACES_BOXES / "images").is_dir():
        for source in sorted((FACES_BOXES / "images").glob("*.jpg")):
            images.append(folder / f"boxes_{source.name}")
            images[-1].write_bytes(source.read_bytes())
    return folder, sorted(images), write_corrupt(folder)


@pytest.fixture(scope="module")
def expected(inputs) -> dict[str, list[dict]]:
    """Sequential EmotionRecognizer.predict's faces for every readable input (file name -> faces)."""
    from emofer import EmotionRecognizer

    recognizer = EmotionRecognizer.from_pretrained()
    return {path.name: [face.to_dict() for face in recognizer.predict(path)] for path in inputs[1]}


def copy_inputs(inputs, folder: Path) -> tuple[Path, list[Path], list[Path]]:
    """A copy of the inputs in ``folder`` (for a test that changes them)."""
    source, images, corrupt = inputs
    folder.mkdir()
    for path in [*images, *corrupt]:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder, [folder / p.name for p in images], [folder / p.name for p in corrupt]


def assert_table(out: Path, folder: Path, expected: dict[str, list[dict]], corrupt: list[Path],
                 failed: dict[str, str] | None = None) -> None:
    """Every input's rows exactly once, equal to sequential predict; corrupt files (and ``failed``: name ->
    error prefix) have exactly one error row; every shard is whole (readable) and nothing else is there."""
    import pyarrow.parquet as pq

    shards = sorted(out.glob("*.parquet"))
    assert shards and all(p.name.startswith("part-") for p in shards), shards
    rows: dict[str, list[dict]] = {}
    for shard in shards:
        for row in pq.read_table(shard).to_pylist():
            rows.setdefault(Path(row["file"]).name, []).append(row)
    failed = failed or {}
    assert set(rows) == set(expected) | {p.name for p in corrupt}
    assert all(Path(row["file"]).parent == folder for found in rows.values() for row in found)
    for path in corrupt:
        (row,) = rows[path.name]
        assert row["error"].startswith("ImageReadError: ") and row["box"] is None, row
    for name, faces in expected.items():
        found = sorted(rows[name], key=lambda r: -1 if r["face_index"] is None else r["face_index"])
        if name in failed:
            (row,) = found
            assert row["error"].startswith(failed[name]), row
            continue
        if not faces:
            assert [(r["face_index"], r["box"], r["error"]) for r in found] == [(None, None, None)], name
            continue
        assert [row["face_index"] for row in found] == list(range(len(faces))), name  # no row lost or doubled
        for row, face in zip(found, faces):
            assert row["error"] is None and row["box"] == face["box"] and row["emotion"] == face["emotion"], name
            assert row["abstained"] == face["abstained"]
            assert row["score"] == pytest.approx(face["score"], abs=TOLERANCE)
            assert np.allclose(row["landmarks"], face["landmarks"], atol=TOLERANCE, rtol=0)
            assert all(abs(row["probabilities"][k] - p) <= TOLERANCE for k, p in face["probabilities"].items())


def own_workers(title: str, root: int | None = None) -> list[int]:
    """Pids of the processes below ``root`` (default: this process, which started them) now titled ``ray::title``:
    the Ray workers of this test's cluster running that task."""
    root = os.getpid() if root is None else root
    parents: dict[int, int] = {}
    titles: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                titles[int(entry.name)] = (entry / "cmdline").read_bytes()
            except (OSError, ValueError, IndexError):
                continue
    mine, found = {root}, []
    for _ in range(8):  # raylet -> worker: a few generations below this process
        mine |= {pid for pid, parent in parents.items() if parent in mine}
    for pid in mine - {root}:
        if titles.get(pid, b"").startswith(f"ray::{title}".encode()):
            found.append(pid)
    return found


def committed(out: Path) -> list[Path]:
    """Shards of ``out`` written so far, in its temporary folder while a fresh job runs or in ``out``."""
    from emofer.ray import shard_files

    folders = [*(d for d in out.parent.glob(f".{out.name}.*") if d.is_dir()), *([out] if out.is_dir() else [])]
    return [shard for folder in folders for shard in shard_files(folder)]


def test_killed_worker_mid_job_every_row_once(ray_local, inputs, expected, tmp_path: Path) -> None:
    from emofer.ray import predict_to_parquet

    folder, images, corrupt = inputs
    out = tmp_path / "faces.parquet"
    killed: list[int] = []

    def kill_one_busy_worker() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            busy = own_workers("_shard_task") if committed(out) else []
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_busy_worker, daemon=True)
    killer.start()
    report = predict_to_parquet([folder], out, workers=2, shard_size=SHARD)
    killer.join(timeout=5)
    assert killed, "the job ended before a worker could be killed"
    assert_table(out, folder, expected, corrupt)
    assert (report.items, report.failed) == (len(images) + len(corrupt), len(corrupt))
    assert not list(tmp_path.glob(".*")), "the temporary folder of the job is gone"


def flaky_worker(trigger: str, marker: Path | None):
    """A FaceRows subclass that raises on the batch holding ``trigger``: once (the first to create
    ``marker``), or every time (``marker`` None). Defined here, so Ray ships it by value."""
    from emofer.ray import FaceRows

    class FlakyRows(FaceRows):
        def __call__(self, batch):
            if trigger in {str(p) for p in batch["path"]}:
                if marker is None:
                    raise RuntimeError(f"injected failure on every batch with {trigger}")
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                    raise RuntimeError(f"injected failure on the first batch with {trigger}")
                except FileExistsError:
                    pass
            return super().__call__(batch)

    return FlakyRows


def test_task_that_raises_once_is_retried_by_ray(ray_local, inputs, expected, tmp_path: Path) -> None:
    from emofer.ray import predict_to_parquet

    folder, images, corrupt = inputs
    marker = tmp_path / "raised"
    out = tmp_path / "faces.parquet"
    report = predict_to_parquet([folder], out, workers=2, shard_size=SHARD,
                                worker=flaky_worker(str(images[3]), marker))
    assert marker.exists(), "the injected failure did not happen"
    assert_table(out, folder, expected, corrupt)
    assert report.failed == len(corrupt)


def test_task_that_always_raises_costs_one_error_row_then_resume_redoes_it(
        ray_local, inputs, expected, tmp_path: Path) -> None:
    from emofer.ray import predict_to_parquet

    folder, images, corrupt = inputs
    out = tmp_path / "faces.parquet"
    poison = images[5]
    report = predict_to_parquet([folder], out, workers=2, shard_size=SHARD, max_retries=1, resume=True,
                                worker=flaky_worker(str(poison), None))
    # its shard was split, its neighbour done alone; the poison input has one TaskFailedError row
    assert_table(out, folder, expected, corrupt, failed={poison.name: "TaskFailedError: "})
    assert report.failed == len(corrupt) + 1 and "RuntimeError" in report.examples[-1][1] + str(report.examples)
    again = predict_to_parquet([folder], out, workers=2, shard_size=SHARD, resume=True)
    assert again.skipped == len(images) + len(corrupt) - 1
    assert_table(out, folder, expected, corrupt)


def test_resume_appends_only_what_is_missing_or_changed(ray_local, inputs, expected, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from emofer.errors import OutputError
    from emofer.ray import predict_to_parquet

    folder, images, corrupt = copy_inputs(inputs, tmp_path / "photos")
    out = tmp_path / "faces.parquet"
    first = predict_to_parquet(images[:7], out, shard_size=3, resume=True)  # a job that did 7 inputs
    assert (first.items, first.skipped) == (7, 0)
    leftover = out / ".part-0123.emofer-part.parquet"  # what a task killed while writing leaves
    leftover.write_bytes(b"PAR1 half a shard")
    os.utime(images[1], ns=(time.time_ns(), time.time_ns() + 10**9))  # changed since: done again
    report = predict_to_parquet([folder], out, shard_size=3, resume=True)
    assert report.skipped == 6 and report.items == len(images) + len(corrupt)
    assert not leftover.exists()
    assert_table(out, folder, expected, corrupt)
    again = predict_to_parquet([folder], out, shard_size=3, resume=True)
    assert again.skipped == again.items == report.items
    assert_table(out, folder, expected, corrupt)

    pq.write_table(pa.table({"file": ["x"]}), out / "other.parquet")  # not emofer's: refused, not mixed in
    with pytest.raises(OutputError, match="not a shard emofer wrote"):
        predict_to_parquet([folder], out, resume=True)


def test_without_resume_an_existing_out_is_refused(ray_local, inputs, tmp_path: Path) -> None:
    from emofer.errors import OutputError
    from emofer.ray import predict_to_parquet

    out = tmp_path / "faces.parquet"
    out.mkdir()
    with pytest.raises(OutputError, match="already exists"):
        predict_to_parquet([inputs[0]], out)
    with pytest.raises(OutputError, match="which is being read"):
        predict_to_parquet([inputs[0]], inputs[0] / "faces.parquet", resume=True)


DRIVER = """
import sys
from emofer.ray import predict_to_parquet
predict_to_parquet([sys.argv[1]], sys.argv[2], address=sys.argv[3], resume=True, workers=2, shard_size={shard})
"""


@pytest.mark.slow
def test_job_killed_three_times_and_resumed_equals_one_clean_run(ray_local, inputs, expected, tmp_path: Path) -> None:
    """The driver is SIGKILLed three times mid-job (each after a few more shards), then runs to the end."""
    folder, images, corrupt = inputs
    out = tmp_path / "faces.parquet"
    address = ray_local.get_runtime_context().gcs_address
    # one input per shard: enough shards that three stops (and the tasks still finishing after each) leave work
    # to resume even without ../shared's photos (19 inputs then)
    command = [sys.executable, "-c", DRIVER.format(shard=1), str(folder), str(out), address]
    env = {**os.environ, "RAY_ADDRESS": ""}
    total = len(images) + len(corrupt)
    for stop in range(3):
        before = len(committed(out))
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 240
            while len(committed(out)) < before + 2 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert process.poll() is None, f"the job ended before stop {stop}: {process.stderr.read()!r}"
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait(timeout=60)
        import pyarrow.parquet as pq

        for shard in committed(out):  # every committed shard is whole (hidden temporary files are not shards)
            pq.read_table(shard)
    assert len(committed(out)) < total, "the stops left nothing to resume"
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert_table(out, folder, expected, corrupt)
    assert not list(out.glob(".*")), "no temporary file is left"


def test_cli_resume_appends_and_a_second_run_adds_nothing(ray_local, inputs, expected, tmp_path: Path, capsys) -> None:
    from emofer.cli import main

    folder, images, corrupt = copy_inputs(inputs, tmp_path / "photos")
    out = tmp_path / "faces.parquet"
    assert main(["predict", str(images[0]), str(images[1]), "--ray", "--out", str(out), "--resume"]) == 0
    code = main(["predict", str(folder), "--ray", "--out", str(out), "--resume"])
    assert code == 1  # EXIT_UNREADABLE: the corrupt files have error rows
    assert "were done before" in capsys.readouterr().err
    assert_table(out, folder, expected, corrupt)
    assert main(["predict", str(images[0]), "--out", str(tmp_path / "x"), "--resume"]) == 2
    assert "--resume works with --ray" in capsys.readouterr().err
