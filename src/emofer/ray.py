"""Batch inference on Ray Data: folders, path lists or Datasets -> one row per face (optional extra).

    pip install "emofer[ray]"

    import ray
    from emofer.ray import faces_dataset, write_faces

    ray.init()                                   # or ray.init(address="ray://head:10001")
    report = write_faces(faces_dataset("photos/", workers=4), "faces.parquet")
    print(report.summary())

``emofer predict DIR --ray --out OUT [--resume]`` runs :func:`write_shards` (via
:func:`predict_to_parquet`): one Ray task per shard of 16 images, retried by Ray when its worker or
node dies or it raises, each writing its shard of rows whole (temporary name, then renamed); with
``resume`` an existing OUT is appended to, skipping the inputs it holds (docs/scaling.md).

For Datasets and URIs, Ray Data does the scheduling: the images flow through ``map_batches`` with :class:`FaceRows`,
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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EmoferError, ImageReadError, OutputError
from .io import load_image
from .outputs import PART, check_new_folder, new_folder
from .results import Face, FrameResult
from .sources import IMAGE_SUFFIXES, image_sources
from .table import EMPTY_FACE
from .validate import check_scalar
from .video_read import check_every
from .video_write import table_keys

if TYPE_CHECKING:
    import pyarrow
    import ray.data

    from .detect import DetectorSpec
    from .recognizer import EmotionRecognizer, LoadSpec

__all__ = [
    "FaceRows",
    "VideoRows",
    "RunReport",
    "faces_dataset",
    "video_faces_dataset",
    "frame_ranges",
    "write_faces",
    "summarize",
    "image_paths",
    "connect",
    "predict_to_parquet",
    "write_shards",
    "shards_report",
    "TaskFailedError",
]

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
#: Images per shard (one Ray task): what a retry redoes at most.
DEFAULT_SHARD_SIZE = 16
#: Ray's retries of a shard task: after its worker process or node died (``max_retries``) and,
#: with ``retry_exceptions=True``, after it raised. Failing past them, a shard is split into
#: one task per input; an input that fails alone gets an error row and is retried on resume.
MAX_RETRIES = 3
#: The shard footer key that lists the shard's inputs.
INPUTS_KEY = b"emofer.inputs"
SHARD_PREFIX = "part-"


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
    keys = [
        ("file", pa.string()),
        ("frame_index", pa.int64()),
        ("timestamp_ms", pa.float64()),
        ("face_index", pa.int64()),
    ]
    return pa.schema([*keys, *((name, face_types[name]) for name in EMPTY_FACE), ("error", pa.string())])


def face_rows(keys: dict[str, Any], faces: Sequence[Face]) -> list[dict[str, Any]]:
    """One row per face (``face_index`` 0, 1, ...), or one empty row when there is none."""
    if not faces:
        return [{**dict.fromkeys(KEY_COLUMNS), **keys, **EMPTY_FACE, "error": None}]
    return [
        {**dict.fromkeys(KEY_COLUMNS), **keys, "face_index": i, **face.to_dict(), "error": None}
        for i, face in enumerate(faces)
    ]


def error_row(keys: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """The row of an item that failed: its keys and ``error`` = "ErrorType: message"."""
    return {**dict.fromkeys(KEY_COLUMNS), **keys, **EMPTY_FACE, "error": f"{type(exc).__name__}: {exc}"}


class _Worker:
    """Holds one recognizer per Ray actor, built once in the actor from plain arguments."""

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        detector: DetectorSpec = "auto",
        min_face: int | None = None,
        min_confidence: float = 0.0,
        threads: int | None = None,
        local_files_only: bool = False,
        spec: LoadSpec | None = None,
    ) -> None:
        import cv2

        from .recognizer import EmotionRecognizer, LoadSpec

        if spec is None:
            spec = LoadSpec(
                model,
                detector=detector,
                min_face=min_face,
                min_confidence=min_confidence,
                threads=threads,
                local_files_only=local_files_only,
            )
        threads = spec.threads or _assigned_cpus()
        spec = replace(spec, threads=threads)
        cv2.setNumThreads(threads)  # OpenCV's detector threads: stay within this actor's CPUs
        self.recognizer: EmotionRecognizer = EmotionRecognizer.from_spec(spec)
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
            rows.extend(
                [error_row({"file": path}, faces)] if isinstance(faces, Exception) else face_rows({"file": path}, faces)
            )
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
    """``map_batches`` callable: a batch of videos (or frame ranges of videos) -> the rows of ``emofer video --table``.

    A batch holds a ``path`` column and, for frame ranges (:func:`frame_ranges`), ``start`` and
    ``stop`` (-1: to the end). A video without them, or with the range [0, end), is analysed start to
    end in one call, as :func:`emofer.video.analyze_video` does; any other range through
    :func:`emofer.video.analyze_video_range` (the same frames, indices, timestamps, boxes and raw
    probabilities; tracks and smoothing scoped to the range; ``max_frames`` applies to whole videos,
    and :func:`frame_ranges` folds it into the ranges). Use ``batch_size=1``: one task per video or
    range. A video that cannot be opened, or breaks off, adds an error row after the frames it gave
    (from the range where it broke; a range past the break gives no row).
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        every_n_frames: int = 1,
        smooth: bool = True,
        max_frames: int | None = None,
        **recognizer_kwargs: Any,
    ) -> None:
        super().__init__(model, **recognizer_kwargs)
        self.every_n_frames, self.smooth, self.max_frames = every_n_frames, smooth, max_frames

    def __call__(self, batch: dict[str, np.ndarray]) -> pyarrow.Table:
        paths = [str(p) for p in batch["path"]]
        starts = [int(s) for s in batch.get("start", [0] * len(paths))]
        stops = [None if int(s) < 0 else int(s) for s in batch.get("stop", [-1] * len(paths))]
        rows: list[dict[str, Any]] = []
        for path, start, stop in zip(paths, starts, stops):
            try:
                for result in self._results(path, start, stop):
                    rows.extend(face_rows({"file": path, **table_keys(result)}, result.faces))
            except Exception as exc:  # noqa: BLE001 - a broken video is one error row, the job goes on
                rows.append(error_row({"file": path}, exc))
        return self._table(rows)

    def _results(self, path: str, start: int, stop: int | None) -> Iterator[FrameResult]:
        from .video import analyze_video, analyze_video_range

        every, smooth = self.every_n_frames, self.smooth
        if (start, stop) == (0, None):
            return analyze_video(self.recognizer, path, every_n_frames=every, smooth=smooth, max_frames=self.max_frames)
        return analyze_video_range(self.recognizer, path, start, stop, every_n_frames=every, smooth=smooth)


