"""Choose how to ship a run, on PublicTest only: plain, mirrored-face TTA, ensembles.

    python -m training.compare RUN_DIR [--ensemble OTHER_RUN ...] [--out docs/ablation/NAME.json]

Prints (and writes) the PublicTest accuracy of each variant that training/export.py can build,
so the choice never looks at PrivateTest; export the winner once with the matching flags.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from emofer.preprocess import model_input
from training import data
from training.report import command_line
from training.export import check_input, load_checkpoint, load_member, with_flip_tta, with_members
from training.runs import Run

log = logging.getLogger("emofer.training")


def compare(run: Path, ensemble: list[Path]) -> dict[str, float]:
    """PublicTest accuracy of each shippable variant of ``run``."""
    folder = Run(run)
    labels, config = folder.classes, folder.config
    public = data.load(folder.dataset, "PublicTest", labels)
    model = check_input(load_checkpoint(folder.best), config, folder.best)
    tensor = model_input(public.pixels, config)
    variants = {"plain": model, "flip TTA": with_flip_tta(model)}
    if ensemble:
        members = [load_member(other) for other in ensemble]
        combined = with_members(model, labels, members)
        variants["ensemble"] = combined
        variants["ensemble + flip TTA"] = with_flip_tta(combined)
    scores = {}
    for name, variant in variants.items():
        probabilities = variant.predict(tensor, batch_size=256, verbose=0)
        scores[name] = round(float((probabilities.argmax(1) == public.labels).mean()), 4)
        log.info("%s: PublicTest accuracy %.4f", name, scores[name])
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--ensemble", action="append", default=[], type=Path, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, help="write the scores as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    scores = compare(args.run, args.ensemble)
    record = {"run": str(args.run), "ensemble": [str(p) for p in args.ensemble], "split": "PublicTest",
              "accuracy": scores, "command": command_line("training.compare", sys.argv[1:] if argv is None else argv)}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    print("| variant | PublicTest accuracy |\n|---|---:|")
    for name, accuracy in scores.items():
        print(f"| {name} | {accuracy:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
