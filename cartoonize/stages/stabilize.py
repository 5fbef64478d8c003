"""Temporal stability: the cartoon of frame t leans on the cartoon of frame t-1, carried along the
source's optical flow, wherever that flow can be trusted.

The network sees each frame alone, so small changes in the input (grain, codec noise, a slight
change of light) move its output by much more than they move the picture: the cartoon flickers.
Following Bonneel et al. (SIGGRAPH Asia 2015) and Lai et al. (ECCV 2018), the remedy needs only
the source and the per-frame output, causally and in a stream:

    out_t = (1 - w) * cartoon_t + w * warp(out_{t-1}, flow_t->t-1)

- The flow is DIS (OpenCV) on the source's luma, computed on frames downscaled to at most
  `flow_side` pixels, so it costs the same at 4K as at 360p (`stages.flow`).
- w = exp(-dt / `memory`) where the flow is trusted and 0 elsewhere, with dt the time since the
  previous frame (`stages.clock`). Trusted means three things: the forward-backward check passes
  (not occluded or disoccluded), the match lies inside the frame, and the source itself agrees
  after warping. The last is measured on luma normalised to each frame's own mean and contrast,
  so a fade (an affine change of luma) still counts as agreement, while a moving pattern the flow
  got wrong does not, and is not smeared.
- The memory is a span of time, not a number of frames. A fixed weight per frame would remember
  three times as long at 10 fps as at 30 fps: on the 10-12 fps fire clip a weight of 0.75 blended
  the flames over 0.6 s and pulled the cartoon away from its per-frame self (27.5 dB), while on
  the 30 fps phone clip it spanned 0.23 s and let the network's boiling through (warping-error
  ratio 1.77).
- Because the output is recursive, a weight w averages, on a still shot, over about
  (1 + w) / (1 - w) frames and divides frame-to-frame noise by as much in variance. MEMORY = 0.25 s
  gives w = 0.85 at 25 fps (about twelve frames, half a second), 0.88 at 30 fps and 0.67 at 10
  fps; a change in the picture reaches the output within a fraction of a second, and at once where
  the source moved in a way the flow cannot follow.
- A scene cut (after warping, the normalised frames differ about as much as unrelated pictures do)
  resets the state: the first frame of the new shot is the per-frame cartoon, with no ghost of the
  last shot. Between two frames flatter than CONTRAST_FLOOR (a black frame, a title card, a flat
  sky) the normalised frames are both noise and always look alike, while the network stretches
  each one's noise into a different picture: there a cut is a jump of any channel's mean by more
  than FLAT_JUMP (without it, a cut from a black frame to a red card was blended with the black
  frame's cartoon and kept that shot's exposure offset: 30 levels from its own cartoon, for seconds).

The stage runs before exposure (`stages.exposure`): the network's output hardly changes through a
fade (its instance norms remove the change), so the temporal blend never lags the light; the
exposure stage then gives each frame the source's own tone.
"""

from __future__ import annotations

import numpy as np

from cartoonize.stages.clock import FrameClock, kept
from cartoonize.stages.flow import FlowEstimator, FlowPair, gray, require_cv2, warp

CONTRAST_FLOOR = 8.0  # luma levels: a flatter frame is not stretched further (noise is not signal)
CUT_RESIDUAL = 0.6  # normalised mean abs difference: matched frames ~0.1-0.3, unrelated frames ~1.1
# RGB levels: between two flat frames, a jump of a channel's mean by more than this is a cut. A fade
# of a flat frame moves less: black to mid-grey in a third of a second is 16 levels a frame at 24 fps
# (a faster one is taken for cuts, and only goes unblended).
FLAT_JUMP = 2 * CONTRAST_FLOOR
AGREE = 0.25  # normalised luma difference (after a 5x5 box) at which the source stops agreeing
# seconds: the time constant of the blend (see the module docstring). A quarter of a second keeps
# the flicker the eye sees most (5-15 Hz) down by 8-24 times in amplitude (a first-order low-pass), while a change in the
# picture has settled within half a second.
MEMORY = 0.25


