"""Train recipes on a borrowed GPU machine in one prepared call, and bring the runs back.

    python -m training.device prepare fer7-effnet ferplus8-majority --seeds 1337,1 --out .device
    (device)  bash .device/call1/run.sh      # the one command, printed by prepare
    python -m training.device unpack RESULTS_DIR --runs /work/runs

``prepare`` packs the splits the recipes read (Training and PublicTest of their classes; never
PrivateTest) into ``faces.pack``: uint8 faces as MED-predictor residuals compressed with LZMA,
lossless (the decoded pixels' sha256 is checked there). With the keras wheels the device lacks,
the packed faces and this checkout must fit the device's 64 MiB carry limit; when they do not, the
pack is split over two calls made back to back (the first stages its part on the warm machine).

``run`` (on the device) decodes the pack, starts every recipe x seed as its own process on the
Keras torch backend, all at once; each times its first steps and picks the epoch count that ends
inside the time budget (``--minutes``, 9 by default), then trains as ``training.train`` does. The
run folders (recipe.json, state.json with the history, best.keras without optimiser state,
train.log) come back as at most six .tar.gz files of at most 16 MiB under $OUT, with
summary.json and device.log. ``unpack`` turns them into run folders that ``training.export`` and
``training.evaluate`` take as they are.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("emofer.training")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: What the device's tool carries in one call: this checkout (tracked and untracked-not-ignored
#: files) plus the carried folders.
CARRY_LIMIT = 64 * 2**20
#: Left free under the limit for files others add to the checkout before the call.
CARRY_MARGIN = 2 * 2**20
#: Files the tool brings back from $OUT: at most 8, each at most 16 MiB.
RESULT_FILES, RESULT_FILE_LIMIT = 8, 16 * 2**20
#: summary.json and device.log take two of the eight; the run folders share the rest.
RUN_ARCHIVES = RESULT_FILES - 2
#: Packages the device's Python 3.12 lacks for keras (its README lists what it has).
WHEELS = ("keras", "namex", "optree")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
DEVICE_PYTHON = "3.12"
#: Where a split pack waits on the device between its two calls (inside the ignored carry folder,
#: so kept while the machine stays warm), and where the runs are trained.
STAGE = "stage"
PACK = "faces.pack"
SPLITS_TRAINED = ("Training", "PublicTest")  # PrivateTest is never read while training
#: Steps each run times before it picks its epoch count (after WARMUP_STEPS untimed ones).
WARMUP_STEPS, TIMED_STEPS = 5, 20
#: Seconds kept back at the end of the budget for saving and packing the runs.
PACK_SECONDS = 45
#: The epoch estimate is scaled by this (checkpoints, validation jitter, a slow epoch).
SAFETY = 0.85


# --- a lossless codec for uint8 faces: MED (LOCO-I) prediction residuals, then LZMA ---

def _med(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The median edge detector: left ``a``, up ``b``, up-left ``c`` (int16 arrays)."""
    high, low = np.maximum(a, b), np.minimum(a, b)
    return np.where(c >= high, low, np.where(c <= low, high, a + b - c))


def encode_faces(pixels: np.ndarray) -> bytes:
    """uint8 (N, H, W) faces -> LZMA-compressed MED residuals (about 2/3 of the raw size)."""
    x = pixels.astype(np.int16)
    a, b, c = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    a[:, :, 1:], b[:, 1:, :], c[:, 1:, 1:] = x[:, :, :-1], x[:, :-1, :], x[:, :-1, :-1]
    residual = ((x - _med(a, b, c)) & 255).astype(np.uint8)
    return lzma.compress(residual.tobytes(), preset=9 | lzma.PRESET_EXTREME)


