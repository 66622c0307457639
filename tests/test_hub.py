"""Model resolution: bundled, local folder / .onnx, and the Hub through a pre-filled HF cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emofer import hub
from emofer.errors import ModelLoadError
from tests.conftest import REPO_MODELS, repo_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "89abcdef0123456789abcdef0123456789abcdef"


def fill_cache(cache: Path, repo: str, folder: Path, commit: str = COMMIT, refs=("main",)) -> Path:
    """Lay ``folder``'s files out as huggingface_hub's cache does (refs/, snapshots/)."""
    base = cache / ("models--" + repo.replace("/", "--"))
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        shutil.copy(file, snapshot / file.name)
    (base / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (base / "refs" / ref).write_text(commit)
    return snapshot


def test_local_folder_and_onnx_path(tiny_model_dir):
    assert hub.resolve_model(tiny_model_dir) == (tiny_model_dir / "config.json", tiny_model_dir / "model.onnx")
    assert hub.resolve_model(str(tiny_model_dir / "model.onnx"))[1] == tiny_model_dir / "model.onnx"


def test_local_folder_without_config(tmp_path, tiny_model_dir):
    (tiny_model_dir / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="config.json"):
        hub.resolve_model(tiny_model_dir)
    with pytest.raises(ModelLoadError, match="model.onnx"):
        hub.resolve_model(tmp_path / "tiny" / ".." / ".." )


def test_not_a_repo_id():
    with pytest.raises(ModelLoadError, match="neither an existing folder"):
        hub.resolve_model("no such thing here")


def test_bundled_default_exists():
    bundled = hub.bundled_models()
    assert hub.DEFAULT_MODEL in bundled
    config, onnx = hub.resolve_model(None)
    assert config.is_file() and onnx.is_file()


def test_prefilled_cache_offline(tmp_path, tiny_model_dir):
    fill_cache(tmp_path / "cache", "someone/tiny", tiny_model_dir, refs=("main", "v1"))
    config, onnx = hub.resolve_model("someone/tiny", cache_dir=tmp_path / "cache", local_files_only=True)
    assert COMMIT in str(onnx) and onnx.read_bytes() == (tiny_model_dir / "model.onnx").read_bytes()
    pinned = hub.resolve_model("someone/tiny", revision="v1", cache_dir=tmp_path / "cache", local_files_only=True)
    assert pinned[1] == onnx
    by_commit = hub.resolve_model("someone/tiny", revision=COMMIT, cache_dir=tmp_path / "cache",
                                  local_files_only=True)
    assert by_commit[1] == onnx
    assert hub.cached_file("someone/tiny", "model.onnx", cache_dir=tmp_path / "cache") == onnx


def test_revision_not_in_cache(tmp_path, tiny_model_dir):
    fill_cache(tmp_path / "cache", "someone/tiny", tiny_model_dir)
    with pytest.raises(ModelLoadError, match="not in the Hugging Face cache"):
        hub.resolve_model("someone/tiny", revision=OTHER, cache_dir=tmp_path / "cache", local_files_only=True)


def test_empty_cache_offline_message(tmp_path):
    with pytest.raises(ModelLoadError, match="emofer download someone/missing"):
        hub.resolve_model("someone/missing", cache_dir=tmp_path, local_files_only=True)


def test_bundled_name_with_revision_goes_to_the_hub(tmp_path):
    with pytest.raises(ModelLoadError, match="revision v9"):
        hub.resolve_model(hub.DEFAULT_MODEL, revision="v9", cache_dir=tmp_path, local_files_only=True)


def test_hf_hub_offline_environment(tmp_path, tiny_model_dir):
    """HF_HUB_OFFLINE=1 in a fresh process: cached repos load, uncached ones fail clearly."""
    fill_cache(tmp_path / "cache", "someone/tiny", tiny_model_dir)
    script = textwrap.dedent(
        f"""
        from emofer import EmotionRecognizer, ModelLoadError
        rec = EmotionRecognizer.from_pretrained("someone/tiny", cache_dir={str(tmp_path / 'cache')!r}, detector="none")
        print("labels", ",".join(rec.labels))
        try:
            EmotionRecognizer.from_pretrained("someone/absent", cache_dir={str(tmp_path / 'cache')!r})
        except ModelLoadError as exc:
            print("error", exc)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "labels angry,happy,sad" in out.stdout
    assert "error someone/absent/config.json is not in the Hugging Face cache" in out.stdout


def test_an_emofer_name_that_is_not_bundled_lists_the_bundled_ones(tmp_path):
    with pytest.raises(ModelLoadError, match="did you mean emofer/fer5") as info:
        hub.resolve_model("emofer/fer8", cache_dir=tmp_path)
    assert all(name in str(info.value) for name in hub.bundled_models())
    assert not any(tmp_path.iterdir())  # the Hub was not asked


