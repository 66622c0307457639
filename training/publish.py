"""Validate an emofer model folder and upload it to the Hugging Face Hub.

    python -m training.publish MODEL_DIR --repo emofer/fer5 [--revision v1] [--private]
    python -m training.publish MODEL_DIR --repo emofer/fer5 --dry-run [--stage DIR]

The files that would be uploaded (model.onnx, config.json, README.md) are first copied into a
staging folder and validated there: config.json parses, its sha256 matches model.onnx, the
model card has Hub front matter, and onnxruntime loads the graph with the config's input
shape. ``--dry-run`` stops after that and lists the files; otherwise the staging folder is
uploaded and ``--revision`` tags the commit. Log in first with ``hf auth login``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emofer.config import CONFIG_NAME, MODEL_NAME, ModelConfig
from emofer.errors import ModelLoadError
from emofer.model import OnnxClassifier, sha256_of
from training import folder as model_folder

log = logging.getLogger("emofer.training")

CARD_NAME = model_folder.CARD_NAME
#: Exactly the files a published model repo holds: those training.folder writes.
UPLOAD_FILES = model_folder.FILES
#: Front-matter keys the model card must set.
CARD_KEYS = ("library_name", "license", "tags")


class PublishError(RuntimeError):
    """The model folder is not fit to publish; the message says which file and why."""


@dataclass(frozen=True)
class Staged:
    """A validated staging folder: what would be (or was) uploaded."""

    folder: Path
    config: ModelConfig
    files: tuple[tuple[str, int], ...]  # (name, bytes)

    def listing(self) -> str:
        return "\n".join(f"{size:>12,d}  {name}" for name, size in self.files)


def validate(folder: str | Path) -> ModelConfig:
    """Check that ``folder`` is a complete, consistent emofer model; return its config."""
    folder = Path(folder)
    missing = [name for name in UPLOAD_FILES if not (folder / name).is_file()]
    if missing:
        raise PublishError(f"{folder} lacks {missing}; export it with python -m training.export")
    try:
        config = ModelConfig.load(folder / CONFIG_NAME)
    except ModelLoadError as exc:
        raise PublishError(str(exc)) from exc
    actual = sha256_of(folder / MODEL_NAME)
    if config.model_sha256 != actual:
        raise PublishError(f"{folder / CONFIG_NAME}: model_sha256 {config.model_sha256} does not match "
                           f"{MODEL_NAME} ({actual}); re-export the folder")
    _check_card(folder / CARD_NAME)
    try:
        classifier = OnnxClassifier(folder / MODEL_NAME, config)  # checks the input shape against config
    except ModelLoadError as exc:
        raise PublishError(str(exc)) from exc
    spec = config.input
    probabilities = classifier.run(np.zeros((2, spec.height, spec.width, spec.channels), np.float32))
    if probabilities.shape != (2, len(config.labels)) or not np.allclose(probabilities.sum(1), 1.0, atol=1e-4):
        raise PublishError(f"{folder / MODEL_NAME} does not output probabilities over {len(config.labels)} "
                           f"labels (got shape {probabilities.shape})")
    return config


def _check_card(path: Path) -> None:
    from huggingface_hub import ModelCard

    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise PublishError(f"{path}: the model card must start with YAML front matter ('---')")
    try:
        metadata = ModelCard(text, ignore_metadata_errors=False).data.to_dict()
    except ValueError as exc:
        raise PublishError(f"{path}: its front matter is not valid YAML ({exc})") from exc
    lacking = [key for key in CARD_KEYS if not metadata.get(key)]
    if lacking:
        raise PublishError(f"{path}: front matter lacks {lacking}")
    if metadata["library_name"] != "emofer":
        raise PublishError(f"{path}: library_name is {metadata['library_name']!r}, expected 'emofer'")


def stage(folder: str | Path, staging: str | Path) -> Staged:
    """Copy the upload files of ``folder`` into the empty folder ``staging`` and validate the copy."""
    folder, staging = Path(folder), Path(staging)
    staging.mkdir(parents=True, exist_ok=True)
    if any(staging.iterdir()):
        raise PublishError(f"staging folder {staging} is not empty; everything in it would be uploaded")
    validate(folder)
    model_folder.copy_files(folder, staging)
    config = validate(staging)
    files = tuple((p.name, p.stat().st_size) for p in sorted(staging.iterdir()))
    return Staged(staging, config, files)


def upload(staged: Staged, repo: str, revision: str | None = None, private: bool = False) -> str:
    """Create ``repo`` if needed, upload the staging folder, tag it ``revision``; return the commit URL."""
    from huggingface_hub import HfApi

    if staged.config.name != repo:
        log.warning("config.json names the model %s but it goes to %s; "
                    "users will load it as from_pretrained(%r)", staged.config.name, repo, repo)
    api = HfApi(library_name="emofer")
    api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(repo_id=repo, folder_path=staged.folder, repo_type="model",
                               commit_message=f"{staged.config.name}: model.onnx {staged.config.model_sha256[:12]}")
    if revision:
        api.create_tag(repo, tag=revision, revision=commit.oid, repo_type="model",
                       tag_message=f"{staged.config.name} {revision}")
    return commit.commit_url


def publish(folder: str | Path, repo: str, revision: str | None = None, private: bool = False,
            dry_run: bool = False, staging: str | Path | None = None) -> Staged:
    """Stage and validate ``folder``, then upload it unless ``dry_run``."""
    with tempfile.TemporaryDirectory(prefix="emofer-publish-") as tmp:
        staged = stage(folder, staging or tmp)
        if dry_run:
            log.info("dry run: %s is valid; nothing uploaded to %s", folder, repo)
        else:
            log.info("uploaded %s", upload(staged, repo, revision, private))
    return staged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path, help="model folder from training/export.py")
    parser.add_argument("--repo", required=True, help="Hub repo id, e.g. emofer/fer5")
    parser.add_argument("--revision", help="tag the upload with this name, e.g. v1")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--dry-run", action="store_true", help="stage and validate, upload nothing")
    parser.add_argument("--stage", type=Path, help="staging folder to keep (default: a temporary one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    try:
        staged = publish(args.model_dir, args.repo, args.revision, args.private, args.dry_run, args.stage)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{verb} {staged.config.name} to {args.repo}" + (f" (tag {args.revision})" if args.revision else ""))
    print(staged.listing())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
