"""How far more web faces move a frozen network's expw-dev accuracy: ``python -m benchmarks.web_curve``.

    python -m benchmarks.web_curve [MODEL] [--keep 0.125 0.25 0.5 1] [--draws 5] [--out FILE.json]

MODEL (default: the repository's ``models/ferplus8``, trained on FER+ only: it has never seen a
web face) keeps every layer but its classifier. The classifier is fitted again as
``training.refit`` fits it (started from the old one; FER+ Training votes and web faces, the web
faces at ``--web-share`` of the total weight (1: web faces alone), their labels smoothed by 0.1,
each face and its mirror), on ``keep`` of expw-train's training faces: each emotion's part,
drawn as ``web.keep`` draws it for the first draw and at random for the others (``--draws`` per
keep below 1). Each head is scored on expw-dev end to end (the bundled YuNet, the model's crop,
labelled faces matched at IoU >= 0.3 as ``benchmarks.wild`` does; a missed face counts as
wrong) and on FER+ Valid. The fit never reads expw-dev; the figures are a curve over the amount
of web data, not a candidate. With MODEL's own classifier the figures equal
``benchmarks.wild``'s (``as_trained``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import zipfile
from pathlib import Path

import numpy as np

from benchmarks.wild import ARCHIVE, EMOTIONS, ROOT, match, read_faces
from emofer import EmotionRecognizer
from emofer.config import CONFIG_NAME, ModelConfig
from emofer.io import load_image
from emofer.preprocess import crop_face, to_tensor
from training import data, expw
from training.mixing import KEEP_SEED, Web, draw_rows
from training.refit import Features, fit_head, training_features

log = logging.getLogger("emofer.benchmarks")

MODEL = ROOT / "models" / "ferplus8"
KEEPS = (0.125, 0.25, 0.5, 1.0)
WEB_SHARE, SMOOTHING = 0.5, 0.1  # training.refit's defaults


def dev_features(features: Features, recognizer: EmotionRecognizer, photos: dict,
                 archive: Path = ARCHIVE) -> tuple[np.ndarray, np.ndarray]:
    """Each labelled expw-dev face's features as ``predict`` would classify it, and its mirror's
    (N, 2, F; NaN where YuNet found no face there), and its label's index in the model's labels."""
    config = recognizer.config
    policy = config.crop_for(recognizer.detector.name)
    missed = np.full((2, features.weights[features.head.weight].shape[0]), np.nan, np.float32)
    rows, truth = [], []
    with zipfile.ZipFile(archive) as z:
        for path, labelled in photos.items():
            image = load_image(z.read(f"expw-dev/{path}"))
            boxes = [d.box for d in recognizer.detector.detect(image)]
            found = np.zeros((0, *missed.shape), np.float32)
            if boxes:
                crops = [crop_face(image, box, policy) for box in boxes]
                tensor = to_tensor(crops, config.input.size, config.input.channels, config.normalize)
                found = np.stack([features.session.run([features.head.features], {features.input: t})[0][:len(boxes)]
                                  for t in (tensor, tensor[:, :, ::-1].copy())], axis=1)
            for face in labelled:
                best = match(face.box, boxes)
                rows.append(found[best] if best >= 0 else missed)
                truth.append(config.labels.index(face.label))
    return np.stack(rows).astype(np.float32), np.array(truth)


def answers(weight: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The head's answer for each face from its and its mirror's features (N, 2, F): the mean of the
    two softmaxes, as a graph exported with the mirror averages them."""
    logits = np.nan_to_num(x) @ weight + bias
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)).mean(1).argmax(1)


def scores(weight: np.ndarray, bias: np.ndarray, x_dev: np.ndarray, y_dev: np.ndarray, x_valid: np.ndarray,
           y_valid: np.ndarray, labels: tuple[str, ...]) -> dict:
    """expw-dev end to end (a missed face is wrong), its per-emotion recall, and FER+ Valid accuracy."""
    hit = ~np.isnan(x_dev[:, 0, 0])
    said = np.where(hit, answers(weight, bias, x_dev), -1)
    right = said == y_dev
    recall = {e: round(float(right[y_dev == labels.index(e)].mean()), 4) for e in EMOTIONS}
    return {"expw_dev": round(float(right.mean()), 4), "macro_recall": round(float(np.mean(list(recall.values()))), 4),
            "recall": recall, "fer_plus_valid": round(float((answers(weight, bias, x_valid) == y_valid).mean()), 4)}


def draw(web: data.FaceSet, keep: float, seed: int) -> np.ndarray:
    """Rows of ``web`` kept: draw 0 is ``web.keep``'s own; the others are each emotion's part at random."""
    return draw_rows(web.labels, keep, KEEP_SEED if seed == 0 else 1000 + seed)


