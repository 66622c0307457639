"""The command line of a benchmark worker (``emofer_worker``, ``fer_worker``): one task, its result file.

Kept apart from ``_timing`` (which imports numpy) so that a worker imports nothing before its
task runs: ``cold`` times the first import of the library it measures.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
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
