"""The ``emofer`` command: emotions of images, folders and videos; environment and model cache.

emofer predict photo.jpg photos/ --csv > faces.csv
emofer predict photos/ --out annotated/ --bars
emofer video clip.mp4 --out annotated.mp4 --table faces.csv --every 2
emofer cam --source 1                 # live view (also installed as emofer-cam)
emofer download emofer/fer5 --revision v1
emofer info
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from . import cam, hub, options
from ._version import __version__
from .config import CONFIG_NAME, MODEL_NAME
from .draw import draw
from .errors import EmoferError, ImageReadError, ParameterError
from .fetch import fetch_url, is_url
from .gui import opencv_gui
from .io import load_image
from .outputs import (
    WRITABLE_SUFFIXES,
    Inputs,
    check_new_folder,
    check_output_file,
    check_output_folder,
    copy_names,
    write_image,
)
from .progress import Progress
from .results import Face
from .sources import IMAGE_SUFFIXES, image_sources
from .table import RowWriter, format_for
from .video import FrameResult, analyze_video_frames, video_format, write_table, write_video

__all__ = ["main", "IMAGE_SUFFIXES"]

log = logging.getLogger("emofer")

EXIT_OK, EXIT_UNREADABLE, EXIT_ERROR = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 some input unreadable, 2 error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except EmoferError as exc:  # a mistake in the command line (options.Parser): one line
        print(f"emofer: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    options.configure_logging(args.verbose, "emofer")
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    try:
        return args.run(args)
    except EmoferError as exc:
        print(f"emofer: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("emofer: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    # typed as the base class: its subcommands (options.Parser too, at run time) take plain parents
    parser: argparse.ArgumentParser = options.Parser(prog="emofer", description="Facial emotion recognition.")
    parser.add_argument("--version", action="version", version=f"emofer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=options.VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # -v also after the command (options.verbose_options: it keeps an earlier -v)
    model = options.model_options()
    bars = argparse.ArgumentParser(add_help=False)
    bars.add_argument("--bars", action="store_true", help="draw per-emotion probability bars in annotated output")
    bars.add_argument(
        "--overwrite", action="store_true", help="replace output files that already exist (inputs are never written)"
    )
    scale = argparse.ArgumentParser(add_help=False)  # the Ray options predict and video share
    scale.add_argument(
        "--ray",
        action="store_true",
        help="run on Ray Data: a row per face to a Parquet folder (predict: --out, video: --table; emofer[ray])",
    )
    scale.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to join (default: RAY_ADDRESS, else a local one)",
    )
    scale.add_argument(
        "--workers", type=options.count, default=1, metavar="N", help="with --ray: recognizer actors (default: 1)"
    )

    predict = commands.add_parser(
        "predict", parents=[model, bars, scale], help="emotions of the faces in images and folders"
    )
    predict.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files, folders (searched recursively), http(s) URLs of images, or - (an image on standard input)",
    )
    form = predict.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="one JSON object per face (JSON lines)")
    form.add_argument("--csv", action="store_true", help="one CSV row per face, with a header")
    predict.add_argument(
        "--out",
        default=None,
        help="folder for annotated copies of the images; for one image, a name with an image suffix "
        "(.png, .jpg) is the file to write (with --ray: the Parquet folder to write)",
    )
    predict.add_argument(
        "--resume",
        action="store_true",
        help="with --ray: append to an existing --out, skipping inputs already in it (same path, size, mtime)",
    )
    predict.set_defaults(run=_predict)

    video = commands.add_parser("video", parents=[model, bars, scale], help="emotions over a video file or camera")
    video.add_argument("source", help="video file, stream URL or camera index (0, 1, ...)")
    video.add_argument("--out", type=Path, default=None, help="annotated video to write (.mp4, .avi)")
    video.add_argument("--table", type=Path, default=None, help="per-face table to write (.csv, .json, .jsonl)")
    video.add_argument(
        "--every", type=options.count, default=1, metavar="N", help="analyse every N-th frame (default: 1)"
    )
    video.add_argument(
        "--max-frames", type=options.frames, default=None, metavar="N", help="stop after N analysed frames"
    )
    video.add_argument("--no-smooth", action="store_true", help="raw per-frame probabilities, no temporal smoothing")
    video.add_argument(
        "--frames-per-task",
        type=options.frames_per_task,
        default=None,
        metavar="N",
        help="with --ray: one task per range of N frames (track ids and smoothing restart in each range; "
        "default: the whole video in one task)",
    )
    video.set_defaults(run=_video)

    live = commands.add_parser(
        "cam", parents=[model], help="live emotions from a camera or video, in a window", description=cam.DESCRIPTION
    )
    cam.add_arguments(live)
    live.set_defaults(run=_cam)

    download = commands.add_parser(
        "download", parents=[options.verbose_options()], help="fetch an emofer model into the cache for offline use"
    )
    download.add_argument("model", nargs="?", default=None, help="Hub repo id, e.g. emofer/fer5")
    download.add_argument("--revision", default=None, help="tag, branch or commit to pin")
    download.add_argument(
        "--cache-dir", type=Path, default=None, help="Hugging Face cache folder (default: HF_HUB_CACHE)"
    )
    download.add_argument(
        "--yunet", action="store_true", help="nothing to fetch: the YuNet face detector is bundled; prints where it is"
    )
    download.set_defaults(run=_download)

    info = commands.add_parser(
        "info", parents=[options.verbose_options()], help="versions, accelerators, GUI support and cached models"
    )
    info.set_defaults(run=_info)
    return parser


# -- predict ---------------------------------------------------------------------------------

#: The input that means "an image on standard input", and the name of its annotated copy.
STDIN = "-"
STDIN_NAME = "stdin.png"
#: An image to read: (the argument it came from, None for a URL or stdin; its path or URL).
Item = tuple[str | None, str | Path]


def _predict(args: argparse.Namespace) -> int:
    if args.ray:
        return _predict_ray(args)
    if args.resume:
        raise ParameterError("--resume works with --ray (it appends to a Parquet folder); drop it or add --ray")
    if args.paths.count(STDIN) > 1:
        raise ParameterError("- (standard input) can be read only once; give it once")
    items: list[Item] = [
        (None if isinstance(path, str) else text, path)
        for text in args.paths
        for path, _ in ([(STDIN, None)] if text == STDIN else image_sources([text]))
    ]
    plan = _plan_copies(args, items)
    if not plan:
        raise EmoferError(
            f"no images found in {', '.join(args.paths)} (folders are searched recursively "
            f"for {' '.join(sorted(IMAGE_SUFFIXES))}); pass image files or folders holding some"
        )
    recognizer = options.load_recognizer(args)
    fmt = "jsonl" if args.json else "csv" if args.csv else None
    table = RowWriter(sys.stdout, fmt, ("file",), recognizer.labels) if fmt else None
    # a bar only for a person watching stderr, and not when stdout already prints a line per image there
    show_progress = len(plan) > 1 and sys.stderr.isatty() and not sys.stdout.isatty()
    bar = Progress(len(plan), label="images") if show_progress else None
    unreadable, written = 0, set()
    for path, target in plan:
        try:
            image = load_image(_read_input(path))
        except ImageReadError as exc:
            print(f"emofer: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        finally:
            if bar is not None:
                bar.update()
        faces = recognizer.predict(image)
        if table is not None:
            rows: list[Face | None] = [*faces] or [None]  # one empty row for an image without faces
            for face in rows:
                table.write({"file": str(path)}, face)
        else:
            found = ", ".join(
                f"{'unsure: ' * f.abstained}{f.emotion} {f.confidence:.0%} at {tuple(f.box)}" for f in faces
            )
            print(f"{path}: {found or 'no face found'}")
        if target is not None and target not in written:  # the same image given twice is written once
            target.parent.mkdir(parents=True, exist_ok=True)
            write_image(draw(image, faces, bars=args.bars), target, overwrite=args.overwrite)
            written.add(target)
    if table is not None:
        table.close()
    if bar is not None:
        bar.close()
    if unreadable:
        print(f"emofer: {unreadable} of {len(plan)} inputs could not be read", file=sys.stderr)
    return EXIT_UNREADABLE if unreadable else EXIT_OK


def _plan_copies(args: argparse.Namespace, items: list[Item]) -> list[tuple[str | Path, Path | None]]:
    """(image to read, where its annotated copy goes) for each image; every output checked by the
    output policy before any work. ``--out`` is a file for one image given with an image suffix, else a folder
    (which is skipped while the inputs are searched)."""
    if args.out is None:
        return [(path, None) for _, path in items]
    out = Path(args.out)
    folders = [Path(text) for text in args.paths if text != STDIN and not is_url(text) and Path(text).is_dir()]
    if _out_is_a_file(args.out, args.paths):
        inputs = Inputs([Path(path) for argument, path in items if argument is not None], folders)
        return [(path, check_output_file(out, inputs, overwrite=args.overwrite)) for _, path in items]
    if _image_name(args.out):
        raise ParameterError(
            f"--out {args.out} names an image file, but the inputs are {_described(args.paths)}; "
            f"give a folder for their annotated copies (e.g. --out annotated/)"
        )
    skipped = Inputs(skipped=[out])  # the output folder is not searched
    items = [
        (argument, path)
        for argument, path in items
        if argument is None or not Path(argument).is_dir() or not skipped.is_skipped(path)
    ]
    inputs = Inputs([Path(path) for argument, path in items if argument is not None], folders, skipped=[out])
    check_output_folder(out, inputs, create=False)
    names = copy_names([(argument, STDIN_NAME if path == STDIN else path) for argument, path in items])
    targets = [
        check_output_file(out / name, inputs, overwrite=args.overwrite, make_parents=True, probe=False)
        for name in names
    ]
    if items:
        check_output_folder(out, inputs)
    return [(path, target) for (_, path), target in zip(items, targets)]


def _out_is_a_file(out: str, paths: list[str]) -> bool:
    """``--out`` names one image file: one input that is not a folder, and a name with an image suffix."""
    single = len(paths) == 1 and (paths[0] == STDIN or is_url(paths[0]) or not Path(paths[0]).is_dir())
    named = _image_name(out)
    if single and named and Path(out).suffix.lower() not in WRITABLE_SUFFIXES:
        raise ParameterError(
            f"cannot write an annotated {Path(out).suffix} image; name --out "
            f"with one of {' '.join(sorted(WRITABLE_SUFFIXES))}"
        )
    return single and named


def _image_name(out: str) -> bool:
    """``--out`` looks like an image file: an image suffix, no trailing slash, not an existing folder."""
    return Path(out).suffix.lower() in IMAGE_SUFFIXES and not out.endswith(("/", os.sep)) and not Path(out).is_dir()


def _described(paths: list[str]) -> str:
    if len(paths) == 1:
        return f"the folder {paths[0]}"
    return f"{len(paths)} paths"


def _read_input(path: str | Path) -> bytes | Path:
    """What load_image reads for an input: the file, a URL's bytes, or standard input's bytes."""
    if path == STDIN:
        data = sys.stdin.buffer.read()
        if not data:
            raise ImageReadError("standard input is empty; pipe an image into it (emofer predict - < photo.jpg)")
        return data
    return fetch_url(path) if isinstance(path, str) else path


def _predict_ray(args: argparse.Namespace) -> int:
    """``predict --ray``: the images through emofer.ray into a Parquet folder; Ray draws the progress."""
    if args.out is None or args.json or args.csv:
        raise ParameterError("predict --ray writes Parquet: give --out faces.parquet (not --json/--csv)")
    if STDIN in args.paths:
        raise ParameterError("predict --ray reads files, folders and URIs, not standard input (-)")
    local = [Path(text) for text in args.paths if "://" not in text]
    if not args.resume:
        check_new_folder(args.out, Inputs([p for p in local if not p.is_dir()], [p for p in local if p.is_dir()]))
    from .ray import predict_to_parquet

    spec = options.load_spec(args)  # every model option, checked here before Ray starts
    report = predict_to_parquet(
        args.paths, args.out, address=args.ray_address, spec=spec, workers=args.workers, resume=args.resume
    )
    print(f"emofer: {report.summary()}", file=sys.stderr)
    return EXIT_UNREADABLE if report.failed else EXIT_OK


# -- video -----------------------------------------------------------------------------------


def _video(args: argparse.Namespace) -> int:
    if args.ray:
        return _video_ray(args)
    if args.frames_per_task is not None:
        raise ParameterError("--frames-per-task works with --ray (one Ray task per frame range); add --ray")
    if args.out is None and args.table is None:
        raise ParameterError("video needs --out annotated.mp4 and/or --table faces.csv")
    inputs = Inputs([args.source] if Path(args.source).exists() else [])
    if args.table is not None:
        format_for(args.table)
        check_output_file(args.table, inputs, overwrite=args.overwrite)
    if args.out is not None:
        video_format(args.out)
        check_output_file(args.out, inputs, overwrite=args.overwrite)
    recognizer = options.load_recognizer(args)
    pairs = analyze_video_frames(
        recognizer,
        args.source,
        every_n_frames=args.every,
        smooth=not args.no_smooth,
        max_frames=args.max_frames,
        progress=sys.stderr.isatty(),
    )
    results = []

    def keep(pairs: Iterator[tuple[np.ndarray, FrameResult]]) -> Iterator[tuple[np.ndarray, FrameResult]]:
        for image, result in pairs:
            results.append(result)
            yield image, result

    def table() -> None:
        if args.table is not None and results:
            write_table(results, args.table, labels=recognizer.labels, overwrite=args.overwrite, inputs=inputs)

    try:
        if args.out is not None:
            write_video(keep(pairs), args.out, bars=args.bars, overwrite=args.overwrite, inputs=inputs)
        else:
            for _ in keep(pairs):
                pass
    except Exception:  # a source that fails midway still leaves the table of every frame before it
        table()
        raise
    table()
    faces = sum(len(result.faces) for result in results)
    written = " and ".join(str(p) for p in (args.out, args.table) if p is not None)
    print(f"emofer: {len(results)} frames, {faces} faces; wrote {written}", file=sys.stderr)
    return EXIT_OK


def _video_ray(args: argparse.Namespace) -> int:
    """``video --ray``: the table of ``emofer video`` as a Parquet folder, frame ranges in parallel."""
    if args.out is not None or args.table is None or args.table.suffix.lower() != ".parquet":
        raise ParameterError(
            "video --ray writes the per-face table as Parquet: give --table faces.parquet "
            "(an annotated --out video needs every frame in order on one machine: run without --ray)"
        )
    source = Path(args.source)
    if not source.is_file():
        raise ParameterError(f"video --ray reads video files; {args.source} is not one (cameras and streams: no --ray)")
    check_new_folder(args.table, Inputs([source]))
    from .ray import connect, video_faces_dataset, write_faces

    spec = options.load_spec(args)  # every model option, checked here before Ray starts
    connect(args.ray_address)
    report = write_faces(
        video_faces_dataset(
            source,
            every_n_frames=args.every,
            smooth=not args.no_smooth,
            max_frames=args.max_frames,
            frames_per_task=args.frames_per_task,
            spec=spec,
            workers=args.workers,
        ),
        args.table,
    )
    print(f"emofer: {report.summary()}", file=sys.stderr)
    return EXIT_UNREADABLE if report.failed else EXIT_OK


# -- cam -------------------------------------------------------------------------------------


def _cam(args: argparse.Namespace) -> int:
    """``emofer cam``: :func:`emofer.cam.live`, the same as ``emofer-cam``."""
    frames = cam.live(args)
    print(f"emofer: {cam.summary(frames, args.out)}", file=sys.stderr)
    return EXIT_OK


# -- download and info -------------------------------------------------------------------------


def _download(args: argparse.Namespace) -> int:
    from .detect import yunet
    from .recognizer import EmotionRecognizer

    if args.model is None and not args.yunet:
        raise ParameterError(
            "name a model to download, e.g. emofer download emofer/fer5 "
            "(the YuNet face detector is bundled: nothing to download)"
        )
    if args.model is not None:
        recognizer = EmotionRecognizer.from_spec(options.load_spec(args, detector="none"))
        folder = recognizer.classifier.model_path.parent
        print(f"{args.model}: {recognizer.config.name} ({', '.join(recognizer.labels)}) ready in {folder}")
    if args.yunet:
        print(f"YuNet face detector: bundled, nothing to download ({yunet.bundled_weights()})")
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    import huggingface_hub
    import numpy
    import onnxruntime
    from huggingface_hub import constants as hf_constants

    from .detect.haar import haar_available

    gui = opencv_gui()
    rows = [
        ("emofer", f"{__version__} ({Path(__file__).resolve().parent})"),
        ("python", f"{platform.python_version()} on {platform.platform(terse=True)}"),
        ("numpy", numpy.__version__),
        ("onnxruntime", f"{onnxruntime.__version__}, providers: {', '.join(onnxruntime.get_available_providers())}"),
        (
            "opencv",
            f"{cv2.__version__}, " + (f"GUI: {gui}" if gui else "headless (no windows: emofer-cam needs --no-window)"),
        ),
        ("face detector", _yunet_info()),
        (
            "haar cascades",
            "available"
            if haar_available()
            else 'missing (opencv-python 5): detector="haar" needs pip install "opencv-python>=4.13,<5"',
        ),
        ("huggingface_hub", f"{huggingface_hub.__version__}, cache: {hf_constants.HF_HUB_CACHE}"),
        ("bundled models", ", ".join(_bundled_names()) or "none"),
        ("cached models", ", ".join(_cached_models()) or "none"),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return EXIT_OK


def _yunet_info() -> str:
    """Which YuNet file detector="auto" / "yunet" loads, or why it cannot."""
    import os

    from .detect import yunet
    from .errors import DetectorError

    try:
        weights = yunet.resolve_weights()
    except DetectorError as exc:
        return f"yunet: {exc}"
    source = f"from {yunet.ENV_VAR}" if os.environ.get(yunet.ENV_VAR) else "bundled, sha256 checked"
    return f"yunet ({source}): {weights}"


def _bundled_names() -> list[str]:
    """The bundled models, the default and the accurate tier marked as such."""
    roles = {hub.DEFAULT_MODEL: " (default)", hub.ACCURATE_MODEL: " (accurate tier)"}
    return [name + roles.get(name, "") for name in hub.bundled_models()]


def _cached_models() -> list[str]:
    """Hub repos in the cache that hold an emofer model (config.json and model.onnx)."""
    from huggingface_hub import scan_cache_dir

    try:
        cache = scan_cache_dir()
    except Exception:  # no cache folder yet, or one huggingface_hub cannot read: nothing to list
        return []
    found = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        for revision in repo.revisions:
            names = {file.file_name for file in revision.files}
            if repo.repo_type == "model" and {CONFIG_NAME, MODEL_NAME} <= names:
                found.append(repo.repo_id)
                break
    return found


if __name__ == "__main__":
    sys.exit(main())
