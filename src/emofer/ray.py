"""Batch inference on Ray Data: folders, path lists or Datasets -> one row per face (optional extra).

    pip install "emofer[ray]"

    import ray
    from emofer.ray import faces_dataset, write_faces

    ray.init()                                   # or ray.init(address="ray://head:10001")
    report = write_faces(faces_dataset("photos/", workers=4), "faces.parquet")
    print(report.summary())

Ray Data does the scheduling: the images flow through ``map_batches`` with :class:`FaceRows`,
a callable class, so each actor loads one recognizer once and keeps it. Rows carry the keys of
``emofer predict --json`` / ``emofer video --table`` (``file``, ``frame_index``, ``timestamp_ms``)
and :meth:`emofer.Face.to_dict`'s fields, plus ``face_index`` and ``error``. An image without a
face still gets one row (empty face fields); an unreadable or corrupt item gets one row with
``error`` set, so nothing is dropped and the job goes on. ``ray`` is imported only here, never by
``import emofer``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EmoferError, ImageReadError
from .io import load_image
from .outputs import check_new_folder, new_folder
from .results import Face
from .sources import IMAGE_SUFFIXES, image_sources
from .table import EMPTY_FACE

if TYPE_CHECKING:
    import pyarrow
    import ray.data

    from .detect import DetectorSpec
    from .recognizer import EmotionRecognizer

__all__ = ["FaceRows", "VideoRows", "RunReport", "faces_dataset", "video_faces_dataset", "write_faces",
           "summarize", "image_paths", "connect", "predict_to_parquet"]

log = logging.getLogger("emofer")

#: Images handed to one actor call; detection dominates, so small batches keep all actors busy.
DEFAULT_BATCH_SIZE = 8
#: Most blocks a path list is cut into (past it, blocks hold several batches).
MAX_BLOCKS = 10_000
#: CPUs Ray reserves per actor. A little under one leaves room for Ray's own read and write
#: tasks on a small machine (two whole-CPU actors on two CPUs starve them and the job hangs).
DEFAULT_CPUS_PER_WORKER = 0.9
#: Columns before a face's fields: where the row comes from.
KEY_COLUMNS = ("file", "frame_index", "timestamp_ms", "face_index")
#: How many failed items a RunReport quotes.
EXAMPLES_KEPT = 10
INSTALL_HINT = 'pip install "emofer[ray]"'


def _ray() -> Any:
    """The ray module, or EmoferError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise EmoferError(f"emofer's Ray integration needs Ray Data: {INSTALL_HINT}") from exc
    return ray


# -- rows --------------------------------------------------------------------------------------


def row_schema(labels: Sequence[str]) -> pyarrow.Schema:
    """The Arrow schema of face rows for a model with ``labels`` (fixed, so every block agrees)."""
    import pyarrow as pa

    face_types = {
        "box": pa.list_(pa.int64()),
        "score": pa.float64(),
        "landmarks": pa.list_(pa.list_(pa.float64())),
        "emotion": pa.string(),
        "confidence": pa.float64(),
        "abstained": pa.bool_(),
        "probabilities": pa.struct([(label, pa.float64()) for label in labels]),
        "track_id": pa.int64(),
    }
    if set(face_types) != set(EMPTY_FACE):  # Face.to_dict() changed: give its new keys a type here
        raise EmoferError(f"emofer.ray's schema lists {sorted(face_types)}, Face.to_dict() has {sorted(EMPTY_FACE)}")
    keys = [("file", pa.string()), ("frame_index", pa.int64()), ("timestamp_ms", pa.float64()),
            ("face_index", pa.int64())]
    return pa.schema([*keys, *((name, face_types[name]) for name in EMPTY_FACE), ("error", pa.string())])


def face_rows(keys: dict[str, Any], faces: Sequence[Face]) -> list[dict[str, Any]]:
    """One row per face (``face_index`` 0, 1, ...), or one empty row when there is none."""
    if not faces:
        return [{**dict.fromkeys(KEY_COLUMNS), **keys, **EMPTY_FACE, "error": None}]
    return [{**dict.fromkeys(KEY_COLUMNS), **keys, "face_index": i, **face.to_dict(), "error": None}
            for i, face in enumerate(faces)]


