"""OpenCV as the second decoder: its picture comes as stored (a TIFF's orientation taken out, as
OpenCV would apply it), in RGB order, 8 bits, grey as RGB, alpha kept; and which files go to it
first (a JPEG-compressed TIFF, an arithmetic-coded JPEG) and which do not."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from cartoonize.media import exif, opencv_photo, tiff
from cartoonize.pipelines.image import write_image
from tests.helpers import pattern


@pytest.mark.parametrize("compression", ["jpeg", "raw"])
def test_a_tiff_comes_as_stored_whatever_its_orientation(compression: str, tmp_path: Path) -> None:
    """OpenCV's TIFF decoder turns the picture by its Orientation tag (its JPEG, PNG and WebP ones
    do not, with IMREAD_UNCHANGED): taken out, so that media.exif turns every photo alike."""
    image_module = pytest.importorskip("PIL.Image")
    stored = pattern(32, 24, 0)
    for value in range(1, 9):
        path = tmp_path / f"o{value}.tif"
        image_module.fromarray(stored).save(
            path, compression=compression, tiffinfo={exif.ORIENTATION_TAG: value}
        )
        assert exif.orientation(path) == value
        got = opencv_photo.rgba_from_file(path)
        assert got is not None and got.shape == (24, 32, 3), value
        assert np.abs(got.astype(int) - stored).mean() < 3, value


def test_channels_and_depths_come_as_8_bit_rgb_and_rgba(tmp_path: Path) -> None:
    rgb = pattern(16, 12, 0)
    cv2.imwrite(str(tmp_path / "bgra.png"), np.dstack([rgb[..., ::-1], np.full((12, 16), 77, np.uint8)]))
    rgba = opencv_photo.rgba_from_file(tmp_path / "bgra.png")
    assert rgba is not None and np.array_equal(rgba[..., :3], rgb) and (rgba[..., 3] == 77).all()
    grey16 = (np.arange(16 * 12, dtype=np.uint16).reshape(12, 16) * 300).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "grey16.png"), grey16)
    grey = opencv_photo.rgba_from_file(tmp_path / "grey16.png")
    want = np.round(grey16 / 65535 * 255).astype(np.uint8)
    assert grey is not None and grey.shape == (12, 16, 3) and grey.dtype == np.uint8
    assert all(np.array_equal(grey[..., k], want) for k in range(3))
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    assert opencv_photo.rgba_from_file(tmp_path / "junk.png") is None
    assert opencv_photo.rgba_from_file(tmp_path / "missing.png") is None
    (tmp_path / "empty.jpg").write_bytes(b"")  # imdecode would raise
    assert opencv_photo.rgba_from_file(tmp_path / "empty.jpg") is None


def test_which_files_go_to_opencv_first(tmp_path: Path) -> None:
    write_image(tmp_path / "baseline.jpg", pattern(16, 8, 0))
    write_image(tmp_path / "plain.tif", pattern(16, 8, 0))
    ok, data = cv2.imencode(".tif", pattern(16, 8, 0), [cv2.IMWRITE_TIFF_COMPRESSION, 7])
    (tmp_path / "jpeg.tif").write_bytes(data.tobytes())
    from tests.pipelines.test_image_decoders import ARITHMETIC_JPEG

    (tmp_path / "arith.jpg").write_bytes(ARITHMETIC_JPEG)
    assert opencv_photo.misread_by_ffmpeg(tmp_path / "jpeg.tif") == "a TIFF with JPEG compression"
    assert opencv_photo.misread_by_ffmpeg(tmp_path / "arith.jpg") == "an arithmetic-coded JPEG"
    for name in ("baseline.jpg", "plain.tif"):
        assert opencv_photo.misread_by_ffmpeg(tmp_path / name) is None


def ifd(order: str, tags: dict[int, int], following: int) -> bytes:
    """One IFD of SHORT/LONG tags (values in the entries) and the offset of the next."""
    entries = b"".join(
        struct.pack(order + "HHI", tag, 4, 1) + struct.pack(order + "I", value)
        for tag, value in sorted(tags.items())
    )
    return struct.pack(order + "H", len(tags)) + entries + struct.pack(order + "I", following)


@pytest.mark.parametrize("order", ["<", ">"])
def test_pages_leave_out_thumbnails_and_survive_a_loop(order: str, tmp_path: Path) -> None:
    head = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8)
    size = 2 + 12 * 2 + 4  # each IFD below has two tags
    first = ifd(order, {tiff.NEW_SUBFILE_TYPE: 0, tiff.COMPRESSION: 7}, 8 + size)
    thumbnail = ifd(order, {tiff.NEW_SUBFILE_TYPE: 1, tiff.COMPRESSION: 1}, 8 + 2 * size)
    second = ifd(order, {tiff.NEW_SUBFILE_TYPE: 2, tiff.COMPRESSION: 1}, 0)
    (tmp_path / "scan.tif").write_bytes(head + first + thumbnail + second)
    assert tiff.pages(tmp_path / "scan.tif") == 2 and tiff.compression(tmp_path / "scan.tif") == 7
    (tmp_path / "thumb.tif").write_bytes(head + first[:-4] + struct.pack(order + "I", 8 + size) + thumbnail[:-4]
                                         + struct.pack(order + "I", 0))  # fmt: skip
    assert tiff.pages(tmp_path / "thumb.tif") == 1
    loop = ifd(order, {tiff.NEW_SUBFILE_TYPE: 0, tiff.COMPRESSION: 1}, 8)  # points back at itself
    (tmp_path / "loop.tif").write_bytes(head + loop)
    assert tiff.pages(tmp_path / "loop.tif") == 1
    (tmp_path / "cut.tif").write_bytes((head + first + second)[:20])
    assert tiff.pages(tmp_path / "cut.tif") == 1 and tiff.compression(tmp_path / "cut.tif") is None
    assert tiff.pages(tmp_path / "missing.tif") == 1 and tiff.compression(tmp_path / "missing.tif") is None
