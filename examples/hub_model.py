"""A model from the Hugging Face Hub, pinned to a revision, loaded offline from the cache.

    python examples/hub_model.py [--quick]

Online, one line does it: ``EmotionRecognizer.from_pretrained("emofer/fer5", revision="v1")``
downloads the model once into the Hugging Face cache and reads it from there afterwards. This
example runs without a network: it builds that cache itself in a temporary folder (from the
model bundled with emofer, in the layout huggingface_hub writes), turns on HF_HUB_OFFLINE, and
then loads the model exactly as a user would.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: no request leaves this process

import argparse
import hashlib
import shutil
import tempfile
from pathlib import Path

from emofer import EmotionRecognizer, ModelLoadError, hub
from _helpers import EXAMPLE_PHOTO, skip

TAG = "v1"
FILES = ("config.json", "model.onnx", "README.md")


def fill_cache(cache: Path, repo: str, folder: Path, tag: str) -> str:
    """Put ``folder``'s model files into a Hugging Face cache as ``repo`` at a made-up commit
    that ``tag`` points to; return the commit hash. (``emofer download`` does this for real.)"""
    commit = hashlib.sha1((folder / "model.onnx").read_bytes()).hexdigest()
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name in FILES:
        if (folder / name).is_file():
            shutil.copy2(folder / name, snapshot / name)
    (root / "refs").mkdir()
    (root / "refs" / tag).write_text(commit)
    return commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="accepted for uniformity: this example is quick")
    parser.parse_args()
    bundled = hub.bundled_models()
    repo = hub.DEFAULT_MODEL
    if repo not in bundled:
        skip(f"no bundled model to build a cache from (looked for {hub.DEFAULT_MODEL})")

    print("Online, a user runs:")
    print(f'    recognizer = EmotionRecognizer.from_pretrained("{repo}", revision="{TAG}")')
    print(f"or fetches it once for later offline use:  emofer download {repo} --revision {TAG}")
    print()

    with tempfile.TemporaryDirectory(prefix="emofer-hf-cache-") as tmp:
        cache = Path(tmp)
        commit = fill_cache(cache, repo, bundled[repo], TAG)
        print(f"built a Hugging Face cache in {cache}:")
        for path in sorted(cache.rglob("*")):
            if path.is_file():
                print(f"    {path.relative_to(cache)}")
        print()

        # A revision (tag, branch or commit) means "the Hub's copy", never the bundled one.
        # cache_dir is only needed because this cache is not the default ~/.cache/huggingface/hub.
        recognizer = EmotionRecognizer.from_pretrained(repo, revision=TAG, cache_dir=cache)
        print(f"loaded {recognizer.config.name} at revision {TAG} from {recognizer.classifier.model_path}")
        pinned = EmotionRecognizer.from_pretrained(repo, revision=commit, cache_dir=cache)
        print(f"loaded {pinned.config.name} at commit {commit[:12]} (the surest pin: a commit never moves)")

        if EXAMPLE_PHOTO.is_file():
            faces = recognizer.predict(EXAMPLE_PHOTO)
            print(f"{EXAMPLE_PHOTO.name}: " + (", ".join(f"{f.emotion} {f.confidence:.0%}" for f in faces) or "no face"))

        try:  # offline, a revision that is not in the cache fails with a message saying what to do
            EmotionRecognizer.from_pretrained(repo, revision="v2", cache_dir=cache)
        except ModelLoadError as exc:
            print(f"revision v2 (not cached) -> ModelLoadError: {exc}")


if __name__ == "__main__":
    main()
