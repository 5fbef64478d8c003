"""HDR (PQ and HLG, BT.2020) to SDR BT.709: the mapping inverts the standards' own encodings of an
SDR picture, and FFmpeg's filters apply it as computed.

The HDR code values here are made from SDR values with the encoders the standards define, written
out in this file (PQ's inverse EOTF, HLG's OETF and inverse OOTF), not with the module under test."""

from __future__ import annotations

import numpy as np
import pytest

from cartoonize.media import hdr

# linear BT.709 -> linear BT.2020 (ITU-R BT.2087, from the primaries to 6 digits)
BT709_TO_BT2020 = np.array(
    [[0.627404, 0.329283, 0.043313], [0.069097, 0.919541, 0.011362], [0.016391, 0.088013, 0.895595]]
)


def nits_of_sdr(sdr: np.ndarray) -> np.ndarray:
    """8-bit BT.709 SDR R'G'B' to the light of an SDR display (BT.1886, gamma 2.4) in BT.2020
    primaries, SDR white at 203 nits (BT.2408)."""
    return 203.0 * (np.power(sdr / 255.0, 2.4) @ BT709_TO_BT2020.T)


def pq_encode(nits: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084's inverse EOTF."""
    m1, m2, c1, c2, c3 = 0.1593017578125, 78.84375, 0.8359375, 18.8515625, 18.6875
    y = np.power(np.clip(nits / 10000.0, 0, 1), m1)
    return np.power((c1 + c2 * y) / (1 + c3 * y), m2)


def hlg_encode(nits: np.ndarray, peak: float = 1000.0) -> np.ndarray:
    """BT.2100 HLG: the inverse OOTF for a `peak` display (γ = 1.2), then the OETF."""
    luminance = np.maximum(nits @ np.array([0.2627, 0.6780, 0.0593]), 1e-9)[..., None] / peak
    scene = nits / peak / np.power(luminance, 0.2 / 1.2)
    a = 0.17883277
    b, c = 1 - 4 * a, 0.5 - a * np.log(4 * a)
    return np.where(
        scene <= 1 / 12,
        np.sqrt(3 * np.clip(scene, 0, None)),
        a * np.log(np.maximum(12 * scene - b, 1e-9)) + c,
    )


def sdr_colours() -> np.ndarray:
    """A sweep of SDR colours below the highlight knee: greys, skin, sky, grass, saturated ones."""
    levels = np.arange(0, 201, 25)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    return grid.astype(np.float64)


@pytest.mark.parametrize("trc, encode", [(hdr.PQ, pq_encode), (hdr.HLG, hlg_encode)])
def test_the_mapping_gives_back_the_sdr_picture_an_hdr_master_was_made_from(trc, encode) -> None:  # noqa: ANN001
    sdr = sdr_colours()
    back = hdr.to_sdr(encode(nits_of_sdr(sdr)), trc) * 255
    assert np.abs(back - sdr).max() < 0.6


@pytest.mark.parametrize("trc, encode", [(hdr.PQ, pq_encode), (hdr.HLG, hlg_encode)])
def test_white_is_near_white_and_highlights_roll_off_in_order(trc, encode) -> None:  # noqa: ANN001
    """SDR white (203 nits) comes out at 247 of 255; brighter light is brighter still, never past
    255, and a bright colour keeps its hue (its channels' order)."""
    greys = np.array([203.0, 400, 800, 1000])[:, None] * np.ones(3)
    out = hdr.to_sdr(encode(greys), trc)[:, 0] * 255
    assert 244 <= out[0] <= 250 and np.all(np.diff(out) > 0) and out[-1] <= 255
    orange = hdr.to_sdr(encode(np.array([[900.0, 500, 100]]) @ BT709_TO_BT2020.T), trc)[0]
    assert orange[0] > orange[1] > orange[2]


def hdr_frame(codes: np.ndarray, trc: int):  # noqa: ANN201 - an av.VideoFrame
    """BT.2020 R'G'B' code values in [0, 1] as a 10-bit 4:4:4 limited-range frame, tagged."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    rgb48 = av.VideoFrame.from_ndarray(np.round(codes * 65535).astype(np.uint16), format="rgb48le")
    frame = rgb48.reformat(
        format="yuv444p10le", dst_colorspace=Colorspace.BT2020, dst_color_range=ColorRange.MPEG
    )
    frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc = 9, 1, 9, trc
    return frame


@pytest.mark.parametrize("trc", [hdr.PQ, hdr.HLG])
def test_ffmpegs_filters_apply_the_mapping(trc: int) -> None:
    """The 3D table through lut3d against the mapping computed directly: the grey scale within 2
    levels, 99 % of a sweep of every code value within 3 (the rest: channels clipped at the edge of
    BT.709's gamut, where the table is coarsest)."""
    yy, xx = np.mgrid[0:64, 0:256]
    codes = np.stack([xx / 255.0, yy / 63.0, ((xx + 4 * yy) % 256) / 255.0], -1)
    codes[:8] = np.linspace(0, 1, 256)[None, :, None]  # a grey ramp
    got = hdr.ToneMap(trc, 256, 64)(hdr_frame(codes, trc)).astype(float)
    want = hdr.to_sdr(codes, trc) * 255
    error = np.abs(got - want)
    assert error[:8].max() <= 2 and np.percentile(error, 99) <= 3 and error.mean() < 0.5


def test_the_tone_map_scales_and_follows_a_new_frame_size() -> None:
    tone_map = hdr.ToneMap(hdr.PQ, 64, 32)
    grey = np.full((48, 96, 3), 0.5)
    assert tone_map(hdr_frame(grey, hdr.PQ)).shape == (32, 64, 3)
    assert tone_map(hdr_frame(np.full((24, 40, 3), 0.5), hdr.PQ)).shape == (32, 64, 3)


def test_only_hlg_and_pq_are_hdr() -> None:
    from cartoonize.media.files import Colour

    assert hdr.is_hdr(Colour(9, 1, 9, hdr.PQ)) and hdr.is_hdr(Colour(9, 1, 9, hdr.HLG))
    assert not hdr.is_hdr(Colour(1, 1, 1, 1)) and not hdr.is_hdr(Colour(9, 1, 9, 14))  # BT.2020 SDR
    assert hdr.describe(Colour(9, 1, 9, hdr.HLG)).startswith("HDR source (HLG, BT.2020) tone-mapped to SDR")
