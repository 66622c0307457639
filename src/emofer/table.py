"""Per-face rows for tables: CSV (flat cells), JSON lines or a JSON array, one row per face.

Shared by ``emofer predict`` and :func:`emofer.video.write_table`. An image or frame without
faces still gets one row, with empty face fields, so rows line up with inputs.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, TextIO

from .errors import ParameterError
from .results import Face

__all__ = ["FORMATS", "RowWriter", "format_for"]

#: File suffix -> format.
FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl"}
#: The flat CSV cells of a face, before one probability column per label.
CSV_FACE_COLUMNS = ("x", "y", "w", "h", "score", "track_id", "emotion", "confidence", "abstained")
#: The keys of Face.to_dict(), all None for a row without a face.
EMPTY_FACE: dict[str, Any] = dict.fromkeys(
    ("box", "score", "landmarks", "emotion", "confidence", "abstained", "probabilities", "track_id")
)
DECIMALS = 4


def format_for(path: str | PathLike[str]) -> str:
    """ "csv", "json" or "jsonl" from a file name's suffix; ParameterError (a ValueError) for others."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ParameterError(f"cannot tell the table format of {path}; use a name ending in {', '.join(FORMATS)}")
    return FORMATS[suffix]


class RowWriter:
    """Writes rows of ``keys`` (e.g. file, or frame_index and timestamp_ms) plus one face each."""

    def __init__(self, stream: TextIO, fmt: str, keys: Sequence[str], labels: Sequence[str]) -> None:
        if fmt not in FORMATS.values():
            raise ParameterError(f"table format must be one of {sorted(set(FORMATS.values()))}, got {fmt!r}")
        self.stream, self.fmt, self.labels = stream, fmt, tuple(labels)
        self.rows = 0
        if fmt == "csv":
            self._csv = csv.DictWriter(stream, [*keys, *CSV_FACE_COLUMNS, *self.labels], lineterminator="\n")
            self._csv.writeheader()

    def write(self, keys: Mapping[str, Any], face: Face | None) -> None:
        """One row: the ``keys`` values and the face's fields (empty when ``face`` is None)."""
        if self.fmt == "csv":
            self._csv.writerow({**keys, **self._cells(face)})
        else:
            record = json.dumps({**keys, **(EMPTY_FACE if face is None else face.to_dict())})
            lead = "" if self.fmt == "jsonl" else ("[\n" if self.rows == 0 else ",\n")
            self.stream.write(lead + record + ("\n" if self.fmt == "jsonl" else ""))
        self.rows += 1

    def close(self) -> None:
        """End the table (closes a JSON array); the stream stays open."""
        if self.fmt == "json":
            self.stream.write("[]\n" if self.rows == 0 else "\n]\n")
        self.stream.flush()

    def _cells(self, face: Face | None) -> dict[str, Any]:
        if face is None:
            return {}
        x, y, w, h = (int(v) for v in face.box)
        return {
            "x": x,
            "y": y,
            "w": w,
            "h": h,
            "score": "" if face.score is None else round(float(face.score), DECIMALS),
            "track_id": "" if face.track_id is None else face.track_id,
            "emotion": face.emotion,
            "confidence": round(float(face.confidence), DECIMALS),
            "abstained": int(face.abstained),
            **{label: round(float(face.probabilities.get(label, 0.0)), DECIMALS) for label in self.labels},
        }