def test_the_wheel_bundles_the_default_the_accurate_tier_the_previous_default_and_fer5():
    assert sorted(hub.bundled_models()) == ["emofer/fer5", "emofer/webmix8-accurate", "emofer/webmix8x52-balanced-int8",
                                            "emofer/wild8v2-balanced-int8"]
    assert {hub.DEFAULT_MODEL, hub.ACCURATE_MODEL} <= set(hub.bundled_models())
    assert hub.DEFAULT_MODEL in hub.bundled_models() and not hub.MOVED_MODELS & set(hub.bundled_models())


def test_the_list_of_moved_models_is_the_repositorys_models_folder():
    if not REPO_MODELS.is_dir():
        pytest.skip(f"{REPO_MODELS} is absent (an installed emofer without a clone)")
    assert {f"emofer/{p.parent.name}" for p in REPO_MODELS.glob("*/config.json")} == hub.MOVED_MODELS


@pytest.mark.parametrize("name", sorted(hub.MOVED_MODELS))
def test_a_moved_model_says_where_it_went_and_loads_from_that_folder(name, tmp_path):
    short = name.split("/")[1]
    with pytest.raises(ModelLoadError, match="no longer bundled") as info:
        hub.resolve_model(name, cache_dir=tmp_path)
    message = str(info.value)
    assert f"models/{short} folder of a clone of the emofer repository" in message
    assert f"from_pretrained('path/to/emofer/models/{short}')" in message
    assert not any(tmp_path.iterdir())  # the Hub was not asked
    folder = repo_model(name)
    assert hub.resolve_model(folder) == (folder / "config.json", folder / "model.onnx")


def test_a_hub_that_cannot_be_reached_fails_at_once(tmp_path):
    """No network (here: a refused port as the Hub): one request, not huggingface_hub's ~23 s of retries."""
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = textwrap.dedent(
        f"""
        from emofer import hub
        from emofer.errors import ModelLoadError
        try:
            hub.resolve_model("someone/absent", cache_dir={str(tmp_path)!r})
        except ModelLoadError as exc:
            print("error", exc)
        """
    )
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    env.pop("HF_HUB_OFFLINE", None)
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - start < 10
    assert "error someone/absent/config.json is not in the Hugging Face cache and the Hub could not be reached" \
        in out.stdout, out.stdout + out.stderr
    assert "emofer download someone/absent" in out.stdout and "Retrying" not in out.stderr


# -- token=: a Hub access token for private repos, passed on and never kept -----------------------

SECRET = "hf_emofer_test_secret_token"


def test_token_loads_a_private_repo_from_the_cache_offline_and_is_never_shown(tmp_path, tiny_model_dir, caplog):
    import logging
    import pickle

    from emofer import EmotionRecognizer

    fill_cache(tmp_path / "cache", "someone/private", tiny_model_dir)
    with caplog.at_level(logging.DEBUG):
        rec = EmotionRecognizer.from_pretrained("someone/private", cache_dir=tmp_path / "cache", local_files_only=True,
                                                token=SECRET, detector="none")
    assert rec.labels == ("angry", "happy", "sad") and rec.spec.token == SECRET
    shown = [repr(rec), repr(rec.spec), str(rec.spec), caplog.text]
    assert "someone/private" in caplog.text and not any(SECRET in text for text in shown)
    assert SECRET.encode() not in pickle.dumps(rec)


def test_hf_hub_offline_with_a_token_in_a_fresh_process(tmp_path, tiny_model_dir):
    fill_cache(tmp_path / "cache", "someone/private", tiny_model_dir)
    script = textwrap.dedent(
        f"""
        import logging
        logging.basicConfig(level=logging.DEBUG)
        from emofer import EmotionRecognizer
        rec = EmotionRecognizer.from_pretrained("someone/private", cache_dir={str(tmp_path / 'cache')!r},
                                                detector="none", token={SECRET!r})
        print("labels", ",".join(rec.labels), rec)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "labels angry,happy,sad" in out.stdout and SECRET not in out.stdout + out.stderr


def test_token_reaches_huggingface_hub(tmp_path, tiny_model_dir, monkeypatch):
    """Every request for the repo's files carries the token: the first look at the Hub and the downloads."""
    import huggingface_hub

    from emofer import EmotionRecognizer

    asked: list[tuple[str, object]] = []

    def metadata(url, token=None, **kwargs):
        asked.append(("metadata", token))

    def download(repo, filename, **kwargs):
        asked.append((filename, kwargs["token"]))
        return str(tiny_model_dir / filename)

    monkeypatch.setattr(hub, "_offline", lambda: False)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", metadata)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    rec = EmotionRecognizer.from_pretrained("someone/private", cache_dir=tmp_path, token=SECRET, detector="none")
    assert rec.labels == ("angry", "happy", "sad")
    assert ("config.json", SECRET) in asked and ("model.onnx", SECRET) in asked
    assert {token for _, token in asked} == {SECRET} and ("metadata", SECRET) in asked
    asked.clear()
    hub.resolve_model("someone/private", cache_dir=tmp_path, token=False)
    assert asked and {token for _, token in asked} == {False}
