"""Photos FFmpeg decodes wrong or not at all: a JPEG-compressed TIFF (black from FFmpeg) and an
arithmetic-coded JPEG (refused) are decoded with OpenCV, turned and colour-managed as FFmpeg's are;
SVG, JPEG XL and PSD files it cannot decode are one line naming the type and the way out, which
fails that photo alone in a batch; a folder takes every type a photo named alone can be, and
says how many files it left out; a multi-page TIFF warns; an icon is its largest picture."""

from __future__ import annotations

import base64
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from cartoonize.errors import CartoonizeError, CartoonizeWarning
from cartoonize.media import opencv_photo
from cartoonize.pipelines.image import (
    READ_ONLY_SUFFIXES,
    ImageJob,
    cartoonize_images,
    plan_outputs,
    read_image,
    write_image,
)
from tests.helpers import pattern
from tests.pipelines.test_image import make_runner

# a 16×8 `pattern(16, 8, 0)` as `cjpeg -arithmetic -quality 95 -sample 1x1` writes it
ARITHMETIC_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsI"
    "CQoKCgoKBggLDAsKDAkKCgr/2wBDAQICAgICAgUDAwUKBwYHCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoK"
    "CgoKCgoKCgoKCgoKCgr/yQARCAAIABADAREAAhEBAxEB/8wACgAQEAUBEBEF/9oADAMBAAIRAxEAPwD/AOvAjcNkWkCu36J1"
    "5KCZG4t/mVKIW8Vj03jjj7e25/L569V3Scj+yfClOGmxxLVTZ74ckbAOKSk738z61D/ouf33LWf3e8ArIPzmO+3nwthyTXNj"
    "fxkRZb8aNKyoJg2Pbkxfj5Rsdw+VQ+pBLtoKnNnLIsIQngMvCTLRG2bguG/cAdP/AI1d3Y0rBJbUeiieM1L4wZm0KlSTP0Q7"
    "Zkf4/9k="
)
# an 8×8 lossless JPEG XL codestream (`cjxl -d 0`), which FFmpeg names and has no decoder for
JPEG_XL = bytes.fromhex("ff0a4140407121080201005c004b188b15c24902e605220018f29fd40000000000000000")
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>'


def photoshop(compression: int, planes: bytes) -> bytes:
    """An 8×8 RGB PSD: header, empty colour-mode, resource and layer sections, the merged picture."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 8, 8, 8, 3) + struct.pack(">III", 0, 0, 0)
    return header + struct.pack(">H", compression) + planes


def tiff_by_opencv(path: Path, rgb: np.ndarray, compression: int) -> Path:
    # JPEG compression wants strips of a multiple of 8 rows
    options = [cv2.IMWRITE_TIFF_COMPRESSION, compression, cv2.IMWRITE_TIFF_ROWSPERSTRIP, 8]
    ok, data = cv2.imencode(".tif", np.ascontiguousarray(rgb[..., ::-1]), options)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def mean_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(int) - want.astype(int)).mean())


def test_a_jpeg_compressed_tiff_is_its_picture_not_black(tmp_path: Path) -> None:
    photo = tiff_by_opencv(tmp_path / "scan.tif", pattern(64, 48, 0), compression=7)
    assert mean_error(read_image(photo), pattern(64, 48, 0)) < 3  # JPEG's loss; FFmpeg's black: 80
    small = read_image(photo, max_side=32)
    assert small.shape == (24, 32, 3)
    assert mean_error(small, cv2.resize(pattern(64, 48, 0), (32, 24), interpolation=cv2.INTER_AREA)) < 3


def test_a_jpeg_compressed_tiff_is_turned_and_colour_managed(tmp_path: Path) -> None:
    """Its EXIF orientation (IFD0's) and ICC profile apply as they do to a photo FFmpeg decodes."""
    image_module = pytest.importorskip("PIL.Image")
    from tests.media.test_icc import DISPLAY_P3, SRGB_CURVE, by_littlecms, profile

    data = profile(DISPLAY_P3, SRGB_CURVE)
    path = tmp_path / "sideways.tif"
    image_module.fromarray(pattern(32, 24, 0)).save(
        path, compression="jpeg", tiffinfo={0x0112: 6}, icc_profile=data
    )
    as_stored = opencv_photo.rgba_from_file(path)
    assert as_stored is not None
    want = by_littlecms(np.ascontiguousarray(np.rot90(as_stored, -1)), data)  # turned 90° clockwise
    got = read_image(path)
    assert got.shape == (32, 24, 3) and np.abs(got.astype(int) - want).max() <= 1
    assert read_image(path, max_side=16).shape == (16, 12, 3)


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        ("drawing.svg", SVG, r"drawing\.svg is a vector drawing \(SVG\), which cannot be decoded here: export it as PNG"),
        ("photo.jxl", JPEG_XL, r"photo\.jxl is a JPEG XL image, which cannot be decoded here: convert it to PNG or "
                               r"JPEG first \(`djxl photo\.jxl photo\.png`\)$"),
        ("layers.psd", photoshop(2, zlib.compress(bytes(192))),  # ZIP-compressed: FFmpeg reads raw and RLE
         r"layers\.psd is a Photoshop document \(PSD\), which cannot be decoded here: export it as PNG or TIFF"),
    ],
)  # fmt: skip
def test_a_type_ffmpeg_cannot_decode_is_named_with_the_way_out(
    name: str, data: bytes, said: str, tmp_path: Path
) -> None:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(CartoonizeError, match=said):
        read_image(tmp_path / name)


