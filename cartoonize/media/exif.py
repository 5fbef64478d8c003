"""A photo's EXIF orientation (tag 0x0112), read from the file, and the turn that shows it upright.

FFmpeg honours the tag, but hands it on as a display matrix, and PyAV gives only that matrix's
angle (`frame.rotation`), not whether it mirrors: orientation 2 (mirrored left to right) reads as a
180° turn, which shows the photo upside down, and 4 (mirrored top to bottom) as no turn at all.
PyAV 18.1 cannot read the frame's side data either (FFmpeg 8's EXIF side data is a type it does
not know). So the tag is read here, from the EXIF block `media.photo_file` finds in a JPEG, PNG,
WebP or TIFF.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from cartoonize.media.photo_file import exif_block, heif_transforms, ifd0_entry

ORIENTATION_TAG = 0x0112
SHORT = 3  # the TIFF type of the orientation value


def orientation(path: Path) -> int | None:
    """1–8 as the file's EXIF says, or None where it has none (or one out of range, which FFmpeg
    and browsers ignore too). Never raises for a damaged or unknown file: the decoder says that."""
    tiff = exif_block(path)
    value = _orientation_in(tiff) if tiff else None
    if value is None:  # a HEIF's turn and mirror are its irot and imir, not its EXIF's
        steps = heif_transforms(path)
        value = from_steps(steps) if steps else None
    return value if value is not None and 1 <= value <= 8 else None


def from_steps(steps: list[tuple[str, int]]) -> int:
    """The orientation that shows a picture as HEIF's `irot` (quarter turns counter-clockwise) and
    `imir` (ISO/IEC 23008-12:2022 6.5.12: axis 0 exchanges top and bottom, EXIF's 4; axis 1 left
    and right, EXIF's 2), applied in this order, do."""
    grid = np.arange(6).reshape(2, 3)
    shown = grid
    for kind, value in steps:
        shown = np.rot90(shown, value) if kind == "irot" else shown[::-1] if value == 0 else shown[:, ::-1]
    return next(k for k in range(1, 9) if np.array_equal(upright(grid, k), shown))


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
    found = ifd0_entry(tiff, ORIENTATION_TAG)
    if found is None:
        return None
    order, kind, n, value = found
    return int(struct.unpack(order + "H", value[:2])[0]) if kind == SHORT and n >= 1 else None
