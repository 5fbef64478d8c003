"""Photos far larger than the output asked for (a 20000×15000 panorama at --max-side 2048): a JPEG
is decoded reduced (FFmpeg's lowres, or libjpeg's scaled IDCT through OpenCV where FFmpeg refuses
the size), at the smallest of 1/8, 1/4, 1/2 that is still no smaller than the output, and then
scaled as any photo is. Before, it was decoded whole: 0.8 GB for a 256 MP JPEG at --max-side 256,
and one over FFmpeg's 268 MP limit was "not a readable image". And --infer-side is held to the
memory check the default size is held to."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from cartoonize.errors import CartoonizeError
from cartoonize.media import exif
from cartoonize.pipelines import image, memory
from cartoonize.pipelines.image import ImageJob, cartoonize_images, read_image, write_image
from cartoonize.stages import StageOptions
from tests.helpers import pattern
from tests.pipelines.test_image_memory import Seen


def flat_jpeg(
    path: Path, width: int, height: int, grey: bool = False, orientation: int | None = None
) -> Path:
    """A valid baseline JPEG of a flat mid-grey picture, of any size, written in milliseconds: every
    8×8 block is "DC difference 0" and "end of block", each a 1-bit code '0', so the coded picture
    is zero bytes (2 bits a block: 6 MB for 1.6 gigapixels)."""
    components = 1 if grey else 3

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    parts = [b"\xff\xd8"]
    if orientation is not None:  # APP1 Exif: a little-endian TIFF block with IFD0's orientation alone
        ifd = struct.pack("<2sHIH", b"II", 42, 8, 1) + struct.pack(
            "<HHIHH", exif.ORIENTATION_TAG, 3, 1, orientation, 0
        )
        parts.append(segment(0xE1, b"Exif\x00\x00" + ifd + b"\x00" * 4))
    parts.append(segment(0xDB, b"\x00" + bytes([1] * 64)))  # quantization: all 1
    sof = struct.pack(">BHHB", 8, height, width, components)
    parts.append(segment(0xC0, sof + b"".join(bytes([c + 1, 0x11, 0]) for c in range(components))))
    one_code = bytes([1] + [0] * 15) + b"\x00"  # one code of length 1, for symbol 0
    parts.append(segment(0xC4, b"\x00" + one_code + b"\x10" + one_code))  # DC table 0, AC table 0
    scan = bytes([components]) + b"".join(bytes([c + 1, 0]) for c in range(components)) + b"\x00\x3f\x00"
    parts.append(segment(0xDA, scan))
    bits = 2 * -(-width // 8) * -(-height // 8) * components
    coded = bytearray(-(-bits // 8))
    if bits % 8:
        coded[-1] = (1 << (8 - bits % 8)) - 1  # padded with ones
    parts += [bytes(coded), b"\xff\xd9"]
    path.write_bytes(b"".join(parts))
    return path


def test_the_decode_scale_is_the_smallest_still_no_smaller_than_the_output() -> None:
    full_colour, half_colour = (4000, 3000, 1, 1), (4000, 3000, 2, 2)  # 4:4:4, 4:2:0
    assert image._jpeg_scale(full_colour, 1, None) == 1  # no --max-side: full size
    assert image._jpeg_scale(full_colour, 1, 2048) == 1  # 1/2 would be 2000: under 2048
    assert image._jpeg_scale(full_colour, 1, 2000) == 2
    assert image._jpeg_scale(full_colour, 1, 1000) == 4
    assert image._jpeg_scale(full_colour, 1, 256) == 8  # never more than 1/8
    assert (
        image._jpeg_scale((4001, 3001, 1, 1), 1, 1000) == 4
    )  # 1/4 rounds up to 1001×751 (the output: 1000×750)
    assert (
        image._jpeg_scale((3000, 4000, 1, 1), 6, 1000) == 4
    )  # sideways: --max-side counts the upright sides
    assert image._jpeg_scale(half_colour, 1, 1000) == 2  # its colour at 1/4 would be 500 across
    assert image._jpeg_scale(half_colour, 1, 250) == 8
    assert image._jpeg_scale((4000, 3000, 2, 1), 1, 1000) == 2  # 4:2:2: half across
    assert image._jpeg_scale((48000, 34000, 2, 2), 1, 2048) == 8  # a 1.6-gigapixel panorama


@pytest.mark.parametrize("max_side", [90, 160, 300, 640])
@pytest.mark.parametrize("orientation", [1, 6, 7])
def test_a_jpeg_read_reduced_is_the_full_decode_scaled(
    tmp_path: Path, max_side: int, orientation: int
) -> None:
    """The picture a reduced decode gives is the one a full decode scaled gives: the same size (the
    output's, from the stored size, not the reduced one's, whose sides round up), upright, and the
    same picture (a real photo-like pattern at JPEG's usual quality)."""
    import cv2

    Image = pytest.importorskip("PIL.Image")
    path = tmp_path / "photo.jpg"
    tags = Image.Exif()
    tags[exif.ORIENTATION_TAG] = orientation
    Image.fromarray(pattern(1283, 963, 0)).save(path, exif=tags, quality=90)  # odd sides: rounded up reduced
    full = read_image(path)
    reduced = read_image(path, max_side)
    height, width = reduced.shape[:2]
    assert max(height, width) == max_side and (height > width) == (orientation >= 5)
    expected = cv2.resize(full, (width, height), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.astype(int) - expected).mean() < 1.0  # turned as the full decode is, too


PEAK = """
import sys
from pathlib import Path
from cartoonize.pipelines.image import read_image


def peak():  # this process's own peak (ru_maxrss also counts the test process's pages it forked from)
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]) * 1024


shape = read_image(Path(sys.argv[1]), int(sys.argv[2])).shape
print(shape[0], shape[1], peak())
"""


def test_a_jpeg_far_larger_than_max_side_is_never_held_whole(tmp_path: Path) -> None:
    """A 256 MP JPEG (FFmpeg decodes it) at --max-side 256: decoded at 1/8, its process's peak
    memory is far under the 768 MB its full-size picture alone takes."""
    path = flat_jpeg(tmp_path / "pano.jpg", 16000, 16000)
    run = subprocess.run(
        [sys.executable, "-c", PEAK, str(path), "256"], capture_output=True, text=True, check=True
    )
    height, width, peak = map(int, run.stdout.split())
    assert (height, width) == (256, 256)
    assert peak < 300e6, f"peak {peak / 1e6:.0f} MB"


def test_a_jpeg_beyond_ffmpegs_size_limit_is_read_reduced(tmp_path: Path) -> None:
    """16600×16400 (272 MP) is past FFmpeg's limit whatever it is scaled to: OpenCV decodes it at
    1/8, not turned by its EXIF (the turn is applied once, here)."""
    path = flat_jpeg(tmp_path / "pano.jpg", 16600, 16400, orientation=6)
    picture = read_image(path, 300)
    assert picture.shape == (300, 296, 3)  # sideways: 16400 wide upright
    assert np.all(np.abs(picture.astype(int) - 128) <= 1)


def test_a_jpeg_too_large_to_decode_whole_names_the_max_side_that_reads_it(tmp_path: Path) -> None:
    """33000×33000 (1.09 gigapixels, a grey one to keep the test fast): more than OpenCV decodes
    at full size; the line says how large it is and the --max-side that reads it, which does."""
    path = flat_jpeg(tmp_path / "huge.jpg", 33000, 33000, grey=True)
    with pytest.raises(CartoonizeError, match=r"huge\.jpg is 33000×33000 \(1089 MP\), too large to decode at full "
                                              r"size: --max-side 4125 reads it at 1/8$"):  # fmt: skip
        read_image(path)
    assert read_image(path, 4125).shape == (4125, 4125, 3)


def _photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    write_image(path, np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    return path


@pytest.mark.parametrize("infer_side", [200, 400])
def test_an_infer_side_that_does_not_fit_in_memory_is_refused_with_the_one_that_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, infer_side: int
) -> None:
    """--infer-side 200 on a 400×300 photo needs 0.28 GB and 400 (the full size) 0.47 GB, where
    0.3 GB is free: before, the network ran at the size given (the kernel's OOM killer, on a real
    photo); now the line names the side that fits, and that side runs."""
    monkeypatch.setattr(memory, "available_memory", lambda: 300 * 10**6)
    runner = Seen()
    job = ImageJob((_photo(tmp_path),), tmp_path / "out.png", stages=StageOptions(infer_side=infer_side))
    with pytest.raises(CartoonizeError, match=rf"photo\.png: the network at --infer-side {infer_side} \(.*\) needs "
                                              r"about .* GB and 0\.30 GB is free .*; --infer-side 136 fits$"):  # fmt: skip
        cartoonize_images(job, lambda: runner)
    assert runner.sizes == [] and not (tmp_path / "out.png").exists()
    cartoonize_images(replace_side(job, 136), lambda: runner)
    assert runner.sizes == [(104, 136)] and read_image(tmp_path / "out.png").shape == (300, 400, 3)


def replace_side(job: ImageJob, side: int) -> ImageJob:
    return ImageJob(job.inputs, job.output, job.max_side, job.overwrite, StageOptions(infer_side=side))


def test_a_photo_too_big_at_full_size_is_refused_with_infer_side_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full-size share (the photo, its cartoon, the upsampling's planes) does not shrink with
    --infer-side: a photo that cannot have it is refused as it is without the option."""
    monkeypatch.setattr(memory, "available_memory", lambda: 200 * 10**6)  # under the runner's own 0.2 GB
    runner = Seen()
    job = ImageJob((_photo(tmp_path),), tmp_path / "out.png", stages=StageOptions(infer_side=64))
    with pytest.raises(
        CartoonizeError, match=r"photo\.png is 0 MP: at full size it needs .*; --max-side 16 makes it fit"
    ):
        cartoonize_images(job, lambda: runner)
    assert runner.sizes == []


def grey_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit grey PNG of any size, all black, in well under a second."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(bytes((1 + -(-width // 8)) * height), 1)  # each row: filter 0, then its bits
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
    return path


def test_a_png_too_large_for_either_decoder_says_so_and_the_way_out(tmp_path: Path) -> None:
    """Before: "not a readable image (Invalid data found when processing input)" for a valid PNG."""
    path = grey_png(tmp_path / "scan.png", 33000, 33000)
    with pytest.raises(CartoonizeError, match=r"scan\.png is 33000×33000 \(1089 MP\), more than can be decoded here "
                                              r"\(FFmpeg: 268 MP, OpenCV: 1074 MP\); only a JPEG is read reduced for "
                                              r"--max-side: make it smaller first \(`vipsthumbnail scan\.png "
                                              r"--size 8192 -o scan_small\.jpg`\)$"):  # fmt: skip
        read_image(path, 2048)


def test_one_huge_photo_in_a_folder_does_not_stop_the_others(tmp_path: Path) -> None:
    """As any bad photo: the others are cartoonized, and one line names it and why."""
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", pattern(16, 12, 0))
    grey_png(tmp_path / "in" / "b.png", 33000, 33000)
    flat_jpeg(tmp_path / "in" / "c.jpg", 16600, 16400)  # past FFmpeg's limit: read reduced
    with pytest.raises(
        CartoonizeError, match=r"^1 of 3 images failed \(.*b\.png is 33000×33000 .*\); the other 2"
    ):
        cartoonize_images(ImageJob((tmp_path / "in",), tmp_path / "out", max_side=64), lambda: Seen())
    assert read_image(tmp_path / "out" / "c.png").shape == (63, 64, 3)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


REFUSED = """
import sys
from pathlib import Path
import numpy as np
from cartoonize.errors import CartoonizeError
from cartoonize.pipelines import memory
from cartoonize.pipelines.image import ImageJob, cartoonize_images
from cartoonize.runners.base import Runner


def peak():  # this process's own peak (ru_maxrss also counts the test process's pages it forked from)
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]) * 1024



