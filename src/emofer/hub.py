"""Where a model comes from: the bundled copy, a local folder, or a Hugging Face Hub repo.

``resolve_model`` turns whatever the user passed to ``from_pretrained`` into a local folder
holding ``model.onnx`` and ``config.json``. Hub downloads go through huggingface_hub, so its
cache, revision pinning, ``HF_HUB_OFFLINE`` and ``local_files_only`` behave as users expect.
A bundled model's name is also its Hub repo id: with no revision asked for, the copy in the
wheel serves it, like a pre-filled cache.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from pathlib import Path

from .config import CONFIG_NAME, MODEL_NAME
from .errors import ModelLoadError

__all__ = [
    "DEFAULT_MODEL",
    "ACCURATE_MODEL",
    "BUNDLED_ROOT",
    "bundled_models",
    "MOVED_MODELS",
    "resolve_model",
    "resolve_file",
    "cached_file",
]

log = logging.getLogger("emofer")

#: The model ``from_pretrained()`` serves when given nothing.
DEFAULT_MODEL = "emofer/webmix8x52-balanced-int8"
#: The bundled accurate tier: more of every real photo right for about 4x the time per face (batch
#: annotation, ``--ray``); ``from_pretrained(ACCURATE_MODEL)``.
ACCURATE_MODEL = "emofer/webmix8-accurate"
#: Folder of the models shipped inside the wheel, one sub-folder per model.
BUNDLED_ROOT = Path(__file__).resolve().parent / "models"
BUNDLED_OWNER = "emofer"
#: Models the wheel bundled before and no longer does (issue #26: it shipped 11 models, ~29 MB): each
#: lives on, unchanged, in the ``models/<name>`` folder of the emofer repository, which
#: ``from_pretrained(path)`` loads. Asking for one by name says so (see :func:`_not_bundled`).
MOVED_MODELS = frozenset(
    f"{BUNDLED_OWNER}/{name}"
    for name in (
        "fer5-int8",
        "fer7",
        "fer7-int8",
        "ferplus8",
        "ferplus8-int8",
        "webmix8-balanced-int8",
        "wild8",
        "wild8-balanced-int8",
        "wild8-int8",
    )
)
#: The release the moved-model message names: later releases bundle only what bundled_models() lists
#: (0.1.0 bundled emofer/fer7; the other moved models were bundled between releases only).
MOVED_AFTER = "0.1.0"
#: Files fetched for a Hub model; the card is optional.
MODEL_FILES = (CONFIG_NAME, MODEL_NAME)
CARD_NAME = "README.md"
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def bundled_models() -> dict[str, Path]:
    """Repo id -> folder of every model bundled in this installation."""
    if not BUNDLED_ROOT.is_dir():
        return {}
    return {
        f"{BUNDLED_OWNER}/{folder.name}": folder
        for folder in sorted(BUNDLED_ROOT.iterdir())
        if (folder / CONFIG_NAME).is_file()
    }


def resolve_model(
    model: str | os.PathLike | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> tuple[Path, Path]:
    """Resolve ``model`` to ``(config.json path, model.onnx path)`` on local disk.

    ``None`` is the bundled default; an existing folder or ``.onnx`` file is used as is (its
    config.json beside it); a bundled name without ``revision`` is the bundled copy; anything
    else is a Hub repo id downloaded (or read from the cache) with huggingface_hub, with
    ``token`` (see :func:`resolve_file`).
    """
    name = DEFAULT_MODEL if model is None else model
    path = Path(name)
    if path.exists():
        return _local(path)
    name = str(name)
    bundled = bundled_models().get(name)
    if bundled is not None and revision is None:
        log.info("model %s: bundled copy in %s", name, bundled)
        return bundled / CONFIG_NAME, bundled / MODEL_NAME
    if name.startswith(f"{BUNDLED_OWNER}/") and revision is None:
        raise ModelLoadError(_not_bundled(name))
    if model is None:
        raise ModelLoadError(
            f"the bundled default model {DEFAULT_MODEL} is missing from this installation "
            f"({BUNDLED_ROOT}); reinstall emofer (pip install --force-reinstall emofer)"
        )
    if not _REPO_ID.match(name):
        raise ModelLoadError(
            f"{name!r} is neither an existing folder / .onnx file nor a Hub repo id like "
            f"'{DEFAULT_MODEL}'; bundled models: {sorted(bundled_models())}"
        )

    def download(filename: str) -> Path:
        return resolve_file(
            name, filename, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )

    config = download(CONFIG_NAME)
    onnx = download(MODEL_NAME)
    try:  # the model card is documentation only: fetch it if we can, never fail on it
        download(CARD_NAME)
    except ModelLoadError:
        pass
    return config, onnx


def _local(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        folder, onnx = path, path / MODEL_NAME
        if onnx.exists() and not onnx.is_file():
            raise ModelLoadError(f"{onnx} is not a file (a folder?); a model folder needs model.onnx and config.json")
        if not onnx.is_file():
            candidates = sorted(p for p in path.glob("*.onnx") if p.is_file())
            if len(candidates) != 1:
                raise ModelLoadError(
                    f"{path} holds no {MODEL_NAME}; a model folder needs model.onnx and config.json "
                    "(export one with training/export.py)"
                )
            onnx = candidates[0]
    elif path.suffix.lower() == ".onnx":
        folder, onnx = path.parent, path
    else:
        raise ModelLoadError(f"{path} is not a model folder or an .onnx file")
    config = folder / CONFIG_NAME
    if not config.is_file():
        raise ModelLoadError(
            f"{config} is missing: emofer reads labels, input size and normalisation from the "
            "config.json beside model.onnx (see docs/models.md for its fields)"
        )
    for file in (config, onnx) if path.is_dir() else (config,):
        _check_inside(folder, file)
    return config, onnx


def _check_inside(folder: Path, file: Path) -> None:
    """ModelLoadError when ``file`` is a link that leads out of the model ``folder``.

    A Hub cache snapshot's files link to its repo's blobs, so there the repo folder is the bound.
    """
    folder = folder.resolve()
    root = folder.parent.parent if folder.parent.name == "snapshots" else folder
    target = file.resolve()
    if not target.is_relative_to(root):
        raise ModelLoadError(
            f"{file} is a link to {target}, outside the model folder {folder}; emofer only reads model "
            "files inside the folder: copy the file there instead of linking it"
        )


def resolve_file(
    repo_or_path: str | os.PathLike,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """A local file path as is, else ``filename`` of Hub repo ``repo_or_path`` via the HF cache.

    ``token`` is huggingface_hub's: a Hub access token for private or gated repos, None for the
    saved login (``hf auth login``) or ``HF_TOKEN``, False to send none. It is never logged.
    """
    path = Path(repo_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / filename).is_file():
            return path / filename
        raise ModelLoadError(f"{path / filename} does not exist")
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    from ._version import __version__

    repo = str(repo_or_path)
    where = f"{repo}/{filename}" + (f" at revision {revision}" if revision else "")
    try:
        if (
            not (local_files_only or _offline())
            and cached_file(repo, filename, revision=revision, cache_dir=cache_dir) is None
        ):
            _reach_hub(repo, filename, revision, token)
        found = Path(
            hf_hub_download(
                repo,
                filename,
                revision=revision,
                cache_dir=_dir(cache_dir),
                local_files_only=local_files_only,
                token=token,
                library_name="emofer",
                library_version=__version__,
            )
        )
    except (hf_errors.LocalEntryNotFoundError, _HubUnreachable) as exc:
        reason = exc if isinstance(exc, _HubUnreachable) else "offline, HF_HUB_OFFLINE=1 or local_files_only=True"
        raise ModelLoadError(
            f"{where} is not in the Hugging Face cache and the Hub could not be reached "
            f"({reason}). Download it once while online "
            f"with `emofer download {repo}"
            + (f" --revision {revision}" if revision else "")
            + "`, or pass a local model folder"
        ) from exc
    except hf_errors.RevisionNotFoundError as exc:
        raise ModelLoadError(f"{repo} has no revision {revision!r}; check the tag, branch or commit") from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise ModelLoadError(
            f"Hub repo {repo} does not exist or is private (log in with `hf auth login` for private "
            f"repos); bundled models: {sorted(bundled_models())}"
        ) from exc
    except hf_errors.EntryNotFoundError as exc:
        raise ModelLoadError(f"Hub repo {repo} has no file {filename}; is it an emofer model?") from exc
    except (hf_errors.HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelLoadError(f"could not download {where}: {exc}") from exc
    log.info("%s: %s", where, found)
    return found


def _offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub read it (hf_hub_download then fails at once by itself)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


class _HubUnreachable(Exception):
    """The Hub did not answer one request (no network, DNS, proxy, timeout or a server error)."""


def _reach_hub(repo: str, filename: str, revision: str | None, token: str | bool | None = None) -> None:
    """Ask the Hub once, without retries, for a file that is not cached; _HubUnreachable if it does not answer.

    huggingface_hub retries a first download that fails on the network five times with
    back-off (about 23 s). With no cached copy to fall back on, one failed request is answer
    enough. A 4xx answer passes: hf_hub_download then reports the missing repo, file or revision.
    ``HF_HUB_OFFLINE=1`` makes this request fail at once, like hf_hub_download.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub import errors as hf_errors

    try:
        get_hf_file_metadata(
            hf_hub_url(repo, filename, revision=revision), token=token, timeout=constants.HF_HUB_ETAG_TIMEOUT
        )
    except hf_errors.HfHubHTTPError as exc:  # the Hub answered; 5xx and rate limits count as out of reach
        status = getattr(exc.response, "status_code", None)
        if status is None or status >= 500 or status in (408, 429):
            raise _HubUnreachable(f"HTTP {status}") from exc
    except (TypeError, ValueError):  # bad arguments, not the network: hf_hub_download reports them
        raise
    except Exception as exc:  # DNS failure, refused connection, proxy error, timeout, offline mode...
        raise _HubUnreachable(_first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    """An exception's message, first line only (network errors can run to many lines)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _not_bundled(name: str) -> str:
    """The message for a name in emofer's own namespace that this installation does not bundle."""
    bundled = sorted(bundled_models())
    if name in MOVED_MODELS:
        short = name.split("/", 1)[1]
        return (
            f"{name} is no longer bundled with emofer (releases after {MOVED_AFTER} bundle "
            f"{', '.join(bundled) or 'none'}); load it from the models/{short} folder of a clone of the "
            f"emofer repository: EmotionRecognizer.from_pretrained('path/to/emofer/models/{short}'), "
            f"or --model path/to/emofer/models/{short} on the command line"
        )
    close = difflib.get_close_matches(name, bundled, n=1)
    guess = f"did you mean {close[0]}? " if close else ""
    return (
        f"{name} is not bundled with this emofer; {guess}bundled models: {', '.join(bundled) or 'none'}. "
        "Newer releases bundle newer models (pip install -U emofer); to fetch an emofer model "
        'from the Hub anyway, pin a revision (revision="main", or --revision main)'
    )


def _dir(folder: str | os.PathLike | None) -> Path | None:
    """``cache_dir`` as huggingface_hub's functions take it (str or Path; None: its default)."""
    return None if folder is None else Path(folder)


def cached_file(
    repo: str, filename: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None
) -> Path | None:
    """The cached copy of a Hub file, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=_dir(cache_dir), revision=revision)
    return Path(found) if isinstance(found, str) else None
