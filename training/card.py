"""The model card (README.md on the Hub) of an emofer model folder, from its JSON.

    card.write(model_dir, report_dir)

Filled from ``config.json`` (``model_dir``) and the PrivateTest ``report.json`` that
``training.evaluate.write_report`` wrote (``report_dir``), through
``templates/model_card.md.tmpl``. Written by ``training.folder.finish``, the one writer of a model folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emofer.config import CONFIG_NAME, ModelConfig
from emofer.hub import MOVED_MODELS, bundled_models
from training.paths import REPO_ROOT, dataset_of
from training.report import confusion_table, render, table

CARD_NAME = "README.md"
#: The copy of the card (without the Hub front matter) beside the report in docs/models/<short>/.
DOCS_CARD_NAME = "card.md"
REPORT_JSON = "report.json"
TEMPLATE = "model_card.md.tmpl"
#: benchmarks.wild's results (expw-dev: real web photos, end to end), where a model has a row.
WILD_JSON = REPO_ROOT / "docs" / "wild.json"

FERPLUS_LICENCE = ("- FER+ (Barsoum et al., 2016): FER2013 relabelled by 10 annotators per face; the labels\n"
                   "  are released by Microsoft under the MIT licence.\n")
FLIP_NOTE = ("\nThe graph averages the probabilities of the face and of its mirror image (flip "
             "test-time augmentation).\n")


def write(model_dir: str | Path, report_dir: str | Path) -> Path:
    """Write README.md into ``model_dir`` and its docs copy (card.md) into ``report_dir``; return README.md."""
    model_dir, report_dir = Path(model_dir), Path(report_dir)
    report = json.loads((report_dir / REPORT_JSON).read_text(encoding="utf-8"))
    card = model_card(ModelConfig.load(model_dir / CONFIG_NAME), report)
    (model_dir / CARD_NAME).write_text(card, encoding="utf-8")
    (report_dir / DOCS_CARD_NAME).write_text(docs_copy(card), encoding="utf-8")
    return model_dir / CARD_NAME


def docs_copy(card: str) -> str:
    """The card without its YAML front matter (for the docs site)."""
    return card.split("---\n", 2)[-1].lstrip()


def model_card(config: ModelConfig, report: Mapping[str, Any]) -> str:
    """README.md for the Hub: front matter, metrics, intended use, limitations, data licences.

    ``report`` is the model's PrivateTest report.json (per-class scores and confusion matrix).
    """
    trained, metrics = config.trained_on, config.metrics
    ferplus = dataset_of(config) == "ferplus"
    private, public = metrics["PrivateTest"], metrics["PublicTest"]
    per_class = report["per_class"]
    size, short = f"{config.input.height}x{config.input.width}", config.name.rsplit("/", 1)[-1]
    return render(TEMPLATE, {
        "name": config.name, "short": short, "dataset": dataset_of(config),
        "ferplus_yaml": "\n  - ferplus" if ferplus else "", "ferplus_licence": FERPLUS_LICENCE if ferplus else "",
        "what": _what(trained), "classifies": "classify" if trained.get("ensemble_with") else "classifies",
        "n_labels": len(config.labels), "labels": ", ".join(config.labels), "about_graph": _about_graph(config),
        "training_set": "FER+" if ferplus else "FER2013", "temperature": f"{config.temperature:.4f}",
        "size": size, "colour": "grey" if config.input.channels == 1 else "colour",
        "lost": "colour and fine detail are lost" if config.input.channels == 1 else "fine detail is lost",
        "epochs_line": _epochs_line(trained),
        "enlarged": "" if size == "48x48" else f" (resized to {size} by emofer, as at run time)",
        "splits_table": table(
            ["split", "faces", "accuracy", "macro F1", "weighted F1", "ECE"],
            [["PrivateTest", private["n"], *(f"{private[k]:.4f}" for k in ("accuracy", "macro_f1", "weighted_f1",
                                                                           "ece"))],
             ["PublicTest (model selection)", public["n"], f"{public['accuracy']:.4f}", None, None, None]], "lrrrrr"),
        "per_class_table": table(
            ["class", "precision", "recall", "F1", "support"],
            [[label, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", c["support"]]
             for label, c in per_class.items()], "lrrrr"),
        "confusion_table": confusion_table(report["labels"], report["confusion_matrix"]),
        "supports": ", ".join(f"{label} {c['support']}" for label, c in per_class.items()),
        **{key: trained.get(key) for key in ("recipe", "keras", "backend", "command", "machine")},
        "export_line": _export_line(config), "duration": _duration(float(trained.get("train_seconds", 0.0))),
        "model_sha256": config.model_sha256,
        "real_photos": _real_photos(config.name) + (_fer2013(short) if ferplus else ""),
    })


def _real_photos(name: str, results: Path = WILD_JSON) -> str:
    """A section with the model's expw-dev row from docs/wild.json, or nothing when it has none."""
    rows = json.loads(results.read_text(encoding="utf-8")) if results.exists() else {}
    row = next((r for r in rows.get("results", []) if r["model"] == name), None)
    if row is None:
        return ""
    recall = row["recall"]
    return ("\n## On real photos (expw-dev)\n\n"
            "End to end on expw-dev (700 web photos, 729 labelled faces; the bundled YuNet detector, each "
            "labelled face matched at IoU >= 0.3; a development set, used for choosing, never for training): "
            f"`{rows.get('command', 'python -m benchmarks.wild')}`\n\n"
            + table(["accuracy", "macro recall", "faces found", *recall],
                    [[f"{row['accuracy']:.3f}", f"{row['macro_recall']:.3f}", f"{row['detector_recall']:.3f}",
                      *(f"{r:.2f}" for r in recall.values())]], "r" * (3 + len(recall)))
            + "\n\nIts labels are noisy (one annotator, web photos); compare models on it rather than reading "
              "the figures as absolute. All models and fer: `docs/wild.md` in the emofer repository.\n")


