"""A photo's embedded ICC profile (Display P3 as an iPhone saves, Adobe RGB as cameras offer) is
applied: the picture reads as littleCMS (through Pillow's ImageCms) converts it to sRGB, from JPEG,
PNG, WebP and TIFF; sRGB and grey profiles change nothing; one that cannot be applied is said."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from cartoonize.errors import CartoonizeWarning
from cartoonize.media import icc, photo_file
from cartoonize.pipelines.image import read_image
from tests.helpers import pattern

Image = pytest.importorskip("PIL.Image")
ImageCms = pytest.importorskip("PIL.ImageCms")

# D50-adapted primaries, as Apple's Display P3 and Adobe's Adobe RGB (1998) profiles store them
DISPLAY_P3 = [(0.515121, 0.241196, -0.001053), (0.291977, 0.692245, 0.041885), (0.157104, 0.066574, 0.784073)]
ADOBE_RGB = [(0.609741, 0.311111, 0.019470), (0.205276, 0.625671, 0.060867), (0.149185, 0.063217, 0.744568)]
SRGB = [(0.436065, 0.222488, 0.013916), (0.385147, 0.716873, 0.097076), (0.143066, 0.060608, 0.714096)]
SRGB_CURVE = (
    b"para"
    + bytes(4)
    + struct.pack(">HH", 3, 0)
    + b"".join(
        struct.pack(">i", round(v * 65536)) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
    )
)


def s15(*values: float) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def gamma_curve(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)


def table_curve(size: int) -> bytes:
    """sRGB's curve as a table of `size` entries (a large one splits a JPEG's profile)."""
    values = np.round(icc.srgb_decode(np.linspace(0, 1, size)) * 65535).astype(">u2")
    return b"curv" + bytes(4) + struct.pack(">I", size) + values.tobytes() + bytes(2 * (size % 2))


def profile(primaries: list[tuple[float, float, float]], curve: bytes, space: bytes = b"RGB ") -> bytes:
    """A minimal ICC v4 display profile: a description, the white point, three primaries, one curve
    shared by the three channels."""
    desc = (
        b"mluc"
        + bytes(4)
        + struct.pack(">II", 1, 12)
        + b"enUS"
        + struct.pack(">II", 8, 28)
        + "test".encode("utf-16-be")
    )
    tags = [(b"desc", desc), (b"wtpt", b"XYZ " + bytes(4) + s15(0.9642, 1.0, 0.8249))]
    tags += [
        (sig, b"XYZ " + bytes(4) + s15(*xyz))
        for sig, xyz in zip((b"rXYZ", b"gXYZ", b"bXYZ"), primaries, strict=True)
    ]
    tags += [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I4sI4s4s4s", size, b"lcms", 0x04200000, b"mntr", space, b"XYZ ") + bytes(12) + b"acsp"
              + bytes(24) + struct.pack(">I", 0) + s15(0.9642, 1.0, 0.8249) + bytes(48))  # fmt: skip
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def picture() -> np.ndarray:
    """Saturated and muted colours, greys and skin, where a profile's effect shows."""
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = pattern(64, 48, 0)
    rgb[24:36] = np.stack([xx[24:36] * 4, 255 - xx[24:36] * 4, (yy[24:36] * 7) % 256], -1)
    rgb[36:40] = (224, 172, 140)
    return rgb


def by_littlecms(rgb: np.ndarray, data: bytes) -> np.ndarray:
    source = ImageCms.ImageCmsProfile(io.BytesIO(data))
    converted = ImageCms.profileToProfile(Image.fromarray(rgb), source, ImageCms.createProfile("sRGB"),
                                          renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)  # fmt: skip
    return np.asarray(converted)


def decoded(path: Path) -> np.ndarray:
    """The file's RGB values as FFmpeg decodes them, no profile applied."""
    import av

    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


SAVE = {".png": {}, ".webp": {"lossless": True}, ".tif": {}, ".jpg": {"quality": 100, "subsampling": 0}}


@pytest.mark.parametrize("suffix", list(SAVE))
@pytest.mark.parametrize("space", ["display-p3", "adobe-rgb"])
def test_a_wide_gamut_photo_reads_as_littlecms_converts_it(suffix: str, space: str, tmp_path: Path) -> None:
    data = (
        profile(DISPLAY_P3, SRGB_CURVE)
        if space == "display-p3"
        else profile(ADOBE_RGB, gamma_curve(563 / 256))
    )
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(picture()).save(path, icc_profile=data, **SAVE[suffix])
    assert photo_file.icc_profile(path) == data
    as_stored = decoded(path)
    want = by_littlecms(as_stored, data).astype(int)
    got = read_image(path).astype(int)
    assert np.abs(got - want).max() <= 1, np.abs(got - want).max()
    assert np.abs(got - as_stored).max() >= 10  # the profile changed the picture


def test_a_large_profile_split_over_jpeg_segments(tmp_path: Path) -> None:
    data = profile(DISPLAY_P3, table_curve(40000))  # 80 KB: over one segment's 64 KB
    assert len(data) > 65535
    Image.fromarray(picture()).save(tmp_path / "big.jpg", icc_profile=data, quality=100, subsampling=0)
    assert photo_file.icc_profile(tmp_path / "big.jpg") == data
    parsed = icc.parse(data)
    assert parsed is not None and np.abs(parsed.curves - icc.srgb_decode(icc.LEVELS)).max() < 1e-4


def test_srgb_and_grey_profiles_change_nothing(tmp_path: Path) -> None:
    for name, data in (("srgb", profile(SRGB, SRGB_CURVE)), ("table", profile(SRGB, table_curve(1024)))):
        Image.fromarray(picture()).save(tmp_path / f"{name}.png", icc_profile=data)
        assert np.array_equal(read_image(tmp_path / f"{name}.png"), picture()), name
    grey = profile(SRGB, gamma_curve(2.2), space=b"GRAY")
    assert icc.parse(grey) is None


def test_a_profile_that_cannot_be_applied_is_said(tmp_path: Path) -> None:
    cmyk_like = profile(SRGB, gamma_curve(1.8), space=b"CMYK")
    Image.fromarray(picture()).save(tmp_path / "odd.png", icc_profile=cmyk_like)
    with pytest.warns(
        CartoonizeWarning, match=r"odd\.png has an ICC colour profile this cannot apply \(a CMYK profile\)"
    ):
        assert np.array_equal(read_image(tmp_path / "odd.png"), picture())
    Image.fromarray(picture()).save(tmp_path / "damaged.png", icc_profile=b"not a profile at all" * 10)
    with pytest.warns(CartoonizeWarning, match=r"damaged\.png has a damaged ICC colour profile"):
        assert np.array_equal(read_image(tmp_path / "damaged.png"), picture())


def test_photos_without_a_profile_say_nothing(tmp_path: Path) -> None:
    Image.fromarray(picture()).save(tmp_path / "plain.png")
    assert photo_file.icc_profile(tmp_path / "plain.png") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(read_image(tmp_path / "plain.png"), picture())