def frame_ranges(
    frame_count: int | None, frames_per_task: int, *, every_n_frames: int = 1, max_frames: int | None = None
) -> list[tuple[int, int | None]]:
    """The frame ranges [start, stop) of a video of ``frame_count`` frames, ``frames_per_task`` frames each.

    ``max_frames`` (analysed frames, as ``emofer video --max-frames``) ends the last range at frame
    ``max_frames * every_n_frames``; without it the last range reads to the end (``stop`` None), so a
    container that reports too few frames loses none (one that reports too many gives ranges past the
    end, which give no rows). An unknown count (None) or ``max_frames`` 0 gives one range, the whole
    video: ``[(0, None)]``.
    """
    check_scalar(frames_per_task, "frames_per_task", int, min_val=1, hint="None analyses each video in one task")
    end = None if max_frames is None else max_frames * every_n_frames
    if frame_count is None or end == 0:
        return [(0, None)]
    limit = frame_count if end is None else min(frame_count, end)
    ranges: list[tuple[int, int | None]] = [
        (start, start + frames_per_task) for start in range(0, max(limit, 1), frames_per_task)
    ]
    ranges[-1] = (ranges[-1][0], end)
    return ranges


def _video_tasks(
    videos: list[str], frames_per_task: int | None, every_n_frames: int, max_frames: int | None
) -> list[dict[str, Any]]:
    """One item per video, or per frame range of each video whose frame count the driver can read."""
    from .video_read import VideoReader

    items = []
    for path in videos:
        count = None
        if frames_per_task is not None and ("://" in path or Path(path).is_file()):
            try:
                with VideoReader(path) as reader:
                    count = reader.frame_count
            except EmoferError as exc:  # its own task reports it, as one error row
                log.info("%s: %s; analysed in one task", path, exc)
        ranges = frame_ranges(count, frames_per_task or 1, every_n_frames=every_n_frames, max_frames=max_frames)
        for start, stop in ranges:
            items.append({"path": path, "start": start, "stop": -1 if stop is None else stop})
    return items


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


