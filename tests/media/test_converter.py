"""One swscale context kept for a thread's frames (`files.converter`) converts each frame as a
fresh one does, when the frames change size, pixel format, matrix or range between calls; and
RGB into 10-bit YUV comes out whole whatever the number of cores."""

from __future__ import annotations

import os

import av
import numpy as np
import pytest

from cartoonize.media.files import BT709, FULL, LIMITED, SMPTE170M, Colour, converter, to_rgb, to_yuv

SOURCES = [(64, 48, "yuv420p"), (96, 64, "yuv420p"), (64, 48, "yuv444p"), (64, 48, "yuvj420p"),
           (128, 72, "yuv420p10le"), (66, 38, "yuv422p")]  # fmt: skip
COLOURS = [Colour(SMPTE170M, LIMITED, 6, 6), Colour(BT709, FULL, 1, 1), Colour(BT709, LIMITED, 1, 1)]


def _picture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    # a gradient with noise: smooth areas and edges, so that chroma siting and rounding both show
    ramp = np.linspace(0, 255, width)[None, :, None] * np.linspace(0.2, 1, height)[:, None, None]
    return np.clip(ramp + rng.normal(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)


def _pixels(frame) -> list[np.ndarray]:  # noqa: ANN001 - an av.VideoFrame; each plane's rows, no padding
    size = 2 if frame.format.components[0].bits > 8 else 1
    return [
        np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width * size] for p in frame.planes
    ]


def test_a_kept_context_decodes_as_a_fresh_one() -> None:
    rng = np.random.default_rng(0)
    kept = converter()
    for width, height, fmt in SOURCES:
        frame = av.VideoFrame.from_ndarray(_picture(rng, width, height), format="rgb24").reformat(format=fmt)
        for colour in COLOURS:
            for size in ((None, None), (32, 24), (width * 2, height * 2)):
                fresh = to_rgb(frame, colour, *size)
                assert np.array_equal(to_rgb(frame, colour, *size, using=kept), fresh), (fmt, colour, size)


def test_a_kept_context_encodes_as_a_fresh_one() -> None:
    rng = np.random.default_rng(1)
    kept = converter()
    for width, height, _ in SOURCES:
        rgb = _picture(rng, width, height)
        for colour in COLOURS:
            for pix_fmt in ("yuv420p", "yuv444p", "yuv420p10le", "yuv422p"):
                fresh, reused = to_yuv(rgb, colour, pix_fmt), to_yuv(rgb, colour, pix_fmt, kept)
                assert reused.format.name == pix_fmt
                assert (reused.colorspace, reused.color_range) == (colour.matrix, colour.range)
                for a, b in zip(_pixels(fresh), _pixels(reused), strict=True):
                    assert np.array_equal(a, b), (pix_fmt, colour)
        # and back through the same context: the round trip stays within rounding
        back = to_rgb(to_yuv(rgb, COLOURS[2], "yuv444p", kept), COLOURS[2], using=kept)
        assert np.abs(back.astype(int) - rgb).max() <= 2


def test_deep_formats_have_no_broken_rows_between_slices() -> None:
    """RGB into 10-bit YUV (ProRes' yuv422p10le, FFV1's) at widths where FFmpeg 8.1's sliced
    swscale broke the first 8 pixels of each slice's first row (by up to 448 of 1023 levels, with
    two threads or more): every luma sample is within 2 levels of BT.709's formula."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: swscale runs one slice, where the rows came out right")
    rng = np.random.default_rng(2)
    colour = Colour(BT709, LIMITED, 1, 1)
    kept = converter()
    for width, height in ((854, 480), (1080, 1920)):
        rgb = _picture(rng, width, height)
        expected = 64 + (rgb.astype(float) @ np.array([0.2126, 0.7152, 0.0722])) * 876 / 255
        for pix_fmt in ("yuv422p10le", "yuv420p10le"):
            for using in (None, kept):
                luma = _pixels(to_yuv(rgb, colour, pix_fmt, using))[0].view("<u2")
                worst = np.abs(luma - expected)
                rows = sorted(set(np.nonzero(worst > 2)[0].tolist()))
                assert not rows, f"{pix_fmt} {width}x{height}: rows {rows[:5]} off by up to {worst.max():.0f}"
