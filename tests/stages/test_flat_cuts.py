"""A hard cut between flat frames (a black frame, a title card, a flat sky) starts the new shot
afresh, on the CPU and on the device stages; a fade of a flat frame is no cut."""

from __future__ import annotations

import numpy as np
import pytest

from cartoonize.stages import StageOptions, build_stages
from cartoonize.stages.device import DeviceStages
from cartoonize.stages.stabilize import Stabilize
from tests.stages.media import H, W, with_noise

pytest.importorskip("cv2", reason="stabilization's optical flow needs OpenCV")


def flat(colour: tuple[int, int, int], rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    return with_noise(np.full((H, W, 3), colour, np.float32), sigma, rng)


def cut(
    first: tuple[int, int, int], second: tuple[int, int, int]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Five noisy frames of one flat colour, then five of another; the 'cartoons' are other flat
    colours (as the network's are: its norms stretch a flat frame's noise into some picture)."""
    rng = np.random.default_rng(0)
    sources = [flat(first, rng) for _ in range(5)] + [flat(second, rng) for _ in range(5)]
    cartoons = [flat((60, 200, 90), rng, 12.0) for _ in range(5)] + [
        flat((220, 120, 40), rng, 12.0) for _ in range(5)
    ]
    return sources, cartoons


@pytest.mark.parametrize(
    ("first", "second"),
    [((200, 30, 30), (30, 30, 200)), ((0, 0, 0), (180, 150, 60)), ((90, 90, 90), (60, 110, 100))],
    ids=["red-to-blue", "black-to-title-card", "grey-to-teal-same-luma"],
)
def test_a_cut_between_flat_frames_leaves_no_ghost(
    first: tuple[int, int, int], second: tuple[int, int, int]
) -> None:
    sources, cartoons = cut(first, second)
    stage = Stabilize()
    out = [stage(s, c, t / 24) for t, (s, c) in enumerate(zip(sources, cartoons, strict=True))]
    assert stage.cuts == 1
    assert np.array_equal(out[5], cartoons[5])  # the first frame of the new shot: its own cartoon
    for t in range(6, 10):  # and no trace of the first shot's cartoon after it
        assert np.abs(out[t].astype(np.float32).mean((0, 1)) - (220, 120, 40)).max() < 2, t


def test_a_fade_of_a_flat_frame_is_no_cut() -> None:
    """Black to a mid-grey card over a second at 24 fps (about 5 levels a frame): one shot."""
    rng = np.random.default_rng(1)
    sources = [flat((5.0 * t, 5.0 * t, 5.0 * t), rng) for t in range(25)]  # type: ignore[arg-type]
    cartoons = [flat((120, 80, 160), rng, 12.0) for _ in range(25)]
    stage = Stabilize()
    out = [stage(s, c, t / 24) for t, (s, c) in enumerate(zip(sources, cartoons, strict=True))]
    assert stage.cuts == 0
    # every frame is blended with the one before (a cut would give the cartoon as it came)
    assert not any(np.array_equal(out[t], cartoons[t]) for t in range(1, 25))


def test_the_device_stages_see_the_same_flat_cut() -> None:
    sources, cartoons = cut((0, 0, 0), (180, 150, 60))
    chain = build_stages(StageOptions())
    expected = np.stack([chain(s, c, t / 24) for t, (s, c) in enumerate(zip(sources, cartoons, strict=True))])
    stages = DeviceStages("cpu")
    got = np.stack([stages(s, c, t / 24) for t, (s, c) in enumerate(zip(sources, cartoons, strict=True))])
    assert stages.stabilize is not None and stages.stabilize.cuts == 1
    assert chain.stages[0].cuts == 1  # type: ignore[attr-defined]
    diff = np.abs(got.astype(np.int16) - expected)
    assert diff.mean() < 0.25 and diff.max() <= 2, (diff.mean(), diff.max())
