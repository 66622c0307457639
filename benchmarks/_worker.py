"""The command line of a benchmark worker (``emofer_worker``, ``fer_worker``): one task, its result file.

Kept apart from ``_timing`` (which imports numpy) so that a worker imports nothing before its
task runs: ``cold`` times the first import of the library it measures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sized
from typing import Any


def main(library: str, tasks: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]],
         argv: list[str] | None = None) -> int:
    """``python -m benchmarks.<library>_worker TASK --inputs I --params JSON --result R``."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{library}_worker")
    parser.add_argument("task", choices=sorted(tasks))
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--params", default="{}")
    parser.add_argument("--result", required=True)
    args = parser.parse_args(argv)
    result = tasks[args.task](args.inputs, json.loads(args.params))
    from . import _timing

    _timing.write_result(args.result, {"library": library, "task": args.task, **result})
    return 0


def cold(inputs: str, import_library: Callable[[], Any], load: Callable[[Any], Any],
         predict: Callable[[Any, Any], Sized]) -> tuple[Any, dict[str, Any]]:
    """Time a fresh process's first import, model load and predict on the 640x480 frame of ``inputs``.

    Returns the loaded model (for the worker's own fields) and the times in seconds.
    """
    start = time.perf_counter()
    library = import_library()
    imported = time.perf_counter()
    model = load(library)
    loaded = time.perf_counter()
    import numpy as np

    frame = np.load(inputs)["frame_640x480_1"][0]
    before = time.perf_counter()
    faces = predict(model, frame)
    first = time.perf_counter()
    return model, {
        "import_s": imported - start,
        "load_s": loaded - imported,
        "import_load_s": loaded - start,
        "first_predict_s": first - before,
        "faces": len(faces),
    }
