"""Exposure follows the source: each cartoon frame gets its source frame's brightness back, and
loses the contrast the network invented, while keeping its own colours, flat shading and lines.

Why the network loses exposure. Every convolution of the generator is followed by an instance
norm, which subtracts each channel's mean over the frame and divides by its standard deviation.
The first one alone makes the output exactly invariant to a global affine change of the input,
a * frame + b (a > 0): a night scene, a fade and a noon scene of the same place give the same
cartoon, and a black frame (a = 0 plus codec noise) is the codec noise stretched to full contrast.
That stretch is also why dark and flat regions turn noise into pattern: the norms divide by the
frame's contrast, so where there is little, grain and 8x8 blocks are amplified by the same factor
that restores the missing contrast, and the decoder draws them as bright shapes.

The method undoes that normalisation on the way out, with the source's own statistics. In YCbCr
(BT.601), per frame, with m and s the mean and standard deviation of a frame's luma:

    m' = m_source * clip(m_cartoon / m_source, 1 / STEP, STEP)   (STEP = 2^(1/3): a third of a stop)
    Y' = m' + g * (Y_cartoon - m_cartoon)
    g  = min(1, s_source / S_NORMAL, room)
    C' = (C0 + k * (C_cartoon - C0)) * min(1, Y' / Y_cartoon)   (C = Cb, Cr, centred on zero;
         k = min(1, s_source / S_NORMAL), C0 the cartoon's mean chroma)

- The output's mean luma is the source's, give or take a third of a stop (a camera's finest
  exposure-compensation step): the style keeps its own brightness where it stays that close to the
  source's (Hayao is a little brighter than most footage, and that is part of its look), and is
  brought back to that bound where the norms invented it: a night scene lifted by 90 levels, a
  black frame turned olive. The bound is a ratio, as light is, so black stays black (within a third
  of a stop of 2 levels), a night scene keeps its level, and a fade fades. Near white the same step
  is taken on the distance to white, so a bright frame is not pushed out of the range.
- s_source / S_NORMAL is the inverse of the stretch the norms applied: they bring every frame to
  the contrast of a normally exposed picture, so a frame with a tenth of it was amplified ten
  times, and its grain and codec blocks with it. Taking the stretch back brings that noise down to
  the level it had in the source. This is the cause-level fix for noise-as-pattern: it acts in
  proportion to how much the network amplified, with no threshold on luma or noise. S_NORMAL = 30
  levels is the luma std of the least contrasty well-exposed colour photos among scikit-image's
  samples (rocket 30.6, chelsea 32.1; astronaut 75, coffee 58): a frame with that much contrast or
  more is a normal picture and keeps the cartoon's own contrast (g = 1), so low-key but
  well-exposed footage (an old black-and-white film, a grey street) is not flattened.
- The same factor k takes back the colour the stretch invented. The norms act on every channel,
  so a flat grey wall (luma std 17) comes out as a wall of green and brown blotches as strong as
  a landscape's, and they boil: on the iPhone clip, scaling luma alone left a warping-error ratio
  of 2.20 after encoding, scaling chroma as well 1.63. The cartoon's mean chroma (the style's tint
  of the frame, Hayao's warm cast) is kept; only the variation about it is scaled, and not at all
  on a frame of normal contrast.
- `room` caps darkening at a dimming about black (g = m' / m_cartoon gives Y' = Y * m' /
  m_cartoon, the same picture under less light) and brightening at one about white: the
  cartoon's lines and highlights stay inside the range rather than clipping, and a fade scales
  the picture as light does.
- The shape of the cartoon's tone (its flat areas, its lines, the order of its values) is kept,
  since the map is affine and increasing. Where a pixel is darkened, its chroma is scaled with its
  luma, which keeps its hue and saturation (the same colour under less light) and sends a black
  frame to black instead of a dark olive; where it is brightened, its chroma is kept.
- Over time (video and webcam): the source's statistics are used per frame, so the output's
  exposure is as steady as the source's and follows a fade or a flickering fire without lag. The
  one thing the cartoon keeps of its own, its brightness relative to the source (m' / m_source,
  within the third of a stop), is a running average over the shot: the shot's first frame sets
  it, then every frame moves it by about 1 / SMOOTHING_FRAMES of the way to its own (an
  exponential average over about two seconds at 24 fps, over the shot's last WINDOW_FRAMES frames
  only: `RunningOffset`): the network's flicker and drift in brightness do not pass, the style's
  lasting offset does, and a segment of a video cut for parallel work (`--segments`) rebuilds it
  exactly from its pre-roll. This average counts frames, not seconds (unlike the
  stabilization's blend, which follows a picture that moves in time): the offset is one number
  for the style on this shot, and each frame is one more sample of it, with its own error, so
  the estimate improves with the samples it has seen, whatever the frame rate. Counted in seconds,
  it took half as many samples on the 10-12 fps fire clip and followed the network's jumps there
  (mean-luma correlation 0.97 -> 0.88). A plain mean over a shot's first frames (weights 1/2, 1/3, ...)
  would follow the network's jumps at the start of every shot: on a one-second fire clip whose
  cartoon brightens by a sixth against a steady source after ten frames, it took the source's and
  the output's mean-luma correlation down to 0.77, against 0.97 with this average. A scene cut found by the
  stabilization stage restarts the average (the chain resets the stages after the one that saw
  it); without stabilization the offset settles over the new shot, bounded by the third of a stop
  meanwhile. A photo uses its own frame's offset.
"""

