"""Weight averaging ("model soup") of runs of one network that share a starting checkpoint.

    python -m training.soup RUN_A RUN_B RUN_C --out RUN_SOUP [--uniform]

Runs fine-tuned from the same checkpoint usually stay in one basin of the loss, so the mean of
their weights is a network of the same size and speed that can beat each of them. The greedy
soup (Wortsman et al., 2022) ranks the runs by PublicTest accuracy alone, then adds each one only
if the soup's PublicTest accuracy does not drop; ``--uniform`` averages all of them. Choosing
reads PublicTest only. The output is a run folder that training/export.py takes like any other:
``best.keras``, ``recipe.json`` (the first ingredient's recipe plus the soup) and ``state.json``
(that ingredient's history; ``train_seconds`` summed over the ingredients).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from emofer.preprocess import normalize
from training import data, evaluate, nets
from training.train import NORM, write_json

log = logging.getLogger("emofer.training")


def average(models: Sequence[keras.Model]) -> keras.Model:
    """A copy of ``models[0]`` whose every weight (batch-norm statistics too) is the mean over ``models``."""
    shapes = [[w.shape for w in m.get_weights()] for m in models]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("the runs are not the same network: their weight shapes differ")
    soup = keras.models.clone_model(models[0])
    soup.set_weights([np.mean(ws, axis=0) for ws in zip(*(m.get_weights() for m in models))])
    return soup


def accuracy(model: keras.Model, faces: data.FaceSet) -> float:
    """Top-1 accuracy of ``model`` on ``faces`` (plain, no mirror)."""
    probabilities = model.predict(normalize(faces.pixels, NORM)[..., None], batch_size=256, verbose=0)
    return float((probabilities.argmax(1) == faces.labels).mean())


def soup(runs: Sequence[Path], uniform: bool = False) -> tuple[keras.Model, list[Path], dict[str, float]]:
    """(soup network, the runs in it, PublicTest accuracy of each run alone and of the soup)."""
    recipes = [json.loads((Path(r) / "recipe.json").read_text()) for r in runs]
    classes = {data.emotion_names(r["classes"]) for r in recipes}
    if len(classes) != 1 or len({r["dataset"] for r in recipes}) != 1:
        raise ValueError(f"the runs must share dataset and classes, got {sorted(classes)}")
    public = data.load(recipes[0]["dataset"], "PublicTest", classes.pop())
    models = {Path(r): nets.load(Path(r) / "best.keras", compile=False) for r in runs}
    exact = {r: accuracy(m, public) for r, m in models.items()}
    alone = {str(r): round(score, 4) for r, score in exact.items()}
    for run, score in alone.items():
        log.info("%s alone: PublicTest %.4f", run, score)
    ranked = sorted(models, key=lambda r: -exact[r])
    if uniform:
        chosen = ranked
        network = average([models[r] for r in chosen])
        best = accuracy(network, public)
    else:  # every candidate soup is scored once; the last one kept is the answer
        chosen, best = [ranked[0]], exact[ranked[0]]
        network = average([models[ranked[0]]])  # a copy: the soup never aliases a run's model
        for run in ranked[1:]:
            candidate = average([models[r] for r in chosen + [run]])
            score = accuracy(candidate, public)
            log.info("greedy: + %s -> PublicTest %.4f (%s)", run, score, "kept" if score >= best else "left out")
            if score >= best:
                chosen, network, best = chosen + [run], candidate, score
    scores = {**{f"alone: {r}": s for r, s in alone.items()}, "soup": round(best, 4)}
    return network, chosen, scores


def write_run(network: keras.Model, chosen: Sequence[Path], scores: dict[str, float], out: Path,
              command: str) -> Path:
    """Write the soup as a run folder export.py reads; return its best.keras."""
    out.mkdir(parents=True, exist_ok=True)
    first = Path(chosen[0])
    recipe = json.loads((first / "recipe.json").read_text())
    state = json.loads((first / "state.json").read_text())
    states = [json.loads((Path(r) / "state.json").read_text()) for r in chosen]
    recipe.update(name=f"soup of {', '.join(Path(r).name for r in chosen)}", soup=[str(r) for r in chosen],
                  soup_scores=scores, command=command)
    state.update(train_seconds=sum(float(s.get("train_seconds", 0.0)) for s in states),
                 best_val_accuracy=scores["soup"])
    network.save(out / "best.keras")
    write_json(out / "recipe.json", recipe)
    write_json(out / "state.json", state)
    return out / "best.keras"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders of one network and class list")
    parser.add_argument("--out", required=True, type=Path, help="the soup's run folder")
    parser.add_argument("--uniform", action="store_true", help="average every run (default: greedy on PublicTest)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    network, chosen, scores = soup(args.runs, args.uniform)
    command = evaluate.command_line("training.soup", sys.argv[1:] if argv is None else argv)
    write_run(network, chosen, scores, args.out, command)
    print("| network | PublicTest accuracy |\n|---|---:|")
    for name, score in scores.items():
        print(f"| {name} | {score:.4f} |")
    print(f"soup of {len(chosen)}: {', '.join(str(r) for r in chosen)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