def test_a_photo_ffmpeg_cannot_decode_fails_alone_among_several(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    write_image(tmp_path / "a.png", pattern(16, 12, 0))
    (tmp_path / "drawing.svg").write_bytes(SVG)
    (tmp_path / "photo.jxl").write_bytes(JPEG_XL)
    job = ImageJob((tmp_path / "a.png", tmp_path / "drawing.svg", tmp_path / "photo.jxl"), tmp_path / "out")
    with pytest.raises(CartoonizeError, match=r"^2 of 3 images failed \(.*drawing\.svg is a vector drawing "
                                              r"\(SVG\).*; and 1 more\); the other one is in"):  # fmt: skip
        cartoonize_images(job, make_runner(tiny_checkpoint))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]


def test_what_opencv_decodes_of_a_type_ffmpeg_has_no_decoder_for_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JPEG XL goes to OpenCV before it is refused (this OpenCV build has no JPEG XL decoder)."""
    (tmp_path / "photo.jxl").write_bytes(JPEG_XL)
    decoded = pattern(8, 8, 0)
    monkeypatch.setattr(
        opencv_photo, "rgba_from_file", lambda path: decoded if path.suffix == ".jxl" else None
    )
    assert np.array_equal(read_image(tmp_path / "photo.jxl"), decoded)


def test_a_damaged_jpeg_is_not_handed_to_opencv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg's strict JPEG decoder refuses a cut-short photo, which OpenCV before 5 reads with grey
    blocks (as FFmpeg does unless asked): such a decoder's picture is not used."""
    write_image(tmp_path / "cut.jpg", pattern(96, 64, 1))
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(
        opencv_photo, "rgba_from_file", lambda path: pattern(96, 64, 1)
    )  # as OpenCV 4 reads it
    with pytest.raises(CartoonizeError, match=r"cut\.jpg is not a readable image \(Invalid data"):
        read_image(tmp_path / "cut.jpg")


def test_an_arithmetic_coded_jpeg_is_read(tmp_path: Path) -> None:
    (tmp_path / "arith.jpg").write_bytes(ARITHMETIC_JPEG)
    assert mean_error(read_image(tmp_path / "arith.jpg"), pattern(16, 8, 0)) < 3


def test_a_tiff_ffmpeg_refuses_is_read_by_opencv_and_a_cut_one_still_refused(tmp_path: Path) -> None:
    """A WebP-compressed TIFF (libtiff's compression 50001), valid, which FFmpeg calls invalid data."""
    photo = tiff_by_opencv(tmp_path / "webp.tif", pattern(32, 24, 0), compression=50001)
    assert mean_error(read_image(photo), pattern(32, 24, 0)) < 8  # lossy WebP
    (tmp_path / "cut.tif").write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])
    with pytest.raises(CartoonizeError, match=r"cut\.tif is not a readable image \(Invalid data"):
        read_image(tmp_path / "cut.tif")


