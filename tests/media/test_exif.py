"""A photo's EXIF orientation, read from JPEG, PNG, WebP and TIFF, shows it as Pillow does: the
mirrored orientations (2, 4, 5, 7) included, which FFmpeg's display-matrix angle alone gets wrong."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from cartoonize.media import exif
from cartoonize.pipelines.image import read_image, read_image_and_alpha
from tests.helpers import pattern

Image = pytest.importorskip("PIL.Image")
ImageOps = pytest.importorskip("PIL.ImageOps")

LOSSLESS = {".png": {}, ".webp": {"lossless": True}, ".tif": {}}


def save(path: Path, picture: np.ndarray, value: int | None) -> None:
    kind = Image.fromarray(picture, "RGBA" if picture.shape[-1] == 4 else "RGB")
    tags = Image.Exif()
    if value is not None:
        tags[exif.ORIENTATION_TAG] = value
    kind.save(path, exif=tags, **LOSSLESS.get(path.suffix, {"quality": 95, "subsampling": 0}))


def shown_by_pillow(path: Path) -> np.ndarray:
    with Image.open(path) as photo:
        return np.asarray(ImageOps.exif_transpose(photo).convert("RGB"))


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_every_orientation_reads_as_pillow_shows_it(suffix: str, tmp_path: Path) -> None:
    stored = pattern(40, 24, 0)
    for value in range(1, 9):
        path = tmp_path / f"o{value}{suffix}"
        save(path, stored, value)
        assert exif.orientation(path) == value, (suffix, value)
        shown = shown_by_pillow(path)
        picture = read_image(path)
        assert picture.shape == shown.shape, (suffix, value)
        tolerance = 0 if suffix in LOSSLESS else 8  # JPEG: the two decoders differ a few levels
        worst = np.abs(picture.astype(int) - shown.astype(int)).max()
        assert worst <= tolerance, (suffix, value, worst)


def test_a_heif_turns_and_mirrors_by_its_irot_and_imir(tmp_path: Path) -> None:
    """An AVIF or HEIC says its turn and mirror with `irot` and `imir` boxes (Pillow writes them
    from the EXIF orientation it is given, and keeps that tag, which HEIF readers must not apply):
    each reads as Pillow shows the tag. FFmpeg's angle made the mirrored ones upside down."""
    if not Image.registered_extensions().get(".avif"):
        pytest.skip("this Pillow writes no AVIF")
    stored = pattern(40, 24, 0)
    for value in range(1, 9):
        path = tmp_path / f"o{value}.avif"
        Image.fromarray(stored).save(path, exif=_tags(value), quality=100, subsampling="4:4:4")
        assert exif.orientation(path) == (None if value == 1 else value), value
        shown = shown_by_pillow(path)
        picture = read_image(path)
        assert picture.shape == shown.shape, value
        worst = np.abs(picture.astype(int) - shown.astype(int)).max()
        assert worst <= 8, (value, worst)
    assert [exif.from_steps(s) for s in ([("imir", 1)], [("imir", 0)], [("irot", 1), ("imir", 0)])] == [
        2,
        4,
        5,
    ]


def _tags(value: int) -> bytes:
    tags = Image.Exif()
    tags[exif.ORIENTATION_TAG] = value
    return tags.tobytes()


def test_the_mirrored_orientations_are_not_turned_instead(tmp_path: Path) -> None:
    """Orientation 2 (a front camera's selfie, mirrored) keeps the red corner at the top right, not
    at the bottom (FFmpeg's angle reads it as a 180° turn); 4 puts it at the bottom left."""
    stored = pattern(40, 24, 0)
    for value, corner in ((2, (0, -1)), (4, (-1, 0))):
        save(tmp_path / f"m{value}.png", stored, value)
        picture = read_image(tmp_path / f"m{value}.png")
        assert tuple(picture[corner]) == (230, 20, 20), value


def test_sideways_mirrored_photos_scale_and_keep_their_alpha(tmp_path: Path) -> None:
    """Orientation 5 and 7 swap width and height; --max-side counts the upright sides; the alpha
    plane turns and mirrors with the picture."""
    rgba = np.dstack([pattern(40, 24, 0), np.full((24, 40), 255, np.uint8)])
    rgba[:5, :, 3] = 0  # a transparent band along the stored top
    for value in (5, 7):
        path = tmp_path / f"s{value}.png"
        save(path, rgba, value)
        rgb, alpha = read_image_and_alpha(path)
        assert rgb.shape == (40, 24, 3) and alpha is not None
        assert np.array_equal(alpha, exif.upright(rgba[..., 3], value))
        assert read_image(path, max_side=20).shape == (20, 12, 3)


def test_no_exif_keeps_ffmpegs_turn(tmp_path: Path) -> None:
    save(tmp_path / "plain.jpg", pattern(40, 24, 0), None)
    assert exif.orientation(tmp_path / "plain.jpg") is None
    assert read_image(tmp_path / "plain.jpg").shape == (24, 40, 3)
    assert [exif.from_rotation(r) for r in (0, 90, 180, -180, -90, 270)] == [1, 8, 3, 3, 6, 6]


def big_endian_exif(value: int) -> bytes:
    """An EXIF block in Motorola byte order (as many cameras write it) with one other tag first."""
    entries = struct.pack(">HHI4s", 0x010F, 2, 4, b"Cam\x00") + struct.pack(">HHIH2x", 0x0112, 3, 1, value)
    return b"MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 2) + entries + b"\x00" * 4


def test_a_jpeg_with_xmp_before_a_big_endian_exif(tmp_path: Path) -> None:
    """The reader walks past other APP segments (XMP shares APP1) and reads Motorola byte order."""
    save(tmp_path / "plain.jpg", pattern(40, 24, 0), None)
    body = (tmp_path / "plain.jpg").read_bytes()
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>"
    tiff = b"Exif\x00\x00" + big_endian_exif(6)
    segments = b"".join(b"\xff\xe1" + struct.pack(">H", len(data) + 2) + data for data in (xmp, tiff))
    (tmp_path / "camera.jpg").write_bytes(body[:2] + segments + body[2:])
    assert exif.orientation(tmp_path / "camera.jpg") == 6
    assert read_image(tmp_path / "camera.jpg").shape == (40, 24, 3)


@pytest.mark.parametrize("content", [b"", b"\xff\xd8", b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00MM", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
                                     b"\x89PNG\r\n\x1a\n\x00\x00\x00\x04eXIf", b"II*\x00\xff\xff\xff\x7f", b"GIF89a"])  # fmt: skip
def test_damaged_or_unknown_files_have_no_orientation(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(content)
    assert exif.orientation(tmp_path / "bad") is None


def test_an_orientation_out_of_range_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "nine.tif").write_bytes(big_endian_exif(9))
    assert exif.orientation(tmp_path / "nine.tif") is None
