"""Measure how face detectors frame a face compared with FER2013, and set crop policies from it.

    python -m training.framing MODEL_DIR [--split PublicTest] [--n 600] [--final PrivateTest] \
        [--out docs/framing]

FER2013 faces are tightly registered 48x48 crops; ``EmotionRecognizer.predict`` instead crops
what a detector boxed, through the crop policy ``config.crop_for(detector)``. To learn the
policy that turns a detector's box into FER2013's framing, each sampled face is placed in a
synthetic scene where its FER2013 box is known exactly:

1. the 48x48 face is enlarged s times (s uniform in [3, 4], INTER_CUBIC) and put at a random
   place in a 480x480 canvas, at least half its side from every edge;
2. the rest of the canvas is the face's own border replicated outward
   (``cv2.copyMakeBorder(BORDER_REPLICATE)``), blended into a Gaussian-blurred copy of itself
   away from the face, so no artificial edge frames the face (``--background constant`` fills
   a flat grey instead, which does frame it: a sensitivity check);
3. each detector runs on the BGR scene; the detection with the highest IoU with the true box
   (IoU >= 0.3) is its match.

For a match with square side ``S = max(w, h)`` and centre ``(cx, cy)``, and a true box of side
``T`` and centre ``(tx, ty)``: ``scale = T / S``, ``dx = (tx - cx) / S``, ``dy = (ty - cy) / S``.
``emofer.preprocess.expand_box`` squares the box, multiplies its side by ``1 + 2 * margin`` and
then moves its centre down by ``shift_y`` times the side *after* the margin, so the policy that
maps the detection onto the true box is ``margin = (scale - 1) / 2`` and
``shift_y = (ty - cy) / T = dy / scale``; the chosen policy takes the median of each over the
matched faces. There is no ``shift_x``: the median ``dx`` is reported to show it is about 0.

Policies are chosen on ``--split`` (PublicTest; choosing on PrivateTest is refused) and
evaluated there: crop accuracy (``classify`` on the 48x48 faces) beside predict-path accuracy
(``predict`` on the scenes; the face matched to the true box counts, a scene without one is
wrong) with margin 0 / shift 0 and with the measured policy. ``--final PrivateTest`` then runs
the chosen policies once on that split, for the report only. Writes ``OUT.json`` (with
``crop_by_detector``, which ``training/export.py`` copies into exported config.json files) and
``OUT.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emofer.boxes import iou_matrix
from emofer.detect.registry import FRAMED
from emofer.detect.yunet import BUNDLED_WEIGHTS
from emofer.config import CONFIG_NAME, MODEL_NAME, ModelConfig
from emofer.model import sha256_of
from emofer.preprocess import CropPolicy, expand_box
from training import data
from training.paths import REPO_ROOT, dataset_of
from training.report import command_line, render, table

log = logging.getLogger("emofer.training")

DEFAULT_OUT = REPO_ROOT / "docs" / "framing"
#: The policies file training/export.py reads by default.
DEFAULT_POLICIES = DEFAULT_OUT.with_suffix(".json")
#: framing.md and its section on the final split (training/templates/).
TEMPLATE, FINAL_TEMPLATE = "framing.md.tmpl", "framing_final.md.tmpl"
#: The YuNet bundled in the package: the file the crop policies are measured on and used with.
DEFAULT_YUNET = BUNDLED_WEIGHTS
#: The detectors whose crop is measured: emofer.detect.registry's (a new detector there is measured here).
DETECTORS = FRAMED

SEED = 0
N_FACES = 600
CANVAS = (480, 480)  # (height, width)
SCALE_RANGE = (3.0, 4.0)
#: The face stays at least this fraction of its side away from every canvas edge.
EDGE_GAP = 0.5
#: Background: Gaussian blur sigma and the width of the sharp -> blurred ramp, as fractions of the side.
BLUR_SIGMA = 0.12
BLUR_RAMP = 0.15
#: ... and the replicated streaks fade into the face's mean grey over this fraction of the side.
FADE_RAMP = 0.6
BACKGROUNDS = ("replicate", "constant")
#: A detection is the scene's face when its IoU with the true box is at least this.
MATCH_IOU = 0.3
BATCH = 100
#: Policies are rounded to 0.01 of the side: half a pixel of the 48x48 input, and about the
#: standard error of the medians over a few hundred faces.
DECIMALS = 2


# --- scenes ---

@dataclass(frozen=True)
class Scene:
    """A BGR canvas holding one enlarged FER2013 face at ``box`` = (x, y, side, side), exactly."""

    image: np.ndarray
    box: tuple[int, int, int, int]


def make_scene(face: np.ndarray, rng: np.random.Generator, canvas: tuple[int, int] = CANVAS,
               scale_range: tuple[float, float] = SCALE_RANGE, background: str = "replicate") -> Scene:
    """Enlarge a grey face s times, place it at a random spot of ``canvas`` and fill the rest."""
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    height, width = canvas
    side = int(round(face.shape[0] * rng.uniform(*scale_range)))
    gap = int(np.ceil(EDGE_GAP * side))
    if side + 2 * gap > min(height, width):
        raise ValueError(f"a {side}px face with {gap}px gaps does not fit a {width}x{height} canvas")
    x0 = int(rng.integers(gap, width - side - gap + 1))
    y0 = int(rng.integers(gap, height - side - gap + 1))
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    pads = (y0, height - y0 - side, x0, width - x0 - side)
    if background == "constant":
        grey = cv2.copyMakeBorder(big, *pads, borderType=cv2.BORDER_CONSTANT, value=int(face.mean()))
    else:
        sharp = cv2.copyMakeBorder(big, *pads, borderType=cv2.BORDER_REPLICATE)
        blurred = cv2.GaussianBlur(sharp, (0, 0), BLUR_SIGMA * side)
        ys, xs = np.ogrid[:height, :width]
        out_x = np.maximum(np.maximum(x0 - xs, xs - (x0 + side - 1)), 0)
        out_y = np.maximum(np.maximum(y0 - ys, ys - (y0 + side - 1)), 0)
        distance = np.hypot(out_x, out_y) / side
        alpha = np.clip(distance / BLUR_RAMP, 0.0, 1.0)
        fade = np.clip(distance / FADE_RAMP, 0.0, 1.0)  # far away: the face's mean grey, no long streaks
        grey = (1.0 - alpha) * sharp + alpha * blurred
        grey = np.rint((1.0 - fade) * grey + fade * float(face.mean())).astype(np.uint8)
        grey[y0:y0 + side, x0:x0 + side] = big  # the face itself stays exactly the enlarged crop
    return Scene(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), (x0, y0, side, side))


def stratified_sample(labels: np.ndarray, n: int, seed: int = SEED) -> np.ndarray:
    """Sorted indices of ``n`` faces drawn per class in proportion to the class sizes."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n / len(labels)
    take = np.maximum(1, np.floor(quota).astype(int))
    for i in np.argsort(-(quota - np.floor(quota))):  # largest remainders get the leftover faces
        if take.sum() >= n:
            break
        take[i] += 1
    picked = [rng.choice(np.flatnonzero(labels == c), size=min(k, cnt), replace=False)
              for c, k, cnt in zip(classes, take, counts)]
    return np.sort(np.concatenate(picked))


