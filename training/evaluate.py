"""Evaluate an emofer model folder on a FER2013 / FER+ split and write its report.

    python -m training.evaluate MODEL_DIR --split PrivateTest [--run RUN_DIR] [--out DIR]

Probabilities come from ``EmotionRecognizer.classify``, so every figure in the report is, by
construction, what emofer itself returns for those faces. The report (report.json, report.md
and PNG figures) goes to ``docs/models/<short name>/`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emofer.config import CONFIG_NAME, MODEL_NAME, ModelConfig
from emofer.model import sha256_of
from training import data, metrics
from training.paths import DATASET_CLASSES, DATASETS, dataset_of, default_out
from training.report import command_line, confusion_table, render, table
from training.runs import Run

log = logging.getLogger("emofer.training")

#: Figure resolution; with these sizes every PNG stays under 200 KB (examples.png, all photos, at 72).
DPI = 90
EXAMPLES_DPI = 72
#: Faces shown in examples.png (a 4 x 6 grid), drawn with a fixed seed.
EXAMPLES = 24
EXAMPLE_SEED = 0


@dataclass(frozen=True)
class Evaluation:
    """One model scored on one split: the faces, emofer's probabilities and the metrics."""

    model_dir: Path
    config: ModelConfig
    faces: data.FaceSet
    probabilities: np.ndarray
    scores: metrics.Scores
    calibration: metrics.Calibration
    model_sha256: str
    dataset: str = ""  # the dataset scored, when not the one the model was trained on

    @property
    def split(self) -> str:
        return self.faces.split

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(1)

    def headline(self) -> dict[str, Any]:
        """The numbers stored in config.json's ``metrics`` for this split."""
        return {"accuracy": round(self.scores.accuracy, 4), "macro_f1": round(self.scores.macro.f1, 4),
                "weighted_f1": round(self.scores.weighted.f1, 4), "n": self.scores.n,
                "ece": round(self.calibration.ece, 4)}


def classify(model_dir: Path, pixels: np.ndarray, config: ModelConfig | None = None) -> np.ndarray:
    """emofer's probabilities (temperature applied) for uint8 (N, 48, 48) faces.

    ``config`` is the model's config when it is not (yet) the folder's config.json.
    """
    from emofer import EmotionRecognizer
    from emofer.detect import build_detector
    from emofer.model import OnnxClassifier

    if config is None:
        recognizer = EmotionRecognizer.from_pretrained(model_dir, detector="none")
    else:
        recognizer = EmotionRecognizer(OnnxClassifier(Path(model_dir) / MODEL_NAME, config), build_detector("none"))
    return np.asarray(recognizer.classify(pixels), np.float64)


def evaluate(model_dir: str | Path, split: str = "PrivateTest", data_root: str | Path | None = None,
             dataset: str | None = None, config: ModelConfig | None = None) -> Evaluation:
    """Score the model folder ``model_dir`` on ``split`` of the dataset its config names.

    ``dataset`` scores it on another dataset instead ('fer2013' for a FER+ model): over the
    emotions both name, the model's probabilities of those renormalised to sum to 1. ``config``
    is the model's config when the folder's config.json is not written yet (training.folder).
    """
    model_dir = Path(model_dir)
    config = config or ModelConfig.load(model_dir / CONFIG_NAME)
    own = dataset_of(config)
    dataset = DATASETS[dataset.lower()] if dataset else own
    labels = config.labels if dataset == own else \
        tuple(c for c in data.SUBSETS[DATASET_CLASSES[dataset]] if c in config.labels)
    faces = data.load(dataset, split, labels, root=data_root)
    log.info("evaluating %s on %s %s: %d faces", config.name, dataset, split, len(faces))
    probabilities = classify(model_dir, faces.pixels, config)
    if labels != config.labels:
        probabilities = probabilities[:, [config.labels.index(c) for c in labels]]
        probabilities /= probabilities.sum(axis=1, keepdims=True)
    confusion = metrics.confusion_matrix(faces.labels, probabilities.argmax(1), len(labels))
    return Evaluation(model_dir, config, faces, probabilities, metrics.scores(confusion, labels),
                      metrics.calibration(probabilities, faces.labels), sha256_of(model_dir / MODEL_NAME),
                      "" if dataset == own else dataset)


def load_history(run: Path) -> tuple[list[dict[str, float]], int]:
    """The per-epoch history and best epoch of a training run folder (its state.json)."""
    folder = Run(run)
    return folder.history, folder.best_epoch


# --- the report ---