from __future__ import annotations

import collections

import numpy as np

# BT.601 (full range) RGB -> YCbCr, the same luma the quality benchmark measures
_Y = np.array([0.299, 0.587, 0.114], np.float32)
_CB = np.array([-0.168736, -0.331264, 0.5], np.float32)
_CR = np.array([0.5, -0.418688, -0.081312], np.float32)
MIN_STD = 1.0  # luma levels: a flat cartoon is not divided by ~0
# luma std of a normally exposed picture: below it the norms stretched the frame. The least
# contrasty well-exposed colour photos among scikit-image's samples: rocket 30.6, chelsea 32.1.
NORMAL_CONTRAST = 30.0
# how far the cartoon's mean luma may stay from the source's, as a ratio: a third of a stop
EXPOSURE_STEP = 2.0 ** (1.0 / 3.0)
# the running average of the cartoon's brightness offset spans about two seconds at 24 fps: a
# shot's first frame sets it, and each later frame weighs 1 / SMOOTHING_FRAMES
SMOOTHING_FRAMES = 48
# ... of the shot's last WINDOW_FRAMES frames, no more: WINDOW_FRAMES - 1 frames before a point
# mid-shot (a segment's pre-roll) rebuild the average there exactly
WINDOW_FRAMES = 96


def exposure_target(mean_source: float, mean_cartoon: float) -> float:
    """The output's mean luma: the cartoon's own, kept within a third of a stop of the source's,
    measured both as light (m / step .. m * step, the bound that holds near black) and as its
    distance to white (the bound that holds near white); the tighter of the two."""
    high = min(mean_source * EXPOSURE_STEP, 255.0 - (255.0 - mean_source) / EXPOSURE_STEP)
    low = max(mean_source / EXPOSURE_STEP, 255.0 - (255.0 - mean_source) * EXPOSURE_STEP)
    return min(max(mean_cartoon, low), high)


