"""A HEIF photo's colour (an iPhone's HEIC, an AVIF) is applied as a JPEG's is: an ICC profile in
the primary item's `colr` box, or, without one, `nclx` code points naming Display P3 or BT.2020.
Both were read as sRGB: a Display P3 photo came out duller than it is shown."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from cartoonize.media import heif, icc, photo_file
from cartoonize.media.scheduling import open_encoder
from cartoonize.pipelines.image import read_image
from tests.media.test_icc import DISPLAY_P3, SRGB, SRGB_CURVE, by_littlecms, decoded, picture, profile

Image = pytest.importorskip("PIL.Image")
P3 = profile(DISPLAY_P3, SRGB_CURVE)


def save_avif(path: Path, icc_profile: bytes | None = None) -> Path:
    if not getattr(Image, "registered_extensions", dict)().get(".avif"):
        pytest.skip("this Pillow writes no AVIF")
    options = {"icc_profile": icc_profile} if icc_profile else {}
    Image.fromarray(picture()).save(path, quality=100, subsampling="4:4:4", **options)
    return path


def tagged_avif(path: Path, primaries: int, transfer: int) -> Path:
    """The test picture as an AVIF whose only colour information is its code points (`nclx`)."""
    import av

    frame = av.VideoFrame.from_ndarray(picture(), format="rgb24").reformat(format="yuv444p")
    with av.open(str(path), "w", format="avif") as out:
        stream = out.add_stream("libsvtav1", rate=1)
        stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, "yuv420p"
        ctx = stream.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = primaries, transfer, 1, 1
        stream.options = {"crf": "4"}
        frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        frame.pts = 0
        open_encoder(stream)  # (SVT-AV1 as root: media/scheduling)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


def test_an_avif_and_a_heic_with_a_display_p3_profile(tmp_path: Path) -> None:
    """Read as littleCMS converts the decoded picture with its profile, within a level; the same
    file under an iPhone's HEIC brands (`heic`, `mif1`) alike."""
    avif = save_avif(tmp_path / "p3.avif", P3)
    data = avif.read_bytes()
    size = struct.unpack(">I", data[:4])[0]
    heic = tmp_path / "p3.heic"  # the brands an iPhone writes; the boxes are the same
    heic.write_bytes(
        data[:8]
        + b"heic"
        + data[12:16]
        + b"mif1heic" * ((size - 16) // 8)
        + data[16 + 8 * ((size - 16) // 8) :]
    )
    for path in (avif, heic):
        assert photo_file.icc_profile(path) == P3, path.name
        as_stored = decoded(path)
        want = by_littlecms(as_stored, P3).astype(int)
        got = read_image(path).astype(int)
        assert np.abs(got - want).max() <= 1, (path.name, np.abs(got - want).max())
        assert np.abs(got - as_stored).max() >= 10  # the profile changed the picture


def test_code_points_without_a_profile(tmp_path: Path) -> None:
    """`nclx` Display P3 (as Android phones and libavif write it) reads as the same picture with a
    Display P3 profile; BT.709 and unspecified primaries are read as sRGB, as before."""
    p3 = tagged_avif(tmp_path / "nclx_p3.avif", 12, 13)
    assert photo_file.icc_profile(p3) is None
    as_stored = decoded(p3)
    want = by_littlecms(as_stored, P3).astype(int)
    got = read_image(p3).astype(int)
    assert np.abs(got - want).max() <= 1, np.abs(got - want).max()
    assert np.abs(got - as_stored).max() >= 10
    for primaries, transfer in ((1, 1), (1, 13), (2, 2)):
        path = tagged_avif(tmp_path / f"nclx_{primaries}_{transfer}.avif", primaries, transfer)
        assert np.array_equal(read_image(path), decoded(path)), (primaries, transfer)


def test_the_matrix_from_primaries_is_the_profiles() -> None:
    """BT.709's primaries make sRGB's profile matrix; Display P3's, Apple's profile's (to 4 digits)."""
    assert (
        np.abs(
            icc.d50_matrix((0.64, 0.33), (0.30, 0.60), (0.15, 0.06), (0.3127, 0.3290)) - icc.SRGB_D50
        ).max()
        < 3e-4
    )
    p3 = icc.from_code_points(12, 13)
    assert p3 is not None and np.abs(p3.matrix - np.array(DISPLAY_P3).T).max() < 1e-4
    assert icc.from_code_points(1, 13) is None and icc.from_code_points(9, 16) is None  # sRGB; PQ is HDR's


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def ipma_entry(flags: int, item: int, *indexes: int) -> bytes:
    """An item's associations, each marked essential: 7-bit indexes, or 15-bit with flags 1."""
    wide = flags & 1
    packed = b"".join(struct.pack(">H" if wide else ">B", k | (0x8000 if wide else 0x80)) for k in indexes)
    return struct.pack(">HB", item, len(indexes)) + packed


def test_the_primary_items_profile_is_taken(tmp_path: Path) -> None:
    """A thumbnail's sRGB profile listed first, the primary picture's Display P3 second: the primary
    item's (`pitm`, through `ipma`) is the one; 15-bit property indexes (`ipma` flags 1) too."""
    srgb = profile(SRGB, SRGB_CURVE)
    ipco = box(
        b"ipco", box(b"colr", b"prof" + srgb) + box(b"colr", b"prof" + P3) + box(b"colr", b"nclx" + bytes(7))
    )
    for flags in (0, 1):
        ipma = box(
            b"ipma",
            bytes([0])
            + flags.to_bytes(3, "big")
            + struct.pack(">I", 2)
            + ipma_entry(flags, 2, 1)
            + ipma_entry(flags, 1, 3, 2),
        )
        meta = box(
            b"meta", bytes(4) + box(b"pitm", bytes(4) + struct.pack(">H", 1)) + box(b"iprp", ipco + ipma)
        )
        path = tmp_path / f"grid{flags}.heic"
        path.write_bytes(box(b"ftyp", b"heic" + bytes(4) + b"mif1heic") + meta + box(b"mdat", bytes(16)))
        assert photo_file.icc_profile(path) == P3, flags
    assert not heif.is_heif(box(b"ftyp", b"isom" + bytes(4) + b"isomiso2mp41"))  # an MP4 video
    (tmp_path / "cut.heic").write_bytes(path.read_bytes()[:60])  # damaged: no answer, no error
    assert photo_file.icc_profile(tmp_path / "cut.heic") is None
