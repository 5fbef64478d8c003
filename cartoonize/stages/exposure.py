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

    Y' = m_source + g * (Y_cartoon - m_cartoon)
    g  = min(1, s_source / S_NORMAL, room)
    C' = C_cartoon * min(1, Y' / Y_cartoon)          (C = Cb, Cr, centred on zero)

- The output's mean luma is the source's: black stays black, a night scene keeps its level, a
  fade fades.
- s_source / S_NORMAL is the inverse of the stretch the norms applied: they bring every frame to
  the contrast of a normally exposed picture (S_NORMAL = 48 levels, the median luma std of the
  scikit-image sample photos), so a frame with a tenth of that contrast was amplified ten times,
  and its grain and codec blocks with it. Taking the stretch back brings that noise down to the
  level it had in the source. This is the cause-level fix for noise-as-pattern: it acts in
  proportion to how much the network amplified, with no threshold on luma or noise. A frame with
  normal or more contrast keeps the cartoon's own contrast (g = 1): the style is not flattened.
- `room` caps darkening at a dimming about black (g = m_source / m_cartoon gives Y' = Y * m_source
  / m_cartoon, the same picture under less light) and brightening at one about white: the
  cartoon's lines and highlights stay inside the range rather than clipping, and a fade scales
  the picture as light does.
- The shape of the cartoon's tone (its flat areas, its lines, the order of its values) is kept,
  since the map is affine and increasing. Where a pixel is darkened, its chroma is scaled with its
  luma, which keeps its hue and saturation (the same colour under less light) and sends a black
  frame to black instead of a dark olive; where it is brightened, its chroma is kept.
- Per frame, not smoothed over time: the source's statistics are as steady as the source, so the
  output's exposure is steady where the source's is, and follows a fade without lag. The cartoon's
  own statistics are steadied by the stabilization stage, which runs before this one.
"""

from __future__ import annotations

import numpy as np

# BT.601 (full range) RGB -> YCbCr, the same luma the quality benchmark measures
_Y = np.array([0.299, 0.587, 0.114], np.float32)
_CB = np.array([-0.168736, -0.331264, 0.5], np.float32)
_CR = np.array([0.5, -0.418688, -0.081312], np.float32)
MIN_STD = 1.0  # luma levels: a flat cartoon is not divided by ~0
# luma std of a normally exposed picture: the contrast the norms bring every frame to. The
# scikit-image sample photos (astronaut, coffee, chelsea, rocket, retina, ...) have a median of 47.
NORMAL_CONTRAST = 48.0


def match_exposure(source: np.ndarray, cartoon: np.ndarray, normal_contrast: bool = True) -> np.ndarray:
    """`cartoon` (uint8 RGB) with the luma mean of `source` (uint8 RGB, same size), and its
    contrast scaled down by the source's shortfall from a normal contrast (`normal_contrast`), or
    else set to the source's."""
    src = source.astype(np.float32)
    car = cartoon.astype(np.float32)
    y_src = src @ _Y
    y, cb, cr = car @ _Y, car @ _CB, car @ _CR
    mean_c, std_c = max(float(y.mean()), MIN_STD), max(float(y.std()), MIN_STD)
    mean_s = float(y_src.mean())
    if normal_contrast:
        # at most a dimming about black (or a brightening about white): the same picture under
        # less (more) light, whose lines and highlights stay inside the range instead of clipping
        room = mean_s / mean_c if mean_s < mean_c else (255.0 - mean_s) / max(255.0 - mean_c, MIN_STD)
        gain = min(1.0, float(y_src.std()) / NORMAL_CONTRAST, room)
    else:
        gain = float(y_src.std()) / std_c
    y_new = mean_s + gain * (y - mean_c)
    keep = np.minimum(1.0, (np.maximum(y_new, 0.0) + 0.5) / (y + 0.5))
    cb *= keep
    cr *= keep
    out = np.empty_like(car)
    out[..., 0] = y_new + 1.402 * cr
    out[..., 1] = y_new - 0.344136 * cb - 0.714136 * cr
    out[..., 2] = y_new + 1.772 * cb
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class Exposure:
    """The frame stage (see the module docstring); stateless."""

    name = "exposure"

    def __call__(self, source: np.ndarray, cartoon: np.ndarray) -> np.ndarray:
        return match_exposure(source, cartoon)

    def reset(self) -> None:
        pass