def _normalised(g: np.ndarray) -> np.ndarray:
    g = g.astype(np.float32)
    return (g - g.mean()) / max(float(g.std()), CONTRAST_FLOOR)


def _small(a: np.ndarray, side: int = 64) -> np.ndarray:
    cv2 = require_cv2()
    h, w = a.shape[:2]
    scale = min(1.0, side / max(h, w))
    return cv2.resize(a, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def is_scene_cut(previous_gray: np.ndarray, current_gray: np.ndarray, pair: FlowPair) -> bool:
    """Whether `current` starts a new shot: after warping `previous` onto it along `pair`, the two
    (each normalised to zero mean and unit contrast, seen at 64 px) differ as unrelated frames do.
    Dimensionless, so it holds for dark and bright clips, fades and any frame size."""
    warped = _normalised(warp(previous_gray, pair.backward))
    residual = np.abs(_small(_normalised(current_gray)) - _small(warped)).mean()
    return bool(residual > CUT_RESIDUAL)


def flat_residual(previous: tuple[np.ndarray, float], current: tuple[np.ndarray, float]) -> float:
    """The cut test's residual for a pair of flat frames, from each one's (channel means, luma
    std): 0 unless both are flatter than CONTRAST_FLOOR, else the largest jump of a channel's mean
    in units where FLAT_JUMP is CUT_RESIDUAL (so `> CUT_RESIDUAL` is a cut, as for `is_scene_cut`)."""
    (means_then, std_then), (means_now, std_now) = previous, current
    if max(std_then, std_now) >= CONTRAST_FLOOR:
        return 0.0
    return float(np.abs(means_now - means_then).max()) / FLAT_JUMP * CUT_RESIDUAL


def flat_statistics(source: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, float]:
    """(channel means, luma std) of a frame, for `flat_residual`."""
    means = source.reshape(-1, source.shape[-1] if source.ndim == 3 else 1).mean(0, dtype=np.float64)
    return means, float(g.std(dtype=np.float64))


class Stabilize:
    """A causal temporal blend along the source's optical flow (see the module docstring)."""

    name = "stabilize"

    def __init__(self, memory: float = MEMORY, flow_side: int = 360, preset: str = "medium") -> None:
        if not memory > 0.0:
            raise ValueError("memory must be a positive number of seconds")
        self.memory = memory
        self._clock = FrameClock()
        self._flows = FlowEstimator(preset, flow_side)
        self._cv2 = require_cv2()
        self.cuts = 0  # scene cuts seen since the last reset (for reports and tests)
        self.scene_cut = False  # whether the last frame started a new shot (the chain reads it)
        self.reset()

    def reset(self) -> None:
        # (source luma, float output, the source's flat_statistics)
        self._previous: tuple[np.ndarray, np.ndarray, tuple[np.ndarray, float]] | None = None
        self._clock.reset()

    def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
        strength = kept(self._clock.tick(at), self.memory)
        g = gray(source)
        stats = flat_statistics(source, g)
        self.scene_cut = False
        previous, self._previous = self._previous, None
        if previous is None or previous[0].shape != g.shape:
            self._previous = (g, cartoon.astype(np.float32), stats)
            return cartoon
        prev_g, prev_out, prev_stats = previous
        pair = self._flows.pair(prev_g, g)
        if flat_residual(prev_stats, stats) > CUT_RESIDUAL or is_scene_cut(prev_g, g, pair):
            self.cuts += 1
            self.scene_cut = True
            self._previous = (g, cartoon.astype(np.float32), stats)
            return cartoon
        cv2 = self._cv2
        disagreement = cv2.blur(_normalised(g) - _normalised(warp(prev_g, pair.backward)), (5, 5))
        agree = np.exp(-((disagreement / AGREE) ** 2))
        weight = (strength * agree * pair.trusted)[..., None].astype(np.float32)
        out = cartoon.astype(np.float32)
        out += weight * (warp(prev_out, pair.backward) - out)
        self._previous = (g, out, stats)  # kept in float: the recursion does not accumulate rounding
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
