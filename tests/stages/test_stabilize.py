"""Stabilization along the source's flow: a still noisy scene stays still, a moving pattern is not
smeared, a hard cut starts from the per-frame result; and the chain the options build."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cartoonize.stages import StageOptions, build_stages
from cartoonize.stages.stabilize import Stabilize
from tests.stages.media import H, W, cartoons, texture, with_noise

pytest.importorskip("cv2", reason="stabilization's optical flow needs OpenCV")


def flicker(frames: list[np.ndarray]) -> float:
    """Mean absolute change between consecutive frames (for a still scene: all of it is flicker)."""
    return float(
        np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(frames[1:], frames[:-1], strict=True)])
    )


def sharpness(frame: np.ndarray) -> float:
    g = frame.astype(np.float32).mean(-1)
    return float((np.diff(g, axis=0) ** 2).mean() + (np.diff(g, axis=1) ** 2).mean())


def test_still_noisy_scene_gives_a_nearly_still_cartoon(tiny_checkpoint: Path) -> None:
    rng = np.random.default_rng(0)
    scene = (texture(0).astype(np.float32) * 0.3).astype(np.uint8)  # dim: the norms amplify the grain
    sources = [with_noise(scene, 3.0, rng) for _ in range(12)]
    raw = cartoons(sources, tiny_checkpoint)
    stage = Stabilize()
    out = [stage(s, c) for s, c in zip(sources, raw, strict=True)]
    assert stage.cuts == 0
    assert flicker(out[4:]) < 0.4 * flicker(raw[4:])


def test_moving_pattern_is_not_smeared() -> None:
    big = texture(1, H, W + 60, cells=3)
    sources = [np.ascontiguousarray(big[:, 4 * t : 4 * t + W]) for t in range(12)]  # 4 px a frame
    drawn = [(s // 48 * 48 + 24).astype(np.uint8) for s in sources]  # flat bands, hard edges, moving along
    stage = Stabilize()
    out = [stage(s, c) for s, c in zip(sources, drawn, strict=True)]
    assert stage.cuts == 0
    for t in range(3, 12):
        assert np.abs(out[t].astype(int) - drawn[t]).mean() < 3, t  # where it is now, not a trail
        assert sharpness(out[t]) > 0.85 * sharpness(drawn[t]), t  # edges stay hard
    blended = [
        ((a.astype(int) + b) // 2).astype(np.uint8) for a, b in zip(drawn[1:], drawn[:-1], strict=True)
    ]
    assert (
        np.mean([sharpness(b) / sharpness(d) for b, d in zip(blended, drawn[1:], strict=True)]) < 0.85
    )  # a blend without flow smears


def test_hard_cut_starts_from_the_per_frame_result(tiny_checkpoint: Path) -> None:
    rng = np.random.default_rng(2)
    a, b = texture(3), texture(4)
    sources = [with_noise(a, 2.0, rng) for _ in range(6)] + [with_noise(b, 2.0, rng) for _ in range(4)]
    raw = cartoons(sources, tiny_checkpoint)
    chain = build_stages(StageOptions())

    def per_frame(i: int) -> np.ndarray:  # the frame alone, as the first of a shot: no history
        return build_stages(StageOptions(stabilize=False))(sources[i], raw[i])

    out = [chain(s, c) for s, c in zip(sources, raw, strict=True)]
    assert chain.describe() == "stabilize + exposure + bars"
    # the first frame after the cut: no blend, and the exposure stage's running offset restarts
    assert np.array_equal(out[6], per_frame(6))
    assert not np.array_equal(out[5], per_frame(5))  # before it, frames were blended
    assert chain.stages[0].cuts == 1
    chain.reset()
    assert np.array_equal(chain(sources[2], raw[2]), per_frame(2))  # reset forgets


def test_options_build_the_chain() -> None:
    assert build_stages(StageOptions()).describe() == "stabilize + exposure + bars"
    assert build_stages(StageOptions(temporal=False)).describe() == "exposure + bars"  # photos
    assert build_stages(StageOptions(stabilize=False)).describe() == "exposure + bars"
    assert build_stages(StageOptions(exposure=False)).describe() == "stabilize + bars"
    assert build_stages(StageOptions(exposure=False, bars=False)).describe() == "stabilize"
    assert not build_stages(StageOptions(raw=True))


@pytest.mark.parametrize("period", [None, 1 / 30, 1 / 10, 0.5])
def test_the_blend_remembers_a_span_of_time_not_a_count_of_frames(period: float | None) -> None:
    """On a still source (the flow is zero and trusted everywhere) the output is the new cartoon
    blended with the previous output by exp(-dt / MEMORY): at 30 fps the previous frame weighs
    more than at 10 fps, and a frame half a second later keeps little of it; without times, the
    nominal 25 fps."""
    from cartoonize.stages.clock import NOMINAL_PERIOD
    from cartoonize.stages.stabilize import MEMORY

    source = texture(5)
    first, second = np.full_like(source, 40), np.full_like(source, 200)
    stage = Stabilize()
    times = (None, None) if period is None else (7.0, 7.0 + period)
    assert np.array_equal(stage(source, first, times[0]), first)  # nothing before it: as it came
    out = stage(source, second, times[1])
    w = math.exp(-(period or NOMINAL_PERIOD) / MEMORY)
    inner = out[8:-8, 8:-8].astype(np.float32)
    assert np.abs(inner - (200 + w * (40 - 200))).max() <= 1.0, (w, inner.mean())
    assert stage.cuts == 0