def curve(model: Path = MODEL, keeps: tuple[float, ...] = KEEPS, draws: int = 5, web_share: float = WEB_SHARE) -> dict:
    """The refitted heads' scores at each ``keep`` (mean, spread and each draw), and the model's own."""
    config = ModelConfig.load(model / CONFIG_NAME)
    features, main, x_main, web, x_web, framing = training_features(model, config, "ferplus", None)
    recognizer = EmotionRecognizer.from_pretrained(str(model))
    valid = data.load("ferplus", "PublicTest", config.labels)
    x_valid = np.stack([features(valid.pixels), features(valid.pixels[:, :, ::-1].copy())], axis=1)
    x_dev, y_dev = dev_features(features, recognizer, read_faces())
    weight0, bias0 = features.weights[features.head.weight], features.weights[features.head.bias]
    present = np.array([label in expw.EXPW_CLASSES for label in config.labels])
    options = Web(label_smoothing=SMOOTHING)
    result = {"model": config.name, "web_share": web_share, "expw_train_faces": len(web), "yunet_framed": framing.yunet,
              "expw_dev_faces": len(y_dev), "expw_dev_found": int((~np.isnan(x_dev[:, 0, 0])).sum()),
              "as_trained": scores(weight0, bias0, x_dev, y_dev, x_valid, valid.labels, config.labels), "keeps": []}
    for keep in keeps:
        runs = []
        for seed in range(1 if keep == 1 else draws):
            rows = draw(web, keep, seed)
            kept = web.take(rows)
            x_kept = np.concatenate([x_web[rows], x_web[len(web) + rows]])  # the faces, then their mirrors
            y_web = np.concatenate([options.targets(kept, present)] * 2)
            x, y = np.concatenate([x_main, x_kept]), np.concatenate([main.targets().astype(np.float32), y_web])
            weights = np.concatenate([np.full(len(x_main), (1 - web_share) / len(x_main)),
                                      np.full(len(x_kept), web_share / len(x_kept))]).astype(np.float32) * len(x)
            weight, bias = fit_head(x, y, weights, weight0, bias0, seed=seed)
            runs.append({"draw": seed, "faces": len(rows),
                         **scores(weight, bias, x_dev, y_dev, x_valid, valid.labels, config.labels)})
            log.info("keep %.3g draw %d: %d faces, expw-dev %.4f, FER+ Valid %.4f", keep, seed, len(rows),
                     runs[-1]["expw_dev"], runs[-1]["fer_plus_valid"])
        dev = [r["expw_dev"] for r in runs]
        result["keeps"].append({"keep": keep, "faces": runs[0]["faces"], "expw_dev_mean": round(float(np.mean(dev)), 4),
                                "expw_dev_sd": round(float(np.std(dev)), 4),
                                "fer_plus_valid_mean": round(float(np.mean([r["fer_plus_valid"] for r in runs])), 4),
                                "draws": runs})
    n = np.log2([k["faces"] for k in result["keeps"]])
    slope, intercept = np.polyfit(n, [k["expw_dev_mean"] for k in result["keeps"]], 1)
    result["per_doubling"] = round(float(slope), 4)  # expw-dev per doubling of the faces, a line through the means
    fitted = slope * n[-1] + intercept  # the line at the most faces measured
    result["doublings_to_0.50"] = round(float((0.50 - fitted) / slope), 1) if slope > 0 else None
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web_curve", description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", type=Path, default=MODEL, help="a float model folder (default %(default)s)")
    parser.add_argument("--keep", type=float, nargs="+", default=list(KEEPS), help="parts of expw-train's faces")
    parser.add_argument("--draws", type=int, default=5, help="draws per keep below 1 (default %(default)s)")
    parser.add_argument("--web-share", type=float, default=WEB_SHARE,
                        help="the web faces' part of the fit's weight; 1 fits on web faces alone (default %(default)s)")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not 0 < args.web_share <= 1:
        parser.error(f"--web-share must be in (0, 1], got {args.web_share}")
    if not all(0 < k <= 1 for k in args.keep):
        parser.error(f"--keep takes parts of expw-train's faces in (0, 1], got {args.keep}")
    if args.draws < 1:
        parser.error(f"--draws must be 1 or more, got {args.draws}")
    out = args.out.resolve() if args.out else None
    if out and (out == ARCHIVE.resolve() or out.is_relative_to(args.model.resolve())):
        parser.error(f"--out {args.out} is an input (the model folder or expw-dev); write the figures elsewhere")
    if not ARCHIVE.exists():
        parser.error(f"{ARCHIVE} not found: the curve is scored on expw-dev")
    result = curve(args.model, tuple(args.keep), args.draws, args.web_share)
    result["command"] = "python -m benchmarks.web_curve " + " ".join(sys.argv[1:] if argv is None else argv)
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
