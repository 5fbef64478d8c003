"""What a TIFF file's directories (IFDs) say that FFmpeg's TIFF decoder does not act on: a JPEG
compression, which it decodes as a black picture without a word, and the pages after the first,
which it does not read; and its orientation taken out, for OpenCV's decoder, which acts on it.

Nothing here raises for a damaged or unknown file: it answers None (or one page), and the decoder
says the rest.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cartoonize.media.photo_file import TIFF_HEADERS

ORIENTATION = 0x0112
NEW_SUBFILE_TYPE = 254  # bit 0: a reduced-resolution copy of another page (a thumbnail), not a page
COMPRESSION = 259
IMAGE_WIDTH, IMAGE_LENGTH = 256, 257
JPEG_COMPRESSIONS = {6, 7}  # old-style (TIFF 6.0) and new-style (Technical Note 2) JPEG
MAX_DIRECTORIES = 10_000  # past this a chain of IFDs is a loop in a damaged file
WANTED = (NEW_SUBFILE_TYPE, COMPRESSION, IMAGE_WIDTH, IMAGE_LENGTH)
VALUE_FORMATS = {3: "H", 4: "I"}  # the TIFF types SHORT and LONG their values come as


def compression(path: Path) -> int | None:
    """The first page's Compression tag (1: none, 5: LZW, 7: JPEG, ...); None for a file that is
    not a TIFF or has no such tag."""
    return next(_directories(path), {}).get(COMPRESSION)


def size(path: Path) -> tuple[int, int] | None:
    """The first page's (width, height); None for a file that is not a TIFF or does not say."""
    tags = next(_directories(path), {})
    if IMAGE_WIDTH not in tags or IMAGE_LENGTH not in tags:
        return None
    return tags[IMAGE_WIDTH], tags[IMAGE_LENGTH]


def pages(path: Path) -> int:
    """How many pictures the TIFF holds, not counting reduced-resolution copies (thumbnails); 1 for
    a file that is not a TIFF."""
    return max(1, sum(1 for tags in _directories(path) if not tags.get(NEW_SUBFILE_TYPE, 0) & 1))


def as_stored(data: bytes) -> bytes:
    """A TIFF file's bytes with its first page's Orientation set to 1 (as stored): OpenCV's TIFF
    decoder turns the picture by the tag, which the caller does for every photo (media.exif);
    `data` unchanged where it is not a TIFF or has no such tag."""
    order = TIFF_HEADERS.get(data[:4])
    if order is None or len(data) < 8:
        return data
    try:
        (ifd,) = struct.unpack_from(order + "I", data, 4)
        (count,) = struct.unpack_from(order + "H", data, ifd)
        for at in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind = struct.unpack_from(order + "HH", data, at)
            if tag == ORIENTATION and kind == 3:  # SHORT
                return data[: at + 8] + struct.pack(order + "H", 1) + data[at + 10 :]
    except struct.error:  # cut short
        pass
    return data


def _directories(path: Path) -> Iterator[dict[int, int]]:
    """The NewSubfileType, Compression and size values of each IFD, in the file's chain of them."""
    try:
        with open(path, "rb") as file:
            yield from _chain(file)
    except (OSError, struct.error):
        return


def _chain(file: BinaryIO) -> Iterator[dict[int, int]]:
    head = file.read(8)
    order = TIFF_HEADERS.get(head[:4])
    if order is None or len(head) < 8:
        return
    (offset,) = struct.unpack(order + "I", head[4:8])
    seen: set[int] = set()
    while offset and offset not in seen and len(seen) < MAX_DIRECTORIES:
        seen.add(offset)
        file.seek(offset)
        (count,) = struct.unpack(order + "H", file.read(2))
        entries = file.read(12 * count)
        tags: dict[int, int] = {}
        for k in range(len(entries) // 12):
            tag, kind, n = struct.unpack(order + "HHI", entries[12 * k : 12 * k + 8])
            if tag in WANTED and n == 1 and kind in VALUE_FORMATS:  # one value: in the entry itself
                (tags[tag],) = struct.unpack_from(order + VALUE_FORMATS[kind], entries, 12 * k + 8)
        yield tags
        following = file.read(4)
        if len(entries) < 12 * count or len(following) < 4:  # cut short
            return
        (offset,) = struct.unpack(order + "I", following)
