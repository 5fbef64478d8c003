"""What a photo file says about its picture that PyAV does not hand over: its EXIF block (for the
orientation, `media.exif`) and its ICC colour profile (`media.icc`). FFmpeg 8 decodes both into a
frame's side data, which PyAV 18.1 cannot read (a side-data type it does not know raises), so they
are read here from the containers that carry them: JPEG (APP1 "Exif", APP2 "ICC_PROFILE"), PNG
(eXIf, iCCP), WebP (EXIF, ICCP), TIFF (the file is itself the EXIF layout; ICC in tag 34675) and
HEIF/AVIF (a `colr` property: media.heif; their EXIF orientation is not to be applied).

Nothing here raises for a damaged or unknown file: it answers None, and the decoder says the rest.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from cartoonize.media import heif

TIFF_HEADERS = {b"II*\x00": "<", b"MM\x00*": ">"}
EXIF_PREFIX = b"Exif\x00\x00"
ICC_PREFIX = b"ICC_PROFILE\x00"
TIFF_ICC_TAG = 34675
MAX_SCAN = 1 << 20  # a JPEG's APP segments lie near its start; never read a whole photo for them
MAX_PROFILE = 4 << 20  # an ICC profile larger than this is not one a photo carries


def exif_block(path: Path) -> bytes | None:
    """The photo's EXIF data in its TIFF layout (byte order, IFD0, ...)."""
    return _read(path, _exif_in)


def icc_profile(path: Path) -> bytes | None:
    """The photo's embedded ICC profile, as its bytes."""
    return _read(path, _icc_in)


def picture_size(path: Path) -> tuple[int, int] | None:
    """The (width, height) a PNG (IHDR) or WebP (its canvas) says its picture is, read before any
    of the picture; None for other files (media.tiff and media.opencv_photo read TIFF's and JPEG's)."""
    return _read(path, _size_in)


def heif_transforms(path: Path) -> list[tuple[str, int]] | None:
    """A HEIF/AVIF photo's turn and mirror (media.heif.transforms); None for other files."""
    return _read(path, lambda kind, file: heif.transforms(file) if kind == "heif" else None)


T = TypeVar("T")


def _read(path: Path, find: Callable[[str, BinaryIO], T | None]) -> T | None:
    try:
        with open(path, "rb") as file:
            head = file.read(64)  # an ISO BMFF ftyp box lists its brands in the first few dozen
            file.seek(0)
            kind = _kind(head)
            return find(kind, file) if kind else None
    except (OSError, struct.error, zlib.error, ValueError):
        return None


def _kind(head: bytes) -> str | None:
    if head[:2] == b"\xff\xd8":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in TIFF_HEADERS:
        return "tiff"
    if heif.is_heif(head):
        return "heif"
    return None


def _exif_in(kind: str, file: BinaryIO) -> bytes | None:
    if kind == "heif":  # an Exif item, whose orientation HEIF says not to apply (irot/imir do)
        return None
    if kind == "jpeg":
        for marker, segment in _jpeg_segments(file):
            if marker == 0xE1 and segment.startswith(EXIF_PREFIX):  # XMP shares APP1
                return segment[len(EXIF_PREFIX) :]
        return None
    if kind == "tiff":
        return file.read(MAX_SCAN)
    data = _chunk(file, b"eXIf" if kind == "png" else b"EXIF", png=kind == "png")
    if data is not None and data.startswith(EXIF_PREFIX):  # some WebP writers keep JPEG's prefix
        data = data[len(EXIF_PREFIX) :]
    return data


def _size_in(kind: str, file: BinaryIO) -> tuple[int, int] | None:
    if kind == "png":  # IHDR comes first: width, height, big-endian
        head = file.read(24)
        return struct.unpack(">II", head[16:24]) if head[12:16] == b"IHDR" else None
    if kind == "webp":
        head = file.read(30)
        if head[12:16] == b"VP8X":  # the canvas: 24-bit sides less one
            return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
        if head[12:16] == b"VP8L":  # lossless: 14-bit sides less one after a signature byte
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if head[12:16] == b"VP8 ":  # lossy: after a 3-byte frame tag and a start code, 14-bit sides
            return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(
                head[28:30], "little"
            ) & 0x3FFF
    return None


