"""The ICC profile of a HEIF photo (an iPhone's HEIC, an AVIF), read from its boxes.

A HEIF file keeps its picture's properties in `meta` → `iprp` → `ipco`, and says which belong to
which item in `ipma`; the picture shown is the primary item (`pitm`), often a grid of tiles. Its
colour is a `colr` property: an ICC profile (`prof`, or `rICC`, restricted) or coded code points
(`nclx`, which the decoder already reports as the frame's primaries and transfer). iPhones save
Display P3 as a profile: read as sRGB, the photo is duller than it is shown (media/icc). Its turn
and mirror are `irot` and `imir` properties: FFmpeg folds both into a display matrix, of which
PyAV gives only the angle (a mirrored photo came out upside down); media/exif reads them here.

Only the `meta` box is read (the boxes before it are passed over by their sizes): a few KB.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["BRANDS", "icc_profile", "is_heif", "transforms"]

# major or compatible brands of still HEIF/AVIF pictures (ISO/IEC 23008-12, AV1 Image File Format)
BRANDS = frozenset({b"mif1", b"msf1", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"avif", b"avis"})
MAX_META = 8 << 20  # a meta box with a large profile and a 48-tile grid's locations is far smaller


def is_heif(head: bytes) -> bool:
    """Whether the file's first bytes are an ISO BMFF `ftyp` box naming a HEIF brand."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    size = struct.unpack(">I", head[:4])[0]
    brands = [head[8:12]] + [head[k : k + 4] for k in range(16, min(size, len(head)) - 3, 4)]
    return any(brand in BRANDS for brand in brands)


def icc_profile(file: BinaryIO) -> bytes | None:
    """The primary item's ICC profile (a `colr` of type `prof` or `rICC`), else the first one in the
    file's properties; None where the photo has none (sRGB, or `nclx` code points only)."""
    meta = _meta(file)
    if meta is None:
        return None
    own = [_profile(body) for kind, body in _primary_properties(meta) or [] if kind == b"colr"]
    found = [p for p in own if p is not None]
    if found:
        return found[0]
    iprp = dict(_boxes(dict(_boxes(meta)).get(b"iprp", b"")))
    anywhere = [_profile(body) for kind, body in _boxes(iprp.get(b"ipco", b"")) if kind == b"colr"]
    return next((p for p in anywhere if p is not None), None)


def transforms(file: BinaryIO) -> list[tuple[str, int]] | None:
    """The primary item's turn and mirror, in the order they apply (`ipma`'s): ("irot", quarter
    turns counter-clockwise) and ("imir", 0: top and bottom exchanged; 1: left and right). None
    where the file has no primary item to read them for."""
    meta = _meta(file)
    found = _primary_properties(meta) if meta is not None else None
    if found is None:
        return None
    steps = []
    for kind, body in found:
        if kind == b"irot" and body:
            steps.append(("irot", body[0] & 0x03))
        elif kind == b"imir" and body:
            steps.append(("imir", body[0] & 0x01))
    return steps


def _meta(file: BinaryIO) -> bytes | None:
    """The children of the file's top-level `meta` box (after its version and flags), read alone:
    the boxes before it are passed over by their sizes (an `mdat` first is megabytes)."""
    while True:
        header = file.read(8)
        if len(header) < 8:
            return None
        size, kind = struct.unpack(">I4s", header)
        taken = 8
        if size == 1:
            large = file.read(8)
            if len(large) < 8:
                return None
            size, taken = struct.unpack(">Q", large)[0], 16
        if kind == b"meta":
            if size < taken + 4 or size - taken > MAX_META:  # to the end (0), or past any a photo has
                return None
            body = file.read(size - taken)
            return body[4:] if len(body) == size - taken else None
        if size < taken:  # 0: the last box, to the end of the file
            return None
        file.seek(size - taken, 1)


def _primary_properties(meta: bytes) -> list[tuple[bytes, bytes]] | None:
    """The (type, body) of each property of the primary item, in association order."""
    children = dict(_boxes(meta))
    iprp = dict(_boxes(children.get(b"iprp", b"")))
    properties = list(_boxes(iprp.get(b"ipco", b"")))
    primary = _primary(children.get(b"pitm"))
    for item, indexes in _associations(iprp.get(b"ipma", b"")):
        if item == primary:
            return [properties[k - 1] for k in indexes if 1 <= k <= len(properties)]
    return None


def _boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, body) of each box in `data`, stopping at one that runs past its end."""
    at = 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        header = 8
        if size == 1:
            if at + 16 > len(data):
                return
            size, header = struct.unpack(">Q", data[at + 8 : at + 16])[0], 16
        elif size == 0:  # to the end of the file
            size = len(data) - at
        if size < header or at + size > len(data):
            return
        yield kind, data[at + header : at + size]
        at += size


def _profile(colr: bytes) -> bytes | None:
    return colr[4:] if colr[:4] in (b"prof", b"rICC") and len(colr) > 4 else None


def _primary(pitm: bytes | None) -> int | None:
    if pitm is None or len(pitm) < 6:
        return None
    return struct.unpack(">H", pitm[4:6])[0] if pitm[0] == 0 else struct.unpack(">I", pitm[4:8])[0]


def _associations(ipma: bytes) -> Iterator[tuple[int, list[int]]]:
    """(item id, its property indexes, 1-based) from an `ipma` box."""
    if len(ipma) < 8:
        return
    version, flags = ipma[0], int.from_bytes(ipma[1:4], "big")
    (count,) = struct.unpack(">I", ipma[4:8])
    at = 8
    for _ in range(count):
        id_size = 2 if version < 1 else 4
        if at + id_size + 1 > len(ipma):
            return
        item = int.from_bytes(ipma[at : at + id_size], "big")
        n = ipma[at + id_size]
        at += id_size + 1
        wide = flags & 1  # 15-bit indexes, else 7-bit; the top bit says "essential"
        step = 2 if wide else 1
        if at + n * step > len(ipma):
            return
        raw = [int.from_bytes(ipma[at + k * step : at + (k + 1) * step], "big") for k in range(n)]
        at += n * step
        yield item, [value & (0x7FFF if wide else 0x7F) for value in raw]
