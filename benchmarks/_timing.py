"""Timing, memory and install-size helpers shared by the speed benchmark's workers.

Standard library and numpy only: ``benchmarks/fer_worker.py`` imports this module inside
fer's own virtual environment, where emofer is not installed.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np


def summarize(values: Iterable[float], digits: int = 4) -> dict[str, Any]:
    """Median, quartiles, p10/p90, min and max of ``values`` (n >= 1), rounded."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        raise ValueError("nothing to summarize")
    p10, q25, q50, q75, p90 = np.percentile(data, [10, 25, 50, 75, 90])

    def r(v: float) -> float:
        return float(round(float(v), digits))

    return {"median": r(q50), "q25": r(q25), "q75": r(q75), "p10": r(p10), "p90": r(p90),
            "min": r(data.min()), "max": r(data.max()), "n": int(data.size)}


def time_calls(call: Callable[[int], Any], warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls ``call(i)`` after ``warmup`` untimed ones."""
    for i in range(warmup):
        call(i)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        call(warmup + i)
        times.append(time.perf_counter() - start)
    return times


def ms(times: Iterable[float]) -> dict[str, Any]:
    """``summarize`` of seconds, in milliseconds."""
    return summarize([1000.0 * t for t in times], digits=3)


def rate(times: Iterable[float], items: int) -> dict[str, Any]:
    """``summarize`` of items per second, one value per timed call of ``items`` items."""
    return summarize([items / t for t in times], digits=2)


def time_frame_sets(data: Any, predict: Callable[[Any], Any], detect: Callable[[Any], Any],
                    warmup: int, repeats: int) -> dict[str, Any]:
    """End-to-end and detection-only times for each frame set of an inputs.npz, plus faces found.

    ``predict(frame)`` returns the faces found; ``detect(frame)`` runs the detector alone.
    """
    sets = {key: data[key] for key in data.files if key.startswith("frame_")}
    sets["photos"] = [data[key] for key in sorted(data.files) if key.startswith("photo_")]
    out: dict[str, Any] = {}
    for key, frames in sets.items():
        k = len(frames)
        found: list[int] = []
        times = time_calls(lambda i: found.append(len(predict(frames[i % k]))), warmup, repeats)
        detected = time_calls(lambda i: detect(frames[i % k]), warmup, repeats)
        out[key] = {
            "ms": ms(times),
            "detect_ms": ms(detected),
            "faces_found_per_frame": round(float(np.mean(found[warmup:])), 2),
            "images": k,
        }
    return out


def time_classifier(crops: np.ndarray, tensors: np.ndarray, classify: Callable[[list], Any],
                    network: Callable[[np.ndarray], Any], params: dict[str, Any], model: str,
                    input_shape: str) -> dict[str, Any]:
    """One face's latency (``classify`` from a crop, ``network`` from a ready tensor) and the faces
    per second of each batch size in ``params["batches"]``: the ``classify`` task of both workers."""
    n = len(crops)
    warmup, repeats = params["warmup"], params["repeats"]
    single = time_calls(lambda i: classify([crops[i % n]]), warmup, repeats)
    network_single = time_calls(lambda i: network(tensors[i % n:i % n + 1]), warmup, repeats)
    result: dict[str, Any] = {
        "threads": params.get("threads"),
        "model": model,
        "input": input_shape,
        "latency_ms": ms(single),
        "network_latency_ms": ms(network_single),
        "throughput": {},
    }
    for batch in params["batches"]:
        idx = np.arange(batch) % n
        faces = [crops[i] for i in idx]
        batch_tensor = tensors[idx]
        times = time_calls(lambda i: classify(faces), params["batch_warmup"], params["batch_repeats"])
        on_network = time_calls(lambda i: network(batch_tensor), params["batch_warmup"], params["batch_repeats"])
        result["throughput"][str(batch)] = {"faces_per_s": rate(times, batch),
                                            "network_faces_per_s": rate(on_network, batch)}
    return result


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0, 1)


def write_result(path: str | os.PathLike, result: dict[str, Any]) -> None:
    """Write a worker's result (with its peak RSS) as JSON."""
    result = {**result, "peak_rss_mib": peak_rss_mib()}
    Path(path).write_text(json.dumps(result, indent=1), encoding="utf-8")


# -- installed size of a dependency closure ------------------------------------------------------


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_class() -> Any:
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip always vendors packaging
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    return Requirement


#: Distributions installed in place of a required one (same import package, another build).
ALTERNATIVES = {
    "tensorflow": ("tensorflow-cpu", "tensorflow-intel", "tensorflow-macos"),
    "opencv-python": ("opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless"),
    "onnxruntime": ("onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"),
}


def _installed(name: str) -> Any:
    from importlib import metadata

    for candidate in (name, *ALTERNATIVES.get(name, ())):
        try:
            return metadata.distribution(candidate)
        except metadata.PackageNotFoundError:
            continue
    return None


def dependency_closure(roots: Iterable[str], missing: list[str] | None = None) -> list[str]:
    """Distribution names (canonical) of ``roots`` and everything they require here, recursively.

    Requirements are read from each installed distribution's metadata; environment markers
    are evaluated for this interpreter, extras are not followed (a plain ``pip install``). A
    requirement met by another build (tensorflow by tensorflow-cpu) counts that build; names
    required but not installed are appended to ``missing``.
    """
    requirement = _requirement_class()
    seen: dict[str, None] = {}
    todo = [(_canonical(r), frozenset()) for r in roots]
    while todo:
        name, extras = todo.pop()
        if name in seen:
            continue
        dist = _installed(name)
        if dist is None:
            if missing is not None and name not in missing:
                missing.append(name)
            continue
        name = _canonical(dist.metadata["Name"])
        if name in seen:
            continue
        seen[name] = None
        for line in dist.requires or []:
            req = requirement(line)
            if req.marker is not None and not any(
                req.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            ):
                continue
            todo.append((_canonical(req.name), frozenset(req.extras)))
    return sorted(seen)


def dist_size_bytes(name: str) -> int:
    """Bytes on disk of the files an installed distribution lists in its RECORD."""
    from importlib import metadata

    dist = metadata.distribution(name)
    total = 0
    for file in dist.files or []:
        try:
            path = Path(dist.locate_file(file))
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            pass
    return total


def closure_size(roots: Iterable[str], skip: Iterable[str] = ()) -> dict[str, Any]:
    """Total MiB and per-distribution MiB of the dependency closure of ``roots`` (less ``skip``)."""
    from importlib import metadata

    skipped = {_canonical(s) for s in skip}
    sizes = {}
    missing: list[str] = []
    for name in dependency_closure(roots, missing):
        if name in skipped:
            continue
        dist = metadata.distribution(name)
        sizes[f"{dist.metadata['Name']}=={dist.version}"] = round(dist_size_bytes(name) / 2**20, 2)
    ordered = dict(sorted(sizes.items(), key=lambda kv: -kv[1]))
    return {"total_mib": round(sum(ordered.values()), 1), "distributions": len(ordered),
            "mib_by_distribution": ordered, "required_not_installed": sorted(missing)}