def _fer2013(short: str, docs: Path = REPO_ROOT / "docs" / "models") -> str:
    """A section with a FER+ model's FER2013 PrivateTest figure (docs/models/<short>/fer2013/report.json,
    written by ``training.evaluate --dataset fer2013``), or nothing when it has none."""
    path = docs / short / "fer2013" / "report.json"
    if not path.is_file():
        return ""
    report = json.loads(path.read_text(encoding="utf-8"))
    return ("\n## On FER2013's own labels\n\n"
            f"FER2013 PrivateTest ({report['n']} faces, one label each), over the 7 emotions FER2013 and FER+ both "
            f"name (this model's probabilities of those, renormalised): accuracy **{report['accuracy']:.4f}**. "
            f"Command: `{report['command']}`; report: `docs/models/{short}/fer2013/report.md` in the emofer "
            "repository.\n")


def _what(trained: Mapping[str, Any]) -> str:
    """'A small convolutional network (`net`)', or the ensemble it averages."""
    members, network = list(trained.get("ensemble_with") or []), f"`{trained.get('network', '?')}`"
    if not members:
        return f"A small convolutional network ({network})"
    return (f"{len(members) + 1} small convolutional networks averaged in one graph ({network} from run "
            f"`{trained.get('recipe', '?')}`, with {', '.join(f'`{m}`' for m in members)})")


def _about_graph(config: ModelConfig) -> str:
    """Paragraphs on flip test-time augmentation, head refits, ensembles and int8 quantisation, where they apply."""
    text = FLIP_NOTE if config.trained_on.get("tta_flip") else ""
    web = _web_block(config.trained_on.get("recipe"))
    if web:
        text += (f"\nIts network was trained on FER+ Training mixed with expw-train's web faces (recipe "
                 f"`{config.trained_on['recipe']}`: {web['share']:.0%} of each epoch, their one-annotator labels "
                 f"smoothed by {web['label_smoothing']}, each face framed by the bundled YuNet as `predict` frames it), "
                 "its epoch chosen on FER+ Valid and a validation part of expw-train carved by photo; expw-dev, the "
                 "set its real-photo figures come from, was never trained on.\n")
    refit = config.trained_on.get("head_refit")
    if refit:
        faces = ", ".join(f"{n:,} {source}" for source, n in refit["faces"].items())
        text += (f"\nIts classifier layer was fitted again (`python -m training.refit`) on the frozen features of "
                 f"`{refit['from']}` for {faces} faces (each web face and its mirror, framed by the bundled YuNet as "
                 f"`predict` frames a face; the web faces weigh {refit['web_share']} of the fit and their "
                 f"one-annotator labels are smoothed by {refit['label_smoothing']}); every other layer is "
                 f"`{refit['from']}`'s.\n")
    members = config.trained_on.get("onnx_ensemble")
    if members:
        text += ("\nAn ensemble in one graph (`python -m training.ensemble`): the weighted mean of "
                 + ", ".join(f"`{m['model']}` ({m['weight']})" for m in members)
                 + ", each calibrated as emofer serves it alone.\n")
        smaller = [m for m in members if m.get("input") and tuple(m["input"]) != config.input.size]
        if smaller:
            text += (f"\nIt takes {config.input.height}x{config.input.width} faces; "
                     + ", ".join(f"`{m['model']}` takes {m['input'][0]}x{m['input'][1]}" for m in smaller)
                     + ", shrunk from the input inside the graph by an area resize (what emofer's own resize does).\n")
    quant, adjusted = config.trained_on.get("quantization"), config.trained_on.get("logit_adjustment")
    if adjusted:
        share, aim = PRIOR_WORDS.get(adjusted.get("prior", "targets"), PRIOR_WORDS["targets"])
        text += (f"\nLogit-adjusted from `{adjusted['from']}`: each emotion's probability is divided by {share} "
                 f"to the power tau = {adjusted['tau']} and renormalised, in the graph (post-hoc logit "
                 f"adjustment, `python -m training.adjust`), so that {aim}"
                 + (f" ({', '.join(adjusted['excluded'])} left as the source model says it)" if adjusted.get("excluded")
                    else "") + _unadjusted(config.metrics) + "\n")
        if quant:
            text += f"\nIts network is int8, quantised from `{quant['from']}` ({quant['method']}).\n"
    elif quant:
        text += (f"\nQuantised to int8 from `{quant['from']}` ({quant['method']}; activation ranges "
                 f"calibrated on {quant['calibration']}): a smaller file and faster on CPUs (sizes and per-face "
                 f"times: docs/models.md in the emofer repository). The float model scores "
                 f"{config.metrics.get('float_PrivateTest')} on PrivateTest and "
                 f"{config.metrics.get('float_PublicTest')} on PublicTest.\n")
    return text