ADDED = {".jfif": "JPEG", ".jpe": "JPEG", ".gif": "GIF", ".tga": "TGA", ".ico": "ICO", ".dib": "BMP",
         ".qoi": "QOI", ".jp2": "JPEG2000", ".j2k": "JPEG2000", ".ppm": "PPM", ".pnm": "PPM"}  # fmt: skip


@pytest.mark.parametrize("suffix", [*ADDED, ".pgm", ".pbm"])
def test_each_type_a_folder_takes_is_read(suffix: str, tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    assert suffix in READ_ONLY_SUFFIXES
    height = 32 if suffix == ".ico" else 24  # an icon is square
    picture = image_module.fromarray(pattern(32, height, 0))
    picture = (
        picture.convert("L") if suffix == ".pgm" else picture.convert("1") if suffix == ".pbm" else picture
    )
    picture.save(tmp_path / f"p{suffix}", format=ADDED.get(suffix))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = read_image(tmp_path / f"p{suffix}")
    assert got.shape == (height, 32, 3)
    if suffix not in (".pgm", ".pbm"):
        assert mean_error(got, pattern(32, height, 0)) < 10


def test_a_folder_takes_what_a_photo_named_alone_can_be_and_counts_the_rest(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    image_module = pytest.importorskip("PIL.Image")
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jfif", "b.jpe", "c.tga", "d.ico", "e.gif"):
        image_module.fromarray(pattern(16, 12, 0)).save(folder / name, format=ADDED[Path(name).suffix])
    (folder / "drawing.svg").write_bytes(SVG)
    (folder / "notes.txt").write_text("not a photo")
    (folder / ".DS_Store").write_bytes(b"\x00")  # hidden: not counted
    report = cartoonize_images(ImageJob((folder,), tmp_path / "out"), make_runner(tiny_checkpoint))
    assert [p.name for p in report.written] == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    assert report.summary(tmp_path / "out").endswith(
        "; 2 files in the folder left out (not photos this reads)"
    )
    (folder / "drawing.svg").unlink()
    assert plan_outputs(ImageJob((folder,), tmp_path / "out2")).left_out == 1
    assert "left out" not in cartoonize_images(ImageJob((folder / "a.jfif",), tmp_path / "one.png"),
                                               make_runner(tiny_checkpoint)).summary(tmp_path / "one.png")  # fmt: skip


def test_a_folder_of_no_photos_says_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "drawing.svg").write_bytes(SVG)
    with pytest.raises(
        CartoonizeError, match=r"^no images found in .*in \(1 file there, none of a photo type"
    ):
        plan_outputs(ImageJob((tmp_path / "in",), tmp_path / "out"))


@pytest.mark.parametrize("compression", ["raw", "jpeg"])  # FFmpeg's TIFF decoder, OpenCV's
def test_a_multi_page_tiff_is_its_first_page_with_a_warning(compression: str, tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    pages = [image_module.fromarray(pattern(32, 24, k)) for k in range(3)]
    pages[0].save(tmp_path / "scan.tif", compression=compression, save_all=True, append_images=pages[1:])
    with pytest.warns(
        CartoonizeWarning, match=r"scan\.tif has more than one page; the cartoon is of the first"
    ):
        first = read_image(tmp_path / "scan.tif")
    assert mean_error(first, pattern(32, 24, 0)) < 3
    pages[0].save(tmp_path / "one.tif", compression=compression)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(tmp_path / "one.tif")


def test_an_icon_is_its_largest_picture(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    image_module.fromarray(pattern(32, 32, 0)).save(tmp_path / "app.ico", sizes=[(16, 16), (32, 32)])
    got = read_image(tmp_path / "app.ico")  # the 16×16 comes first in the file
    assert got.shape == (32, 32, 3) and mean_error(got, pattern(32, 32, 0)) < 1