def write_report(evaluation: Evaluation, out: str | Path, run: str | Path | None = None,
                 command: str | None = None, examples: bool = True,
                 history: tuple[list[dict[str, float]], int] | None = None) -> Path:
    """Write report.json, report.md and the figures into ``out``; return the report.md path.

    ``examples=False`` leaves out examples.png, the one figure made of dataset faces. The
    training curves come from ``run``'s state.json, or from ``history`` (epochs, best epoch).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    history, best_epoch = history or (load_history(Path(run)) if run else ([], 0))
    figures = _write_figures(evaluation, out, history, best_epoch, examples)
    command = command or command_line("training.evaluate", [evaluation.model_dir, "--split", evaluation.split,
                                                            *(["--run", run] if run else [])])
    report = {
        "model": evaluation.config.name,
        "model_sha256": evaluation.model_sha256,
        "dataset": evaluation.dataset or dataset_of(evaluation.config),
        "split": evaluation.split,
        "n": len(evaluation.faces),
        "temperature": evaluation.config.temperature,
        "command": command,
        **evaluation.scores.to_dict(),
        "calibration": evaluation.calibration.to_dict(),
        "ece": evaluation.calibration.ece,
        "figures": figures,
    }
    if history:
        report["training"] = {"best_epoch": best_epoch, "epochs": len(history), "history": history}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    path = out / "report.md"
    path.write_text(markdown(report), encoding="utf-8")
    log.info("wrote %s and %d figures", path, len(figures))
    return path


def markdown(report: dict[str, Any]) -> str:
    """report.md from report.json's dict: headline figures, per-class and average scores, confusion matrix."""
    per_class, f4 = report["per_class"], "{:.4f}".format
    return render("evaluation.md.tmpl", {
        **{key: report[key] for key in ("model", "dataset", "split", "n", "model_sha256", "command")},
        "accuracy": f4(report["accuracy"]), "macro_f1": f4(report["macro"]["f1"]),
        "weighted_f1": f4(report["weighted"]["f1"]), "bins": report["calibration"]["bins"],
        "ece": f4(report["ece"]), "temperature": f4(report["temperature"]),
        "per_class_table": table(
            ["class", "precision", "recall", "F1", "support", "TP", "FP", "FN"],
            [[label, f4(c["precision"]), f4(c["recall"]), f4(c["f1"]), c["support"], c["tp"], c["fp"], c["fn"]]
             for label, c in per_class.items()], "lrrrrrrr"),
        "averages_table": table(
            ["average", "precision", "recall", "F1"],
            [*([name, *(f4(report[name][k]) for k in ("precision", "recall", "f1"))]
               for name in ("micro", "macro", "weighted")), ["accuracy", None, None, f4(report["accuracy"])]], "lrrr"),
        "confusion_table": confusion_table(report["labels"], report["confusion_matrix"]),
        "figures": "\n\n".join(f"![{Path(name).stem}]({name})" for name in report["figures"]),
    })


# --- figures (matplotlib, Agg) ---

def _write_figures(evaluation: Evaluation, out: Path, history: list[dict[str, float]],
                   best_epoch: int, examples: bool) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = {
        "confusion_matrix.png": _plot_confusion(plt, evaluation.scores),
        "per_class.png": _plot_per_class(plt, evaluation.scores),
        "reliability.png": _plot_reliability(plt, evaluation.calibration),
    }
    if examples:
        drawn["examples.png"] = _plot_examples(plt, evaluation)
    if history:
        drawn["curves.png"] = _plot_curves(plt, history, best_epoch)
        drawn["distributions.png"] = _plot_distributions(plt, history)
    for name, figure in drawn.items():
        figure.savefig(out / name, dpi=EXAMPLES_DPI if name == "examples.png" else DPI, bbox_inches="tight")
        plt.close(figure)
    return list(drawn)


def _plot_confusion(plt, scores: metrics.Scores):
    counts = scores.confusion
    normalised = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    k = len(scores.labels)
    figure, axes = plt.subplots(1, 2, figsize=(4.2 + 1.1 * k, 0.55 * k + 2.2))
    panels = ((axes[0], counts, "counts", "d"), (axes[1], normalised, "row-normalised (recall)", ".2f"))
    for ax, matrix, title, fmt in panels:
        ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", fontsize=8,
                        color="white" if normalised[i, j] > 0.5 else "black")
        ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=title)
        ax.set_xticklabels(scores.labels, rotation=45, ha="right")
        ax.set_yticklabels(scores.labels)
    figure.tight_layout()
    return figure


