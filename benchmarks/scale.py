"""Throughput of emofer.ray on this machine: sequential vs ``emofer predict --ray`` with 1 and 2 workers.

    python -m benchmarks.scale [--quick] [--images N] [--out docs/scaling]

Writes OUT.json (every figure) and OUT.md (the table, the machine and its load, the command, where
the time goes, the fault and resume guarantees, and a projection for N nodes from the measured
per-stage costs). Inputs are N synthetic JPEG files written to a temporary folder: the faces-boxes
photos, then 640x480 frames with 1 or 5 real FER2013 faces (benchmarks/speed_inputs.py), deleted
afterwards. Each Ray figure is one job end to end (:func:`emofer.ray.write_shards`, as the CLI runs
it: worker start and model load included, shards written to a Parquet folder); "first rows" is when
the first shard was written, "steady" the rate of the images after it (what a long job approaches).
A fresh cluster's first job (one image) is timed apart: it starts Ray's workers. Worker memory is
the peak RSS (VmHWM) of the processes that ran shard tasks. Stage times (read, decode, detect,
crop and classify, write) come from the sequential run. The machine may be shared: the load
average at the start and end is recorded, and the figures are only as quiet as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2

from benchmarks import speed_inputs
from benchmarks.run import machine
from training.report import render, table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "scaling"
#: The Markdown templates of the benchmark reports.
TEMPLATES = Path(__file__).resolve().parent / "templates"
RAY_CPUS = 2
#: Images of a full run (--images).
DEFAULT_IMAGES = 10_000
SCHEMA = 1
#: Projection: cores per node, and what one image costs on the wire (the inputs' mean JPEG size).
NODE_CORES = 16
NODES = (1, 4, 16, 64)


def make_images(folder: Path, count: int) -> list[Path]:
    """``count`` JPEGs: the faces-boxes photos, then 640x480 frames with 1 or 5 FER2013 faces."""
    photos = speed_inputs.read_photos()
    crops = speed_inputs.read_crops(count=256)
    paths = []
    for i, photo in enumerate(photos[:count]):
        paths.append(folder / f"photo_{i:02d}.jpg")
        cv2.imwrite(str(paths[-1]), photo)
    rest = count - len(paths)
    for faces, variants in ((1, rest - rest // 2), (5, rest // 2)):
        for v, frame in enumerate(speed_inputs.make_frames(crops, photos, 640, 480, faces, variants, start=7 * faces)):
            paths.append(folder / f"frame_{faces}_{v:03d}.jpg")
            cv2.imwrite(str(paths[-1]), frame)
    return paths


#: Images whose rows are written again to time the write stage (rows built, Parquet shards of 16).
WRITE_SAMPLE = 200


def sequential(paths: list[Path]) -> dict[str, Any]:
    """One recognizer on one thread in this process: images/s and the time of each stage."""
    from emofer import EmotionRecognizer
    from emofer.io import load_image
    from emofer.preprocess import crop_face

    start = time.perf_counter()
    recognizer = EmotionRecognizer.from_pretrained(threads=1)
    load_s = time.perf_counter() - start
    cv2.setNumThreads(1)
    for path in paths[:3]:  # warm-up
        recognizer.predict(path)
    stages = {"read": 0.0, "decode": 0.0, "detect": 0.0, "crop_classify": 0.0}
    faces = 0
    start = time.perf_counter()
    for path in paths:
        t0 = time.perf_counter()
        data = path.read_bytes()
        t1 = time.perf_counter()
        image = load_image(data)
        t2 = time.perf_counter()
        found = recognizer.detector.detect(image)
        t3 = time.perf_counter()
        if found:
            policy = recognizer.config.crop_for(recognizer.detector.name)
            recognizer.classify([crop_face(image, d.box, policy) for d in found])
        t4 = time.perf_counter()
        stages["read"] += t1 - t0
        stages["decode"] += t2 - t1
        stages["detect"] += t3 - t2
        stages["crop_classify"] += t4 - t3
        faces += len(found)
    wall = time.perf_counter() - start
    ms = {k: round(1000 * v / len(paths), 3) for k, v in stages.items()}
    ms["write"] = round(write_ms(recognizer, paths[:WRITE_SAMPLE]), 3)
    return {"images": len(paths), "faces": faces, "wall_s": round(wall, 3),
            "images_per_s": round(len(paths) / wall, 2), "model_load_s": round(load_s, 3),
            "ms_per_image": ms, "write_sample": min(len(paths), WRITE_SAMPLE),
            "detector": recognizer.detector.name, "model": recognizer.config.name,
            "peak_rss_mib": round(_rss_mib(os.getpid(), "VmHWM"), 1)}


def write_ms(recognizer: Any, paths: list[Path]) -> float:
    """Milliseconds per image to turn its faces into rows and write them as emofer.ray does (shards of 16)."""
    import pyarrow as pa

    from emofer.ray import DEFAULT_SHARD_SIZE, face_rows, input_identity, row_schema, write_shard

    results = [(str(path), recognizer.predict(path)) for path in paths]  # untimed: the faces to write
    schema = row_schema(recognizer.labels)
    with tempfile.TemporaryDirectory(prefix="emofer-scale-write-") as tmp:
        start = time.perf_counter()
        for i in range(0, len(results), DEFAULT_SHARD_SIZE):
            chunk = results[i: i + DEFAULT_SHARD_SIZE]
            rows = [row for file, faces in chunk for row in face_rows({"file": file}, faces)]
            write_shard(pa.Table.from_pylist(rows, schema=schema), Path(tmp) / f"part-{i}.parquet",
                        [input_identity(file) for file, _ in chunk])
        return 1000 * (time.perf_counter() - start) / len(paths)


def _rss_mib(pid: int, field: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class WorkerMemory(threading.Thread):
    """Finds the Ray worker processes running emofer.ray's shard task (by process title) until stopped;
    their peak RSS (VmHWM) is read at the end."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pids: set[int] = set()
        self._done = threading.Event()

    @staticmethod
    def _workers() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (entry / "cmdline").read_bytes().startswith(b"ray::_shard_task"):
                        pids.append(int(entry.name))
                except OSError:
                    continue
        return pids

    def run(self) -> None:
        while not self._done.is_set():
            self.pids.update(self._workers())
            self._done.wait(0.2)

    def stop(self) -> list[float]:
        self._done.set()
        self.join()
        return sorted(round(_rss_mib(pid, "VmHWM"), 1) for pid in self.pids)


