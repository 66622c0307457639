"""The one writer of an emofer model folder: model.onnx, config.json, README.md and the report.

    draft = folder.derive(out, source_config, write_graph, name=..., trained_on=...)
    public = folder.evaluate(draft, "PublicTest")
    config = folder.finish(draft, public, extra, final=True, report=..., command=...)

``derive`` writes the graph (``write_graph(path)``) and completes a config from its source's
(the run's draft, a float model's, the members' first): sha256 and provenance, no metrics yet.
Nothing is written to config.json until ``finish``, which writes it once: for a candidate
(``final=False``) with PublicTest only; otherwise after the one PrivateTest evaluation, with
the report in ``docs/models/<short name>/`` and the model card. ``training.export``,
``quantize``, ``adjust``, ``refit`` and ``ensemble`` make folders through it alone.

    python -m training.folder --check [MODEL_DIR ...]

re-finishes a copy of every model folder (the bundled ones and ``models/*/`` of the checkout,
or those named) in a temporary folder from its committed graph, config and report, and
compares config.json, README.md, card.md, report.json and report.md with the committed bytes
(command lines aside): the proof that this writer makes the folders as they are. It reads the
test split of each model's dataset (../shared/data).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emofer.config import CONFIG_NAME, MODEL_NAME, ModelConfig
from emofer.model import sha256_of
from training import card
from training import evaluate as scoring
from training.paths import REPO_ROOT, default_out
from training.report import command_line

log = logging.getLogger("emofer.training")

CARD_NAME = card.CARD_NAME
#: Exactly the files of a model folder (what a published model repo holds).
FILES = (MODEL_NAME, CONFIG_NAME, CARD_NAME)
#: The report's files compared by ``--check`` (besides the card copy, card.md); figures are compared apart.
REPORT_FILES = (card.REPORT_JSON, "report.md")
#: The folders of the checkout beside the bundled ones whose subfolders are model folders.
MODELS_ROOT = REPO_ROOT / "models"


@dataclass(frozen=True)
class Draft:
    """A model folder being written: its graph is in ``out``, its config only here until ``finish``."""

    out: Path
    config: ModelConfig

    @property
    def graph(self) -> Path:
        return self.out / MODEL_NAME

    def with_updates(self, **changes: Any) -> Draft:
        """The same folder with other config fields (e.g. a fitted temperature)."""
        return Draft(self.out, self.config.with_updates(**changes))


def derive(out: str | Path, source: ModelConfig, write_graph: Callable[[Path], object], **changes: Any) -> Draft:
    """Write the graph into ``out`` (``write_graph(out / model.onnx)``) and derive its config from ``source``.

    ``changes`` are the config fields that differ from the source's (name, trained_on, ...); the
    sha256 is the written graph's and the metrics are left for :func:`finish`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_graph(out / MODEL_NAME)
    return Draft(out, source.with_updates(**changes, model_sha256=sha256_of(out / MODEL_NAME), metrics={}))


def copy_graph(source: str | Path) -> Callable[[Path], object]:
    """A ``write_graph`` for :func:`derive` that copies another folder's model.onnx as it is."""
    return lambda target: shutil.copyfile(Path(source) / MODEL_NAME, target)


def copy_files(source: str | Path, target: str | Path) -> None:
    """Copy a model folder's files (:data:`FILES`, nothing else) into the folder ``target``."""
    for name in FILES:
        shutil.copy2(Path(source) / name, Path(target) / name)


def evaluate(draft: Draft, split: str = "PublicTest", data_root: str | Path | None = None) -> scoring.Evaluation:
    """The draft scored on ``split`` with the config it has now (before config.json is written)."""
    return scoring.evaluate(draft.out, split, data_root, config=draft.config)


def classify(draft: Draft, pixels: Any) -> Any:
    """emofer's probabilities for ``pixels`` from the draft as it is now (e.g. to fit its temperature)."""
    return scoring.classify(draft.out, pixels, draft.config)


def selection(evaluation: scoring.Evaluation) -> dict[str, Any]:
    """config.json's ``metrics`` entry of the split a model is chosen on (PublicTest): accuracy and faces."""
    return {"accuracy": round(evaluation.scores.accuracy, 4), "n": evaluation.scores.n}


@dataclass(frozen=True)
class Report:
    """Where and how :func:`finish` writes the PrivateTest report.

    ``folder`` None: docs/models/<short name>/. ``run``: the training run whose curves it shows
    (or ``history``: its epochs and best epoch, as a committed report.json holds them).
    """

    folder: str | Path | None = None
    command: str = ""
    run: str | Path | None = None
    examples: bool = False
    history: tuple[list[dict[str, float]], int] | None = field(default=None, compare=False)


def finish(draft: Draft, public: scoring.Evaluation, extra: Mapping[str, Any] | None = None, *, final: bool = True,
           final_extra: Mapping[str, Any] | None = None, report: Report | None = None,
           data_root: str | Path | None = None) -> ModelConfig:
    """Write config.json (once), and for a final model the report and card; return the config.

    A candidate (``final=False``) gets ``{"PublicTest": ..., **extra}`` and leaves the test split
    unread. A final model is evaluated once on PrivateTest: ``{"PrivateTest": ..., "PublicTest":
    ..., **extra, **final_extra}``, the report (``report``) and the card.
    """
    selected = {"PublicTest": selection(public), **(extra or {})}
    if not final:
        config = draft.config.with_updates(metrics=selected)
        config.save(draft.out / CONFIG_NAME)
        log.info("candidate %s written to %s (no test-split evaluation)", config.name, draft.out)
        return config
    report = report or Report()
    private = evaluate(draft, "PrivateTest", data_root)
    config = draft.config.with_updates(metrics={"PrivateTest": private.headline(), **selected, **(final_extra or {})})
    config.save(draft.out / CONFIG_NAME)
    report_dir = Path(report.folder) if report.folder else default_out(config)
    scoring.write_report(private, report_dir, report.run, report.command, report.examples, report.history)
    card.write(draft.out, report_dir)
    return config


