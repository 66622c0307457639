"""MkDocs hooks for the emofer site (mkdocs.yml: ``hooks: [docs/hooks.py]``).

- Pages that other tools generate (model reports, benchmarks, errors, framing) are listed in
  the nav only when they exist, so ``mkdocs build --strict`` passes in any checkout.
  Links to such a page from other pages become plain text while it is missing.
- Figures a report links to but git does not keep (examples.png shows dataset faces) are
  replaced by a note instead of failing the strict build.
- Tables of the shipped models (bundled in the wheel, or moved out of it into the repository's
  ``models/``) and the commands that reproduce them are written from each model's config.json
  and model card, between ``<!-- emofer:NAME -->`` and ``<!-- /emofer:NAME -->`` markers, so they
  cannot drift from what is shipped.
- ``emofer ... --help`` texts are inserted at ``<!-- emofer:help ARGS -->`` markers.
- Sphinx roles in docstrings (:class:`Face`) are shown as code.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import logging
import os
import re
import shlex
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.emofer")

REPO = Path(__file__).resolve().parents[1]
#: Nav pages that may be absent (written by training/export.py, benchmarks/, other changes).
OPTIONAL_PAGES = ("models/*/report.md", "models/*/card.md", "comparison.md", "benchmarks.md", "errors.md", "framing.md")
#: Images from examples/images served under images/ on the site.
EXAMPLE_IMAGES = REPO / "examples" / "images"
HELP_COLUMNS = "100"
#: The bundled models' folder in the repository (the moved ones are in models/).
BUNDLED = "src/emofer/models"

_BLOCK = re.compile(r"<!-- emofer:(?P<name>[\w-]+) -->.*?<!-- /emofer:(?P=name) -->", re.S)
_HELP = re.compile(r"<!-- emofer:help (?P<args>[^>]*?) -->")
_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<target>[^)\s]+)\)")
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]+)\]\((?P<target>[^)\s#]+\.md)(?P<anchor>#[^)\s]*)?\)")
_ROLE = re.compile(r":(?:class|meth|func|attr|exc|mod|data|obj|const):(<code>)~?")


# -- nav -----------------------------------------------------------------------------------


def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])
    config["nav"] = _prune(config["nav"], docs)
    return config


def _prune(items: list, docs: Path) -> list:
    kept = []
    for item in items:
        title, target = next(iter(item.items())) if isinstance(item, dict) else (None, item)
        if isinstance(target, list):
            target = _prune(target, docs)
            if not target:
                continue
        elif isinstance(target, str) and _optional(target) and not (docs / target).is_file():
            log.info("nav: %s is not there (yet); left out", target)
            continue
        kept.append({title: target} if title is not None else target)
    return kept


def _optional(page: str) -> bool:
    return any(fnmatch.fnmatch(page, pattern) for pattern in OPTIONAL_PAGES)


# -- files ---------------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    for path in sorted(EXAMPLE_IMAGES.glob("*.png")) + sorted(EXAMPLE_IMAGES.glob("*.jpg")):
        files.append(File(f"images/{path.name}", str(EXAMPLE_IMAGES.parent), config["site_dir"],
                          config["use_directory_urls"]))
    return files


# -- page sources ----------------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs = Path(config["docs_dir"])
    markdown = _BLOCK.sub(lambda m: _generated(m.group("name"), page.file.src_uri, docs), markdown)
    markdown = _HELP.sub(lambda m: _help(shlex.split(m.group("args"))), markdown)
    markdown = _unlink_missing_pages(markdown, page, docs)
    if page.file.src_uri.startswith("models/"):
        markdown = _drop_missing_images(markdown, page, files)
    return markdown


def _generated(name: str, page: str, docs: Path) -> str:
    if name == "models-table":
        return _models_table(page, docs)
    if name == "reproduce":
        return _reproduce()
    raise ValueError(f"docs/{page}: unknown generated block emofer:{name}")


def _shipped() -> list[tuple[str, dict, str, str]]:
    """(short name, config.json, model card text, folder in the repository) of each shipped model:
    the bundled ones (default first), then those moved out of the wheel into the repository's models/."""
    from emofer.hub import ACCURATE_MODEL, DEFAULT_MODEL, MOVED_MODELS, bundled_models

    moved = [REPO / "models" / name.split("/", 1)[1] for name in MOVED_MODELS]
    found = []
    for folder, where in [*((f, BUNDLED) for f in bundled_models().values()),
                          *((f, "models") for f in moved if (f / "config.json").is_file())]:
        card = folder / "README.md"
        found.append((folder.name, json.loads((folder / "config.json").read_text(encoding="utf-8")),
                      card.read_text(encoding="utf-8") if card.is_file() else "", where))
    return sorted(found, key=lambda model: (model[3] != BUNDLED, model[1].get("name") != DEFAULT_MODEL,
                                            model[1].get("name") != ACCURATE_MODEL, model[0]))