def _web_block(recipe: str | None) -> dict[str, Any] | None:
    """The ``web`` block of the recipe a model was trained with, if its file is here and has one."""
    from training.recipe import RECIPES, Recipe

    if not recipe or not (RECIPES / f"{recipe}.json").is_file():
        return None
    return Recipe.load(recipe).web


#: How a model card says what an adjustment divided by, and what for, per ``training.adjust --prior``.
PRIOR_WORDS = {
    "targets": ("its share of the training targets", "rare emotions are said more often"),
    "majority": ("its share of the training targets", "rare emotions are said more often"),
    "web": ("the model's mean answer for it on expw-train's carved validation web faces",
            "the emotions it over-answers on web faces are said less and those it is shy of more"),
}


def _unadjusted(metrics: Mapping[str, Any]) -> str:
    """The source model's scores; a candidate source had its test split left unread."""
    public, private = metrics.get("unadjusted_PublicTest"), metrics.get("unadjusted_PrivateTest")
    if private is None:
        return (f". The unadjusted model scores {public} on PublicTest (it was a candidate, not bundled: "
                "its test split was not read).")
    return f". The unadjusted model scores {private} on PrivateTest and {public} on PublicTest."


def _checkpoint_flag(trained: dict) -> str:
    """`` --checkpoint NAME`` for a model exported from another checkpoint than best.keras."""
    checkpoint = trained.get("checkpoint", "best.keras")
    return "" if checkpoint == "best.keras" else f" --checkpoint {checkpoint}"


def _epochs_line(trained: dict) -> str:
    """How long the run was and which of its epochs the model is."""
    epochs, best, checkpoint = trained.get("epochs"), trained.get("best_epoch"), trained.get("checkpoint", "best.keras")
    if checkpoint == "best.keras":
        return f"{epochs} epochs, best epoch {best} on PublicTest"
    if checkpoint == "last.keras":
        return (f"{epochs} epochs; the weights are the last epoch's (`last.keras`, epoch {epochs}; "
                f"`best.keras` was epoch {best})")
    return f"{epochs} epochs; the weights are `{checkpoint}`'s"