def error_row(keys: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """The row of an item that failed: its keys and ``error`` = "ErrorType: message"."""
    return {**dict.fromkeys(KEY_COLUMNS), **keys, **EMPTY_FACE, "error": f"{type(exc).__name__}: {exc}"}


class _Worker:
    """Holds one recognizer per Ray actor, built once in the actor from plain arguments."""

    def __init__(self, model: str | os.PathLike | None = None, *, detector: DetectorSpec = "auto",
                 min_face: int | None = None, min_confidence: float = 0.0, threads: int | None = None,
                 local_files_only: bool = False) -> None:
        import cv2

        from .recognizer import EmotionRecognizer

        threads = threads or _assigned_cpus()
        cv2.setNumThreads(threads)  # OpenCV's detector threads: stay within this actor's CPUs
        self.recognizer: EmotionRecognizer = EmotionRecognizer.from_pretrained(
            model, detector=detector, min_face=min_face, min_confidence=min_confidence, threads=threads,
            local_files_only=local_files_only)
        self.schema = row_schema(self.recognizer.labels)

    def _table(self, rows: list[dict[str, Any]]) -> pyarrow.Table:
        import pyarrow as pa

        return pa.Table.from_pylist(rows, schema=self.schema)


class FaceRows(_Worker):
    """``map_batches`` callable: a batch of images -> a pyarrow Table of face rows.

    A batch holds a ``path`` column and, optionally, ``bytes`` (encoded files, as
    ``ray.data.read_binary_files(..., include_paths=True)`` gives) or ``image`` (RGB arrays, as
    ``ray.data.read_images(..., include_paths=True)`` gives); with ``path`` alone the actor reads
    the file. Constructor arguments are those of :meth:`EmotionRecognizer.from_pretrained`;
    ``threads`` None means the CPUs Ray gave the actor.
    """

    def __call__(self, batch: dict[str, np.ndarray]) -> pyarrow.Table:
        paths = [str(p) for p in batch["path"]]
        sources = batch.get("bytes", batch.get("image", paths))
        color = "rgb" if "image" in batch and "bytes" not in batch else "bgr"
        rows: list[dict[str, Any]] = []
        pixels, kept = [], []
        for path, source in zip(paths, sources):
            try:
                pixels.append(load_image(source, color))
                kept.append(path)
            except ImageReadError as exc:
                rows.append(error_row({"file": path}, exc))
        for path, faces in zip(kept, self._predict(pixels, kept)):
            rows.extend(error_row({"file": path}, faces) if isinstance(faces, Exception) else
                        face_rows({"file": path}, faces))
        return self._table(rows)

    def _predict(self, pixels: list[np.ndarray], paths: list[str]) -> list[list[Face] | Exception]:
        """Faces per image with one network call; on a failure, image by image so one bad item stays one."""
        try:
            return list(self.recognizer.predict_batch(pixels))
        except Exception:  # noqa: BLE001 - isolate the item below, then keep going
            results: list[list[Face] | Exception] = []
            for image, path in zip(pixels, paths):
                try:
                    results.append(self.recognizer.predict(image))
                except Exception as exc:  # noqa: BLE001 - any failure of one item becomes its error row
                    log.warning("%s failed: %s", path, exc)
                    results.append(exc)
            return results


class VideoRows(_Worker):
    """``map_batches`` callable: a batch of video paths -> the rows of ``emofer video --table``.

    Each video is analysed start to end in one call (tracking and smoothing need its frames in
    order), so use ``batch_size=1``: one task per video. A video that cannot be opened, or breaks
    off, adds an error row after the frames it gave.
    """

    def __init__(self, model: str | os.PathLike | None = None, *, every_n_frames: int = 1, smooth: bool = True,
                 max_frames: int | None = None, **recognizer_kwargs: Any) -> None:
        super().__init__(model, **recognizer_kwargs)
        self.every_n_frames, self.smooth, self.max_frames = every_n_frames, smooth, max_frames

    def __call__(self, batch: dict[str, np.ndarray]) -> pyarrow.Table:
        from .video import analyze_video, table_keys

        rows: list[dict[str, Any]] = []
        for path in (str(p) for p in batch["path"]):
            try:
                for result in analyze_video(self.recognizer, path, every_n_frames=self.every_n_frames,
                                            smooth=self.smooth, max_frames=self.max_frames):
                    rows.extend(face_rows({"file": path, **table_keys(result)}, result.faces))
            except Exception as exc:  # noqa: BLE001 - a broken video is one error row, the job goes on
                rows.append(error_row({"file": path}, exc))
        return self._table(rows)


def _assigned_cpus() -> int:
    """Whole CPUs Ray assigned to this actor (at least 1; 1 outside Ray)."""
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    except Exception:  # noqa: BLE001 - not inside a Ray worker
        cpus = 1.0
    return max(1, int(cpus))


# -- datasets ----------------------------------------------------------------------------------


def image_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Image files as ``emofer predict`` finds them: files as given, folders searched recursively."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [str(path) for path, _ in image_sources([Path(p) for p in paths])]


def faces_dataset(
    source: str | os.PathLike | Iterable[str | os.PathLike] | ray.data.Dataset,
    model: str | os.PathLike | None = None,
    *,
    detector: DetectorSpec = "auto",
    min_face: int | None = None,
    min_confidence: float = 0.0,
    workers: int = 1,
    cpus_per_worker: float = DEFAULT_CPUS_PER_WORKER,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ray.data.Dataset:
    """A lazy Dataset of face rows for a folder, a list of image paths/URIs, or a Ray Dataset.

    Local folders and files are listed here and read by the actors (so an unreadable file is an
    error row, not a failed read task); on a cluster they must be at the same path on every node.
    URIs (``s3://...``) go through ``ray.data.read_binary_files``. A Dataset must have a ``path``
    column and may have ``bytes`` or ``image`` (see :class:`FaceRows`). ``workers`` actors, each
    with its own recognizer, run with ``cpus_per_worker`` CPUs each.
    """
    ray = _ray()
    if isinstance(source, ray.data.Dataset):
        dataset = source
    else:
        items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        uris = [str(item) for item in items if "://" in str(item)]
        if uris and len(uris) != len(items):
            raise EmoferError("give either local paths or URIs (s3://, gs://...), not both in one call")
        if uris:
            dataset = ray.data.read_binary_files(uris, include_paths=True,
                                                 file_extensions=[s.lstrip(".") for s in IMAGE_SUFFIXES])
        else:
            files = image_paths(items)
            if not files:
                raise EmoferError(f"no images found in {', '.join(map(str, items))}; "
                                  "give image files or folders that hold some")
            blocks = min(-(-len(files) // batch_size), MAX_BLOCKS)  # a block per batch: work streams and spreads
            dataset = ray.data.from_items([{"path": path} for path in files], override_num_blocks=blocks)
    return dataset.map_batches(
        FaceRows, fn_constructor_args=(model,),
        fn_constructor_kwargs=dict(detector=detector, min_face=min_face, min_confidence=min_confidence),
        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker)


def video_faces_dataset(
    videos: str | os.PathLike | Iterable[str | os.PathLike],
    model: str | os.PathLike | None = None,
    *,
    every_n_frames: int = 1,
    smooth: bool = True,
    max_frames: int | None = None,
    detector: DetectorSpec = "auto",
    min_face: int | None = None,
    min_confidence: float = 0.0,
    workers: int = 1,
    cpus_per_worker: float = DEFAULT_CPUS_PER_WORKER,
) -> ray.data.Dataset:
    """A lazy Dataset of the rows of ``emofer video --table`` for each video, one task per video."""
    ray = _ray()
    items = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    dataset = ray.data.from_items([{"path": str(path)} for path in items], override_num_blocks=max(1, len(items)))
    return dataset.map_batches(
        VideoRows, fn_constructor_args=(model,),
        fn_constructor_kwargs=dict(every_n_frames=every_n_frames, smooth=smooth, max_frames=max_frames,
                                   detector=detector, min_face=min_face, min_confidence=min_confidence),
        batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker)


# -- running and reporting ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunReport:
    """What a job produced: items (images or frames), faces, and the items that failed, with why."""

    out: str | None
    items: int
    faces: int
    failed: int
    reasons: tuple[tuple[str, int], ...]
    examples: tuple[tuple[str, str], ...]

    def summary(self) -> str:
        """One or two lines for a log or the terminal."""
        where = f"; wrote {self.out}" if self.out else ""
        text = f"{self.items} items, {self.faces} faces, {self.failed} failed{where}"
        if self.failed:
            why = ", ".join(f"{count} {reason}" for reason, count in self.reasons)
            file, error = self.examples[0]
            text += f"\nfailed: {why} (e.g. {error if file in error else f'{file}: {error}'})"
        return text


def summarize(dataset: ray.data.Dataset, out: str | None = None) -> RunReport:
    """Count a face-row Dataset's items, faces and failures (runs it if it has not run)."""
    return _tally(dataset.select_columns(list(TALLY_COLUMNS)).iter_batches(batch_format="pyarrow"), out)


#: The columns a RunReport is counted from.
TALLY_COLUMNS = ("file", "face_index", "error")


def _tally(batches: Iterable[pyarrow.Table | pyarrow.RecordBatch], out: str | None) -> RunReport:
    items = faces = failed = 0
    reasons: Counter[str] = Counter()
    examples: list[tuple[str, str]] = []
    for batch in batches:
        columns = batch.to_pydict()
        for file, face_index, error in zip(*(columns[name] for name in TALLY_COLUMNS)):
            items += face_index in (None, 0)  # every item has one row with face index None or 0
            faces += face_index is not None
            if error is not None:
                failed += 1
                reason, _, message = error.partition(": ")
                reasons[reason] += 1
                if len(examples) < EXAMPLES_KEPT:
                    examples.append((file, message))
    return RunReport(out, items, faces, failed, tuple(reasons.most_common()), tuple(examples))


def write_faces(dataset: ray.data.Dataset, out: str | os.PathLike) -> RunReport:
    """Run the job into a Parquet folder ``out`` (local path or URI) and report on what it wrote.

    A local ``out`` that already exists is refused (the rows would mix with older ones); it is
    written as a temporary folder beside it and renamed when complete (:mod:`emofer.outputs`).
    """
    import pyarrow.dataset

    out = os.fspath(out)
    if "://" in out:
        dataset.write_parquet(out)
    else:
        with new_folder(check_new_folder(out)) as temporary:
            dataset.write_parquet(str(temporary))
    written = pyarrow.dataset.dataset(out, format="parquet")  # read back here: no Ray job to count
    report = _tally(written.to_batches(columns=list(TALLY_COLUMNS)), out)
    if report.failed:
        log.info("%s", report.summary())
    return report


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (None: ``RAY_ADDRESS``, else a local one); no-op if joined."""
    ray = _ray()
    if not log.isEnabledFor(logging.INFO):  # Ray's own log lines only with -v: stderr keeps emofer's
        _quiet_ray()
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False,
                 logging_level=logging.INFO if log.isEnabledFor(logging.INFO) else logging.ERROR)
        log.info("Ray: %s CPUs in the cluster", ray.cluster_resources().get("CPU", 0))


def _quiet_ray() -> None:
    """Ray's Python log lines on stderr at ERROR and up (its progress lines, "Started a local Ray instance", the
    token warning); the full logs stay in Ray's session folder."""
    import ray.data  # noqa: F401 - configures the "ray.data" logger and its console handler

    logging.getLogger("ray").setLevel(logging.ERROR)
    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.ERROR)


def predict_to_parquet(paths: Iterable[str | os.PathLike], out: str | os.PathLike, *, address: str | None = None,
                       **kwargs: Any) -> RunReport:
    """``emofer predict PATHS --ray --out OUT``: connect, run :func:`faces_dataset` with ``kwargs``, write, report."""
    connect(address)
    return write_faces(faces_dataset(list(paths), **kwargs), out)
