"""Child process for tests/test_fuzz.py: decodes one fuzzed file per request, reports the outcome.

    python tests/fuzz_worker.py MODEL_FOLDER SCRATCH_FOLDER

Requests on stdin: a one-byte kind (``i`` image bytes, ``v`` video with a 4-byte suffix after
it), a 4-byte little-endian length, the bytes. Each answer is one JSON line on stdout:
``{"ok": "3 faces"}``, ``{"error": "ImageReadError"}`` for an emofer error, or
``{"unexpected": "TypeName: message"}`` for anything else, each with the process's peak
resident memory so far (``peak_mib``). A crash of this process (a
segfault in a decoder) is seen by the parent as end of output.
"""

from __future__ import annotations

import json
import resource
import struct
import sys
from pathlib import Path

#: Frames of a fuzzed video analysed at most (enough to reach damage past the first frame).
VIDEO_FRAMES = 5


def handle(recognizer, kind: bytes, data: bytes, scratch: Path) -> dict[str, str]:
    """Run one case; the outcome as a small dict."""
    from emofer.errors import EmoferError

    try:
        if kind == b"i":
            return {"ok": f"{len(recognizer.predict(data))} faces"}
        suffix, data = data[:4].decode().strip(), data[4:]
        path = scratch / f"case{suffix}"
        path.write_bytes(data)
        return {"ok": f"{len(list(recognizer.predict_video(path, max_frames=VIDEO_FRAMES)))} frames"}
    except EmoferError as exc:
        return {"error": type(exc).__name__, "message": str(exc)[:300]}
    except Exception as exc:  # what the fuzzer is looking for
        return {"unexpected": f"{type(exc).__name__}: {str(exc)[:300]}"}


def peak_mib() -> int:
    """This process's peak resident memory in MiB: VmHWM on Linux (ru_maxrss would include the
    parent's peak at fork, kept across exec), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // scale


def main() -> int:
    from emofer import EmotionRecognizer

    recognizer = EmotionRecognizer.from_pretrained(sys.argv[1], detector="none")
    scratch = Path(sys.argv[2])
    stdin, stdout = sys.stdin.buffer, sys.stdout
    stdout.write(json.dumps({"ready": True}) + "\n")
    stdout.flush()
    while True:
        head = stdin.read(5)
        if len(head) < 5:
            return 0
        kind, (length,) = head[:1], struct.unpack("<I", head[1:])
        outcome = handle(recognizer, kind, stdin.read(length), scratch)
        outcome["peak_mib"] = peak_mib()
        stdout.write(json.dumps(outcome) + "\n")
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
