"""Speed of emofer against fer 25.10.3: both measured in the same run, on the same inputs.

    python -m benchmarks.run [--quick] [--emofer-only] [--out docs/benchmarks] [--model M]

Writes OUT.json (every figure), OUT.md (tables, the machine, the command) and OUT.png (a chart).
Each figure is a median with its spread (quartiles, p10/p90) over repeated runs after warm-up,
and every measurement runs in a fresh process (``benchmarks/emofer_worker.py`` with this Python,
``benchmarks/fer_worker.py`` with the Python of fer's own venv), whose peak RSS is recorded.

fer is never a dependency of emofer: it lives in a virtual environment of its own that this
script creates at ~/.cache/emofer-bench/fer-venv (reused when present; see ``ensure_fer_venv``
for why the install is done in steps). Inputs are made from real faces into a temporary folder
(``benchmarks/speed_inputs.py``) and deleted afterwards.

``--quick --emofer-only`` takes a few iterations of everything for emofer alone (under a minute);
the tests run it so the benchmark cannot rot. Figures from a quick run are not for publishing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from training.report import bullets, render, table

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_OUT = ROOT / "docs" / "benchmarks"
#: The reports' Markdown templates (benchmarks.md.tmpl and its parts).
TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_YUNET = ROOT / "src" / "emofer" / "detect" / "weights" / "face_detection_yunet_2026may.onnx"  # the bundled YuNet
DEFAULT_FER_VENV = Path.home() / ".cache" / "emofer-bench" / "fer-venv"
FER_VERSION = "25.10.3"
#: fer 25.10.3's own requirements, less facenet-pytorch (installed without its pins, see below).
FER_REQUIREMENTS = ["matplotlib", "opencv-contrib-python", "pandas", "requests", "tqdm>=4.62.1",
                    "moviepy<2.0,>=1.0.3", "ffmpeg-python>=0.2.0", "Pillow"]
SCHEMA = 1


@dataclass(frozen=True)
class Settings:
    """How many times each thing is measured."""

    cold_runs: int = 5
    warmup: int = 20
    repeats: int = 300
    batches: tuple[int, ...] = (32, 256)
    #: batch sizes of emofer's network-only throughput sweep (guides DEFAULT_BATCH_SIZE)
    sweep: tuple[int, ...] = (1, 4, 16, 32, 64, 128, 256)
    batch_warmup: int = 2
    batch_repeats: int = 15
    e2e_warmup: int = 3
    e2e_repeats: int = 30
    video_seconds: float = 30.0
    frame_variants: int = 4
    crops: int = 512
    peak_repeats: int = 20
    worker_timeout_s: float = 1800.0


QUICK = Settings(cold_runs=2, warmup=3, repeats=15, sweep=(), batch_warmup=0, batch_repeats=2, e2e_warmup=1,
                 e2e_repeats=2, video_seconds=1.0, frame_variants=2, crops=128, peak_repeats=5,
                 worker_timeout_s=300.0)


class WorkerError(RuntimeError):
    """A worker process failed; the message holds the end of its stderr."""


# -- the machine ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, OS and Python of this machine, and how busy it is now."""
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "python": platform.python_version()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text(errors="replace")
        fields = [dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
                  for block in text.strip().split("\n\n")]
        fields = [{k.strip(): v.strip() for k, v in block.items()} for block in fields]
        if fields:
            info["cpu_model"] = fields[0].get("model name", platform.processor() or "unknown")
            cores = {(b.get("physical id"), b.get("core id")) for b in fields if "core id" in b}
            info["physical_cores"] = len(cores) or None
            flags = set(fields[0].get("flags", "").split())
            info["simd"] = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                                        "amx_tile") if f in flags]
            mhz = fields[0].get("cpu MHz")
            info["cpu_mhz"] = float(mhz) if mhz else None
    else:
        info["cpu_model"] = platform.processor() or "unknown"
    info["logical_cpus"] = os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 2**20, 1)
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    blas_env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS") if k in os.environ}
    if blas_env:
        info["environment"] = blas_env
    return info