def match_exposure(source: np.ndarray, cartoon: np.ndarray, normal_contrast: bool = True,
                   offset: float | None = None) -> np.ndarray:  # fmt: skip
    """`cartoon` (uint8 RGB) with its luma mean brought within a third of a stop of `source`'s
    (uint8 RGB, same size) and its contrast scaled down by the source's shortfall from a normal
    contrast (`normal_contrast`); or else with the source's luma mean and contrast exactly.
    `offset`: the log brightness ratio to keep instead of this frame's own (a running average)."""
    src = source.astype(np.float32)
    car = cartoon.astype(np.float32)
    y_src = src @ _Y
    y, cb, cr = car @ _Y, car @ _CB, car @ _CR
    mean_c, std_c = max(float(y.mean()), MIN_STD), max(float(y.std()), MIN_STD)
    mean_s = float(y_src.mean())
    wanted = mean_c if offset is None else max(mean_s, MIN_STD) * float(np.exp(offset))
    target = exposure_target(mean_s, wanted)
    if normal_contrast:
        # at most a dimming about black (or a brightening about white): the same picture under
        # less (more) light, whose lines and highlights stay inside the range instead of clipping
        room = target / mean_c if target < mean_c else (255.0 - target) / max(255.0 - mean_c, MIN_STD)
        stretch = min(1.0, float(y_src.std()) / NORMAL_CONTRAST)
        gain = min(stretch, room)
        # the norms stretched colour as much as tone: the chroma the cartoon drew about its own
        # mean colour is taken back by the same factor (its tint, that mean, is the style's)
        cb = cb.mean() + stretch * (cb - cb.mean())
        cr = cr.mean() + stretch * (cr - cr.mean())
    else:
        target, gain = mean_s, float(y_src.std()) / std_c
    y_new = target + gain * (y - mean_c)
    keep = np.minimum(1.0, (np.maximum(y_new, 0.0) + 0.5) / (y + 0.5))
    cb *= keep
    cr *= keep
    out = np.empty_like(car)
    out[..., 0] = y_new + 1.402 * cr
    out[..., 1] = y_new - 0.344136 * cb - 0.714136 * cr
    out[..., 2] = y_new + 1.772 * cb
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def brightness_offset(source: np.ndarray, cartoon: np.ndarray) -> float:
    """This frame's log ratio of the output's mean luma to the source's (bounded: a third of a stop)."""
    mean_s = max(float((source.astype(np.float32) @ _Y).mean()), MIN_STD)
    mean_c = max(float((cartoon.astype(np.float32) @ _Y).mean()), MIN_STD)
    return float(np.log(max(exposure_target(mean_s, mean_c), MIN_STD) / mean_s))


class Exposure:
    """The frame stage (see the module docstring). With `temporal`, the brightness offset is a
    running average over frames (video, webcam); without, each frame's own (photos)."""

    name = "exposure"

    def __init__(self, temporal: bool = True) -> None:
        self.temporal = temporal
        self.reset()

    def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
        if not self.temporal:
            return match_exposure(source, cartoon)
        return match_exposure(source, cartoon, offset=self._offset(brightness_offset(source, cartoon)))

    def reset(self) -> None:
        self._offset = RunningOffset()


class RunningOffset:
    """The shot's brightness offset (see the module docstring): each frame's own offset in, the
    average to keep out. The average of the last WINDOW_FRAMES offsets, each weighted by
    (1 - 1 / SMOOTHING_FRAMES) ** its age in frames, as an exponential average weighs them; the
    shot's first frame carries in addition the weight with which an exponential average's first
    sample stands for all the frames before it, tapered (1 - x^2 over the window) to nothing by
    the time it leaves the window. So a shot's first frame sets the average, later ones move it by about 1 /
    SMOOTHING_FRAMES of the way, and nothing older than the window counts: a segment that starts
    mid-shot after WINDOW_FRAMES - 1 frames of pre-roll keeps the same offsets as one pass.
    (An exponential average over the whole shot remembered its first frames for ever: a segment
    of Big Buck Bunny whose pre-roll started mid-shot came out 7 levels darker than one pass, a
    flash at the join. On synthetic offsets this one's frame-to-frame change is 1.16x the
    exponential average's, and its response to a step within 15 % of it; Hayao at 128 px, the
    source's and the output's mean-luma correlation: fire clip 0.979 (0.981 before), Big Buck
    Bunny's 30 s 0.963 (0.963).)"""

    def __init__(self) -> None:
        self._by_age = (1.0 - 1.0 / SMOOTHING_FRAMES) ** np.arange(WINDOW_FRAMES)
        self._recent: collections.deque[float] = collections.deque(maxlen=WINDOW_FRAMES)  # newest first
        self._frames = 0  # of the shot so far

    def __call__(self, own: float) -> float:
        self._recent.appendleft(own)
        self._frames += 1
        weights = self._by_age[: len(self._recent)].copy()
        if self._frames <= WINDOW_FRAMES:  # the shot's first frame, the oldest in the window
            taper = 1.0 - ((self._frames - 1) / (WINDOW_FRAMES - 1)) ** 2
            weights[-1] += (SMOOTHING_FRAMES - 1) * weights[-1] * taper
        return float(np.dot(weights, np.fromiter(self._recent, float, len(self._recent))) / weights.sum())
