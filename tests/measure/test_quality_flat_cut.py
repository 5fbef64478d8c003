"""The quality benchmark leaves out the frame pairs the stabilize stage takes for scene cuts, with
the stage's own rule: a cut between two flat frames (black to a title card) is a cut there too."""

from __future__ import annotations

import numpy as np
import pytest

from cartoonize.measure.quality import measure_frames

pytest.importorskip("cv2", reason="the quality benchmark's optical flow needs OpenCV")

H, W = 48, 64


def flat(level: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A flat frame with a little sensor noise (std well under the stage's contrast floor)."""
    frame = np.array(level, np.float32) + rng.normal(0, 1.5, (H, W, 3))
    return np.clip(frame, 0, 255).round().astype(np.uint8)


def test_a_cut_between_flat_frames_is_left_out_of_the_flicker() -> None:
    rng = np.random.default_rng(0)
    sources = [flat((10, 10, 10), rng) for _ in range(4)] + [flat((120, 40, 40), rng) for _ in range(4)]
    q = measure_frames(sources, sources)
    assert (q.cuts, q.pairs) == (1, 6)  # black -> red card: a jump of 110 levels between flat frames


def test_a_slow_fade_of_a_flat_frame_is_not_a_cut() -> None:
    rng = np.random.default_rng(1)
    sources = [flat((8 * t, 8 * t, 8 * t), rng) for t in range(8)]  # 8 levels a frame, under the jump
    q = measure_frames(sources, sources)
    assert (q.cuts, q.pairs) == (0, 7)