def build_scenes(pixels: np.ndarray, seed: int = SEED, background: str = "replicate") -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [make_scene(face, rng, background=background) for face in pixels]


# --- box relations and the policy ---

def relation(true_box: Sequence[float], det_box: Sequence[float]) -> dict[str, float]:
    """How the true (square) box sits relative to a detection (square side = max(w, h))."""
    tx, ty, tw, th = (float(v) for v in true_box)
    x, y, w, h = (float(v) for v in det_box)
    side, true_side = max(w, h), max(tw, th)
    dx = (tx + tw / 2.0) - (x + w / 2.0)
    dy = (ty + th / 2.0) - (y + h / 2.0)
    return {"scale": true_side / side, "dx": dx / side, "dy": dy / side, "shift_y": dy / true_side}


def policy_from(scales: Sequence[float], shifts: Sequence[float]) -> CropPolicy:
    """The square policy mapping a typical detection onto the FER2013 box (medians, DECIMALS)."""
    margin = round((float(np.median(scales)) - 1.0) / 2.0, DECIMALS) + 0.0  # + 0.0: no "-0.0"
    return CropPolicy(margin=margin, square=True, shift_y=round(float(np.median(shifts)), DECIMALS) + 0.0)


def best_match(true_box: Sequence[float], boxes: Sequence[Sequence[float]]) -> tuple[int, float]:
    """(index, IoU) of the box overlapping ``true_box`` most; (-1, 0.0) when none reaches MATCH_IOU."""
    if len(boxes) == 0:
        return -1, 0.0
    ious = iou_matrix([true_box], boxes)[0]
    i = int(ious.argmax())
    return (i, float(ious[i])) if ious[i] >= MATCH_IOU else (-1, float(ious[i]))


