"""Exposure follows the source: a fade fades, black stays black, the cartoon's tone shape is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cartoonize.stages.exposure import EXPOSURE_STEP, NORMAL_CONTRAST, exposure_target, match_exposure
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
    # the output fades with it: within a third of a stop of the source at every step
    assert (after <= src * EXPOSURE_STEP + 1.5).all() and (after >= src / EXPOSURE_STEP - 1.5).all(), (
        src,
        after,
    )
    # black stays black; the curves correlate as the issue asks of a real fade (>= 0.95): the last
    # steps, within a third of a stop of the cartoon's own brightness, keep the cartoon's
    assert after[0] < 3 and np.corrcoef(src, after)[0, 1] >= 0.95


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
    assert abs(luma_mean(out) - exposure_target(luma_mean(source), luma_mean(cartoon))) < 1.5
    lit = np.zeros_like(source) + np.uint8(round(luma_mean(cartoon)))  # the cartoon's mean luma...
    lit[::2] += np.uint8(NORMAL_CONTRAST + 2)  # ...with at least normal contrast (well exposed)
    lit[1::2] -= np.uint8(NORMAL_CONTRAST + 2)
    same = match_exposure(lit, cartoon)  # nothing to undo: the cartoon is kept as it is
    assert np.abs(same.astype(int) - cartoon).max() <= 1
    dim = match_exposure((lit // 4 + 20).astype(np.uint8), cartoon)  # a quarter of the contrast
    y_dim = dim.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    assert y_dim.std() < 0.5 * y_c.std()  # the stretch the norms applied is taken back


def test_the_style_keeps_its_brightness_within_a_third_of_a_stop() -> None:
    """A well-exposed frame whose cartoon is a little brighter than the source (as Hayao is) is
    left as the network drew it; one lifted far beyond a third of a stop is brought to the bound,
    as is a dark frame (which lands within the +15 levels the quality targets allow)."""
    rng = np.random.default_rng(3)
    cartoon = (texture(3) // 32 * 32 + 16).astype(np.uint8)
    c_mean = luma_mean(cartoon)
    scene = texture(2).astype(np.float32)
    source = np.clip((scene - luma_mean(texture(2))) * 2.0 + c_mean / 1.15, 0, 255)  # normal contrast
    source = with_noise(source, 0.5, rng)
    assert 1.1 < c_mean / luma_mean(source) < EXPOSURE_STEP
    kept = match_exposure(source, cartoon)
    assert np.abs(kept.astype(int) - cartoon).mean() < 1.0  # the network's own frame
    for level in (20.0, 90.0):  # a night scene, and a frame the cartoon would lift far above
        dark = with_noise(
            np.clip(texture(2).astype(np.float32) * (level / luma_mean(texture(2))), 0, 255), 0.5, rng
        )
        out = luma_mean(match_exposure(dark, cartoon))
        assert abs(out - luma_mean(dark) * EXPOSURE_STEP) < 1.5, (level, out)
    assert luma_mean(match_exposure(dark, cartoon)) > luma_mean(dark)  # not pushed to the source's


def test_the_bound_is_a_third_of_a_stop_both_ways() -> None:
    assert exposure_target(2.0, 130.0) < 2.6  # black stays black
    assert abs(exposure_target(100.0, 200.0) - 100.0 * EXPOSURE_STEP) < 1e-6
    assert abs(exposure_target(100.0, 10.0) - 100.0 / EXPOSURE_STEP) < 1e-6
    assert exposure_target(100.0, 110.0) == 110.0  # inside the bound: the cartoon's own
    assert 245.0 < exposure_target(250.0, 255.0) <= 255.0 - 5.0 / EXPOSURE_STEP + 1e-6  # near white
    assert exposure_target(250.0, 100.0) >= 255.0 - 5.0 * EXPOSURE_STEP - 1e-6


def test_the_cartoons_brightness_flicker_does_not_pass_on_a_steady_shot() -> None:
    """A steady source, and a cartoon whose brightness jumps by 10 % from frame to frame (inside
    the third of a stop, so the per-frame rule would keep every jump): the stage's output is as
    steady as the source, and settles at the cartoon's average offset (an exponential average
    over SMOOTHING_FRAMES: after three of those spans it is within 5 % of the first jump);
    after reset() it starts afresh."""
    from cartoonize.stages.exposure import Exposure

    rng = np.random.default_rng(4)
    scene = texture(2).astype(np.float32)
    source = np.clip((scene - luma_mean(texture(2))) * 2.0 + 110.0, 0, 255).astype(np.uint8)
    base = (texture(3) // 32 * 32 + 16).astype(np.float32)
    base = base * (120.0 / luma_mean(base.astype(np.uint8)))
    flicker = [np.clip(base * (1.0 + 0.1 * ((-1) ** i)), 0, 255).astype(np.uint8) for i in range(192)]
    stage = Exposure(temporal=True)
    outs = [luma_mean(stage(with_noise(source, 0.5, rng), c)) for c in flicker]
    per_frame = [luma_mean(match_exposure(source, c)) for c in flicker[:2]]
    assert abs(per_frame[0] - per_frame[1]) > 16  # the per-frame rule passes the jumps
    assert np.abs(np.diff(outs)).max() < 1.0  # from the first frame on: a 1/48 step, not a jump
    assert np.std(outs[144:]) < 1.0 and abs(np.mean(outs[144:]) - np.mean(per_frame)) < 1.5
    stage.reset()
    first = stage(source, flicker[0])
    assert np.abs(first.astype(int) - match_exposure(source, flicker[0])).max() <= 1


def test_the_running_offset_is_rebuilt_from_its_window() -> None:
    """The shot's offset at any frame depends on the last WINDOW_FRAMES frames alone: started
    WINDOW_FRAMES - 1 frames before a point mid-shot (a segment's pre-roll), it gives exactly
    what the whole shot gave there and after, on offsets that drift as a network's do over a
    shot. An exponential average over the whole shot remembered its first frames: up to 0.012
    apart here (1.2 % of brightness) after a 95-frame start."""
    from cartoonize.stages.exposure import SMOOTHING_FRAMES, WINDOW_FRAMES, RunningOffset

    rng = np.random.default_rng(7)
    own = 0.2 * np.cos(np.arange(600) / 90.0) + rng.normal(0.0, 0.03, 600)  # drift, and flicker
    whole = RunningOffset()
    kept = [whole(x) for x in own]
    for start in (150, 333, 480):
        late = RunningOffset()
        warm = [late(x) for x in own[start - (WINDOW_FRAMES - 1) : start + 20]]
        assert warm[WINDOW_FRAMES - 1 :] == kept[start : start + 20]
    # as an exponential average: the shot's first frame sets it, a step moves it 1/48 of the way
    fresh = RunningOffset()
    assert fresh(0.1) == pytest.approx(0.1, abs=1e-12)
    moved = fresh(0.2) - 0.1
    assert abs(moved - 0.1 / SMOOTHING_FRAMES) < 0.1 / SMOOTHING_FRAMES / 10


def test_colour_the_stretch_invented_is_taken_back_with_the_tone() -> None:
    """A flat grey wall (a third of a normal contrast) that the network drew as green and brown
    blotches: the blotches' chroma about the frame's mean colour shrinks by the same factor as the
    luma contrast, and the mean colour (the style's tint) stays; at normal contrast nothing moves."""
    rng = np.random.default_rng(5)
    scene = texture(2).astype(np.float32)
    wall = np.clip((scene - luma_mean(texture(2))) * (10.0 / scene.std()) + 150.0, 0, 255)
    wall = with_noise(np.repeat(wall.mean(-1, keepdims=True), 3, -1), 0.3, rng)
    cartoon = np.zeros_like(wall) + np.array([170, 160, 110], np.uint8)  # a warm tint
    cartoon[::6] = (140, 200, 90)  # green blotches
    cartoon[3::6] = (150, 110, 70)  # brown ones

    def chroma(img: np.ndarray) -> np.ndarray:
        f = img.astype(np.float32)
        return np.stack(
            [f @ np.array([-0.168736, -0.331264, 0.5]), f @ np.array([0.5, -0.418688, -0.081312])], -1
        )

    k = float((wall.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).std()) / NORMAL_CONTRAST
    assert 0.1 < k < 0.5
    before, after = chroma(cartoon), chroma(match_exposure(wall, cartoon))
    spread = lambda c: float(np.abs(c - c.mean((0, 1))).mean())  # noqa: E731
    assert abs(spread(after) / spread(before) - k) < 0.05, (spread(after) / spread(before), k)
    assert np.abs(after.mean((0, 1)) - before.mean((0, 1))).max() < 1.5  # the tint is the style's