def emofer_versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("emofer", "onnxruntime", "numpy", "opencv-python", "opencv-python-headless", "huggingface-hub"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


# -- fer's virtual environment ------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def fer_installed(python: Path) -> bool:
    """True when ``python`` has fer FER_VERSION installed (read from metadata: no TensorFlow import)."""
    if not python.exists():
        return False
    probe = "import importlib.metadata as m; print(m.version('fer'))"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == FER_VERSION


def ensure_fer_venv(venv: Path, log: Path) -> Path:
    """fer's own venv at ``venv`` (created when missing); returns its Python.

    A plain ``pip install fer`` does not work: fer needs facenet-pytorch 2.6.0, which pins
    torch<2.3, torchvision<0.18, numpy<2 and Pillow<10.3, so pip fetches a multi-GB CUDA torch
    2.2, and fer then fails to import on setuptools >= 81 (it uses pkg_resources). So the steps:
    torch 2.13 (a CPU build where pip finds one), setuptools<81 and tensorflow-cpu; torchvision
    to match torch; fer's other requirements; then fer and facenet-pytorch without their pins.
    facenet-pytorch (fer's optional MTCNN detector) only works where torchvision's compiled ops
    load; PyPI's torchvision is a CUDA build, so with a CPU torch MTCNN is reported unavailable.
    """
    python = venv_python(venv)
    if fer_installed(python):
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", None) or sys.executable
    steps = [
        [base, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "torch==2.13.0", "setuptools<81", "tensorflow-cpu"],
        [str(python), "-m", "pip", "install", "torchvision==0.28.*"],
        [str(python), "-m", "pip", "install", *FER_REQUIREMENTS],
        [str(python), "-m", "pip", "install", "--no-deps", f"fer=={FER_VERSION}", "facenet-pytorch==2.6.0"],
    ]
    optional = {2}  # torchvision: only fer's MTCNN needs it
    with open(log, "a", encoding="utf-8") as out:
        for i, step in enumerate(steps):
            print(f"fer venv: {' '.join(step[1:])}", file=sys.stderr)
            out.write(f"$ {shlex.join(step)}\n")
            out.flush()
            done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT)
            if done.returncode != 0 and i not in optional:
                raise RuntimeError(f"setting up fer's venv failed at: {shlex.join(step)} (see {log})")
    if not fer_installed(python):
        raise RuntimeError(f"fer {FER_VERSION} is not importable from {python} after setup (see {log})")
    return python


# -- running workers -----------------------------------------------------------------------------------


class Runner:
    """Starts worker processes and collects their JSON results."""

    def __init__(self, workdir: Path, inputs: Path, timeout: float, env: dict[str, str], verbose: bool = True):
        self.workdir = workdir
        self.inputs = inputs
        self.timeout = timeout
        self.env = env
        self.verbose = verbose
        self.count = 0

    def run(self, python: str | Path, library: str, task: str, **params: Any) -> dict[str, Any]:
        """One worker process: ``library``'s ``task`` with ``params``; its result plus wall time."""
        self.count += 1
        result = self.workdir / f"result-{self.count:03d}-{library}-{task}.json"
        command = [str(python), "-m", f"benchmarks.{library}_worker", task, "--inputs", str(self.inputs),
                   "--params", json.dumps(params), "--result", str(result)]
        label = f"{library} {task} {json.dumps({k: v for k, v in params.items() if k in ('detector', 'threads', 'backend')})}"
        if self.verbose:
            print(f"  {label} ...", end="", flush=True, file=sys.stderr)
        start = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise WorkerError(f"{label} ran past {self.timeout:.0f} s") from exc
        wall = time.perf_counter() - start
        if done.returncode != 0 or not result.is_file():
            tail = "\n".join((done.stderr or "").strip().splitlines()[-15:])
            if self.verbose:
                print(" failed", file=sys.stderr)
            raise WorkerError(f"{label} failed (exit {done.returncode}):\n{tail}")
        if self.verbose:
            print(f" {wall:.1f} s", file=sys.stderr)
        data = json.loads(result.read_text(encoding="utf-8"))
        data["process_wall_s"] = round(wall, 3)
        return data


def _cold_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    from ._timing import summarize

    keys = ("import_s", "load_s", "import_load_s", "first_predict_s", "process_wall_s", "peak_rss_mib")
    summary = {key: summarize([r[key] for r in results], digits=4) for key in keys}
    summary.update({k: results[0][k] for k in ("detector", "model", "faces") if k in results[0]})
    return summary


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("library", "task")}


class FerSide:
    """fer's measurements; after the first failure fer is marked skipped and emofer goes on alone."""

    def __init__(self, runner: Runner, python: Path | None, skipped: str | None = None):
        self.runner = runner
        self.python = python
        self.out: dict[str, Any] = {"skipped": skipped} if skipped else {}

    @property
    def active(self) -> bool:
        return self.python is not None and "skipped" not in self.out

    def run(self, task: str, **params: Any) -> dict[str, Any] | None:
        """One fer worker's result without library/task keys, or None (fer skipped or failed now)."""
        if not self.active:
            return None
        try:
            return _strip(self.runner.run(self.python, "fer", task, **params))
        except WorkerError as exc:
            self.out = {"skipped": f"a fer measurement failed: {exc}"}
            print(f"fer failed, going on without it: {exc}", file=sys.stderr)
            return None

    def put(self, *keys: str, value: Any) -> None:
        """Store ``value`` at out[keys...] while fer is still measured."""
        if value is None or not self.active:
            return
        target = self.out
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value


def main_detector(detectors: list[str]) -> str:
    """The emofer detector the summary, the headline ratios and the variant are measured with."""
    return "yunet" if "yunet" in detectors else (detectors or ["haar"])[0]


