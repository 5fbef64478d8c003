"""What a written photo says about itself besides its pixels: square pixels (a PNG's pHYs, a JPEG's
JFIF header), and nothing of the source's EXIF (its orientation is applied to the pixels, so a tag
carried over would turn the cartoon twice; its GPS position is the user's to share) or its ICC
profile (the cartoon is sRGB, which a file without a profile is shown as)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from cartoonize.media import exif, photo_file
from cartoonize.pipelines.image import IMAGE_SUFFIXES, write_image
from tests.helpers import pattern


def png_chunks(path: Path) -> dict[bytes, bytes]:
    data, at, chunks = path.read_bytes(), 8, {}
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        chunks.setdefault(kind, data[at + 8 : at + 8 + length])
        at += 12 + length
    return chunks


def test_a_png_says_its_pixels_are_square(tmp_path: Path) -> None:
    """FFmpeg wrote pHYs as 0 pixels per unit across, 1 down (an aspect ratio of 0), for the
    frame's unset sample aspect ratio."""
    write_image(tmp_path / "c.png", pattern(64, 48, 0))
    phys = png_chunks(tmp_path / "c.png").get(b"pHYs")
    if phys is not None:
        across, down, _unit = struct.unpack(">IIB", phys)
        assert across == down > 0, (across, down)


def test_a_jpeg_has_a_jfif_header_of_square_pixels(tmp_path: Path) -> None:
    write_image(tmp_path / "c.jpg", pattern(64, 48, 0))
    data = (tmp_path / "c.jpg").read_bytes()
    assert data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\x00", data[:16]
    across, down = struct.unpack(">HH", data[14:18])
    assert across == down > 0, (across, down)


@pytest.mark.parametrize("suffix", sorted(set(IMAGE_SUFFIXES) - {".jpeg", ".tiff"}))
def test_an_output_carries_no_orientation_nor_profile(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"c{suffix}"
    write_image(path, pattern(64, 48, 0))
    assert exif.orientation(path) in (None, 1) and photo_file.icc_profile(path) is None
