"""A photo's EXIF orientation (tag 0x0112), read from the file, and the turn that shows it upright.

FFmpeg honours the tag, but hands it on as a display matrix, and PyAV gives only that matrix's
angle (`frame.rotation`), not whether it mirrors: orientation 2 (mirrored left to right) reads as a
180° turn, which shows the photo upside down, and 4 (mirrored top to bottom) as no turn at all.
PyAV 18.1 cannot read the frame's side data either (FFmpeg 8's EXIF side data is a type it does
not know). So the tag is read here, from the four containers that carry it: JPEG (APP1 "Exif"),
PNG (eXIf), WebP (the EXIF chunk) and TIFF (the file is itself the EXIF layout).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

ORIENTATION_TAG = 0x0112
SHORT = 3  # the TIFF type of the orientation value
TIFF_HEADERS = {b"II*\x00": "<", b"MM\x00*": ">"}
EXIF_PREFIX = b"Exif\x00\x00"
MAX_SCAN = 1 << 20  # a JPEG's APP segments lie near its start; never read a whole photo for them


def orientation(path: Path) -> int | None:
    """1–8 as the file's EXIF says, or None where it has none (or one out of range, which FFmpeg
    and browsers ignore too). Never raises for a damaged or unknown file: the decoder says that."""
    try:
        with open(path, "rb") as file:
            head = file.read(12)
            file.seek(0)
            if head[:2] == b"\xff\xd8":
                tiff = _jpeg_exif(file)
            elif head[:8] == b"\x89PNG\r\n\x1a\n":
                tiff = _chunk(file, 8, b"eXIf", png=True)
            elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                tiff = _chunk(file, 12, b"EXIF", png=False)
            elif head[:4] in TIFF_HEADERS:
                tiff = file.read(MAX_SCAN)
            else:
                return None
    except OSError:
        return None
    value = _orientation_in(tiff) if tiff else None
    return value if value is not None and 1 <= value <= 8 else None


def from_rotation(rotation: float) -> int:
    """The orientation that turns a picture as a display matrix of `rotation` degrees (PyAV's
    `frame.rotation`: counter-clockwise) does, for files whose EXIF says nothing."""
    return {0: 1, 1: 8, 2: 3, 3: 6}[int(round(rotation / 90.0)) % 4]


def sideways(value: int) -> bool:
    """Whether the upright picture's width is the stored one's height (5–8)."""
    return value >= 5


def upright(picture: np.ndarray, value: int) -> np.ndarray:
    """The stored (H, W, ...) picture as EXIF orientation `value` shows it (a contiguous copy)."""
    turned = {
        1: picture,
        2: picture[:, ::-1],  # mirrored left to right
        3: picture[::-1, ::-1],  # turned 180°
        4: picture[::-1],  # mirrored top to bottom
        5: picture.swapaxes(0, 1),  # transposed: mirrored along the main diagonal
        6: np.rot90(picture, -1),  # turned 90° clockwise
        7: picture[::-1, ::-1].swapaxes(0, 1),  # mirrored along the other diagonal
        8: np.rot90(picture, 1),  # turned 90° counter-clockwise
    }[value]
    return np.ascontiguousarray(turned)


def _orientation_in(tiff: bytes) -> int | None:
    """The orientation in IFD0 of an EXIF (TIFF-layout) block."""
    if tiff.startswith(EXIF_PREFIX):  # some WebP writers keep JPEG's prefix
        tiff = tiff[len(EXIF_PREFIX) :]
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
        if tag == ORIENTATION_TAG and kind == SHORT and n >= 1:
            return int(struct.unpack(order + "H", entry[8:10])[0])
    return None


def _jpeg_exif(file: BinaryIO) -> bytes | None:
    """The TIFF block of a JPEG's first APP1 "Exif" segment (XMP shares APP1; skipped)."""
    file.seek(2)
    while file.tell() < MAX_SCAN:
        marker = file.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        if marker[1] == 0xFF:  # fill bytes before a marker
            file.seek(-1, 1)
            continue
        if marker[1] in (0xD9, 0xDA):  # end of image, start of scan: no EXIF before the picture
            return None
        size = file.read(2)
        if len(size) < 2:
            return None
        length = struct.unpack(">H", size)[0] - 2
        if marker[1] == 0xE1:
            data = file.read(length)
            if data.startswith(EXIF_PREFIX):
                return data[len(EXIF_PREFIX) :]
        else:
            file.seek(length, 1)
    return None


def _chunk(file: BinaryIO, start: int, wanted: bytes, png: bool) -> bytes | None:
    """The data of the first `wanted` chunk of a PNG (length, type, data, CRC; big-endian) or of a
    RIFF file such as WebP (type, length, data padded to an even size; little-endian)."""
    file.seek(start)
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
            return file.read(length)
        if kind == b"IEND":
            return None
        file.seek(skip, 1)