def decode_faces(blob: bytes, shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`encode_faces` (pixel by pixel, all faces at once)."""
    residual = np.frombuffer(lzma.decompress(blob), np.uint8).reshape(shape).astype(np.int16)
    x = np.zeros(shape, np.int16)
    zero = np.zeros(shape[0], np.int16)
    for i in range(shape[1]):
        for j in range(shape[2]):
            a = x[:, i, j - 1] if j else zero
            b = x[:, i - 1, j] if i else zero
            c = x[:, i - 1, j - 1] if i and j else zero
            x[:, i, j] = (residual[:, i, j] + _med(a, b, c)) & 255
    return x.astype(np.uint8)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def pack_faces(faces: Any) -> dict[str, np.ndarray]:
    """One FaceSet as arrays of a pack: coded pixels, its shape and checksum, the rest LZMA'd."""
    arrays = {
        "pixels": np.frombuffer(encode_faces(faces.pixels), np.uint8),
        "shape": np.array(faces.pixels.shape, np.int64),
        "sha256": np.array(_sha256(faces.pixels)),
        "labels": np.frombuffer(lzma.compress(faces.labels.astype(np.int64).tobytes()), np.uint8),
        "classes": np.array(faces.classes),
        "names": np.frombuffer(lzma.compress("\n".join(faces.names).encode()), np.uint8),
    }
    if faces.soft is not None:
        arrays["soft"] = np.frombuffer(lzma.compress(faces.soft.astype(np.float32).tobytes()), np.uint8)
    return arrays


def unpack_faces(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_faces`, in training.data's cache format; checks the pixels' sha256."""
    shape = tuple(int(s) for s in arrays["shape"])
    pixels = decode_faces(arrays["pixels"].tobytes(), shape)
    if _sha256(pixels) != str(arrays["sha256"]):
        raise ValueError("decoded faces differ from the packed ones (sha256 mismatch)")
    out = {"pixels": pixels, "labels": np.frombuffer(lzma.decompress(arrays["labels"].tobytes()), np.int64),
           "classes": arrays["classes"],
           "names": np.array(lzma.decompress(arrays["names"].tobytes()).decode().split("\n"))}
    if "soft" in arrays:
        out["soft"] = np.frombuffer(lzma.decompress(arrays["soft"].tobytes()), np.float32).reshape(shape[0], -1)
    return out


def write_pack(path: Path, splits: dict[str, Any]) -> None:
    """``splits``: {"fer2013-Training": FaceSet, ...} -> one uncompressed npz of packed arrays."""
    arrays = {f"{key}/{name}": value for key, faces in splits.items() for name, value in pack_faces(faces).items()}
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def read_pack(path: Path, folder: Path) -> list[str]:
    """Decode a pack into ``folder`` as ``{dataset}-{split}.npz`` (training.data.PACKED); their keys."""
    folder.mkdir(parents=True, exist_ok=True)
    with np.load(path, allow_pickle=False) as z:
        keys = sorted({name.split("/")[0] for name in z.files})
        for key in keys:
            arrays = unpack_faces({name.split("/", 1)[1]: z[name] for name in z.files if name.startswith(key + "/")})
            np.savez(folder / f"{key}.npz", **arrays)
    return keys


# --- prepare (here) ---

def tree_bytes(root: Path = REPO_ROOT) -> int:
    """Bytes of what the device tool sends without being asked: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            check=True, capture_output=True).stdout.decode().split("\0")
    return sum((root / name).stat().st_size for name in listed if name and (root / name).is_file())


def fetch_wheels(folder: Path, versions: dict[str, str]) -> list[Path]:
    """Download the wheels the device lacks for its Python (pip download, no dependencies)."""
    folder.mkdir(parents=True, exist_ok=True)
    prefixes = [f"{name}-{version}-" for name, version in versions.items()]  # wheel file names
    have = lambda prefix: [p for p in folder.glob("*.whl") if p.name.startswith(prefix)]
    missing = [f"{name}=={version}" for (name, version), prefix in zip(versions.items(), prefixes) if not have(prefix)]
    if missing:
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                   "--python-version", DEVICE_PYTHON, "--implementation", "cp",
                   *[arg for p in PLATFORMS for arg in ("--platform", p)], "-d", str(folder), *missing]
        subprocess.run(command, check=True)
    return sorted(wheel for prefix in prefixes for wheel in have(prefix))


def local_versions() -> dict[str, str]:
    """The versions of WHEELS installed here: the device gets the same keras as this checkout."""
    from importlib.metadata import version
    return {name: version(name) for name in WHEELS}


def plan_runs(recipes: Sequence[str], seeds: Sequence[int] | None, limit_train: int | None,
              limit_val: int | None) -> list[dict[str, Any]]:
    """Every recipe x seed as a full recipe dict with its name and run folder name."""
    from training.train import load_recipe, recipe_classes
    runs = []
    for name in recipes:
        recipe = load_recipe(name)
        if recipe["web"] is not None:
            raise SystemExit(f"recipe {recipe['name']!r} mixes in expw-train, which the device carry does not pack; "
                             "train it here")
        if recipe.get("distill") is not None:
            raise SystemExit(f"recipe {recipe['name']!r} distils from teacher runs, which do not travel; "
                             "train it here")
        if recipe.get("init_from"):
            raise SystemExit(f"recipe {recipe['name']!r} starts from {recipe['init_from']}, which does not travel")
        recipe["classes"] = list(recipe_classes(recipe))
        for key, value in (("limit_train", limit_train), ("limit_val", limit_val)):
            if value is not None:
                recipe[key] = value
        for seed in seeds or [recipe["seed"]]:
            runs.append({**recipe, "seed": int(seed), "run": f"{recipe['name']}-s{seed}"})
    names = [r["run"] for r in runs]
    if len(set(names)) != len(names):
        raise SystemExit(f"two runs share a name: {names}")
    return runs


def needed_splits(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{"dataset-split": FaceSet} of the faces the runs read: the union of their classes, limited
    the way training.train limits them (so a smoke plan carries a few hundred faces)."""
    from training import data
    from training.train import limit
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_dataset.setdefault(run["dataset"], []).append(run)
    splits = {}
    for dataset, group in by_dataset.items():
        classes = [c for c in data.SUBSETS["ferplus8" if dataset == "ferplus" else "fer7"]
                   if any(c in r["classes"] for r in group)]
        soft = any(r.get("soft_labels") for r in group) or dataset == "ferplus"
        for split in SPLITS_TRAINED:
            faces = data.load(dataset, split, classes, soft=soft)
            key = "limit_train" if split == "Training" else "limit_val"
            if all(r.get(key) for r in group):  # every run samples this split: carry only the faces they take
                taken = {name for r in group for name in limit(data.load(dataset, split, r["classes"]), r[key],
                                                              r["seed"]).names}
                faces = faces.take(np.flatnonzero(np.isin(np.asarray(faces.names), sorted(taken))))
            splits[f"{dataset}-{split}"] = faces
    return splits


def prepare(recipes: Sequence[str], out: Path, seeds: Sequence[int] | None = None, minutes: float = 9.0,
            epochs: int | None = None, max_epochs: int | None = None, limit_train: int | None = None,
            limit_val: int | None = None, wheels: Path | None = None, timing: Path | None = None) -> dict[str, Any]:
    """Write the carry folder ``out`` (inside this checkout, ignored) and return its plan."""
    out = (out if out.is_absolute() else Path.cwd() / out).resolve()
    if out.is_relative_to(REPO_ROOT):
        relative = out.relative_to(REPO_ROOT).as_posix()
        ignored = subprocess.run(["git", "check-ignore", "-q", relative + "/x"], cwd=REPO_ROOT).returncode == 0
        if not ignored:
            raise SystemExit(f"{relative} is not ignored by git: the packed faces must never be committed")
    else:  # a local try: the device tool carries only folders inside the checkout
        relative = str(out)
        log.warning("%s is outside the checkout: the scripts work here, the device tool cannot carry it", out)
    runs = plan_runs(recipes, seeds, limit_train, limit_val)
    if len(runs) > 12:
        raise SystemExit(f"{len(runs)} runs: at most 12 share the device's 16 cores at once")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    scratch = out / "build"
    scratch.mkdir()
    splits = needed_splits(runs)
    write_pack(scratch / PACK, splits)
    versions = local_versions()
    wheel_dir = wheels or Path.home() / ".cache" / "emofer-device" / "wheels"
    wheel_files = fetch_wheels(wheel_dir, versions)

    tree = tree_bytes()
    budget = CARRY_LIMIT - CARRY_MARGIN - tree
    pack_bytes = (scratch / PACK).stat().st_size
    wheel_bytes = sum(p.stat().st_size for p in wheel_files)
    scripts = 64 * 1024
    first = budget - wheel_bytes - scripts
    if first <= 0:
        raise SystemExit(f"the checkout alone is {tree / 2**20:.1f} MiB: no room under the 64 MiB carry limit")
    parts = [(0, min(pack_bytes, first))]
    while parts[-1][1] < pack_bytes:
        start = parts[-1][1]
        parts.append((start, min(pack_bytes, start + budget - scripts)))
    if len(parts) > 2:
        raise SystemExit(f"the faces take {pack_bytes / 2**20:.1f} MiB, more than two calls carry "
                         f"({budget / 2**20:.1f} MiB each beside the checkout): fewer datasets per plan")
    pack_sha = hashlib.sha256((scratch / PACK).read_bytes()).hexdigest()
    plan = {"runs": runs, "minutes": minutes, "epochs": epochs, "max_epochs": max_epochs,
            "pack": PACK, "pack_sha256": pack_sha, "parts": len(parts), "wheels": [p.name for p in wheel_files],
            "keras": versions["keras"], "splits": {k: len(v) for k, v in splits.items()},
            "prepared": time.strftime("%Y-%m-%d %H:%M"), "carry": relative}
    blob = (scratch / PACK).read_bytes()
    calls = []
    for number, (start, stop) in enumerate(parts, start=1):
        folder = out / f"call{number}"
        folder.mkdir()
        (folder / f"{PACK}.part{number}").write_bytes(blob[start:stop])
        if number == 1:
            (folder / "wheels").mkdir()
            for wheel in wheel_files:
                shutil.copy2(wheel, folder / "wheels" / wheel.name)
        (folder / "plan.json").write_text(json.dumps(plan, indent=2))
        (folder / "run.sh").write_text(device_script(relative, number, len(parts)))
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        calls.append({"carry": [f"{relative}/call{number}"], "command": f"bash {relative}/call{number}/run.sh",
                      "bytes": size, "with_checkout": size + tree})
    shutil.rmtree(scratch)
    plan["calls"] = calls
    plan["tree_bytes"], plan["pack_bytes"], plan["wheel_bytes"] = tree, pack_bytes, wheel_bytes
    plan["estimate"] = estimate(timing, runs, minutes) if timing else None
    (out / "plan.json").write_text(json.dumps(plan, indent=2))
    return plan


def device_script(carry: str, number: int, parts: int) -> str:
    """The shell script of call ``number`` of ``parts`` (run from the checkout's root there)."""
    here, stage = f"{carry}/call{number}", f"{carry}/{STAGE}"
    lines = [
        "#!/usr/bin/env bash",
        f"# call {number} of {parts}, written by python -m training.device prepare",
        "set -euo pipefail",
        'export OUT="${OUT:-$PWD/device-out}" PYTHONUNBUFFERED=1 KERAS_BACKEND="${KERAS_BACKEND:-torch}"',
        'PY="${EMOFER_DEVICE_PYTHON:-python3}"',
        f"mkdir -p {stage} \"$OUT\"",
        f"cp {here}/{PACK}.part{number} {stage}/",
    ]
    if number == 1:
        lines += [
            '# keras and the packages it lacks there, offline, unless this Python already has them',
            f'if ! "$PY" -c "import keras" 2>/dev/null; then',
            f"  \"$PY\" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade "
            f"--target {stage}/site {here}/wheels/*.whl",
            "fi",
        ]
    lines += [f'export PYTHONPATH="$PWD/{stage}/site:$PWD/src:$PWD${{PYTHONPATH:+:$PYTHONPATH}}"']
    if number < parts:
        lines += ['# time the first steps on random faces while the rest of the pack waits for the next call',
                  f'"$PY" -m training.device run {here}/plan.json --stage {stage} --out "$OUT" --time-only '
                  '2>&1 | tee "$OUT/device.log"',
                  f'echo "call {number} done: make call {number + 1} now (this machine is kept only while warm)"']
    else:
        lines += [f'"$PY" -m training.device run {here}/plan.json --stage {stage} --out "$OUT" '
                  '2>&1 | tee "$OUT/device.log"']
    return "\n".join(lines) + "\n"


def estimate(timing: Path, runs: Sequence[dict[str, Any]], minutes: float) -> dict[str, Any]:
    """Epochs that fit in ``minutes``, from a timing.json that a device call wrote."""
    measured = json.loads(Path(timing).read_text())  # timing.json, or a summary.json holding it or runs
    measured = measured.get("timing") or measured.get("runs") or measured
    out = {}
    for run in runs:
        t = measured.get(run["run"]) or measured.get(run["name"])
        if t and t.get("epoch_seconds"):
            out[run["run"]] = {"epoch_seconds": t["epoch_seconds"],
                               "epochs": fit_epochs(t["epoch_seconds"], minutes * 60 - PACK_SECONDS - t.get("startup", 0))}
    return out


def fit_epochs(epoch_seconds: float, seconds_left: float) -> int:
    """How many epochs of ``epoch_seconds`` fit in ``seconds_left`` (SAFETY applied; at least 1)."""
    return max(1, int(seconds_left * SAFETY // max(epoch_seconds, 1e-6)))


# --- run (there) ---

def time_run(recipe: dict[str, Any], random_faces: bool) -> dict[str, float]:
    """Seconds per training step (augmentation included) and per validation pass of ``recipe``."""
    import keras

    from training import data, nets
    from training.augment import Augment, Mix
    from emofer.preprocess import model_input
    from training.runs import draft_config
    from training.train import FaceBatches, limit

    classes = tuple(recipe["classes"])
    if random_faces:
        rng = np.random.default_rng(0)
        n_train, n_val = recipe["n_train"], recipe["n_val"]
        make = lambda n, split: data.FaceSet(rng.integers(0, 256, (n, *data.FER_SIZE), np.uint8),
                                             rng.integers(0, len(classes), n), classes, split)
        train_set, val_set = make(n_train, "Training"), make(n_val, "PublicTest")
    else:
        seed = int(recipe["seed"])
        soft = bool(recipe.get("soft_labels", False))
        train_set = limit(data.load(recipe["dataset"], "Training", classes, soft=soft), recipe.get("limit_train"), seed)
        val_set = limit(data.load(recipe["dataset"], "PublicTest", classes), recipe.get("limit_val"), seed)
    aug = Augment(**recipe.get("augment", {})) if recipe.get("augment") is not None else None
    mix = Mix(**recipe["mix"]) if recipe.get("mix") is not None else None
    config = draft_config(recipe)
    batches = FaceBatches(train_set, config, int(recipe.get("batch_size", 64)), aug, 0, None, None, mix)
    spec = config.input
    model = nets.build(recipe["network"], (spec.height, spec.width, spec.channels), len(classes),
                       **recipe.get("network_options", {}))
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    steps = min(len(batches), WARMUP_STEPS + TIMED_STEPS)
    started = None
    for step in range(steps):
        if step == min(WARMUP_STEPS, steps - 1):
            started = time.perf_counter()
        x, y = batches[step][:2]
        model.train_on_batch(x, y)
    step_seconds = (time.perf_counter() - started) / max(1, steps - min(WARMUP_STEPS, steps - 1))
    x_val = model_input(val_set.pixels, config)
    model.predict(x_val[:256], verbose=0)
    started = time.perf_counter()
    model.predict(x_val, batch_size=256, verbose=0)
    val_seconds = time.perf_counter() - started
    return {"step_seconds": step_seconds, "steps": len(batches), "val_seconds": val_seconds,
            "epoch_seconds": step_seconds * len(batches) + val_seconds, "backend": keras.backend.backend()}


def train_one(recipe_path: Path, run: Path, deadline: float, fixed_epochs: int | None,
              max_epochs: int | None) -> None:
    """One device run: time the first steps, pick the epochs that end before ``deadline``, train."""
    from training import nets
    from training.runs import write_json
    from training.train import train
    recipe = json.loads(recipe_path.read_text())
    began = time.time()
    if fixed_epochs:
        recipe["epochs"] = fixed_epochs
    else:
        timing = time_run(recipe, random_faces=False)
        epochs = fit_epochs(timing["epoch_seconds"], deadline - time.time())
        # at least one epoch after the warm-up: train's cosine schedule needs decay steps
        recipe["epochs"] = max(min(epochs, max_epochs) if max_epochs else epochs, int(recipe.get("warmup_epochs", 1)) + 1)
        timing.update(epochs=recipe["epochs"], startup=time.time() - began)
        run.mkdir(parents=True, exist_ok=True)
        write_json(run / "device-timing.json", timing)
        log.info("%s: %.1f ms/step, %d steps + validation = %.1f s/epoch: %d epochs before the deadline",
                 run.name, timing["step_seconds"] * 1e3, timing["steps"], timing["epoch_seconds"], recipe["epochs"])
    for key in ("run", "n_train", "n_val"):  # the plan's own keys, not the recipe's
        recipe.pop(key, None)
    # recipe.json's "command" (from sys.argv) is what export writes as the way to train this run again
    sys.argv = ["training.train", "--recipe", recipe["name"], "--out", "RUN_DIR", "--epochs", str(recipe["epochs"])]
    sys.argv += [arg for key in ("limit_train", "limit_val") if recipe.get(key)
                 for arg in (f"--{key.replace('_', '-')}", str(recipe[key]))]
    best = train(recipe, run)
    if best.is_file():  # the optimiser state stays behind: export and evaluate need the weights only
        nets.load(best, compile=False).save(run / "best.slim.keras")
        os.replace(run / "best.slim.keras", best)


def run_plan(plan_path: Path, stage: Path, out: Path, time_only: bool = False) -> dict[str, Any]:
    """On the device: decode the pack, train every run at once under the deadline, pack the results."""
    began = time.time()
    plan = json.loads(plan_path.read_text())
    deadline = began + plan["minutes"] * 60 - PACK_SECONDS  # the runs pick epochs that end before this
    hard_stop = began + plan["minutes"] * 60 - 15  # a run still going then is stopped; packing follows
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = stage / "runs"
    device = _device_name()
    log.info("device: %s; %d runs of %s", device, len(plan["runs"]), sorted({r["name"] for r in plan["runs"]}))
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch")}
    threads = max(1, (os.cpu_count() or 1) // len(plan["runs"]))
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    stage.mkdir(parents=True, exist_ok=True)
    recipes = []
    for run in plan["runs"]:
        path = stage / f"{run['run']}.json"
        n_train = plan["splits"][f"{run['dataset']}-Training"]
        n_val = plan["splits"][f"{run['dataset']}-PublicTest"]
        path.write_text(json.dumps({**run, "n_train": min(n_train, run.get("limit_train") or n_train),
                                    "n_val": min(n_val, run.get("limit_val") or n_val)}))
        recipes.append(path)
    if time_only:
        timing = {}
        procs = {p.stem: subprocess.Popen([sys.executable, "-m", "training.device", "time", str(p)], env=env,
                                          stdout=subprocess.PIPE, text=True) for p in recipes}
        for name, proc in procs.items():
            timing[name] = json.loads(proc.communicate()[0].strip().splitlines()[-1])
            timing[name]["epochs_in_budget"] = fit_epochs(timing[name]["epoch_seconds"],
                                                          plan["minutes"] * 60 - PACK_SECONDS)
            log.info("%s: %.1f s/epoch -> %d epochs in %.0f min", name, timing[name]["epoch_seconds"],
                     timing[name]["epochs_in_budget"], plan["minutes"])
        summary = {"device": device, "timing": timing, "seconds": time.time() - began}
        (out / "timing.json").write_text(json.dumps(timing, indent=2))
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    pack = stage / plan["pack"]
    with open(pack, "wb") as whole:
        for number in range(1, plan["parts"] + 1):
            part = stage / f"{plan['pack']}.part{number}"
            if not part.is_file():
                raise SystemExit(f"{part} is missing: the machine was given back between the calls; "
                                 "make call 1 again, then this one at once")
            whole.write(part.read_bytes())
    if hashlib.sha256(pack.read_bytes()).hexdigest() != plan["pack_sha256"]:
        raise SystemExit(f"{pack}: sha256 differs from the plan's; the parts come from different prepares")
    packed = stage / "packed"
    read_pack(pack, packed)
    env["EMOFER_PACKED"] = str(packed.resolve())
    log.info("decoded %s in %.1f s", plan["splits"], time.time() - began)

    procs = {}
    for path in recipes:
        run = runs_dir / path.stem
        if run.exists():
            shutil.rmtree(run)
        run.mkdir(parents=True)
        command = [sys.executable, "-m", "training.device", "train-one", str(path), str(run),
                   "--deadline", str(deadline)]
        command += ["--epochs", str(plan["epochs"])] if plan.get("epochs") else []
        command += ["--max-epochs", str(plan["max_epochs"])] if plan.get("max_epochs") else []
        procs[path.stem] = (subprocess.Popen(command, env=env, stdout=open(run / "train.log", "w"),
                                             stderr=subprocess.STDOUT), run)
    for name, (proc, run) in procs.items():
        try:
            proc.wait(timeout=max(1.0, hard_stop - time.time()))
        except subprocess.TimeoutExpired:
            log.warning("%s ran past the budget: stopped; its best.keras so far comes back", name)
            proc.terminate()
            proc.wait()
        log.info("%s exited %s", name, proc.returncode)
    summary = {"device": device, "seconds": time.time() - began, "runs": {}}
    for name, (proc, run) in procs.items():
        from training.runs import Run
        state = Run(run).state if Run(run).started else {}
        timing = json.loads((run / "device-timing.json").read_text()) if (run / "device-timing.json").is_file() else {}
        summary["runs"][name] = {"exit": proc.returncode, "epochs": state.get("epoch", 0),
                                 "best_epoch": state.get("best_epoch"), "best_val_accuracy": state.get("best_val_accuracy"),
                                 "train_seconds": state.get("train_seconds"), "epoch_seconds": timing.get("epoch_seconds")}
        for leftover in ("last.keras", "distill-targets.npz"):
            (run / leftover).unlink(missing_ok=True)
    summary["archives"] = pack_runs([run for _, run in procs.values()], out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("summary: %s", json.dumps(summary["runs"], indent=1))
    return summary


def pack_runs(runs: Sequence[Path], out: Path) -> list[str]:
    """Run folders -> at most RUN_ARCHIVES runs-N.tar.gz under ``out``, each under the file limit."""
    blobs = []
    for run in runs:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(run, arcname=run.name)
        blobs.append((run.name, buffer.getvalue()))
    groups: list[list[tuple[str, bytes]]] = []
    for name, blob in sorted(blobs, key=lambda b: -len(b[1])):
        if len(blob) > RESULT_FILE_LIMIT:
            raise SystemExit(f"run {name} packs to {len(blob) / 2**20:.1f} MiB, over the 16 MiB a file may take")
        home = next((g for g in groups if sum(len(b) for _, b in g) + len(blob) <= RESULT_FILE_LIMIT), None)
        if home is None:
            if len(groups) == RUN_ARCHIVES:
                raise SystemExit(f"the runs need more than {RUN_ARCHIVES} files of 16 MiB: fewer runs per call")
            home = []
            groups.append(home)
        home.append((name, blob))
    names = []
    for number, group in enumerate(groups, start=1):
        name = f"runs-{number}.tar"
        with tarfile.open(out / name, "w") as tar:  # a tar of the runs' own .tar.gz files
            for run_name, blob in group:
                info = tarfile.TarInfo(f"{run_name}.tar.gz")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        names.append(name)
    return names


def _device_name() -> str:
    try:
        import torch
        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} cpus"
    except ImportError:
        pass
    return f"cpu only, {os.cpu_count()} cpus"


# --- unpack (here) ---

def unpack(results: Path, runs: Path, force: bool = False) -> list[Path]:
    """runs-N.tar files of a device call -> run folders under ``runs``; their paths."""
    archives = sorted(results.glob("runs-*.tar"))
    if not archives:
        raise SystemExit(f"{results}: no runs-*.tar (did the call end before packing? see device.log)")
    made = []
    for archive in archives:
        with tarfile.open(archive) as outer:
            for member in outer.getmembers():
                name = member.name.removesuffix(".tar.gz")
                target = runs / name
                if target.exists() and not force:
                    raise SystemExit(f"{target} exists; pass --force to replace it")
                with tarfile.open(fileobj=outer.extractfile(member), mode="r:gz") as inner:
                    bad = [m.name for m in inner.getmembers() if not (m.name == name or m.name.startswith(name + "/"))
                           or ".." in m.name.split("/") or not (m.isfile() or m.isdir())]
                    if bad:
                        raise SystemExit(f"{archive}: unexpected entries {bad[:3]}")
                    if target.exists():
                        shutil.rmtree(target)
                    inner.extractall(runs, filter="data")
                made.append(target)
    summary = results / "summary.json"
    if summary.is_file():
        for target in made:
            shutil.copy2(summary, target / "device-summary.json")
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("prepare", help="write the carry folder and print the device command")
    p.add_argument("recipes", nargs="+", help="recipe names in training/recipes or JSON paths")
    p.add_argument("--out", type=Path, default=Path(".device"), help="carry folder inside the checkout (ignored)")
    p.add_argument("--seeds", help="comma-separated seeds: one run per recipe and seed (default: the recipe's)")
    p.add_argument("--minutes", type=float, default=9.0, help="the call's time budget (default 9)")
    p.add_argument("--epochs", type=int, help="train this many epochs instead of as many as fit")
    p.add_argument("--max-epochs", type=int, help="at most this many epochs when fitting the budget")
    p.add_argument("--limit-train", type=int, help="train on this many faces (tries)")
    p.add_argument("--limit-val", type=int, help="validate on this many faces (tries)")
    p.add_argument("--wheels", type=Path, help="folder of wheels for the device (default: a cache in ~/.cache)")
    p.add_argument("--timing", type=Path, help="timing.json or summary.json of an earlier device call")
    r = sub.add_parser("run", help="(on the device) train a plan")
    r.add_argument("plan", type=Path)
    r.add_argument("--stage", type=Path, default=Path(".device") / STAGE)
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "device-out")))
    r.add_argument("--time-only", action="store_true")
    t = sub.add_parser("train-one", help="(on the device) one run of a plan")
    t.add_argument("recipe", type=Path)
    t.add_argument("run", type=Path)
    t.add_argument("--deadline", type=float, required=True)
    t.add_argument("--epochs", type=int)
    t.add_argument("--max-epochs", type=int)
    m = sub.add_parser("time", help="(on the device) time one recipe's steps on random faces")
    m.add_argument("recipe", type=Path)
    u = sub.add_parser("unpack", help="turn a device call's results into run folders")
    u.add_argument("results", type=Path)
    u.add_argument("--runs", type=Path, required=True)
    u.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)

    if args.verb == "prepare":
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
        plan = prepare(args.recipes, args.out, seeds, args.minutes, args.epochs, args.max_epochs,
                       args.limit_train, args.limit_val, args.wheels, args.timing)
        mib = lambda n: f"{n / 2**20:.1f} MiB"
        print(f"runs: {', '.join(r['run'] for r in plan['runs'])}")
        print(f"faces: {plan['splits']} -> {mib(plan['pack_bytes'])}; wheels {mib(plan['wheel_bytes'])} "
              f"({', '.join(plan['wheels'])}); checkout {mib(plan['tree_bytes'])}")
        for number, call in enumerate(plan["calls"], start=1):
            print(f"device call {number} of {len(plan['calls'])}: carry={call['carry']} "
                  f"({mib(call['bytes'])}; {mib(call['with_checkout'])} with the checkout, limit 64 MiB)")
            print(f"  command: {call['command']}")
        if len(plan["calls"]) > 1:
            print("  the calls must follow each other at once: call 1 leaves its part on the machine, which is "
                  "kept only while warm; call 1 also times the runs' steps")
        if plan["estimate"]:
            for name, e in plan["estimate"].items():
                print(f"{name}: {e['epoch_seconds']:.1f} s per epoch measured there -> {e['epochs']} epochs in "
                      f"{plan['minutes']:g} minutes")
        else:
            print(f"time per epoch there: unmeasured (no device timing yet). Each run times its first "
                  f"{TIMED_STEPS} steps there and picks the epochs that fit {plan['minutes']:g} minutes; "
                  "the call's timing.json / summary.json, passed back with --timing, gives the estimate here")
    elif args.verb == "run":
        run_plan(args.plan, args.stage, args.out, args.time_only)
    elif args.verb == "train-one":
        train_one(args.recipe, args.run, args.deadline, args.epochs, args.max_epochs)
    elif args.verb == "time":
        print(json.dumps(time_run(json.loads(args.recipe.read_text()), random_faces=True)))
    else:
        from training.runs import Run
        for run in unpack(args.results, args.runs, args.force):
            state = Run(run).state if Run(run).started else {}
            print(f"{run}: {state.get('epoch', 0)} epochs, best PublicTest {state.get('best_val_accuracy')} "
                  f"at epoch {state.get('best_epoch')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