@dataclass
class Measurement:
    """One detector on a set of scenes: its detections and how the matched ones frame the face."""

    detector: str
    detections: list[list[Any]]
    matched: np.ndarray  # (N,) index of the matched detection, -1 for none
    relations: list[dict[str, float]]  # one per matched scene
    ious: np.ndarray  # (N,) IoU of the matched (or best) detection with the true box
    seconds: float

    @property
    def rate(self) -> float:
        return float((self.matched >= 0).mean())

    def policy(self) -> CropPolicy:
        if not self.relations:
            raise RuntimeError(f"{self.detector} found none of the faces; no policy can be measured")
        return policy_from([r["scale"] for r in self.relations], [r["shift_y"] for r in self.relations])

    def stats(self, scenes: Sequence[Scene]) -> dict[str, Any]:
        rel = {k: np.array([r[k] for r in self.relations]) for k in ("scale", "dx", "dy", "shift_y")}
        out: dict[str, Any] = {"n": len(self.matched), "detected": int((self.matched >= 0).sum()),
                               "detection_rate": round(self.rate, 4),
                               "ms_per_scene": round(1000.0 * self.seconds / max(1, len(self.matched)), 1)}
        if not self.relations:
            return out
        for key, values in rel.items():
            q25, q50, q75 = np.percentile(values, [25, 50, 75])
            out[f"median_{key}"] = round(float(q50), 4)
            out[f"iqr_{key}"] = [round(float(q25), 4), round(float(q75), 4)]
        policy = self.policy()
        hits = np.flatnonzero(self.matched >= 0)
        after = [iou_matrix([scenes[i].box], [expand_box(self.detections[i][self.matched[i]].box, policy)])[0, 0]
                 for i in hits]
        square = [iou_matrix([scenes[i].box], [expand_box(self.detections[i][self.matched[i]].box, CropPolicy())])[0, 0]
                  for i in hits]
        out["median_iou_margin0"] = round(float(np.median(square)), 4)
        out["median_iou_policy"] = round(float(np.median(after)), 4)
        out["measured_policy"] = vars(policy).copy()
        return out


def measure(detector: Any, scenes: Sequence[Scene]) -> Measurement:
    """Run ``detector`` on every scene and relate its best-matching box to the true box."""
    start = time.perf_counter()
    detections = [detector.detect(scene.image) for scene in scenes]
    seconds = time.perf_counter() - start
    matched, ious, relations = [], [], []
    for scene, found in zip(scenes, detections):
        i, overlap = best_match(scene.box, [d.box for d in found])
        matched.append(i)
        ious.append(overlap)
        if i >= 0:
            relations.append(relation(scene.box, found[i].box))
    return Measurement(detector.name, detections, np.array(matched, int), relations, np.array(ious), seconds)


# --- the predict path under a policy ---

class ReplayDetector:
    """Gives back the detections a real detector found on the same pixels, under its name.

    ``EmotionRecognizer.predict`` picks its crop policy by ``detector.name``, so replaying the
    recorded boxes runs exactly the predict path of that detector without detecting twice.
    """

    def __init__(self, name: str, scenes: Sequence[Scene], detections: Sequence[list[Any]]) -> None:
        self.name = name
        self._table = {_key(scene.image): found for scene, found in zip(scenes, detections)}

    def detect(self, image: np.ndarray) -> list[Any]:
        return self._table[_key(image)]


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def model_with_policies(model_dir: Path, policies: dict[str, CropPolicy], into: Path) -> Path:
    """A copy of ``model_dir`` in ``into`` whose config.json has ``crop_by_detector = policies``."""
    into.mkdir(parents=True, exist_ok=True)
    shutil.copy2(model_dir / MODEL_NAME, into / MODEL_NAME)
    config = ModelConfig.load(model_dir / CONFIG_NAME)
    config.with_updates(crop_by_detector=dict(policies)).save(into / CONFIG_NAME)
    return into