def _plot_per_class(plt, scores: metrics.Scores):
    k = len(scores.labels)
    x = np.arange(k)
    figure, ax = plt.subplots(figsize=(1.0 * k + 2.5, 3.2))
    for offset, name in zip((-0.27, 0.0, 0.27), ("precision", "recall", "f1")):
        ax.bar(x + offset, [getattr(c, name) for c in scores.per_class], 0.27, label=name)
    ax.axhline(scores.accuracy, color="grey", linestyle="--", linewidth=1, label=f"accuracy {scores.accuracy:.3f}")
    ax.set(xticks=x, ylim=(0, 1), ylabel="score", title="per-class precision / recall / F1")
    ax.set_xticklabels([f"{c.label}\n(n={c.support})" for c in scores.per_class], fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure


def _plot_reliability(plt, calibration: metrics.Calibration):
    edges, count = calibration.edges, calibration.count
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    figure, (ax, hist) = plt.subplots(1, 2, figsize=(7.5, 3.2))
    filled = count > 0
    ax.bar(centres[filled], calibration.accuracy[filled], width * 0.9, label="accuracy", color="tab:blue")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-1 probability)", ylabel="accuracy",
           title=f"reliability, ECE {calibration.ece:.4f}")
    ax.legend(fontsize=7, loc="upper left")
    hist.bar(centres, count, width * 0.9, color="tab:gray")
    hist.set(xlim=(0, 1), xlabel="confidence", ylabel="faces", title="confidence histogram")
    figure.tight_layout()
    return figure


def _plot_examples(plt, evaluation: Evaluation):
    faces, labels = evaluation.faces, evaluation.scores.labels
    rng = np.random.default_rng(EXAMPLE_SEED)
    shown = np.sort(rng.permutation(len(faces))[:EXAMPLES])
    columns = 6
    rows = int(np.ceil(len(shown) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.4))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, i in zip(np.ravel(axes), shown):
        true, predicted = faces.labels[i], evaluation.predicted[i]
        ax.imshow(faces.pixels[i], cmap="gray", vmin=0, vmax=255)
        wrong = true != predicted
        ax.set_title(f"{labels[true]}\n→ {labels[predicted]} {evaluation.probabilities[i, predicted]:.2f}",
                     fontsize=7, color="red" if wrong else "black")
        if wrong:
            ax.axis("on")
            ax.set(xticks=[], yticks=[])
            for spine in ax.spines.values():
                spine.set(color="red", linewidth=2)
    figure.suptitle("true → predicted (confidence); red: wrong", fontsize=8)
    figure.tight_layout()
    return figure


def _series(history: list[dict[str, float]], key: str) -> np.ndarray:
    return np.array([epoch.get(key, np.nan) for epoch in history], np.float64)


def _plot_curves(plt, history: list[dict[str, float]], best_epoch: int):
    epochs = _series(history, "epoch")
    figure, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        ax.plot(epochs, _series(history, metric), marker=".", label="train")
        ax.plot(epochs, _series(history, f"val_{metric}"), marker=".", label="validation (PublicTest)")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}")
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


def _plot_distributions(plt, history: list[dict[str, float]]):
    figure, axes = plt.subplots(2, 2, figsize=(8, 5.5))
    for column, metric in enumerate(("accuracy", "loss")):
        values = {name: _series(history, key) for name, key in (("train", metric), ("validation", f"val_{metric}"))}
        values = {name: v[~np.isnan(v)] for name, v in values.items()}
        bins = np.histogram_bin_edges(np.concatenate(list(values.values())), bins=min(12, max(2, len(history))))
        for name, v in values.items():
            axes[0, column].hist(v, bins=bins, alpha=0.6, label=name)
        axes[0, column].set(xlabel=metric, ylabel="epochs", title=f"per-epoch {metric}: histogram")
        axes[0, column].legend(fontsize=7)
        axes[1, column].boxplot(list(values.values()))
        axes[1, column].set_xticks(range(1, len(values) + 1), list(values))
        axes[1, column].set(ylabel=metric, title=f"per-epoch {metric}: box plot")
    figure.tight_layout()
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path, help="emofer model folder (model.onnx + config.json)")
    parser.add_argument("--split", default="PrivateTest", choices=data.SPLITS)
    parser.add_argument("--dataset", choices=sorted(DATASETS),
                        help="score on another dataset than the model's own, over the emotions both name")
    parser.add_argument("--run", type=Path, help="training run folder: adds curves.png and distributions.png")
    parser.add_argument("--out", type=Path, help="report folder (default docs/models/<short name>/)")
    parser.add_argument("--data", type=Path, help="dataset archive or folder (default: ../shared/data)")
    parser.add_argument("--no-examples", action="store_true", help="leave out examples.png (dataset faces)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    evaluation = evaluate(args.model_dir, args.split, args.data, args.dataset)
    report = write_report(evaluation, args.out or default_out(evaluation.config), args.run,
                          command_line("training.evaluate", sys.argv[1:] if argv is None else argv),
                          examples=not args.no_examples)
    print(f"{evaluation.config.name} {evaluation.split} accuracy {evaluation.scores.accuracy:.4f} "
          f"on {evaluation.scores.n} faces (macro F1 {evaluation.scores.macro.f1:.4f}, "
          f"ECE {evaluation.calibration.ece:.4f}); report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