def _loader(
    model: str | os.PathLike | None,
    spec: LoadSpec | None,
    detector: DetectorSpec,
    min_face: int | None,
    min_confidence: float,
) -> dict[str, Any]:
    """The recognizer arguments of a worker actor: ``spec``, or the load keywords (not both)."""
    if spec is None:
        return dict(model=model, detector=detector, min_face=min_face, min_confidence=min_confidence)
    if (model, detector, min_face, min_confidence) != (None, "auto", None, 0.0):
        raise EmoferError("give the model options in spec= or as keywords (model, detector, ...), not both")
    return dict(spec=spec)


def faces_dataset(
    source: str | os.PathLike | Iterable[str | os.PathLike] | ray.data.Dataset,
    model: str | os.PathLike | None = None,
    *,
    detector: DetectorSpec = "auto",
    min_face: int | None = None,
    min_confidence: float = 0.0,
    spec: LoadSpec | None = None,
    workers: int = 1,
    cpus_per_worker: float = DEFAULT_CPUS_PER_WORKER,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ray.data.Dataset:
    """A lazy Dataset of face rows for a folder, a list of image paths/URIs, or a Ray Dataset.

    Local folders and files are listed here and read by the actors (so an unreadable file is an
    error row, not a failed read task); on a cluster they must be at the same path on every node.
    URIs (``s3://...``) go through ``ray.data.read_binary_files``. A Dataset must have a ``path``
    column and may have ``bytes`` or ``image`` (see :class:`FaceRows`). ``workers`` actors, each
    with its own recognizer, run with ``cpus_per_worker`` CPUs each. The model is ``spec`` (every
    load option, as the CLI builds it), else ``model``, ``detector``, ``min_face`` and ``min_confidence``.
    """
    loader = _loader(model, spec, detector, min_face, min_confidence)
    ray = _ray()
    if isinstance(source, ray.data.Dataset):
        dataset = source
    else:
        items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        uris = [str(item) for item in items if "://" in str(item)]
        if uris and len(uris) != len(items):
            raise EmoferError("give either local paths or URIs (s3://, gs://...), not both in one call")
        if uris:
            dataset = ray.data.read_binary_files(
                uris, include_paths=True, file_extensions=[s.lstrip(".") for s in IMAGE_SUFFIXES]
            )
        else:
            files = image_paths(items)
            if not files:
                raise EmoferError(
                    f"no images found in {', '.join(map(str, items))}; give image files or folders that hold some"
                )
            blocks = min(-(-len(files) // batch_size), MAX_BLOCKS)  # a block per batch: work streams and spreads
            dataset = ray.data.from_items([{"path": path} for path in files], override_num_blocks=blocks)
    return dataset.map_batches(
        FaceRows,
        fn_constructor_kwargs=loader,
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
    )


def video_faces_dataset(
    videos: str | os.PathLike | Iterable[str | os.PathLike],
    model: str | os.PathLike | None = None,
    *,
    every_n_frames: int = 1,
    smooth: bool = True,
    max_frames: int | None = None,
    frames_per_task: int | None = None,
    detector: DetectorSpec = "auto",
    min_face: int | None = None,
    min_confidence: float = 0.0,
    spec: LoadSpec | None = None,
    workers: int = 1,
    cpus_per_worker: float = DEFAULT_CPUS_PER_WORKER,
) -> ray.data.Dataset:
    """A lazy Dataset of the rows of ``emofer video --table`` for each video: one task per video, or per frame range.

    With ``frames_per_task`` None each video is one task, its rows those of ``emofer video``. With
    ``frames_per_task`` N the driver reads each video's frame count and cuts it into ranges of N
    frames (:func:`frame_ranges`), one task each: the rows have the frames, ``frame_index``,
    ``timestamp_ms``, boxes and raw probabilities of one whole run (``every_n_frames`` and
    ``max_frames`` pick the same frames), while ``track_id`` and smoothing are scoped to a range
    (:func:`emofer.video.analyze_video_range`: ids ``start * RANGE_TRACK_STRIDE + 1, 2, ...``; the
    range at frame 0 equals a whole run). A video whose count is unknown (a stream) or that the driver
    cannot open is one task. Each task reads its video from the start and discards the frames before
    its range (exact frames, no seeking), so later ranges decode more. docs/scaling.md lists the guarantees.
    The model is ``spec`` or the load keywords, as in :func:`faces_dataset`.
    """
    loader = _loader(model, spec, detector, min_face, min_confidence)
    check_scalar(
        frames_per_task, "frames_per_task", int, min_val=1, allow_none=True, hint="None analyses each video in one task"
    )
    check_every(every_n_frames)
    check_scalar(max_frames, "max_frames", int, min_val=0, allow_none=True, hint="None reads to the end")
    ray = _ray()
    items = [videos] if isinstance(videos, (str, os.PathLike)) else list(videos)
    tasks = _video_tasks([os.fspath(path) for path in items], frames_per_task, every_n_frames, max_frames)
    dataset = ray.data.from_items(tasks, override_num_blocks=max(1, len(tasks)))
    return dataset.map_batches(
        VideoRows,
        fn_constructor_kwargs=dict(every_n_frames=every_n_frames, smooth=smooth, max_frames=max_frames, **loader),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker,
    )


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
    #: Inputs a resumed job found complete in ``out`` and did not do again (they are counted above).
    skipped: int = 0

    def summary(self) -> str:
        """One or two lines for a log or the terminal."""
        where = f"; wrote {self.out}" if self.out else ""
        text = f"{self.items} items, {self.faces} faces, {self.failed} failed{where}"
        if self.skipped:
            text += f" ({self.skipped} were done before)"
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
        ray.init(
            address=address,
            log_to_driver=False,
            logging_level=logging.INFO if log.isEnabledFor(logging.INFO) else logging.ERROR,
        )
        log.info("Ray: %s CPUs in the cluster", ray.cluster_resources().get("CPU", 0))


def _quiet_ray() -> None:
    """Ray's Python log lines on stderr at ERROR and up (its progress lines, "Started a local Ray instance", the
    token warning); the full logs stay in Ray's session folder."""
    import ray.data  # noqa: F401 - configures the "ray.data" logger and its console handler

    logging.getLogger("ray").setLevel(logging.ERROR)
    for handler in logging.getLogger("ray.data").handlers:
        # Ray's own console handlers only: one the user (or a test runner) attached stays as it was
        if not isinstance(handler, logging.FileHandler) and type(handler).__module__.startswith("ray."):
            handler.setLevel(logging.ERROR)


def predict_to_parquet(
    paths: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    address: str | None = None,
    resume: bool = False,
    spec: LoadSpec | None = None,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    shard_size: int = DEFAULT_SHARD_SIZE,
    max_retries: int = MAX_RETRIES,
    worker: type[FaceRows] | None = None,
    **load_options: Any,
) -> RunReport:
    """``emofer predict PATHS --ray --out OUT [--resume]``: connect, run, write, report.

    Local files go through :func:`write_shards` (fault tolerant; ``resume`` appends to an existing
    OUT); URIs through :func:`faces_dataset` and :func:`write_faces` (no ``resume``). The model is
    ``spec``, else a LoadSpec of ``load_options`` (``model=``, ``detector=``, ``min_face=``, ...).
    """
    from .recognizer import LoadSpec

    if spec is not None and load_options:
        raise EmoferError(f"give the model options in spec= or as keywords, not both (got {sorted(load_options)})")
    items = [os.fspath(p) for p in paths]
    spec = spec if spec is not None else LoadSpec(**load_options)
    connect(address)
    if any("://" in item for item in items):
        if resume:
            raise EmoferError(
                "resume works on local files (it compares their size and mtime); "
                "give local paths, or run without resume into a new --out"
            )
        return write_faces(faces_dataset(items, spec=spec, workers=workers), out)
    return write_shards(
        items,
        out,
        spec=spec,
        resume=resume,
        workers=workers,
        cpus_per_worker=cpus_per_worker,
        shard_size=shard_size,
        max_retries=max_retries,
        worker=worker,
    )


# -- fault-tolerant, resumable jobs ------------------------------------------------------------
#
# OUT is a folder of Parquet shards. A shard holds every row of a fixed list of inputs and, in its
# footer, those inputs' identities (path, size, mtime); it is written by the Ray task that made the
# rows, to a hidden temporary name renamed when complete, so a shard is whole or absent. Its name
# is a hash of its inputs, so a retried task rewrites the same shard instead of adding one.


class TaskFailedError(EmoferError):
    """A Ray task failed on every retry (its worker or node kept dying, or it kept raising)."""


@dataclass(frozen=True)
class _Shard:
    name: str
    files: tuple[str, ...]


def input_identity(path: str) -> dict[str, Any]:
    """What a shard records of an input: ``file``, ``size`` and ``mtime_ns`` (-1 when it cannot be read)."""
    try:
        stat = os.stat(path)
    except OSError:
        return {"file": path, "size": -1, "mtime_ns": -1}
    return {"file": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def shard_name(files: Sequence[str]) -> str:
    """The shard file name of ``files``: the same inputs give the same name (a retry replaces, never adds)."""
    import hashlib

    return f"{SHARD_PREFIX}{hashlib.sha1(chr(0).join(files).encode()).hexdigest()[:20]}.parquet"


def write_shard(table: pyarrow.Table, path: Path, identities: Sequence[dict[str, Any]], **extra: Any) -> None:
    """Write ``table`` with ``identities`` in its footer to a temporary name beside ``path``, then rename."""
    import json

    import pyarrow.parquet as pq

    from .outputs import temporary_path

    meta = {INPUTS_KEY: json.dumps({"inputs": list(identities), **extra}).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    temporary = temporary_path(path)
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, path)  # a retry of the same inputs writes the same rows: replacing is right
    finally:
        temporary.unlink(missing_ok=True)


def shard_inputs(path: Path) -> dict[str, Any]:
    """The footer record of a shard: ``inputs`` (identities) and what else its writer noted."""
    import json

    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if INPUTS_KEY not in meta:
        raise OutputError(
            f"{path} is not a shard emofer wrote (no input list in its footer); "
            "--resume appends only to a folder that emofer predict --ray wrote: pass another --out"
        )
    return json.loads(meta[INPUTS_KEY])


_WORKERS: dict[tuple[type, bytes], FaceRows] = {}


def _shard_task(worker: type[FaceRows], spec: LoadSpec, folder: str, shard: _Shard) -> dict[str, Any]:
    """Ray task: the rows of ``shard``'s inputs into ``folder/shard.name``. One recognizer per worker process."""
    import pickle

    import ray

    key = (worker, pickle.dumps(spec))
    if key not in _WORKERS:
        _WORKERS.clear()
        _WORKERS[key] = worker(spec=spec)
    identities = [input_identity(file) for file in shard.files]  # before reading: a later change is seen
    table = _WORKERS[key]({"path": np.array(shard.files, dtype=object)})
    node = ray.get_runtime_context().get_node_id()
    write_shard(table, Path(folder) / shard.name, identities, node=node, pid=os.getpid())
    return {"name": shard.name, "items": len(shard.files), "node": node}


def _error_shard(folder: Path, shard: _Shard, exc: BaseException, schema: pyarrow.Schema) -> None:
    """Error rows for a single-input shard that failed on every retry (the driver writes them)."""
    import pyarrow as pa

    cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    error = TaskFailedError(
        f"the Ray task failed {MAX_RETRIES + 1} times ({type(exc).__name__}: {cause}); "
        "rerun with --resume to try it again"
    )
    rows = [error_row({"file": file}, error) for file in shard.files]
    write_shard(
        pa.Table.from_pylist(rows, schema=schema),
        folder / shard.name,
        [input_identity(file) for file in shard.files],
        retry=True,
    )


def _plan(files: list[str], folder: Path, resume: bool, shard_size: int) -> tuple[list[_Shard], int]:
    """The shards still to write into ``folder`` and how many inputs are complete there already.

    With ``resume``: inputs whose identity matches a shard's record are done; a shard's rows of an
    input that changed since (or that failed on every retry) are dropped from it (the shard rewritten
    whole) and the input is done again. Leftover temporary files of a killed run are removed.
    """
    done: set[str] = set()
    if resume and folder.is_dir():
        for leftover in folder.glob(f".*{PART}*"):
            log.info("removing %s, left by a run that stopped", leftover)
            leftover.unlink(missing_ok=True)
        current = {file: input_identity(file) for file in files}
        for path in shard_files(folder):
            record = shard_inputs(path)
            stale = {
                item["file"]
                for item in record["inputs"]
                if record.get("retry") or (item["file"] in current and current[item["file"]] != item)
            }
            if stale:
                _drop_inputs(path, record, stale)
            done.update(item["file"] for item in record["inputs"] if item["file"] not in stale)
    # Fixed chunks of the whole input list, less what is done: a rerun gives an unfinished chunk the same
    # name, so a task of a stopped run that still commits it meanwhile writes the very same shard.
    chunks = (
        [file for file in files[i : i + shard_size] if file not in done] for i in range(0, len(files), shard_size)
    )
    shards = [_Shard(shard_name(chunk), tuple(chunk)) for chunk in chunks if chunk]
    return shards, sum(file in done for file in files)


def _drop_inputs(path: Path, record: dict[str, Any], stale: set[str]) -> None:
    """Rewrite the shard at ``path`` without the rows of ``stale`` inputs (remove it if none is left)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    kept = [item for item in record["inputs"] if item["file"] not in stale]
    log.info("%s: %d inputs changed or failed before; their rows are done again", path, len(stale))
    if not kept:
        path.unlink()
        return
    table = pq.read_table(path)
    table = table.filter(pc.invert(pc.is_in(table.column("file"), value_set=pa.array(sorted(stale), pa.string()))))
    write_shard(table, path, kept, **{k: v for k, v in record.items() if k not in ("inputs", "retry")})


def write_shards(
    paths: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    spec: LoadSpec | None = None,
    resume: bool = False,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    shard_size: int = DEFAULT_SHARD_SIZE,
    max_retries: int = MAX_RETRIES,
    worker: type[FaceRows] | None = None,
) -> RunReport:
    """Face rows of local images (files and folders) into the Parquet folder ``out`` as Ray tasks; Ray must be up.

    Each task makes one shard (``shard_size`` inputs) and is retried by Ray (``max_retries``, with
    ``retry_exceptions``) when its worker or node dies or it raises. Without ``resume`` ``out`` must be
    new (written under a temporary name, renamed when done); with ``resume`` an existing ``out`` is
    appended to, skipping the inputs whose rows it holds (same path, size and mtime). ``worker`` is the
    :class:`FaceRows` subclass each task runs (default FaceRows); at most ``workers`` tasks run at once.
    """
    from .outputs import Inputs, check_output_folder
    from .recognizer import LoadSpec

    if workers < 1 or shard_size < 1 or max_retries < 0:
        raise EmoferError("workers and shard_size must be 1 or more, max_retries 0 or more")
    spec = spec if spec is not None else LoadSpec()
    given = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    files = list(dict.fromkeys(image_paths(given)))  # each input once
    if not files:
        raise EmoferError(
            f"no images found in {', '.join(map(str, given))}; give image files or folders that hold some"
        )
    inputs = Inputs([p for p in given if not p.is_dir()], [p for p in given if p.is_dir()])
    out = Path(out)
    if not resume:
        with new_folder(check_new_folder(out, inputs)) as temporary:
            _run_shards(files, temporary, False, spec, workers, cpus_per_worker, shard_size, max_retries, worker)
        return shards_report(out)
    around = inputs.read_folder_around(out)
    if around is not None:
        raise OutputError(f"{out} is inside {around}, which is being read; write the result outside it")
    skipped = _run_shards(
        files, check_output_folder(out, inputs), True, spec, workers, cpus_per_worker, shard_size, max_retries, worker
    )
    return replace(shards_report(out), skipped=skipped)


def _run_shards(
    files: list[str],
    folder: Path,
    resume: bool,
    spec: LoadSpec,
    workers: int,
    cpus: float,
    shard_size: int,
    max_retries: int,
    worker: type[FaceRows] | None,
) -> int:
    """Run the shards still missing in ``folder``; return how many inputs were complete already."""
    from collections import deque

    ray = _ray()
    shards, skipped = _plan(files, folder, resume, shard_size)
    if skipped:
        log.info(
            "%d of %d inputs are complete in %s; doing the other %d", skipped, len(files), folder, len(files) - skipped
        )
    task = ray.remote(_shard_task).options(num_cpus=cpus, max_retries=max_retries, retry_exceptions=True)
    worker = worker or FaceRows
    queue: deque[_Shard] = deque(shards)
    running: dict[Any, _Shard] = {}
    schema = None
    try:
        while queue or running:
            while queue and len(running) < workers:
                shard = queue.popleft()
                running[task.remote(worker, spec, str(folder), shard)] = shard
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                shard = running.pop(ref)
                try:
                    result = ray.get(ref)
                    log.debug("%s: %d items on node %s", result["name"], result["items"], result["node"])
                except ray.exceptions.RayError as exc:
                    if len(shard.files) > 1:  # isolate the input that kills or breaks its task
                        log.warning(
                            "%d inputs failed together after %d retries (%s); trying each alone",
                            len(shard.files),
                            max_retries,
                            type(exc).__name__,
                        )
                        queue.extend(_Shard(shard_name([file]), (file,)) for file in shard.files)
                    else:
                        log.warning("%s failed after %d retries: %s", shard.files[0], max_retries, type(exc).__name__)
                        schema = schema if schema is not None else _schema(spec)
                        _error_shard(folder, shard, exc, schema)
    except BaseException:  # Ctrl-C or a failure here: stop the tasks (their finished shards stay for --resume)
        for ref in running:
            ray.cancel(ref, force=True)
        raise
    return skipped


def _schema(spec: LoadSpec) -> pyarrow.Schema:
    """The row schema of ``spec``'s model (its labels read from its config, no model built)."""
    from .config import ModelConfig
    from .hub import resolve_model

    config_path, _ = resolve_model(
        spec.model,
        revision=spec.revision,
        cache_dir=spec.cache_dir,
        local_files_only=spec.local_files_only,
        token=spec.token,
    )
    return row_schema(ModelConfig.load(config_path).labels)


def shard_files(folder: Path) -> list[Path]:
    """The committed shards of a shard folder, in name order: never a hidden temporary file that a task
    (perhaps one of a stopped run, still finishing) is writing."""
    return sorted(path for path in folder.glob("*.parquet") if not path.name.startswith("."))


def shards_report(out: str | os.PathLike) -> RunReport:
    """Count the rows of a shard folder (OutputError if an input has rows in two shards)."""
    import pyarrow.dataset

    out = Path(out)
    seen: dict[str, str] = {}
    for path in shard_files(out):
        for item in shard_inputs(path)["inputs"]:
            if seen.setdefault(item["file"], path.name) != path.name:
                raise OutputError(
                    f"{item['file']} has rows in {seen[item['file']]} and {path.name} in {out}; "
                    "remove one of the two shards and rerun with --resume"
                )
    written = pyarrow.dataset.dataset(str(out), format="parquet")
    report = _tally(written.to_batches(columns=list(TALLY_COLUMNS)), str(out))
    if report.failed:
        log.info("%s", report.summary())
    return report
