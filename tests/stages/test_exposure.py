"""Exposure follows the source: a fade fades, black stays black, the cartoon's tone shape is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cartoonize.stages.exposure import NORMAL_CONTRAST, match_exposure
from tests.stages.media import cartoons, luma_mean, texture, with_noise


def test_fade_from_black_tracks_the_input(tiny_checkpoint: Path) -> None:
    rng = np.random.default_rng(0)
    scene = texture(0).astype(np.float32)
    sources = [with_noise(scene * g, 1.0, rng) for g in np.linspace(0.0, 1.0, 10)]
    raw = cartoons(sources, tiny_checkpoint)
    src = np.array([luma_mean(s) for s in sources])
    before = np.array([luma_mean(c) for c in raw])
    after = np.array([luma_mean(match_exposure(s, c)) for s, c in zip(sources, raw, strict=True)])
    assert np.abs(before - src).max() > 30  # the network alone does not fade
    assert np.abs(after - src).max() < 3
    assert np.corrcoef(src, after)[0, 1] > 0.999


def test_black_stays_black_and_colour_is_not_invented() -> None:
    rng = np.random.default_rng(1)
    black = with_noise(np.zeros((48, 64, 3)), 1.5, rng)
    olive = np.zeros_like(black) + np.array([128, 140, 60], np.uint8)  # what a norm makes of black
    olive[::8] = (230, 200, 40)  # with coloured stripes
    out = match_exposure(black, olive).astype(int)
    assert luma_mean(out) < luma_mean(black) + 2
    assert (out.max(-1) - out.min(-1)).mean() < 3  # grey-dark, not olive


def test_tone_shape_kept_on_a_well_exposed_frame() -> None:
    source = texture(2)
    cartoon = (texture(3) // 32 * 32 + 16).astype(np.uint8)  # flat bands, like cartoon shading
    out = match_exposure(source, cartoon)
    y_c = cartoon.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    y_o = out.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    order = np.argsort(y_c.ravel(), kind="stable")
    assert (np.diff(y_o.ravel()[order]) >= -1.5).all()  # increasing map: lines stay darker than fills
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= len(
        np.unique(cartoon.reshape(-1, 3), axis=0)
    )  # still flat
    assert abs(luma_mean(out) - luma_mean(source)) < 1.5
    lit = np.zeros_like(source) + np.uint8(round(luma_mean(cartoon)))  # the cartoon's mean luma...
    lit[::2] += np.uint8(NORMAL_CONTRAST + 2)  # ...with at least normal contrast (well exposed)
    lit[1::2] -= np.uint8(NORMAL_CONTRAST + 2)
    same = match_exposure(lit, cartoon)  # nothing to undo: the cartoon is kept as it is
    assert np.abs(same.astype(int) - cartoon).max() <= 1
    dim = match_exposure((lit // 4 + 20).astype(np.uint8), cartoon)  # a quarter of the contrast
    y_dim = dim.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    assert y_dim.std() < 0.5 * y_c.std()  # the stretch the norms applied is taken back
