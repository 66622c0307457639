"""Memory over a long run: many predictions in one process, resident memory sampled as it goes.

    python -m benchmarks.memory [--model emofer/fer5 | FOLDER] [--n 10000] [--every 1000] [--out FILE]

Each prediction classifies the faces of a real photo at fixed boxes (detector "none" with
caller boxes), so the run measures the classification path; the resident set size (VmRSS from
/proc/self/status, Linux) is read before the first call and every ``--every`` calls. A leak
shows as steady growth after the first samples (which include onnxruntime's warm-up).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import cv2

from benchmarks.wild import model_path
from emofer import EmotionRecognizer, hub

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_PHOTO = SHARED / "data" / "faces-boxes" / "images" / "2007_007763.jpg"
FALLBACK_PHOTO = ROOT / "examples" / "images" / "grace_hopper.jpg"
DEFAULT_OUT = ROOT / "docs" / "robustness-memory.json"
#: Face boxes (x, y, w, h) of DEFAULT_PHOTO (from faces-boxes/boxes.csv); any boxes do for memory.
BOXES = [(194, 90, 37, 37), (158, 114, 37, 37), (381, 89, 45, 44), (94, 198, 37, 37)]


def rss_mib() -> float:
    """This process's resident set size in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS line in /proc/self/status (this benchmark needs Linux)")


def run(recognizer: EmotionRecognizer, photo: Path, n: int, every: int) -> list[dict[str, float]]:
    """``n`` predictions on ``photo``; (calls, RSS MiB, seconds) before the first and every ``every`` calls."""
    image = cv2.imread(str(photo))
    if image is None:
        raise SystemExit(f"cannot read {photo}")
    start = time.perf_counter()
    samples = [{"calls": 0, "rss_mib": round(rss_mib(), 2), "seconds": 0.0}]
    for call in range(1, n + 1):
        recognizer.predict(image, boxes=BOXES)
        if call % every == 0 or call == n:
            samples.append({"calls": call, "rss_mib": round(rss_mib(), 2),
                            "seconds": round(time.perf_counter() - start, 2)})
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.splitlines()[0])
    bundled = hub.bundled_models()
    default_model = hub.DEFAULT_MODEL if hub.DEFAULT_MODEL in bundled else None
    parser.add_argument("--model", default=default_model,
                        help=f"model folder, .onnx or repo id (default: the bundled {hub.DEFAULT_MODEL})")
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO if DEFAULT_PHOTO.exists() else FALLBACK_PHOTO)
    parser.add_argument("--n", type=int, default=10_000, help="predictions to run")
    parser.add_argument("--every", type=int, default=1_000, help="sample memory every this many calls")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error(f"the bundled {hub.DEFAULT_MODEL} is not installed; pass --model FOLDER")
    recognizer = EmotionRecognizer.from_pretrained(model_path(args.model), detector="none")
    samples = run(recognizer, args.photo, args.n, args.every)
    memory = rss_summary(samples)
    result = {
        "command": command_line("benchmarks.memory", argv),
        "model": recognizer.config.name,
        "photo": args.photo.name,
        "faces_per_call": len(BOXES),
        "predictions": args.n,
        **memory,
        "growth_mib": round(memory["end_mib"] - memory["start_mib"], 2),
        "ms_per_call": round(1000.0 * samples[-1]["seconds"] / max(1, args.n), 3),
        "python": platform.python_version(),
        "samples": samples,
    }
    for sample in samples:
        print(f"{sample['calls']:>7} calls  {sample['rss_mib']:8.1f} MiB  {sample['seconds']:7.1f} s")
    print(f"growth {result['growth_mib']:+.1f} MiB over {args.n} predictions "
          f"({result['growth_after_first_sample_mib']:+.1f} MiB after the first sample); max {result['max_mib']:.1f} MiB")
    write_json(args.out, result)
    return 0


def rss_summary(samples: list[dict[str, float]]) -> dict[str, float]:
    """Resident memory over a run's samples: at the start, after the first (warm-up) sample, at the
    end, the maximum, and the growth after warm-up (a leak shows there)."""
    rss = [s["rss_mib"] for s in samples]
    warm = samples[1]["rss_mib"] if len(samples) > 2 else rss[0]
    return {"start_mib": rss[0], "after_first_sample_mib": warm, "end_mib": rss[-1], "max_mib": max(rss),
            "growth_after_first_sample_mib": round(rss[-1] - warm, 2)}


def command_line(module: str, argv: list[str] | None) -> str:
    """The ``python -m MODULE ARGS`` line a result records (``argv`` None: this process's arguments)."""
    return " ".join([f"python -m {module}", *map(shlex.quote, argv if argv is not None else sys.argv[1:])])


def write_json(path: Path, result: dict) -> None:
    """Write a benchmark's result (indented JSON) and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
