"""HDR graded in Display P3 (PQ or HLG with P3-D65 primaries, as some cameras and grading tools
write it) is tone-mapped from its own primaries: read as BT.2020, its colours came out
over-saturated (a skin tone's red 15 levels too high, a sky's 42 and a lawn's 70 too low).

The HDR code values are made from SDR BT.709 colours with the standards' own encoders and
BT.709 -> P3-D65 matrix, written out here, not with the module under test."""

from __future__ import annotations

import numpy as np
import pytest

from cartoonize.media import hdr
from cartoonize.media.files import Colour

# linear BT.709 -> linear Display P3 (P3-D65), from the primaries (SMPTE EG 432-1, D65 white)
BT709_TO_P3 = np.array([[0.822462, 0.177538, 0.0], [0.033194, 0.966806, 0.0], [0.017083, 0.072397, 0.910520]])
P3_LUMA = np.array([0.228975, 0.691739, 0.079287])
P3_D65 = 12


def pq_encode(nits: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084's inverse EOTF."""
    m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
    y = np.power(np.clip(nits / 10000.0, 0, 1), m1)
    return np.power((c1 + c2 * y) / (1 + c3 * y), m2)


def hlg_encode(nits: np.ndarray, peak: float = 1000.0) -> np.ndarray:
    """BT.2100 HLG: the inverse OOTF for a `peak` display (γ = 1.2, on P3 luminance), the OETF."""
    luminance = np.maximum(nits @ P3_LUMA, 1e-9)[..., None] / peak
    scene = nits / peak / np.power(luminance, 0.2 / 1.2)
    a = 0.17883277
    b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
    return np.where(scene <= 1 / 12, np.sqrt(3 * np.clip(scene, 0, None)),
                    a * np.log(np.maximum(12 * scene - b, 1e-9)) + c)  # fmt: skip


# SDR colours below the highlight knee: skin, sky, grass, brick, a grey
SDR = np.array([[224, 172, 140], [110, 160, 220], [70, 140, 60], [170, 70, 50], [128, 128, 128]], float)


def p3_frame(codes: np.ndarray, trc: int):  # noqa: ANN201 - an av.VideoFrame
    """R'G'B' code values in [0, 1], one colour a 16-pixel block, as a 10-bit 4:4:4 frame tagged
    BT.2020 matrix, limited range, P3-D65 primaries and `trc`."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    picture = np.repeat(np.repeat(codes[None], 16, axis=0), 16, axis=1)  # (16, 16 × colours, 3)
    rgb48 = av.VideoFrame.from_ndarray(np.round(picture * 65535).astype(np.uint16), format="rgb48le")
    frame = rgb48.reformat(
        format="yuv444p10le", dst_colorspace=Colorspace.BT2020, dst_color_range=ColorRange.MPEG
    )
    frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc = 9, 1, P3_D65, trc
    return frame


@pytest.mark.parametrize("trc, encode", [(hdr.PQ, pq_encode), (hdr.HLG, hlg_encode)])
def test_a_p3_hdr_source_comes_back_as_the_sdr_colours_it_was_made_from(trc, encode) -> None:  # noqa: ANN001
    nits = 203.0 * (np.power(SDR / 255.0, 2.4) @ BT709_TO_P3.T)
    frame = p3_frame(encode(nits), trc)
    got = hdr.ToneMap(trc, frame.width, frame.height)(frame).astype(float)
    centres = got[8, 8::16]  # each block's middle, away from chroma at its edges
    assert np.abs(centres - SDR).max() <= 3


def test_the_mapping_follows_the_primaries_computed_from_the_chromaticities() -> None:
    """BT.2020's matrix is BT.2087's to 6 digits; BT.709's is the identity; P3's inverts the
    table above."""
    bt2087 = np.array([[1.660491, -0.587641, -0.072850], [-0.124550, 1.132900, -0.008349],
                       [-0.018151, -0.100579, 1.118730]])  # fmt: skip
    assert np.abs(hdr.to_bt709(hdr.BT2020) - bt2087).max() < 2e-6
    assert np.abs(hdr.to_bt709(1) - np.eye(3)).max() < 1e-9
    assert np.abs(hdr.to_bt709(P3_D65) @ BT709_TO_P3 - np.eye(3)).max() < 1e-5


def test_the_summary_says_when_primaries_are_read_as_bt2020() -> None:
    assert hdr.describe(Colour(9, 1, P3_D65, hdr.PQ)).startswith("HDR source (PQ, P3-D65) tone-mapped")
    assert "DCI-P3 read as BT.2020" in hdr.describe(Colour(9, 1, 11, hdr.PQ))
    assert hdr.describe(Colour(9, 1, 9, hdr.HLG)).startswith("HDR source (HLG, BT.2020) tone-mapped")