def _models_table(page: str, docs: Path) -> str:
    """"Which model should I use": real photos end to end and time per face first, then each test split
    under its own name (FER+ test and FER2013 PrivateTest are different faces and labels)."""
    from emofer.hub import ACCURATE_MODEL, DEFAULT_MODEL

    base = Path(page).parent
    wild = _rows(docs / "wild.json")
    speed = _rows(docs / "perface.json")
    roles = {DEFAULT_MODEL: "**the default**: photos, video, webcam, `--ray`",
             ACCURATE_MODEL: "**the accurate tier**: batch annotation, `--ray`, where 4-5x the time per face is fine"}
    rows = ["| model | where | use it for | real photos (expw-dev, end to end) | macro recall | ms per face "
            "| FER+ test | FER2013 PrivateTest | emotions | card |",
            "|---|---|---|---:|---:|---:|---:|---:|---|---|"]
    for short, config, _, where in _shipped():
        name, metrics = config["name"], config.get("metrics", {})
        on_wild, on_speed = wild.get(name, {}), speed.get(name, {})
        own = metrics.get("PrivateTest", {}).get("accuracy")
        ferplus = config.get("trained_on", {}).get("dataset") == "ferplus"
        cross = docs / "models" / short / "fer2013" / "report.json"
        fer2013 = json.loads(cross.read_text(encoding="utf-8"))["accuracy"] if cross.is_file() else None
        card = Path("models") / short / "card.md"
        link = f"[card]({os.path.relpath(card, base)})" if (docs / card).is_file() else "—"
        rows.append(
            f"| `{name}` | {'bundled' if where == BUNDLED else f'`models/{short}` of a clone'} "
            f"| {roles.get(name, _use(config))} "
            f"| {_number(on_wild.get('accuracy'), 3)} | {_number(on_wild.get('macro_recall'), 3)} "
            f"| {_number(on_speed.get('ms_per_face'), 2)} | {_number(own if ferplus else None)} "
            f"| {_number(fer2013 if ferplus else own)}{' (7 shared)' if ferplus and fer2013 is not None else ''} "
            f"| {len(config['labels'])} | {link} |")
    if len(rows) == 2:
        return "No model is shipped in this checkout."
    return "\n".join(rows)


def _use(config: dict) -> str:
    """What a bundled model other than the default is for, in a few words."""
    if len(config["labels"]) == 5:
        return "the 5-emotion task of the original report"
    trained = config.get("trained_on", {})
    if trained.get("logit_adjustment"):
        return "an earlier default (its answers)"
    return "FER+ / FER2013 faces" if trained.get("dataset") else "—"


def _rows(path: Path) -> dict[str, dict]:
    """A committed benchmark JSON's results by model name ({} when the file is absent)."""
    if not path.is_file():
        return {}
    return {row["model"]: row for row in json.loads(path.read_text(encoding="utf-8")).get("results", [])}


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "n/a"