def measure(runner: Runner, s: Settings, model: str, detectors: list[str], video: Path,
            video_detectors: list[str], fer: FerSide, quick: bool,
            variant: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every figure, emofer then fer for each, so both see the machine in the same state."""
    py = sys.executable
    emofer: dict[str, Any] = {"model": model, "detectors": detectors}

    info = fer.run("versions")
    if info is not None:
        fer.put("versions", value=info["versions"])
        fer.put("detectors", value=["haar"] + ([] if info.get("mtcnn_unavailable") else ["mtcnn"]))
        fer.put("mtcnn_unavailable", value=info.get("mtcnn_unavailable"))

    # cold start: emofer and fer alternate, one fresh process each
    runs: dict[str, list[dict[str, Any]]] = {"emofer": [], "fer": []}
    for _ in range(s.cold_runs):
        runs["emofer"].append(runner.run(py, "emofer", "cold", model=model, detector="auto"))
        cold = fer.run("cold", detector="haar")
        if cold is not None:
            runs["fer"].append(cold)
    emofer["cold"] = _cold_summary(runs["emofer"])
    fer.put("cold", value=_cold_summary(runs["fer"]) if runs["fer"] else None)

    common = dict(warmup=s.warmup, repeats=s.repeats, batches=list(s.batches), batch_warmup=s.batch_warmup,
                  batch_repeats=s.batch_repeats)
    emofer["classify"] = {}
    for key, threads in (("threads_1", 1), ("threads_default", None)):
        emofer["classify"][key] = _strip(runner.run(py, "emofer", "classify", model=model, detector="none",
                                                    threads=threads, sweep=list(s.sweep), **common))
        fer.put("classify", key, value=fer.run("classify", threads=threads, backend="tflite", **common))
    if not quick:
        fer.put("classify", "keras_threads_default",
                value=fer.run("classify", threads=None, backend="keras", **common))

    emofer["e2e"] = {d: _strip(runner.run(py, "emofer", "e2e", model=model, detector=d, warmup=s.e2e_warmup,
                                          repeats=s.e2e_repeats)) for d in detectors}
    for d in fer.out.get("detectors", []):
        fer.put("e2e", d, value=fer.run("e2e", detector=d, warmup=s.e2e_warmup, repeats=s.e2e_repeats))
    emofer["video"] = {d: _strip(runner.run(py, "emofer", "video", model=model, detector=d, path=str(video)))
                       for d in video_detectors}
    for d in fer.out.get("detectors", []):
        fer.put("video", d, value=fer.run("video", detector=d, path=str(video)))
    if variant:
        # the same measurements for the int8 variant: per-face latency and predict with the main detector
        det = main_detector(detectors)
        emofer["variant"] = {"model": variant, "detector": det, "classify": {
            key: _strip(runner.run(py, "emofer", "classify", model=variant, detector="none", threads=threads, **common))
            for key, threads in (("threads_1", 1), ("threads_default", None))},
            "e2e": {det: _strip(runner.run(py, "emofer", "e2e", model=variant, detector=det, warmup=s.e2e_warmup,
                                           repeats=s.e2e_repeats))}}
    emofer["size"] = _strip(runner.run(py, "emofer", "size"))
    fer.put("size", value=fer.run("size"))
    fer.put("model_macs", value=fer.run("macs"))
    return emofer, fer.out


def measure_floor(model: str, emofer: dict[str, Any], peak_repeats: int) -> dict[str, Any]:
    """MACs of the shipped ONNX model, the core's peak FP32 rate, and the floor against measured times."""
    from emofer import hub

    from . import floor

    onnx_path = hub.resolve_model(model)[1]
    macs = floor.count_macs(onnx_path)
    macs["model"] = model
    peak = floor.peak_gflops(repeats=peak_repeats)
    one = emofer["classify"]["threads_1"]
    biggest = str(max(int(b) for b in one["throughput"]))
    measured = {
        "classify_batch1_1thread": one["latency_ms"]["median"],
        "network_batch1_1thread": one["network_latency_ms"]["median"],
        f"network_batch{biggest}_1thread": 1000.0 / one["throughput"][biggest]["network_faces_per_s"]["median"],
    }
    return {"model_macs": macs, "peak": peak, **floor.floor(macs["macs"], peak, measured)}


# -- report ----------------------------------------------------------------------------------------------


def _fmt(stat: dict[str, Any] | None, unit: str = "", digits: int = 1) -> str:
    if not stat:
        return "—"
    return f"{stat['median']:.{digits}f}{unit} ({stat['q25']:.{digits}f}–{stat['q75']:.{digits}f})"


def _get(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


FRAME_SETS = [("frame_640x480_1", "640x480, 1 face"), ("frame_640x480_5", "640x480, 5 faces"),
              ("frame_1280x720_1", "1280x720, 1 face"), ("frame_1280x720_5", "1280x720, 5 faces"),
              ("photos", "faces-boxes photos (9 photos, 332-500 px, 43 faces)")]


def _columns(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(title, library, detector) of the end-to-end columns."""
    cols = [(f"emofer {d}", "emofer", d) for d in result["emofer"].get("detectors", [])]
    fer = result.get("fer", {})
    if "e2e" in fer:
        cols += [(f"fer {d}" + (" (default)" if d == "haar" else ""), "fer", d) for d in fer["detectors"]]
    return cols


QUICK_NOTICE = ("> **Quick run**: a few iterations only, for checking that the benchmark works. Do not quote\n"
                "> these figures.\n\n")


def markdown(result: dict[str, Any]) -> str:
    """OUT.md from OUT.json's dict: summary, headline ratios, then one section per measurement."""
    emofer, fer, fl, v = result["emofer"], result.get("fer", {}), result["floor"], result["inputs"]
    heads = headline(result)
    return render("benchmarks.md.tmpl", {
        "emofer_version": result["versions"]["emofer"].get("emofer", "?"), "model": emofer["model"],
        "fer_measured": f"fer {fer['versions'].get('fer')}" if "classify" in fer else "fer (not measured in this run)",
        "notices": QUICK_NOTICE * (result["mode"] == "quick") + (
            "fer was not measured: " + " / ".join(line.strip() for line in str(fer["skipped"]).splitlines()
                                                  if line.strip()) + "\n\n" if fer.get("skipped") else ""),
        "machine": bullets(_machine_lines(result)),
        "summary_table": table(["figure", "emofer", "fer"], _summary_rows(result)),
        "headlines": "\n## Headline ratios\n\nFrom the medians above (emofer / fer, or fer / emofer for times):\n\n"
                     + bullets(heads) + "\n" if heads else "",
        "crops": v["crops"], "emofer_input": _get(emofer, "classify", "threads_1", "input"),
        "classify_table": _classify_table(result), "sweep": _sweep(result), "e2e_table": _e2e_table(result),
        "video_seconds": f"{v['video_frames'] / v['video_fps']:.0f}",
        "video_size": "x".join(map(str, v["video_size"][:2])),
        "video_fps": v["video_fps"], "video_faces": v["video_faces"],
        "video_table": table(["library, detector", "frames/s", "ms per frame", "faces per frame", "peak RSS (MiB)"],
                             [[f"{lib} {det}", res["fps"], _fmt(res["frame_ms"]), res["faces_per_frame"],
                               res.get("peak_rss_mib")]
                              for lib in ("emofer", "fer") for det, res in (_get(result, lib, "video") or {}).items()]),
        "cold_detector": _get(emofer, "cold", "detector"), "cold_table": _cold_table(result),
        "sizes": bullets(_size_lines(result)),
        "floor_model": fl["model_macs"]["model"], "floor_macs": f"{fl['model_macs']['macs'] / 1e6:.1f}",
        "floor_params": f"{fl['model_macs']['params'] / 1e6:.2f}",
        "floor_macs_by_op": ", ".join(f"{k} {n / 1e6:.1f} M" for k, n in fl["model_macs"]["macs_by_op"].items()),
        "peak_method": fl["peak"]["method"], "peak_best": fl["peak"]["gflops_best"],
        "peak_median": fl["peak"]["gflops_median"], "floor_ms": f"{fl['floor_ms_per_face']:.3f}",
        "floor_table": table(["measured on 1 thread", "ms per face", "x floor"],
                             [[key.replace("_", " "), f"{value:.3f}", fl["times_floor"].get(key)]
                              for key, value in fl["measured_ms_per_face"].items()]),
        "fer_model": render("benchmarks_fer_model.md.tmpl", {
            "input": "x".join(map(str, fer["model_macs"]["input"][:2])),
            "macs": f"{fer['model_macs']['macs'] / 1e6:.1f}",
            "params": f"{fer['model_macs']['params'] / 1e3:.0f}"}, TEMPLATES) if "model_macs" in fer else "",
        "notes": "".join(f"- {note}\n" for note in result.get("notes", [])),
        "command": result["command"], "started": result["started_utc"], "duration": f"{result['duration_s']:.0f}",
        "settings": ", ".join(f"{k} {value}" for k, value in result["settings"].items()),
    }, TEMPLATES)


def _machine_lines(result: dict[str, Any]) -> list[str]:
    """The CPU, memory, load and package versions on each side."""
    m, fer = result["machine"], result.get("fer", {})
    lines = [f"CPU: {m.get('cpu_model')} ({m.get('physical_cores')} physical cores, {m.get('logical_cpus')} logical; "
             f"{', '.join(m.get('simd', []))})",
             f"RAM: {m.get('ram_gib')} GiB; {m.get('platform')}; Python {m.get('python')}",
             f"load average (1, 5, 15 min) at start {m.get('load_average_start')}, at end {m.get('load_average_end')}",
             f"emofer side: {', '.join(f'{k} {v}' for k, v in result['versions']['emofer'].items())}"]
    if "classify" in fer:
        lines.append(f"fer side (own venv): {', '.join(f'{k} {v}' for k, v in fer['versions'].items())}")
    return lines


def _summary_rows(result: dict[str, Any]) -> list[list[str]]:
    """(figure, emofer, fer) for the summary table; fer's cells are '—' when fer was not measured."""
    emofer, fer = result["emofer"], result.get("fer", {})
    rows = [["cold start: import + load (s)", _fmt(_get(emofer, "cold", "import_load_s"), digits=2),
             _fmt(_get(fer, "cold", "import_load_s"), digits=2)],
            ["cold start: first result after load (s)", _fmt(_get(emofer, "cold", "first_predict_s"), digits=3),
             _fmt(_get(fer, "cold", "first_predict_s"), digits=3)]]
    threads = (("threads_1", "1 thread"), ("threads_default", "default threads"))
    rows += [[f"classify 1 face, batch 1, {label} (ms)", _fmt(_get(emofer, "classify", key, "latency_ms"), digits=3),
              _fmt(_get(fer, "classify", key, "latency_ms"), digits=3)] for key, label in threads]
    rows += [[f"classify batch {batch}, {label} (faces/s)",
              *(_fmt(_get(side, "classify", key, "throughput", str(batch), "faces_per_s"), digits=0)
                for side in (emofer, fer))]
             for batch in result["settings"]["batches"] for key, label in threads]
    det = main_detector(emofer.get("detectors", []))
    rows += [[f"predict, {label} (ms; emofer {det}, fer default)", _fmt(_get(emofer, "e2e", det, "frames", key, "ms")),
              _fmt(_get(fer, "e2e", "haar", "frames", key, "ms"))] for key, label in FRAME_SETS]
    vd = det if det in emofer.get("video", {}) else next(iter(emofer.get("video", {})), None)
    rows += [[f"video 640x480 (frames/s; emofer {vd}, fer default)", str(_get(emofer, "video", vd, "fps") or "—"),
              str(_get(fer, "video", "haar", "fps") or "—")],
             ["peak RSS, predict process (MiB)", str(_get(emofer, "e2e", det, "peak_rss_mib") or "—"),
              str(_get(fer, "e2e", "haar", "peak_rss_mib") or "—")],
             ["installed size of the dependencies (MiB)", str(_get(emofer, "size", "dependencies", "total_mib") or "—"),
              str(_get(fer, "size", "total_mib") or "—")]]
    var = emofer.get("variant")
    if var:
        rows += [[f"classify 1 face, batch 1, 1 thread (ms), `{var['model']}`",
                  _fmt(_get(var, "classify", "threads_1", "latency_ms"), digits=3),
                  _fmt(_get(fer, "classify", "threads_1", "latency_ms"), digits=3)],
                 [f"predict, 640x480, 1 face (ms; `{var['model']}` {var['detector']}, fer default)",
                  _fmt(_get(var, "e2e", var["detector"], "frames", "frame_640x480_1", "ms")),
                  _fmt(_get(fer, "e2e", "haar", "frames", "frame_640x480_1", "ms"))]]
    rows.append(["model: multiply-accumulates per face (M)", f"{result['floor']['model_macs']['macs'] / 1e6:.1f}",
                 f"{fer['model_macs']['macs'] / 1e6:.1f}" if "model_macs" in fer else "—"])
    return [[title, a, b if "classify" in fer else "—"] for title, a, b in rows]


def _classify_table(result: dict[str, Any]) -> str:
    """Per library and thread setting: latency at batch 1, network alone, throughput per batch size."""
    batches = result["settings"]["batches"]
    rows = []
    for lib, side in (("emofer", result["emofer"]), ("fer", result.get("fer", {}))):
        for key, res in (side.get("classify") or {}).items():
            rows.append([lib if lib == "emofer" else f"fer {'keras' if 'keras' in key else 'tflite'}",
                         res.get("threads") or "default", _fmt(res["latency_ms"], digits=3),
                         _fmt(res["network_latency_ms"], digits=3),
                         *(_fmt(_get(res, "throughput", str(b), "faces_per_s"), digits=0) for b in batches),
                         res.get("peak_rss_mib")])
    return table(["library", "threads", "batch 1 (ms)", "network, batch 1 (ms)",
                  *(f"batch {b} (faces/s)" for b in batches), "peak RSS (MiB)"], rows)


def _sweep(result: dict[str, Any]) -> str:
    """emofer's network-only throughput by batch size (a paragraph and a table), or '' without the sweep."""
    classify = result["emofer"].get("classify") or {}
    sweeps = {key: res["network_batch_sweep_faces_per_s"] for key, res in classify.items()
              if res.get("network_batch_sweep_faces_per_s")}
    if not sweeps:
        return ""
    sizes = list(next(iter(sweeps.values())))
    rows = [["1" if key == "threads_1" else "default", *(_fmt(sweep.get(b), digits=0) for b in sizes)]
            for key, sweep in sweeps.items()]
    return (f"\nemofer's network alone by batch size (faces/s; `EmotionRecognizer.classify` splits input into batches "
            f"of {result.get('emofer_default_batch_size', 'DEFAULT_BATCH_SIZE')}):\n\n"
            + table(["threads", *(f"batch {b}" for b in sizes)], rows) + "\n")


def _e2e_table(result: dict[str, Any]) -> str:
    """Milliseconds (faces found) per image set and end-to-end column, then detection alone and peak RSS."""
    cols = _columns(result)

    def cell(lib: str, det: str, key: str, show: Any) -> str:
        res = _get(result, lib, "e2e", det, "frames", key)
        return show(res) if res else "—"

    rows = [[label, *(cell(lib, det, key, lambda r: f"{_fmt(r['ms'])} ({r['faces_found_per_frame']})")
                      for _, lib, det in cols)] for key, label in FRAME_SETS]
    rows.append(["detection alone, 640x480 1 face",
                 *(cell(lib, det, "frame_640x480_1", lambda r: _fmt(r["detect_ms"])) for _, lib, det in cols)])
    rows.append(["peak RSS (MiB)", *(str(_get(result, lib, "e2e", det, "peak_rss_mib")) for _, lib, det in cols)])
    return table(["image", *(title for title, _, _ in cols)], rows)


def _cold_table(result: dict[str, Any]) -> str:
    """Import, load, first result and whole process of a fresh process, per library."""
    rows = []
    for lib in ("emofer", "fer"):
        c = _get(result, lib, "cold")
        if c:
            rows.append([lib, _fmt(c["import_s"], digits=2), _fmt(c["load_s"], digits=3),
                         _fmt(c["import_load_s"], digits=2), _fmt(c["first_predict_s"], digits=3),
                         _fmt(c["process_wall_s"], digits=2), _fmt(c["peak_rss_mib"], digits=0)])
    return table(["library", "import (s)", "load (s)", "import + load (s)", "first result (s)", "whole process (s)",
                  "peak RSS (MiB)"], rows)


def _size_lines(result: dict[str, Any]) -> list[str]:
    """Installed size of each side's dependency closure."""
    es, fer = result["emofer"].get("size", {}), result.get("fer", {})
    lines = [f"emofer: {es.get('emofer_package_mib')} MiB for emofer itself (bundled models included) + "
             f"{_get(es, 'dependencies', 'total_mib')} MiB in {_get(es, 'dependencies', 'distributions')} "
             f"dependencies (largest: {_largest(_get(es, 'dependencies', 'mib_by_distribution'))})"]
    if "size" in fer:
        fs = fer["size"]
        lines.append(f"fer: {fs['total_mib']} MiB in {_get(fs, 'dependencies', 'distributions')} distributions "
                     f"(largest: {_largest(_get(fs, 'dependencies', 'mib_by_distribution'))}); the whole venv's "
                     f"site-packages: {fs['site_packages_mib']} MiB. With a plain `pip install fer` the closure also "
                     "holds a CUDA build of torch 2.2 and NVIDIA's CUDA libraries (several GB).")
    return lines


def headline(result: dict[str, Any]) -> list[str]:
    """The ratios the README quotes, from this run's medians (empty without fer)."""
    emofer, fer = result["emofer"], result.get("fer", {})
    if "e2e" not in fer:
        return []
    out = []
    fer_ms = _get(fer, "e2e", "haar", "frames", "frame_640x480_1", "ms", "median")
    models = [(emofer["model"], emofer)] + ([(emofer["variant"]["model"], emofer["variant"])] if emofer.get("variant") else [])
    det = main_detector(emofer.get("detectors", []))
    for name, side in models:
        ms = _get(side, "e2e", det, "frames", "frame_640x480_1", "ms", "median")
        if ms and fer_ms:
            out.append(f"predict on a 640x480 frame with one face, `{name}` + {det}: {1000 / ms:.0f} frames/s against "
                       f"fer's {1000 / fer_ms:.0f} ({fer_ms / ms:.1f}x)")
    for name, side in models:
        ms = _get(side, "classify", "threads_1", "latency_ms", "median")
        fer_face = _get(fer, "classify", "threads_1", "latency_ms", "median")
        if ms and fer_face:
            out.append(f"classify one face, 1 thread, `{name}`: {ms:.2f} ms (fer {fer_face:.2f} ms)")
    cold_e, cold_f = (_get(x, "cold", "import_load_s", "median") for x in (emofer, fer))
    if cold_e and cold_f:
        out.append(f"cold start (import + load): {cold_e:.2f} s against fer's {cold_f:.2f} s ({cold_f / cold_e:.0f}x)")
    size_e, size_f = _get(emofer, "size", "dependencies", "total_mib"), _get(fer, "size", "total_mib")
    if size_e and size_f:
        out.append(f"installed dependencies: {size_e:.0f} MiB against fer's {size_f:.0f} MiB "
                   f"({100 * size_e / size_f:.0f}%)")
    return out


def _largest(sizes: dict[str, float] | None, n: int = 3) -> str:
    if not sizes:
        return "?"
    return ", ".join(f"{k} {v:.0f} MiB" for k, v in list(sizes.items())[:n])


def chart(result: dict[str, Any], path: Path) -> bool:
    """A small PNG of the main figures; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    emofer, fer = result["emofer"], result.get("fer", {})
    libs = [("emofer", emofer, "#1f77b4")] + ([("fer", fer, "#ff7f0e")] if "classify" in fer else [])
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.2), dpi=72)

    def bars(ax: Any, labels: list[str], stats: list[dict | None], colors: list[str], title: str, unit: str) -> None:
        med = [s["median"] if s else 0 for s in stats]
        err = [[(s["median"] - s["q25"]) if s else 0 for s in stats], [(s["q75"] - s["median"]) if s else 0 for s in stats]]
        ax.bar(range(len(med)), med, color=colors, yerr=err, capsize=3)
        ax.set_xticks(range(len(med)), labels, fontsize=8, rotation=15)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit, fontsize=8)

    bars(axes[0, 0], [n for n, _, _ in libs], [_get(d, "cold", "import_load_s") for _, d, _ in libs],
         [c for *_, c in libs], "cold start: import + load", "s")
    labels, stats, colors = [], [], []
    for name, d, c in libs:
        for key, t in (("threads_1", "1 thr"), ("threads_default", "default")):
            labels.append(f"{name} {t}")
            stats.append(_get(d, "classify", key, "latency_ms"))
            colors.append(c)
    bars(axes[0, 1], labels, stats, colors, "classify 1 face (batch 1)", "ms")
    axes[0, 1].axhline(result["floor"]["floor_ms_per_face"], color="k", ls="--", lw=1)
    axes[0, 1].text(0, result["floor"]["floor_ms_per_face"], " emofer floor (1 core)", fontsize=7, va="bottom")
    labels, stats, colors = [], [], []
    for name, d, c in libs:
        for b in result["settings"]["batches"]:
            labels.append(f"{name} b{b}")
            stats.append(_get(d, "classify", "threads_default", "throughput", str(b), "faces_per_s"))
            colors.append(c)
    bars(axes[0, 2], labels, stats, colors, "classify throughput (default threads)", "faces/s")
    ax = axes[1, 0]
    cols = _columns(result)
    width = 0.8 / max(1, len(cols))
    palette = ["#1f77b4", "#6baed6", "#ff7f0e", "#fdae6b"]
    for j, (title, lib, det) in enumerate(cols):
        stats = [_get(result, lib, "e2e", det, "frames", key, "ms") for key, _ in FRAME_SETS[:4]]
        med = [s["median"] if s else 0 for s in stats]
        ax.bar([i + j * width for i in range(4)], med, width, label=title, color=palette[j % len(palette)])
    ax.set_xticks([i + width * (len(cols) - 1) / 2 for i in range(4)], ["640x480\n1 face", "640x480\n5", "1280x720\n1", "1280x720\n5"], fontsize=8)
    ax.set_title("predict one frame (median)", fontsize=10)
    ax.set_ylabel("ms", fontsize=8)
    ax.legend(fontsize=7)
    labels, values, colors = [], [], []
    for j, (title, lib, det) in enumerate(cols):
        fps = _get(result, lib, "video", det, "fps")
        if fps:
            labels.append(title.replace(" (default)", ""))
            values.append(fps)
            colors.append(palette[j % len(palette)])
    axes[1, 1].bar(range(len(values)), values, color=colors)
    axes[1, 1].set_xticks(range(len(values)), labels, fontsize=8, rotation=15)
    axes[1, 1].set_title("video 640x480, 3 faces", fontsize=10)
    axes[1, 1].set_ylabel("frames/s", fontsize=8)
    names = [n for n, _, _ in libs]
    rss = [_get(d, "e2e", "yunet" if n == "emofer" and "yunet" in d.get("e2e", {}) else "haar", "peak_rss_mib") or 0
           for n, d, _ in libs]
    size = [(_get(d, "size", "dependencies", "total_mib") if n == "emofer" else _get(d, "size", "total_mib")) or 0
            for n, d, _ in libs]
    x = range(len(libs))
    axes[1, 2].bar([i - 0.2 for i in x], rss, 0.4, label="peak RSS, predict", color="#9467bd")
    axes[1, 2].bar([i + 0.2 for i in x], size, 0.4, label="installed deps", color="#8c564b")
    axes[1, 2].set_xticks(list(x), names, fontsize=8)
    axes[1, 2].set_title("memory and disk", fontsize=10)
    axes[1, 2].set_ylabel("MiB", fontsize=8)
    axes[1, 2].legend(fontsize=7)
    for a in axes.flat:
        a.tick_params(axis="y", labelsize=8)
    title = "emofer vs fer" + (" (quick run: not for quoting)" if result["mode"] == "quick" else "")
    fig.suptitle(f"{title} - {result['machine'].get('cpu_model')}, {result['machine'].get('logical_cpus')} CPUs", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return True


# -- main ---------------------------------------------------------------------------------------------------


def _default_batch_size() -> int:
    from emofer.model import DEFAULT_BATCH_SIZE

    return DEFAULT_BATCH_SIZE


def default_model() -> str:
    from emofer import hub

    return hub.DEFAULT_MODEL if hub.DEFAULT_MODEL in hub.bundled_models() else "emofer/fer5"


def default_variant(model: str) -> str | None:
    from emofer import hub

    return f"{model}-int8" if f"{model}-int8" in hub.bundled_models() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations (under a minute); not for publishing")
    parser.add_argument("--emofer-only", action="store_true", help="measure emofer alone (no fer venv)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output path without suffix: writes OUT.json, OUT.md and OUT.png (default docs/benchmarks)")
    parser.add_argument("--model", default=None, help="emofer model (default: the bundled default, else emofer/fer5)")
    parser.add_argument("--variant", default=None,
                        help="a second emofer model measured for classify and predict (default: MODEL-int8 when "
                             "bundled; 'none' for no variant)")
    parser.add_argument("--yunet", type=Path, default=DEFAULT_YUNET, help="YuNet .onnx weights for emofer's yunet detector")
    parser.add_argument("--fer-venv", type=Path, default=DEFAULT_FER_VENV, help="fer's venv (created when missing)")
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "benchmarks.run", *argv_used])
    settings = QUICK if args.quick else Settings()
    model = args.model or default_model()
    variant = default_variant(model) if args.variant is None else (None if args.variant == "none" else args.variant)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "command": command,
        "mode": "quick" if args.quick else "full",
        "started_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": {"emofer": emofer_versions()},
        "emofer_default_batch_size": _default_batch_size(),
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
        "notes": [],
    }
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}
    import cv2  # the version the emofer workers run (this Python)

    from emofer.detect.haar import haar_available

    # OpenCV 5 has no Haar cascades (emofer's haar detector raises DetectorError there): measure
    # what this install can run instead of failing minutes in.
    detectors = ["haar"] if haar_available() else []
    if not detectors:
        result["notes"].append(f"OpenCV {cv2.__version__} has no Haar cascades: emofer's haar detector was not "
                               "measured (fer's own Haar, in its venv, was).")
    if args.yunet.is_file():
        env["EMOFER_YUNET"] = str(args.yunet)
        detectors.append("yunet")
    else:
        result["notes"].append(f"YuNet weights not found at {args.yunet}: emofer's yunet detector was not measured.")
    video_detectors = detectors[-1:] if args.quick else detectors

    fer_python, fer_skipped = None, None
    if args.emofer_only:
        fer_skipped = "--emofer-only"
    else:
        try:
            fer_python = ensure_fer_venv(args.fer_venv, args.fer_venv.parent / "setup.log")
        except (RuntimeError, OSError) as exc:
            fer_skipped = f"fer's venv could not be set up: {exc}"
            print(f"fer skipped: {exc}", file=sys.stderr)

    from . import speed_inputs

    for needed in (speed_inputs.FER_ZIP, speed_inputs.FACES_BOXES / "images"):
        if not needed.exists():
            print(f"{needed} not found: the benchmark makes its inputs from ../shared/data beside the checkout",
                  file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="emofer-bench-") as tmp:
        print(f"inputs -> {tmp}", file=sys.stderr)
        inputs = speed_inputs.build(Path(tmp), variants=settings.frame_variants, video_seconds=settings.video_seconds,
                                    crop_count=settings.crops)
        result["inputs"] = {k: v for k, v in inputs.items() if k not in ("npz", "video")}
        runner = Runner(Path(tmp), Path(inputs["npz"]), settings.worker_timeout_s, env)
        fer = FerSide(runner, fer_python, fer_skipped)
        result["emofer"], result["fer"] = measure(runner, settings, model, detectors, Path(inputs["video"]),
                                                  video_detectors, fer, args.quick, variant)
    print("floor ...", file=sys.stderr)
    result["floor"] = measure_floor(model, result["emofer"], settings.peak_repeats)
    if "versions" in result.get("fer", {}):
        result["versions"]["fer"] = result["fer"]["versions"]
    if hasattr(os, "getloadavg"):
        result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    result["notes"] += notes(result)
    result["duration_s"] = round(time.perf_counter() - started, 1)

    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = (out.with_name(out.name + suffix) for suffix in (".json", ".md", ".png"))
    json_path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    md_path.write_text(markdown(result), encoding="utf-8")
    drew = chart(result, png_path)
    print(summary_text(result), file=sys.stderr)
    print(f"wrote {json_path}, {md_path}" + (f", {png_path}" if drew else " (no matplotlib: no chart)"))
    return 0


def notes(result: dict[str, Any]) -> list[str]:
    """Caveats that belong next to the figures."""
    out = []
    load = result["machine"].get("load_average_start") or [0]
    cpus = result["machine"].get("usable_cpus") or result["machine"].get("logical_cpus") or 1
    if load[0] > 0.5 * cpus:
        out.append(f"The machine was busy when this run started (1-minute load {load[0]} on {cpus} CPUs): "
                   "timings are inflated and noisy; rerun on an idle machine before quoting them.")
    fer = result.get("fer", {})
    if fer.get("mtcnn_unavailable"):
        out.append("fer's MTCNN detector (facenet-pytorch) was not measured: it needs torchvision's compiled ops, "
                   f"and they do not load with the CPU torch in fer's venv ({fer['mtcnn_unavailable']}).")
    if "classify" in fer:
        out.append("fer classifies with its default int8-quantised TFLite model, one interpreter call per face, so its "
                   "batch throughput is per-face calls; `fer keras` is its float Keras model called on the whole batch.")
        out.append("fer's default detector is OpenCV's Haar cascade on the full-size image (smallest face 50 px); "
                   "emofer's YuNet runs on a copy scaled so a 32 px face is 16 px (a 640x480 frame becomes "
                   "320x240; at most 640 px), and its Haar on a copy of at most 800 px.")
    out.append("emofer's threads setting is onnxruntime's intra-op threads; fer's is the TFLite interpreter's "
               "num_threads and TensorFlow's intra-op threads. Detection uses each library's default OpenCV threads.")
    return out


def summary_text(result: dict[str, Any]) -> str:
    e, f = result["emofer"], result.get("fer", {})
    parts = [f"cold start {e['cold']['import_load_s']['median']:.2f} s",
             f"classify 1 face (1 thread) {e['classify']['threads_1']['latency_ms']['median']:.2f} ms",
             f"floor {result['floor']['floor_ms_per_face']:.2f} ms"]
    for det, res in e["e2e"].items():
        parts.append(f"predict 640x480/1 face {det} {res['frames']['frame_640x480_1']['ms']['median']:.1f} ms")
    text = "emofer: " + "; ".join(parts)
    if "classify" in f:
        text += (f"\nfer: cold start {f['cold']['import_load_s']['median']:.2f} s; classify 1 face (1 thread) "
                 f"{f['classify']['threads_1']['latency_ms']['median']:.2f} ms; predict 640x480/1 face haar "
                 f"{f['e2e']['haar']['frames']['frame_640x480_1']['ms']['median']:.1f} ms")
    return text


if __name__ == "__main__":
    sys.exit(main())
