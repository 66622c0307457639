"""Emotions over a video file: per-frame faces with tracks, an annotated mp4 and a CSV table.

    python examples/video_file.py clip.mp4 --every 2
    python examples/video_file.py --quick             # makes a short clip from a sample photo

Writes <out-dir>/annotated.mp4 and <out-dir>/faces.csv (one row per face per frame, and one
empty row per frame without a face). The command line does the same in one pass with
``emofer video clip.mp4 --out annotated.mp4 --table faces.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emofer.video import iter_frames, write_table, write_video
from emofer import EmotionRecognizer
from _helpers import OUTPUT, make_video, sample_photos, skip

QUICK_FRAMES = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", type=Path, help="video file (default: a clip made from a sample photo)")
    parser.add_argument("--out-dir", type=Path, default=OUTPUT, help="folder for annotated.mp4 and faces.csv")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="analyse every N-th frame")
    parser.add_argument("--quick", action="store_true", help=f"at most {QUICK_FRAMES} analysed frames")
    args = parser.parse_args()
    max_frames = QUICK_FRAMES if args.quick else None

    video = args.video
    if video is None:
        photos = sample_photos()
        if not photos:
            skip("no video given and no sample photo found to make one from")
        video = make_video(args.out_dir / "input.mp4", photos[0], frames=QUICK_FRAMES if args.quick else 60)
        print(f"made {video} from {photos[0]}")
    elif not video.is_file():
        skip(f"{video} does not exist")

    recognizer = EmotionRecognizer.from_pretrained()
    results = []   # one FrameResult per analysed frame; faces carry a track_id and smoothed probabilities
    for result in recognizer.predict_video(video, every_n_frames=args.every, max_frames=max_frames):
        results.append(result)
        faces = ", ".join(f"#{face.track_id} {face.emotion} {face.confidence:.0%}" for face in result.faces)
        print(f"frame {result.frame_index:4d} at {result.timestamp_ms / 1000:6.2f} s: {faces or 'no face'}")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    table = args.out_dir / "faces.csv"
    # .csv, .json or .jsonl; an existing file is replaced only with overwrite=True, the input never
    rows = write_table(results, table, labels=recognizer.labels, overwrite=True, inputs=[video])

    # The annotated copy: the same frames again, each drawn with its result.
    frames = iter_frames(video, every_n_frames=args.every)
    annotated = args.out_dir / "annotated.mp4"
    written = write_video(((frame.image, result) for frame, result in zip(frames, results)), annotated,
                          overwrite=True, inputs=[video])

    tracks = {face.track_id for result in results for face in result.faces}
    print(f"{len(results)} frames, {len(tracks)} face track(s) with {recognizer.config.name}; "
          f"wrote {annotated} ({written} frames) and {table} ({rows} rows)")


if __name__ == "__main__":
    main()
