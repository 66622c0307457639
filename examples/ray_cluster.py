"""Annotate a folder of photos on a Ray cluster: one Parquet row per face.

    pip install "emofer[ray]"
    python examples/ray_cluster.py photos/ --address ray://head-node:10001 --workers 8 --out faces.parquet
    python examples/ray_cluster.py --quick --address 127.0.0.1:6379     # a few sample photos

Without --address, Ray uses RAY_ADDRESS, else starts a local cluster. On a real cluster the
photos must be at the same path on every node (a shared file system), or be s3:// / gs:// URIs.
The command line does the same with ``emofer predict photos/ --ray --out faces.parquet``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _helpers import OUTPUT, sample_photos, skip

try:
    import ray

    from emofer.ray import faces_dataset, write_faces
except ImportError:
    raise SystemExit('this example needs Ray: pip install "emofer[ray]"') from None

QUICK_IMAGES = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="folder of images (default: sample photos)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else local)")
    parser.add_argument("--workers", type=int, default=1, help="recognizer actors, one model each (default: 1)")
    parser.add_argument("--out", type=Path, default=None, help="Parquet folder to write (must not exist)")
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK_IMAGES} sample photos")
    args = parser.parse_args()

    images = [args.folder] if args.folder is not None else sample_photos()[:QUICK_IMAGES if args.quick else None]
    if not images:
        skip("no folder given and no sample photos found")
    ray.init(address=args.address or None, log_to_driver=False)
    print(f"joined {ray.get_runtime_context().gcs_address}: {ray.cluster_resources().get('CPU', 0):g} CPUs")
    with tempfile.TemporaryDirectory(prefix="emofer-ray-") as tmp:
        out = args.out or Path(tmp) / "faces.parquet"
        if args.out is None and not args.quick:
            out = OUTPUT / "faces.parquet"
        report = write_faces(faces_dataset(images, workers=args.workers), out)
        print(report.summary())
        for row in ray.data.read_parquet(str(out)).take(5):  # the rows are an ordinary Ray Dataset
            print(row["file"], row["face_index"], row["emotion"], row["box"])
    ray.shutdown()


if __name__ == "__main__":
    main()
