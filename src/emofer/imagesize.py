"""Image dimensions read from an encoded file's header, without decoding its pixels.

``declared_size(data)`` knows PNG, JPEG, GIF, BMP, WebP, TIFF and PNM (PBM/PGM/PPM), the formats
an upload form sees; for anything else it returns None and the caller relies on the decoder's
own limits. It only reads a few bytes, never trusts a length past the end of ``data`` and never
raises on damaged input: a header it cannot follow gives None.
"""

from __future__ import annotations

import re
import struct

__all__ = ["declared_size", "overrun"]

#: JPEG start-of-frame markers (SOF0..SOF15 without DHT C4, JPG C8 and DAC CC) hold the frame size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: JPEG markers without a length field: TEM, RST0..7, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8, 0xD9})
_PNM = re.compile(rb"\AP[1-6](?:\s+|#[^\n]*\n)+(\d{1,12})(?:\s+|#[^\n]*\n)+(\d{1,12})\s")
#: How many TIFF directory entries to read at most (a real first IFD has a few dozen).
_TIFF_MAX_ENTRIES = 4096


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) that ``data``'s header declares, or None when the format is unknown or damaged."""
    for reader in (_png, _jpeg, _gif, _bmp, _webp, _tiff, _pnm):
        try:
            size = reader(data)
        except (struct.error, IndexError, ValueError):
            size = None
        if size is not None:
            return size
    return None


def overrun(data: bytes) -> str | None:
    """Why ``data``'s structure claims more bytes than it has, or None.

    PNG only: OpenCV 4.14 allocates a chunk's declared length before reading it, so an 11 KB
    file whose IDAT claims 3.6 GB took 3.6 GB of memory and 20-40 s to be refused (found by
    tests/test_fuzz.py). Chunks are walked up to IEND; one that runs past the end is reported.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if pos + 12 + length > len(data):
            return (
                f"truncated: its {kind.decode('latin-1')!r} chunk at byte {pos} declares {length:,} bytes, "
                f"{len(data) - pos - 12:,} are left"
            )
        if kind == b"IEND":
            return None
        pos += 12 + length
    return None


def _png(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return (width, height) if height else None  # height 0: set later by a DNL marker
        if length < 2:
            return None
        pos += 2 + length
    return None


def _gif(data: bytes) -> tuple[int, int] | None:
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return width, height


def _bmp(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"BM":
        return None
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height is a top-down bitmap


def _webp(data: bytes) -> tuple[int, int] | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    kind = data[12:16]
    if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L" and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None:
        return None
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    found: dict[int, int] = {}
    for i in range(min(count, _TIFF_MAX_ENTRIES)):
        entry = data[offset + 2 + 12 * i : offset + 14 + 12 * i]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            value = entry[8:10] if kind == 3 else entry[8:12]
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value)[0]
        if len(found) == 2:
            return found[256], found[257]
    return None


def _pnm(data: bytes) -> tuple[int, int] | None:
    match = _PNM.match(data[:4096])
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))