def predict_accuracy(model_dir: Path, detector: Any, scenes: Sequence[Scene], labels: np.ndarray,
                     policy: CropPolicy, boxes: bool = False) -> dict[str, Any]:
    """Accuracy of ``predict`` on the scenes with ``detector``'s boxes cropped by ``policy``.

    ``matched``: the face whose box overlaps the true box most (IoU >= MATCH_IOU) counts, a
    scene without one is wrong; ``first``: the first face emofer returns; ``on_detected``: the
    matched accuracy among scenes with a match. ``boxes=True`` passes the true boxes instead.
    """
    from emofer import EmotionRecognizer

    name = "given" if boxes else detector.name
    with tempfile.TemporaryDirectory() as tmp:
        folder = model_with_policies(model_dir, {name: policy}, Path(tmp) / "model")
        recognizer = EmotionRecognizer.from_pretrained(folder, detector="none" if boxes else detector)
        if boxes:
            results = [recognizer.predict(scene.image, boxes=[scene.box]) for scene in scenes]
        else:
            results = []
            for start in range(0, len(scenes), BATCH):
                results += recognizer.predict_batch([s.image for s in scenes[start:start + BATCH]])
        label_index = {label: i for i, label in enumerate(recognizer.labels)}
    correct, first, detected = np.zeros(len(scenes), bool), 0, 0
    for k, (scene, faces, label) in enumerate(zip(scenes, results, labels)):
        if faces:
            first += label_index[faces[0].emotion] == label
        i, _ = best_match(scene.box, [f.box for f in faces])
        if i >= 0:
            detected += 1
            correct[k] = label_index[faces[i].emotion] == label
    n, matched = len(scenes), int(correct.sum())
    return {"policy": vars(policy).copy(), "accuracy": round(matched / n, 4), "first_face": round(first / n, 4),
            "on_detected": round(matched / detected, 4) if detected else None, "detected": detected, "n": n,
            "correct": correct}


# --- one split ---

def run_split(model_dir: Path, split: str, detectors: dict[str, Any], n: int, seed: int, background: str,
              data_root: Path | None, policies: dict[str, CropPolicy] | None = None,
              compare_background: str | None = None) -> dict[str, Any]:
    """Measure and evaluate on ``split``; choose policies unless ``policies`` are given.

    ``compare_background`` also measures the framing (not the accuracy) on scenes with that
    other background, same faces and places, to show how much the background moves it.
    """
    from emofer import EmotionRecognizer

    config = ModelConfig.load(model_dir / CONFIG_NAME)
    faces = data.load(dataset_of(config), split, config.labels, root=data_root)
    index = stratified_sample(faces.labels, n, seed)
    sample = faces.take(index)
    start = time.perf_counter()
    scenes = build_scenes(sample.pixels, seed, background)
    log.info("%s: %d of %d faces, %d scenes built in %.1f s", split, len(sample), len(faces), len(scenes),
             time.perf_counter() - start)
    plain = EmotionRecognizer.from_pretrained(model_dir, detector="none")
    crop_sample = plain.classify(sample.pixels).argmax(1)
    crop_split = plain.classify(faces.pixels).argmax(1)
    baseline = CropPolicy()
    out: dict[str, Any] = {
        "split": split, "n": len(sample), "split_size": len(faces), "seed": seed,
        "counts": sample.counts(),
        "crop_accuracy": round(float((crop_sample == sample.labels).mean()), 4),
        "crop_accuracy_full_split": round(float((crop_split == faces.labels).mean()), 4),
        "true_box": predict_accuracy(model_dir, None, scenes, sample.labels, baseline, boxes=True),
        "detectors": {},
    }
    on_box = out["true_box"].pop("correct")
    on_crop = crop_sample == sample.labels
    out["true_box"]["gained"] = int((on_box & ~on_crop).sum())  # vs classify on the 48x48 crops
    out["true_box"]["lost"] = int((on_crop & ~on_box).sum())
    for name, detector in detectors.items():
        measured = measure(detector, scenes)
        stats = measured.stats(scenes)
        chosen = policies[name] if policies is not None else measured.policy()
        replay = ReplayDetector(name, scenes, measured.detections)
        stats["policy"] = vars(chosen).copy()
        stats["baseline"] = predict_accuracy(model_dir, replay, scenes, sample.labels, baseline)
        stats["with_policy"] = predict_accuracy(model_dir, replay, scenes, sample.labels, chosen)
        before, after = stats["baseline"].pop("correct"), stats["with_policy"].pop("correct")
        stats["with_policy"]["gained"] = int((after & ~before).sum())  # right only with the policy
        stats["with_policy"]["lost"] = int((before & ~after).sum())  # right only without it
        if compare_background:
            others = build_scenes(sample.pixels, seed, compare_background)  # same faces, sizes and places
            other = measure(detector, others).stats(others)
            stats["compare_background"] = {"background": compare_background,
                                           **{k: v for k, v in other.items() if not k.startswith("median_iou")}}
        out["detectors"][name] = stats
        log.info("%s %s: detected %d/%d, policy %s, predict accuracy %.4f -> %.4f (crop %.4f)", split, name,
                 stats["detected"], stats["n"], stats["policy"], stats["baseline"]["accuracy"],
                 stats["with_policy"]["accuracy"], out["crop_accuracy"])
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def build_detectors(names: Sequence[str], yunet: Path | None) -> dict[str, Any]:
    """The registry's detectors by name (YuNet from the ``yunet`` weights when given)."""
    from emofer.detect import YuNetDetector, build_detector

    out: dict[str, Any] = {}
    for name in names:
        if name not in DETECTORS:
            raise ValueError(f"unknown detector {name!r}; use {', '.join(DETECTORS)}")
        out[name] = YuNetDetector(yunet) if name == "yunet" and yunet else build_detector(name)
    return out