def ray_job(paths: list[Path], workers: int, out: Path) -> dict[str, Any]:
    """One ``emofer predict --ray`` job (emofer.ray.write_shards) over ``paths`` with ``workers`` tasks at once.

    ``first_rows_s`` is when the first shard was written (worker start, model load, one shard);
    ``steady_images_per_s`` the rate of the images after it.
    """
    from emofer.ray import DEFAULT_SHARD_SIZE, write_shards

    memory = WorkerMemory()
    memory.start()
    first: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and not first:
            if next(out.parent.glob(f".{out.name}.*/*.parquet"), None) is not None:
                first.append(time.perf_counter() - start)
            done.wait(0.01)

    start = time.perf_counter()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    report = write_shards(paths, out, workers=workers, cpus_per_worker=1.0)
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    first_s = first[0] if first else wall
    rest = len(paths) - min(len(paths), DEFAULT_SHARD_SIZE)
    return {"images": len(paths), "items_seen": report.items, "faces": report.faces, "wall_s": round(wall, 3),
            "images_per_s": round(len(paths) / wall, 2), "first_rows_s": round(first_s, 3),
            "steady_images_per_s": round(rest / (wall - first_s), 2) if rest and wall > first_s else None,
            "actor_peak_rss_mib": memory.stop()}


def run_ray(paths: list[Path], folder: Path) -> dict[str, Any]:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=RAY_CPUS, include_dashboard=False, log_to_driver=False)
    result: dict[str, Any] = {"init_s": round(time.perf_counter() - start, 3), "ray": ray.__version__}
    try:
        result["first_job_one_image"] = ray_job(paths[:1], 1, folder / "first.parquet")  # starts Ray's workers
        for workers in (1, 2):
            result[f"workers_{workers}"] = ray_job(paths, workers, folder / f"workers_{workers}.parquet")
    finally:
        ray.shutdown()
    return result


def projection(result: dict[str, Any]) -> dict[str, Any]:
    """The template values of the projection to N nodes, from the measured per-image stage costs."""
    stages, ray_ = result["sequential"]["ms_per_image"], result["ray"]
    per_image_ms = sum(stages.values())
    per_core, kib = 1000.0 / per_image_ms, result["inputs"]["mean_kib"]
    rows = []
    for nodes in NODES:
        rate = nodes * NODE_CORES * per_core
        rows.append([nodes, nodes * NODE_CORES, f"{rate:,.0f}", f"{rate * kib / 1024:,.0f}",
                     f"{1e6 / rate / 60:,.1f} min"])
    limit = max(stages, key=stages.get)
    return {
        "per_image_ms": f"{per_image_ms:.1f}", "per_core": f"{per_core:.0f}", "kib": f"{kib:.0f}",
        **{f"{stage}_ms": f"{stages[stage]:.1f}" for stage in ("read", "decode", "detect", "crop_classify", "write")},
        "write_sample": result["sequential"]["write_sample"],
        "steady_1": ray_["workers_1"]["steady_images_per_s"], "sequential": result["sequential"]["images_per_s"],
        "init_s_1": f"{ray_['init_s']:.1f}", "first_rows_1": f"{ray_['workers_1']['first_rows_s']:.1f}",
        "node_cores": NODE_CORES, "limit": limit.replace("_", " "),
        "limit_share": f"{100 * stages[limit] / per_image_ms:.0f}",
        "projection_table": table(["nodes", "actors", "images/s", "input MiB/s", "1 M images"], rows),
    }