class Same(Runner):
    name, device, precision = "same", "cpu", "fp32"
    def load(self) -> None:
        pass
    def infer(self, frames: np.ndarray) -> np.ndarray:
        return frames

memory.available_memory = lambda: 8 * 10**9
job = ImageJob((Path(sys.argv[1]),), Path(sys.argv[2]))
before = peak()
try:
    cartoonize_images(job, Same)
except CartoonizeError as exc:
    print(exc)
print(peak() - before)
"""


def test_a_photo_too_big_for_the_memory_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    """A 256 MP JPEG with 8 GB free needs 23 GB at full size: refused from the size its header
    says, in a moment, not after decoding it (a 300 MP JPEG: 43 s and 2.2 GB, then the refusal)."""
    path = flat_jpeg(tmp_path / "pano.jpg", 16000, 16000)
    run = subprocess.run([sys.executable, "-c", REFUSED, str(path), str(tmp_path / "out.png")],
                         capture_output=True, text=True, check=True)  # fmt: skip
    message, grown = run.stdout.splitlines()
    assert message.endswith("pano.jpg is 256 MP: at full size it needs about 23.0 GB and 8.0 GB is free; "
                            "--max-side 8296 makes it fit")  # fmt: skip
    assert int(grown) < 200e6, f"{int(grown) / 1e6:.0f} MB"  # decoded, the picture alone is 768 MB
    assert not (tmp_path / "out.png").exists()
