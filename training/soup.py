"""Weight averaging ("model soup") of runs of one network that share a starting checkpoint.

    python -m training.soup RUN_A RUN_B RUN_C --out RUN_SOUP [--uniform]

Runs fine-tuned from the same checkpoint usually stay in one basin of the loss, so the mean of
their weights is a network of the same size and speed that can beat each of them. The greedy
soup (Wortsman et al., 2022) ranks the runs by PublicTest accuracy alone, then adds each one only
if the soup's PublicTest accuracy does not drop; ``--uniform`` averages all of them. Choosing
reads PublicTest only. The output is a run folder that training/export.py takes like any other:
``best.keras``, ``recipe.json`` (the first ingredient's recipe plus the soup), ``config.json``
(the ingredients' shared draft config) and ``state.json`` (that ingredient's history;
``train_seconds`` summed over the ingredients).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from emofer.config import ModelConfig
from emofer.preprocess import model_input
from training import data, nets
from training.report import command_line
from training.runs import PREPROCESSING, Run, draft_config

log = logging.getLogger("emofer.training")


def average(models: Sequence[keras.Model]) -> keras.Model:
    """A copy of ``models[0]`` whose every weight (batch-norm statistics too) is the mean over ``models``."""
    shapes = [[w.shape for w in m.get_weights()] for m in models]
    if any(s != shapes[0] for s in shapes):
        raise ValueError("the runs are not the same network: their weight shapes differ")
    soup = keras.models.clone_model(models[0])
    soup.set_weights([np.mean(ws, axis=0) for ws in zip(*(m.get_weights() for m in models))])
    return soup


def accuracy(model: keras.Model, faces: data.FaceSet, config: ModelConfig) -> float:
    """Top-1 accuracy of ``model`` on ``faces`` made into ``config``'s input (plain, no mirror)."""
    probabilities = model.predict(model_input(faces.pixels, config), batch_size=256, verbose=0)
    return float((probabilities.argmax(1) == faces.labels).mean())


def soup(runs: Sequence[Path], uniform: bool = False) -> tuple[keras.Model, list[Path], dict[str, float]]:
    """(soup network, the runs in it, PublicTest accuracy of each run alone and of the soup)."""
    folders = [Run(r) for r in runs]
    classes = {f.classes for f in folders}
    if len(classes) != 1 or len({f.dataset for f in folders}) != 1:
        raise ValueError(f"the runs must share dataset and classes, got {sorted(classes)}")
    config = folders[0].config
    inputs = {tuple(str(f.config.to_dict()[key]) for key in PREPROCESSING) for f in folders}
    if len(inputs) != 1:
        raise ValueError(f"the runs must share their input and normalisation (config.json), got {sorted(inputs)}")
    public = data.load(folders[0].dataset, "PublicTest", classes.pop())
    models = {f.path: nets.load(f.best, compile=False) for f in folders}
    exact = {r: accuracy(m, public, config) for r, m in models.items()}
    alone = {str(r): round(score, 4) for r, score in exact.items()}
    for run, score in alone.items():
        log.info("%s alone: PublicTest %.4f", run, score)
    ranked = sorted(models, key=lambda r: -exact[r])
    if uniform:
        chosen = ranked
        network = average([models[r] for r in chosen])
        best = accuracy(network, public, config)
    else:  # every candidate soup is scored once; the last one kept is the answer
        chosen, best = [ranked[0]], exact[ranked[0]]
        network = average([models[ranked[0]]])  # a copy: the soup never aliases a run's model
        for run in ranked[1:]:
            candidate = average([models[r] for r in chosen + [run]])
            score = accuracy(candidate, public, config)
            log.info("greedy: + %s -> PublicTest %.4f (%s)", run, score, "kept" if score >= best else "left out")
            if score >= best:
                chosen, network, best = chosen + [run], candidate, score
    scores = {**{f"alone: {r}": s for r, s in alone.items()}, "soup": round(best, 4)}
    return network, chosen, scores


def write_run(network: keras.Model, chosen: Sequence[Path], scores: dict[str, float], out: Path,
              command: str) -> Path:
    """Write the soup as a run folder export.py reads; return its best.keras."""
    first, soup_run = Run(chosen[0]), Run(out)
    recipe, state = first.recipe, first.state
    recipe.update(name=f"soup of {', '.join(Path(r).name for r in chosen)}", soup=[str(r) for r in chosen],
                  soup_scores=scores, command=command)
    state.update(train_seconds=sum(float(Run(r).state.get("train_seconds", 0.0)) for r in chosen),
                 best_val_accuracy=scores["soup"])
    soup_run.write_recipe(recipe)
    soup_run.write_config(first.config.with_updates(name=recipe["name"], trained_on=draft_config(recipe).trained_on))
    soup_run.write_state(state)
    network.save(soup_run.best)
    return soup_run.best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders of one network and class list")
    parser.add_argument("--out", required=True, type=Path, help="the soup's run folder")
    parser.add_argument("--uniform", action="store_true", help="average every run (default: greedy on PublicTest)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    network, chosen, scores = soup(args.runs, args.uniform)
    command = command_line("training.soup", sys.argv[1:] if argv is None else argv)
    write_run(network, chosen, scores, args.out, command)
    print("| network | PublicTest accuracy |\n|---|---:|")
    for name, score in scores.items():
        print(f"| {name} | {score:.4f} |")
    print(f"soup of {len(chosen)}: {', '.join(str(r) for r in chosen)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