def markdown(result: dict[str, Any]) -> str:
    """OUT.md from OUT.json's dict: the runs, start-up, the projection to N nodes, running on a cluster."""
    seq, ray_, m = result["sequential"], result["ray"], result["machine"]
    cpus = m.get("usable_cpus", m.get("logical_cpus"))
    rows = [["sequential (`EmotionRecognizer.predict`, 1 thread)", seq["images_per_s"], seq["images_per_s"],
             f"{seq['model_load_s']} (model load)", seq["wall_s"], f"{seq['peak_rss_mib']} (whole process)"]]
    for workers in (1, 2):
        r = ray_[f"workers_{workers}"]
        rows.append([f"Ray, {workers} worker{'s' * (workers > 1)}", r["images_per_s"], r["steady_images_per_s"],
                     r["first_rows_s"], r["wall_s"], ", ".join(str(v) for v in r["actor_peak_rss_mib"]) or "not seen"])
    one, two = ray_["workers_1"]["steady_images_per_s"], ray_["workers_2"]["steady_images_per_s"]
    contention = "" if two is None or one is None or two >= 1.5 * one else (
        f"\nTwo workers ran at {two / one:.2f}x one worker's steady rate in this run, not 2x: both cores were already "
        f"busy with other work (load average {m['load_average_start'][0]} on {cpus} CPUs), so a second worker "
        "competes for the same CPU time instead of adding any. The projection below assumes cores that are free.\n")
    return render("scaling.md.tmpl", {
        "command": result["command"], "cpu_model": m.get("cpu_model"), "cpus": cpus, "ram_gib": m.get("ram_gib"),
        "ray": ray_["ray"], "ray_cpus": RAY_CPUS, "load_start": m["load_average_start"],
        "load_end": m.get("load_average_end"), "images": result["inputs"]["images"],
        "description": result["inputs"]["description"], "faces": seq["faces"], "model": seq["model"],
        "detector": seq["detector"], "contention": contention + sample_note(result), "init_s": ray_["init_s"],
        "first_job_s": ray_["first_job_one_image"]["wall_s"], "model_load_s": seq["model_load_s"],
        "runs_table": table(["run", "images/s (end to end)", "steady images/s", "first rows s", "wall s",
                             "peak RSS per worker MiB"], rows),
        **projection(result),
    }, TEMPLATES)


def sample_note(result: dict[str, Any]) -> str:
    """Why the runs used fewer images than the default, and how to read runs that follow each other on a shared CPU."""
    images = result["inputs"]["images"]
    note = ("\nThe runs follow each other on a shared machine, so the CPU each got varied: a run faster than the one "
            "before it (e.g. one worker faster than sequential) had more of the CPU, not less work.\n")
    if result.get("mode") == "full" and images < DEFAULT_IMAGES:
        note += (f"\nN = {images} images (`--images {images}`), not the default {DEFAULT_IMAGES:,}: on this shared "
                 "machine the three runs of 10,000 would take about half an hour.\n")
    return note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="24 images: checks it runs; figures not for publishing")
    parser.add_argument("--images", type=int, default=DEFAULT_IMAGES,
                        help="how many images (default: 10000; on a shared machine a smaller N, stated in the page)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="OUT.json and OUT.md (default: docs/scaling)")
    parser.add_argument("--render", action="store_true", help="only re-write OUT.md from OUT.json (no measuring)")
    args = parser.parse_args(argv)
    if args.render:
        args.out.with_suffix(".md").write_text(markdown(json.loads(args.out.with_suffix(".json").read_text())))
        return 0
    count = 24 if args.quick else args.images
    given = argv if argv is not None else sys.argv[1:]
    command = "python -m benchmarks.scale" + "".join(f" {shlex.quote(a)}" for a in given)
    result: dict[str, Any] = {"schema": SCHEMA, "command": command, "mode": "quick" if args.quick else "full",
                              "machine": machine()}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="emofer-scale-") as tmp:
        folder = Path(tmp)
        (folder / "images").mkdir()
        paths = make_images(folder / "images", count)
        result["inputs"] = {"images": len(paths),
                            "mean_kib": round(sum(p.stat().st_size for p in paths) / len(paths) / 1024, 1),
                            "description": "the 9 faces-boxes photos, then 640x480 frames with 1 or 5 FER2013 faces"}
        result["sequential"] = sequential(paths)
        result["ray"] = run_ray(paths, folder)
    result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    result["duration_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