def _export_line(config: ModelConfig) -> str:
    """The command that made this model folder from its run (or from its float model).

    A logit-adjusted model whose int8 source was never shipped (bundled, or once bundled and now in the
    repository's models/) was made from candidates: the
    export and quantisation of those candidates (in CAND/) come before the adjustment.
    """
    trained, short = config.trained_on, config.name.rsplit("/", 1)[-1]
    quant, adjusted = trained.get("quantization"), trained.get("logit_adjustment")
    refit = trained.get("head_refit")
    if trained.get("onnx_ensemble"):
        return _ensemble_line(config, adjusted)
    if refit:
        float_name = quant["from"] if quant else config.name
        float_short = float_name.rsplit("/", 1)[-1]
        final = "src/emofer/models"
        source, steps = refit["from"], []
        if source not in bundled_models() and source not in MOVED_MODELS:  # a candidate exported from the run
            source_short = source.rsplit("/", 1)[-1]
            steps.append(f"python -m training.export RUN_DIR{_checkpoint_flag(trained)} --name {source} --out "
                         f"CAND/{source_short} --candidate" + " --tta-flip" * bool(trained.get("tta_flip")))
            source = f"CAND/{source_short}"
        steps += [f"python -m training.refit {source} --web-share {refit['web_share']} --label-smoothing "
                 f"{refit['label_smoothing']} --name {float_name} --out "
                 + (f"CAND/{float_short} --candidate" if quant or adjusted else f"{final}/{short}")]
        if quant:
            q_name = adjusted["from"] if adjusted else config.name
            q_short = q_name.rsplit("/", 1)[-1]
            steps.append(f"python -m training.quantize CAND/{float_short} --name {q_name} --out "
                         + (f"CAND/{q_short} --candidate --max-drop 0.01" if adjusted else f"{final}/{short}")
                         + _stem_flag(quant))
        if adjusted:
            source = adjusted["from"].rsplit("/", 1)[-1]
            steps.append(_adjust_command(f"CAND/{source}", adjusted, config.name, f"{final}/{short}"))
        return "`, then `".join(steps)
    graph_flags = " --tta-flip" * bool(trained.get("tta_flip")) + " --calibrate" * (config.temperature != 1.0)
    if adjusted:
        source = adjusted["from"].rsplit("/", 1)[-1]
        chain = ""
        if quant and adjusted["from"] not in bundled_models() and adjusted["from"] not in MOVED_MODELS:
            parent = quant["from"].rsplit("/", 1)[-1]
            chain = (f"python -m training.export RUN_DIR{_checkpoint_flag(trained)} --name {quant['from']} --out "
                     f"CAND/{parent} --candidate{graph_flags}`, "
                     f"then `python -m training.quantize CAND/{parent} --out CAND/{source} --candidate --max-drop 0.01"
                     f"{_stem_flag(quant)}`, "
                     "then `")
        return chain + _adjust_command(f"{'CAND' if chain else 'src/emofer/models'}/{source}", adjusted, config.name,
                                       f"src/emofer/models/{short}")
    if quant:
        return (f"python -m training.quantize src/emofer/models/{quant['from'].rsplit('/', 1)[-1]} "
                f"--out src/emofer/models/{short}{_stem_flag(quant)}")
    ensemble = "".join(f" --ensemble runs/{m}" for m in trained.get("ensemble_with") or [])
    return f"python -m training.export RUN_DIR --name {config.name} --out src/emofer/models/{short}{ensemble}{graph_flags}"


def _stem_flag(quant: Mapping[str, Any]) -> str:
    """`` --float-stem`` for a model quantised with its first convolution left in float."""
    return " --float-stem" if quant.get("float_nodes") else ""


def _ensemble_line(config: ModelConfig, adjusted: Mapping[str, Any] | None) -> str:
    """training.ensemble over the members (a shipped one by name, a candidate from CAND/), then, for an
    adjusted ensemble, training.adjust of that candidate."""
    short = config.name.rsplit("/", 1)[-1]
    members = config.trained_on["onnx_ensemble"]
    shipped = set(bundled_models()) | MOVED_MODELS

    def where(name: str) -> str:
        return name if name in shipped else f"CAND/{name.rsplit('/', 1)[-1]}"

    made = adjusted["from"] if adjusted else config.name
    line = ("python -m training.ensemble " + " ".join(where(m["model"]) for m in members)
            + "".join(f" --weight {m['weight']}" for m in members) + f" --name {made} --out "
            + (f"CAND/{made.rsplit('/', 1)[-1]} --candidate" if adjusted else f"src/emofer/models/{short}"))
    if not adjusted:
        return line
    return line + "`, then `" + _adjust_command(f"CAND/{made.rsplit('/', 1)[-1]}", adjusted, config.name,
                                                f"src/emofer/models/{short}")


def _adjust_command(source: str, adjusted: Mapping[str, Any], name: str, out: str) -> str:
    """The training.adjust line that made a logit-adjusted folder from ``source``."""
    return (f"python -m training.adjust {source} --tau {adjusted['tau']} --prior {adjusted['prior']}"
            + "".join(f" --exclude {label}" for label in adjusted.get("excluded", [])) + f" --name {name} --out {out}")


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