def load_policies(path: str | Path) -> dict[str, CropPolicy]:
    """``crop_by_detector`` of a framing.json, as CropPolicy objects (validated like config.json)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    config = ModelConfig.from_dict({"labels": ["a", "b"], "crop_by_detector": raw["crop_by_detector"]},
                                   source=str(path))
    return dict(config.crop_by_detector)


# --- the report ---

def write(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(result), encoding="utf-8")
    return json_path, md_path


def _policy(p: dict[str, Any]) -> str:
    return f"margin {p['margin']:+.3f}, shift_y {p['shift_y']:+.3f}"


def _iqr(stats: dict[str, Any], key: str) -> str:
    lo, hi = stats[f"iqr_{key}"]
    return f"{stats[f'median_{key}']:+.3f} [{lo:+.3f}, {hi:+.3f}]" if key != "scale" else \
        f"{stats[f'median_{key}']:.3f} [{lo:.3f}, {hi:.3f}]"


def _found(s: dict[str, Any]) -> str:
    return f"{s['detected']}/{s['n']} ({s['detection_rate']:.1%})"


def _accuracy_table(run: dict[str, Any]) -> str:
    """Crops vs predict with the true box vs predict with each detector, margin 0 and with its policy."""
    tb = run["true_box"]
    rows = [["`classify` on the 48x48 crops", "-", "-", f"{run['crop_accuracy']:.4f}", None, None, None],
            ["`predict`, true FER2013 box given", "margin 0", f"{tb['detected']}/{tb['n']}", f"{tb['accuracy']:.4f}",
             None, None, f"+{tb['gained']} / -{tb['lost']} vs crops"]]
    for name, s in run["detectors"].items():
        for key, what in (("baseline", "margin 0, shift_y 0"), ("with_policy", _policy(s["policy"]))):
            a = s[key]
            rows.append([f"`predict`, {name}", what, f"{a['detected']}/{a['n']}", f"{a['accuracy']:.4f}",
                         f"{a['first_face']:.4f}", "-" if a["on_detected"] is None else f"{a['on_detected']:.4f}",
                         f"+{a['gained']} / -{a['lost']}" if "gained" in a else ""])
    return table(["faces through", "crop policy", "detected", "accuracy", "first face", "on detected faces",
                  "gained / lost"], rows, "llrrrrr")


def summary(result: dict[str, Any]) -> str:
    """The findings in a few generated lines."""
    sel, final = result["selection"], result.get("final")
    lines = []
    for name, s in sel["detectors"].items():
        if "median_scale" not in s:
            lines.append(f"- **{name}** found none of the {sel['split']} faces.")
            continue
        runs = [sel] + ([final] if final else [])
        accuracy = "; ".join(
            f"{r['split']} {r['detectors'][name]['baseline']['accuracy']:.4f} -> "
            f"{r['detectors'][name]['with_policy']['accuracy']:.4f} (+{r['detectors'][name]['with_policy']['gained']} "
            f"/ -{r['detectors'][name]['with_policy']['lost']} faces)" for r in runs)
        dy, dx = s["median_dy"], s["median_dx"]
        lines.append(
            f"- **{name}** found {s['detection_rate']:.1%} of the {sel['split']} scenes. Its square box is "
            f"{1 / s['median_scale']:.3f} x the FER2013 side and its centre {abs(dy):.3f} of its side "
            f"{'above' if dy > 0 else 'below'} and {abs(dx):.3f} {'left' if dx > 0 else 'right'} of FER2013's "
            f"(medians) -> policy {_policy(s['policy'])}. Predict accuracy, margin 0 -> policy: {accuracy}.")
    last = final or sel
    detected = [f"{n} {d['with_policy']['on_detected']:.4f}" for n, d in last["detectors"].items()
                if d["with_policy"]["on_detected"] is not None]
    gap = max((abs(d["with_policy"]["on_detected"] - last["true_box"]["accuracy"]) for d in last["detectors"].values()
               if d["with_policy"]["on_detected"] is not None), default=None)
    verdict = ("once found, a face is classified about as well as through FER2013's own box (within "
               f"{gap:.3f}), so most of the gap to the crops is the faces the detectors miss (counted wrong)"
               if gap is not None and gap <= 0.02 else
               f"on the faces found, framing still costs up to {gap:.3f} against FER2013's own box") \
        if gap is not None else "no face found"
    lines.append(
        f"- On {last['split']}, the crops score {last['crop_accuracy']:.4f}, `predict` with the exact FER2013 box "
        f"{last['true_box']['accuracy']:.4f}, and `predict` on the faces each detector found "
        f"{', '.join(detected)}: {verdict}.")
    checks = [(s["policy"], s["compare_background"]) for s in sel["detectors"].values()
              if "measured_policy" in s.get("compare_background", {})]
    if checks:
        moved = max(max(abs(p["margin"] - c["measured_policy"]["margin"]), abs(p["shift_y"] - c["measured_policy"]["shift_y"]))
                    for p, c in checks)
        largest = max(max(abs(p["margin"]), abs(p["shift_y"])) for p, _ in checks)
        lines.append(
            f"- A `{checks[0][1]['background']}` background instead moves the measured policies by up to {moved:.2f} of "
            f"the side; the chosen ones are at most {largest:.2f} away from margin 0 / shift_y 0. Corrections no "
            "larger than that are within the method's uncertainty.")
    return "\n".join(lines)


def _framing_table(run: dict[str, Any]) -> str:
    """Per detector: how its box sits against FER2013's (medians and IQRs) and the policy chosen."""
    rows = []
    for name, s in run["detectors"].items():
        if "median_scale" not in s:
            rows.append([name, _found(s), *["-"] * 6, s["ms_per_scene"]])
            continue
        rows.append([name, _found(s), _iqr(s, "scale"), _iqr(s, "dx"), _iqr(s, "dy"), _policy(s["policy"]),
                     f"{s['median_iou_margin0']:.3f}", f"{s['median_iou_policy']:.3f}", s["ms_per_scene"]])
        other = s.get("compare_background")
        if other and "median_scale" in other:
            rows.append([f"{name}, `{other['background']}` background (check only)", _found(other),
                         _iqr(other, "scale"), _iqr(other, "dx"), _iqr(other, "dy"),
                         f"({_policy(other['measured_policy'])})", None, None, other["ms_per_scene"]])
    return table(["detector", "detected", "scale T/S", "dx", "dy", "chosen policy", "IoU margin 0",
                  "IoU with policy", "ms / scene"], rows, "lrllllrrr")


