"""Training pictures as OpenCV reads them, and what their headers say without decoding them.

A transparent picture (a PNG, WebP or TIFF with alpha: a character cut out of its background) is
laid on white, as a page, a browser or `cartoonize image` shows it: OpenCV's colour read drops the
alpha and keeps what lies under the transparent parts, often black or an earlier edit's colours.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
NOT_JPEG_FRAMES = {0xC4, 0xC8, 0xCC}  # DHT, JPG (reserved), DAC share the start-of-frame range


def read_bgr(path: Path) -> np.ndarray | None:
    """(H, W, 3) uint8 BGR, a transparent picture laid on white; None where it cannot be decoded."""
    # only these: the unchanged read skips the EXIF orientation that the colour read applies
    if has_alpha(path):
        picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if picture is not None and picture.ndim == 3 and picture.shape[2] in (2, 4):
            return on_white(picture)
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def on_white(picture: np.ndarray) -> np.ndarray:
    """(H, W, 2 or 4) grey or BGR with alpha, 8 or 16 bits (or 0-1 floats) -> (H, W, 3) uint8 BGR on white."""
    top = float(np.iinfo(picture.dtype).max) if picture.dtype.kind in "iu" else 1.0
    values = np.clip(picture.astype(np.float32) / top, 0.0, 1.0)
    colour, alpha = values[..., :-1], values[..., -1:]
    if colour.shape[2] == 1:
        colour = np.repeat(colour, 3, axis=2)
    return np.round((colour * alpha + (1.0 - alpha)) * 255.0).astype(np.uint8)


def has_alpha(path: Path) -> bool:
    """Whether the header declares transparency: a PNG with an alpha channel or a tRNS chunk, a
    WebP with alpha; any TIFF (its extra samples are known once decoded)."""
    try:
        with path.open("rb") as file:
            head = file.read(30)
            if head.startswith(PNG_SIGNATURE) and len(head) > 25:
                if head[25] in (4, 6):  # colour types grey + alpha, RGBA
                    return True
                file.seek(8)
                while len(chunk := file.read(8)) == 8 and chunk[4:] != b"IDAT":  # tRNS comes before it
                    if chunk[4:] == b"tRNS":
                        return True
                    file.seek(int.from_bytes(chunk[:4], "big") + 4, 1)  # the data, then the CRC
                return False
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 25:
                if head[12:16] == b"VP8X":
                    return bool(head[20] & 0x10)
                if head[12:16] == b"VP8L":  # lossless: alpha_is_used follows the 14-bit sides
                    return bool(int.from_bytes(head[21:25], "little") >> 28 & 1)
                return False
            return head[:4] in TIFF_SIGNATURES
    except OSError:
        return False


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header of a PNG, JPEG or WebP (other types are decoded); None where
    unreadable. A JPEG's EXIF turn may swap the two: its short side and aspect stay what they are."""
    try:
        with path.open("rb") as file:
            head = file.read(30)
            if head.startswith(PNG_SIGNATURE) and len(head) >= 24:
                width, height = struct.unpack(">II", head[16:24])  # IHDR, always the first chunk
                return width, height
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) == 30:
                return _webp_size(head)
            if head[:2] == b"\xff\xd8":
                return _jpeg_size(file)
    except OSError:
        return None
    picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if picture is None else (picture.shape[1], picture.shape[0])


def _webp_size(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8X":  # the canvas, 24 bits each, less one
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if kind == b"VP8L":  # 14 bits each, less one
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + (bits >> 14 & 0x3FFF)
    if kind == b"VP8 ":  # after the frame tag and start code, 14 bits each
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    return None


def _jpeg_size(file: BinaryIO) -> tuple[int, int] | None:
    """The sides in the JPEG's start-of-frame segment, which comes after the APP segments."""
    file.seek(2)
    while len(head := file.read(4)) == 4 and head[0] == 0xFF:
        if head[1] == 0xFF:  # fill bytes before a marker
            file.seek(-3, 1)
            continue
        if head[1] in (0xD9, 0xDA):  # end of image, start of scan: no frame header before them
            return None
        if 0xC0 <= head[1] <= 0xCF and head[1] not in NOT_JPEG_FRAMES:
            frame = file.read(5)  # precision, height, width
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:])
            return width, height
        file.seek(int.from_bytes(head[2:], "big") - 2, 1)  # the segment's length counts itself
    return None
