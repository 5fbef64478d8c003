"""Black bars (stages.bars): letterbox and pillarbox rows and columns found as FFmpeg's cropdetect
finds them, and kept the source's; the picture between them is the cartoon's."""

from __future__ import annotations

import numpy as np
import pytest

from cartoonize.stages.bars import BLACK_LEVEL, Bars, bar_extent
from tests.stages.media import texture


def boxed(picture: np.ndarray, top: int, bottom: int, left: int, right: int, level: int = 0) -> np.ndarray:
    """`picture` inside bars of `level` (uint8 RGB)."""
    h, w = picture.shape[:2]
    frame = np.full((h + top + bottom, w + left + right, 3), level, np.uint8)
    frame[top : top + h, left : left + w] = picture
    return frame


def bright(h: int = 40, w: int = 64) -> np.ndarray:
    return np.clip(texture(1)[:h, :w].astype(np.int16) + 40, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "extent", [(0, 0, 0, 0), (6, 6, 0, 0), (5, 7, 0, 0), (0, 0, 9, 9), (3, 0, 4, 0), (4, 4, 2, 2)]
)
def test_bar_extent_finds_each_edges_bars(extent: tuple[int, int, int, int]) -> None:
    assert bar_extent(boxed(bright(), *extent)) == extent


def test_codec_noise_in_a_bar_is_still_a_bar_and_a_dark_picture_row_is_not() -> None:
    rng = np.random.default_rng(0)
    frame = boxed(bright(), 8, 8, 0, 0)
    noise = rng.integers(0, 2 * int(BLACK_LEVEL) - 2, (8, frame.shape[1], 3))  # mean below the limit
    frame[:8] = noise.astype(np.uint8)
    assert bar_extent(frame)[:2] == (8, 8)
    frame[8] = int(BLACK_LEVEL) + 2  # the picture's first row is dark, but above the limit
    assert bar_extent(frame)[0] == 8


def test_a_black_frame_is_all_bar_and_stays_black() -> None:
    black = np.full((24, 32, 3), 3, np.uint8)
    assert bar_extent(black) == (24, 0, 0, 0)
    glow = np.full_like(black, 40)
    assert np.array_equal(Bars()(black, glow), black)


def test_the_bars_are_the_sources_and_the_picture_the_cartoons() -> None:
    source = boxed(bright(), 6, 6, 5, 5)
    cartoon = np.full_like(source, 30)  # the network's glow everywhere, the picture too
    out = Bars()(source, cartoon)
    assert np.array_equal(out[:6], source[:6]) and np.array_equal(out[-6:], source[-6:])
    assert np.array_equal(out[:, :5], source[:, :5]) and np.array_equal(out[:, -5:], source[:, -5:])
    assert np.array_equal(out[6:-6, 5:-5], cartoon[6:-6, 5:-5])
    plain = bright()
    assert np.array_equal(
        Bars()(plain, np.full_like(plain, 30)), np.full_like(plain, 30)
    )  # no bars: untouched


def test_the_default_chain_ends_with_the_bars_and_raw_leaves_them() -> None:
    """After exposure (whose tone map would lift a black bar), the bars are the source's again;
    `raw` gives the network's glow back untouched."""
    from cartoonize.stages import StageOptions, build_stages

    source = boxed(bright(), 6, 6, 0, 0)
    glow = np.clip(source.astype(np.int16) + 25, 0, 255).astype(np.uint8)  # bars at 25, the picture lifted
    for temporal in (True, False):  # video, photo
        out = build_stages(StageOptions(temporal=temporal))(source, glow)
        assert np.array_equal(out[:6], source[:6]) and np.array_equal(out[-6:], source[-6:])
        assert not np.array_equal(out[6:-6], source[6:-6])  # the picture is the cartoon's
    assert np.array_equal(build_stages(StageOptions(raw=True))(source, glow), glow)