def _final(final: dict[str, Any] | None) -> str:
    """The section on the final split (the policies run once there), or '' without one."""
    if not final:
        return ""
    policies = [[name, _found(s), _policy(s["measured_policy"]) if "measured_policy" in s else "-"]
                for name, s in final["detectors"].items()]
    return render(FINAL_TEMPLATE, {
        **{key: final[key] for key in ("split", "n", "split_size", "seed")},
        "crop_accuracy_full_split": f"{final['crop_accuracy_full_split']:.4f}",
        "accuracy_table": _accuracy_table(final),
        "policy_table": table(["detector", "detected",
                               f"policy {final['split']} itself would give (for comparison only)"], policies, "lrl"),
    })


def markdown(result: dict[str, Any]) -> str:
    """framing.md from framing.json's dict."""
    sel, m = result["selection"], result["method"]
    low, high = m["scale_range"]
    policies = json.dumps({"crop_by_detector": result["crop_by_detector"]}, indent=2).splitlines()
    return render(TEMPLATE, {
        "model": result["model"]["name"], "model_sha256": result["model"]["sha256"][:12],
        "labels": result["model"]["labels"], "summary": summary(result),
        **{key: sel[key] for key in ("n", "split", "seed", "split_size")},
        "scale_range": f"{low:g}-{high:g}", "pixel_range": f"{round(48 * low)}-{round(48 * high)}",
        "canvas": f"{m['canvas'][1]}x{m['canvas'][0]}", "background": m["background"],
        **{key: f"{m[key]:g}" for key in ("edge_gap", "blur_sigma", "blur_ramp", "match_iou")},
        "fade_ramp": f"{m.get('fade_ramp', FADE_RAMP):g}",
        "framing_table": _framing_table(sel), "accuracy_table": _accuracy_table(sel),
        "crop_accuracy_full_split": f"{sel['crop_accuracy_full_split']:.4f}", "final": _final(result.get("final")),
        "policies": "\n".join(f"    {line}" for line in policies),
        "command": result["command"], "seconds": f"{result['seconds']:.0f}", "machine": result["machine"],
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="emofer model folder (model.onnx + config.json)")
    parser.add_argument("--split", default="PublicTest", help="split the policies are chosen on")
    parser.add_argument("--n", type=int, default=N_FACES, help="faces sampled per split")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--final", help="split the chosen policies are then reported on once (PrivateTest)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="writes OUT.json and OUT.md")
    parser.add_argument("--background", choices=BACKGROUNDS, default="replicate")
    parser.add_argument("--compare-background", choices=BACKGROUNDS,
                        help="also measure the framing on this background (a sensitivity check)")
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument("--yunet", type=Path, help="YuNet .onnx (default: $EMOFER_YUNET or the bundled one)")
    parser.add_argument("--data", type=Path, help="dataset archive (default: ../shared/data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    if args.split == "PrivateTest":
        parser.error("choose policies on PublicTest; report PrivateTest with --final PrivateTest")
    if args.final == args.split:
        parser.error("--final must be another split than --split")
    yunet = args.yunet or (Path(os.environ["EMOFER_YUNET"]) if os.environ.get("EMOFER_YUNET") else None) \
        or (DEFAULT_YUNET if DEFAULT_YUNET.is_file() else None)
    start = time.perf_counter()
    detectors = build_detectors(args.detectors, yunet)
    config = ModelConfig.load(args.model / CONFIG_NAME)
    selection = run_split(args.model, args.split, detectors, args.n, args.seed, args.background, args.data,
                          compare_background=args.compare_background)
    chosen = {name: CropPolicy(**s["policy"]) for name, s in selection["detectors"].items()}
    result: dict[str, Any] = {
        "crop_by_detector": {name: vars(p).copy() for name, p in chosen.items()},
        "model": {"name": config.name, "dir": str(args.model), "sha256": sha256_of(args.model / MODEL_NAME),
                  "labels": ", ".join(config.labels)},
        "method": {"canvas": list(CANVAS), "scale_range": list(SCALE_RANGE), "edge_gap": EDGE_GAP,
                   "background": args.background, "blur_sigma": BLUR_SIGMA, "blur_ramp": BLUR_RAMP,
                   "fade_ramp": FADE_RAMP, "decimals": DECIMALS,
                   "match_iou": MATCH_IOU, "yunet_weights": None if yunet is None else yunet.name},
        "selection": selection,
    }
    if args.final:
        result["final"] = run_split(args.model, args.final, detectors, args.n, args.seed, args.background,
                                    args.data, policies=chosen)
    result["command"] = command_line("training.framing", sys.argv[1:] if argv is None else argv)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["machine"] = f"{os.uname().machine} {os.cpu_count()} cpus (shared), OpenCV {cv2.__version__}"
    json_path, md_path = write(result, args.out)
    for name, policy in chosen.items():
        print(f"{name}: {vars(policy)}")
    print(f"wrote {json_path} and {md_path} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