def _icc_in(kind: str, file: BinaryIO) -> bytes | None:
    if kind == "jpeg":  # split over APP2 segments, each numbered (1-based) and counting the whole
        parts: dict[int, bytes] = {}
        for marker, segment in _jpeg_segments(file):
            if marker == 0xE2 and segment.startswith(ICC_PREFIX) and len(segment) > len(ICC_PREFIX) + 2:
                parts[segment[len(ICC_PREFIX)]] = segment[len(ICC_PREFIX) + 2 :]
        if not parts or sorted(parts) != list(range(1, len(parts) + 1)):
            return None
        return b"".join(parts[k] for k in sorted(parts))
    if kind == "png":  # a name, a NUL, the compression method (0: zlib), the compressed profile
        data = _chunk(file, b"iCCP", png=True)
        if data is None or b"\x00" not in data[:80]:
            return None
        packed = data[data.index(b"\x00") + 2 :]
        return zlib.decompressobj().decompress(packed, MAX_PROFILE)
    if kind == "webp":
        return _chunk(file, b"ICCP", png=False)
    if kind == "heif":
        return heif.icc_profile(file)
    return _tiff_tag(file.read(MAX_SCAN + MAX_PROFILE), TIFF_ICC_TAG)


def ifd0_entry(tiff: bytes, wanted: int) -> tuple[str, int, int, bytes] | None:
    """IFD0's entry for tag `wanted` in a TIFF-layout block (an EXIF block, a TIFF file): its byte
    order ("<" or ">"), type, count and 4-byte value field (the value, or its offset when longer);
    None where the block has no such entry or is cut short."""
    order = TIFF_HEADERS.get(tiff[:4])
    if order is None or len(tiff) < 8:
        return None
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for k in range(count):
        entry = tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        if len(entry) < 12:
            return None
        tag, kind, n = struct.unpack(order + "HHI", entry[:8])
        if tag == wanted:
            return order, kind, n, entry[8:12]
    return None


def _tiff_tag(tiff: bytes, wanted: int) -> bytes | None:
    """The bytes of an UNDEFINED-type tag of IFD0 (stored at an offset when over 4 bytes)."""
    found = ifd0_entry(tiff, wanted)
    if found is None:
        return None
    order, _kind, n, value = found
    data = tiff[struct.unpack(order + "I", value)[0] :][:n] if n > 4 else value[:n]
    return data if len(data) == n else None


def _jpeg_segments(file: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(marker, payload) of each segment before the picture's first scan."""
    file.seek(2)
    while file.tell() < MAX_SCAN:
        marker = file.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return
        if marker[1] == 0xFF:  # fill bytes before a marker
            file.seek(-1, 1)
            continue
        if marker[1] in (0xD9, 0xDA):  # end of image, start of scan
            return
        size = file.read(2)
        if len(size) < 2:
            return
        length = struct.unpack(">H", size)[0] - 2
        if 0xE0 <= marker[1] <= 0xEF:  # APPn: read; the tables between them are skipped
            yield marker[1], file.read(length)
        else:
            file.seek(length, 1)


def _chunk(file: BinaryIO, wanted: bytes, png: bool) -> bytes | None:
    """The data of the first `wanted` chunk of a PNG (length, type, data, CRC; big-endian) or of a
    RIFF file such as WebP (type, length, data padded to an even size; little-endian)."""
    file.seek(8 if png else 12)
    while True:
        header = file.read(8)
        if len(header) < 8:
            return None
        if png:
            length, kind = struct.unpack(">I4s", header)
            skip = length + 4
        else:
            kind, length = struct.unpack("<4sI", header)
            skip = length + (length & 1)
        if kind == wanted:
            return file.read(min(length, MAX_PROFILE))
        if kind == b"IEND":  # (WebP puts EXIF after the picture, and PNG may too: no stop before)
            return None
        file.seek(skip, 1)