def add_finish_arguments(parser: argparse.ArgumentParser) -> None:
    """--report, --data and --candidate, as the commands that make a folder from another take them."""
    parser.add_argument("--report", type=Path, help="report folder (default docs/models/<short name>/)")
    parser.add_argument("--data", type=Path, help="dataset archive or folder (default: ../shared/data)")
    parser.add_argument("--candidate", action="store_true",
                        help="a model to choose between: PublicTest only, the test split is not read")


# --- the regeneration check ---

def model_folders() -> list[Path]:
    """Every model folder of the checkout: the bundled ones, then ``models/*/`` with a config.json."""
    from emofer.hub import bundled_models

    bundled = list(bundled_models().values())
    extra = sorted(p for p in MODELS_ROOT.glob("*/") if (p / CONFIG_NAME).is_file()) if MODELS_ROOT.is_dir() else []
    return bundled + [p for p in extra if p.resolve() not in {b.resolve() for b in bundled}]


def refinish(folder: str | Path, out: str | Path, report_dir: str | Path | None = None,
             data_root: str | Path | None = None) -> ModelConfig:
    """Make ``folder`` again in ``out`` (its report in ``out/report``) from its graph, config and report.

    What only its making knew is taken from what it wrote: the source models' scores (config
    metrics other than the two splits), the report's command, figures and training history.
    """
    folder, out = Path(folder), Path(out)
    committed = ModelConfig.load(folder / CONFIG_NAME)
    report_dir = Path(report_dir) if report_dir else default_out(committed)
    old = json.loads((report_dir / card.REPORT_JSON).read_text(encoding="utf-8"))
    trained = old.get("training")
    extra = {key: value for key, value in committed.metrics.items() if key not in ("PrivateTest", "PublicTest")}
    draft = derive(out, committed, copy_graph(folder))
    return finish(draft, evaluate(draft, "PublicTest", data_root), extra, data_root=data_root, report=Report(
        out / "report", old.get("command", ""), examples="examples.png" in old.get("figures", []),
        history=(trained["history"], trained["best_epoch"]) if trained else None))


def _without_commands(text: str) -> list[str]:
    return [line for line in text.splitlines() if "python -m " not in line]


def differences(folder: str | Path, data_root: str | Path | None = None) -> dict[str, str]:
    """What differs between ``folder`` (and its report) and the same folder re-finished here: file -> how."""
    folder = Path(folder)
    committed = ModelConfig.load(folder / CONFIG_NAME)
    report_dir = default_out(committed)
    with tempfile.TemporaryDirectory(prefix="emofer-folder-") as tmp:
        out = Path(tmp) / folder.name
        refinish(folder, out, report_dir, data_root)
        pairs = [(folder / CONFIG_NAME, out / CONFIG_NAME), (folder / CARD_NAME, out / CARD_NAME),
                 (report_dir / card.DOCS_CARD_NAME, out / "report" / card.DOCS_CARD_NAME),
                 *((report_dir / name, out / "report" / name) for name in REPORT_FILES)]
        found = {}
        for before, after in pairs:
            old, new = before.read_bytes(), after.read_bytes()
            if old == new:
                continue
            same = _without_commands(old.decode("utf-8")) == _without_commands(new.decode("utf-8"))
            found[str(before.relative_to(REPO_ROOT) if before.is_relative_to(REPO_ROOT) else before)] = \
                "command lines only" if same else "differs"
        for figure in sorted((out / "report").glob("*.png")):  # examples.png, which git ignores, is not compared
            committed_figure = report_dir / figure.name
            if committed_figure.is_file() and committed_figure.read_bytes() != figure.read_bytes():
                found[f"{report_dir.relative_to(REPO_ROOT)}/{figure.name}"] = "figure differs"
    return found


def check(folders: Iterable[str | Path], data_root: str | Path | None = None) -> dict[str, dict[str, str]]:
    """:func:`differences` of each folder, printed as it goes; name -> differences ({}: identical)."""
    results = {}
    for folder in folders:
        found = differences(folder, data_root)
        results[Path(folder).name] = found
        print(f"{Path(folder).name}: " + ("identical" if not found else
                                          "; ".join(f"{name} {how}" for name, how in found.items())), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", required=True,
                        help="re-finish each model folder in a temporary folder and compare it with the committed one")
    parser.add_argument("folders", nargs="*", type=Path, help="model folders (default: every one of the checkout)")
    parser.add_argument("--data", type=Path, help="dataset archive or folder (default: ../shared/data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    results = check(args.folders or model_folders(), args.data)
    failed = [name for name, found in results.items() if any(how != "command lines only" and "figure" not in how
                                                             for how in found.values())]
    print(f"{len(results) - len(failed)} of {len(results)} folders regenerate as committed"
          + (f"; not: {', '.join(failed)}" if failed else "") + f" ({command_line('training.folder', ['--check'])})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