def _reproduce() -> str:
    parts = []
    shipped = _shipped()
    folders = {config["name"]: where for _, config, _, where in shipped}
    for short, config, card, where in shipped:
        trained = config.get("trained_on", {})
        quant = trained.get("quantization")
        if quant and not trained.get("logit_adjustment") and not trained.get("head_refit"):  # a plain int8 copy
            source = quant["from"].rsplit("/", 1)[-1]
            parts += [f"### `{config['name']}`", "", f"int8 quantisation of `{quant['from']}` "
                      f"({quant['method']}; {quant['calibration']}), after that model's export:", "", "```bash",
                      f"python -m training.quantize {folders.get(quant['from'], where)}/{source} --out {where}/{short}",
                      "```", "", f"The model.onnx shipped has sha256 `{config.get('model_sha256')}`.", ""]
            continue
        recipe = trained.get("recipe") or "?"
        run = f"runs/{recipe}"
        train = _with_out(trained.get("command") or f"python -m training.train --recipe {recipe} --out RUN", run)
        train += _epochs_flag(recipe, trained, train)
        export_line = re.search(r"^- Export: (.+)$", card, re.M)  # every step after training, in order
        export = "\n".join(re.findall(r"`([^`]+)`", export_line.group(1))) if export_line else (
            f"python -m training.export RUN_DIR --name {config['name']} --out {where}/{short}"
            + (" --tta-flip" if trained.get("tta_flip") else "")
            + (" --calibrate" if config.get("temperature", 1.0) != 1.0 else ""))
        parts += [
            f"### `{config['name']}`",
            "",
            f"Recipe `training/recipes/{recipe}.json`, {trained.get('epochs', '?')} epochs "
            f"(best {trained.get('best_epoch', '?')}) on {trained.get('machine', '?')} with Keras "
            f"{trained.get('keras', '?')} ({trained.get('backend', '?')} backend).",
            "",
            "```bash",
            train,
            export.replace("RUN_DIR", run, 1),
            f"python -m training.publish {where}/{short} --repo {config['name']} --dry-run",
            "```",
            "",
            *([f"The graph averages this run with {', '.join(f'`{m}`' for m in members)} ("
               + ("`python -m training.ensemble` over candidate folders: this run's export and int8 copy are the "
                  "first; each member's own chain of export, refit and int8"
                  if trained.get("onnx_ensemble") else "`--ensemble`; every run's command")
               + " is in [Models](models.md#how-the-shipped-models-were-trained)).", ""]
              if (members := trained.get("ensemble_with")) else []),
            f"The same on a GPU: prefix the first command with `KERAS_BACKEND=jax` (or `torch`). "
            f"The model.onnx shipped has sha256 `{config.get('model_sha256')}`.",
            "",
        ]
    return "\n".join(parts) or "No model is shipped in this checkout."


def _epochs_flag(recipe: str, trained: dict, command: str) -> str:
    """`` --epochs N`` when the shipped run was stopped before its recipe's end, not by early stopping."""
    path = REPO / "training" / "recipes" / f"{recipe}.json"
    if "--epochs" in command or not path.is_file():
        return ""
    planned = json.loads(path.read_text(encoding="utf-8"))
    epochs, best = trained.get("epochs"), trained.get("best_epoch")
    if not isinstance(epochs, int) or not isinstance(best, int) or epochs >= planned.get("epochs", 0):
        return ""
    stopped_early = epochs - best >= planned.get("patience", 10)
    return "" if stopped_early else f" --epochs {epochs}"


def _with_out(command: str, run: str) -> str:
    """``command`` with its ``--out`` folder replaced by ``run`` (the original was a local path),
    and other paths in that local runs folder (``--init-from``, ``--teacher``) moved beside it."""
    words = shlex.split(command)
    if "--out" in words and words.index("--out") + 1 < len(words):
        local = Path(words[words.index("--out") + 1]).parent
        words[words.index("--out") + 1] = run
        runs = Path(run).parent
        words = [str(runs / Path(w).relative_to(local)) if Path(w).is_absolute() and Path(w).is_relative_to(local)
                 else w for w in words]
    return shlex.join(words)


def _help(args: list[str]) -> str:
    """The --help text of ``emofer ARGS`` (or ``emofer-cam`` when ARGS starts with it), as a code block."""
    from emofer import cam, cli

    main, argv = (cam.main, args[1:]) if args[:1] == ["emofer-cam"] else (cli.main, args)
    stream = io.StringIO()
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        with contextlib.redirect_stdout(stream), contextlib.suppress(SystemExit):
            main([*argv, "--help"])
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return "```text\n" + stream.getvalue().rstrip() + "\n```"


def _unlink_missing_pages(markdown: str, page: Any, docs: Path) -> str:
    """Links to optional pages that are not there (yet) become their plain text."""
    base = Path(page.file.src_uri).parent

    def replace(match: re.Match) -> str:
        target = os.path.normpath(base / match.group("target")).replace(os.sep, "/")
        if _optional(target) and not (docs / target).is_file():
            return match.group("text")
        return match.group(0)

    return _LINK.sub(replace, markdown)


def _drop_missing_images(markdown: str, page: Any, files: Any) -> str:
    """Replace images whose file is not in this checkout by a note saying how to make it."""
    base = Path(page.file.src_uri).parent

    def replace(match: re.Match) -> str:
        target = match.group("target")
        if "://" in target or files.get_file_from_path((base / target).as_posix()) is not None:
            return match.group(0)
        return (f"*{match.group('alt') or target}: `{target}` is not in the repository (it shows dataset "
                f"faces); `python -m training.evaluate` writes it.*")

    return _IMAGE.sub(replace, markdown)


# -- rendered pages --------------------------------------------------------------------------


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return _ROLE.sub(r"\1", html)
