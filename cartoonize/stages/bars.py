"""Letterbox and pillarbox bars stay black: rows and columns at the frame's edges that are black in
the source are the source's in the output.

Films and phone clips often carry black bars (a 2.39:1 film in a 16:9 frame, a portrait clip in
a landscape one). The network does not know they are not picture: its convolutions spill the
picture's colours into them, and the guided upsampling's windows carry that spill further, so a
bar comes out as a dark, warm glow that fades away from the picture (measured on sintel_5s with
the network at 256 px: 13 to 34 levels of luma in rows that are 0 in the source). The exposure
stage cannot help, since it maps the whole frame's tone at once.

A row (column) belongs to a bar when it touches the frame's edge, or a bar row next to it, and its
mean luma is at most BLACK_LEVEL: FFmpeg's `cropdetect` rule, with its default limit of 24 on
limited-range luma, which is (24 - 16) * 255 / 219 = 9.3 levels of full-range luma. A frame dark
throughout by that rule (a black frame, the start of a fade from black) is itself black and
stays the source's. The bars are found per frame, so a bar that appears or goes with a cut is
followed at once; nothing is carried across frames.

The stage runs last, after exposure, whose affine tone map would lift a black bar again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from cartoonize.stages.exposure import _Y  # BT.601 luma weights: the same luma exposure and quality use

T = TypeVar("T", bound=Any)  # an array: numpy's or torch's

# FFmpeg cropdetect's default limit (24 on 16-235 luma) in full-range luma levels
BLACK_LEVEL = (24 - 16) * 255 / 219


def _leading_black(means: np.ndarray) -> int:
    """How many of `means`, from the first, are at most BLACK_LEVEL before one is above it."""
    above = np.flatnonzero(means > BLACK_LEVEL)
    return int(above[0]) if above.size else len(means)


def bar_extent(source: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): how many rows and columns at each edge of `source` (uint8 RGB)
    are black bars. A frame black throughout gives (height, 0, 0, 0)."""
    # the mean of a row's luma is the luma of the row's mean colour: no per-pixel pass needed
    rows = source.mean(axis=1, dtype=np.float32) @ _Y
    return extent_from(rows, lambda top, bottom: source[top:bottom].mean(axis=0, dtype=np.float32) @ _Y)


def extent_from(
    rows: np.ndarray, cols_between: Callable[[int, int], np.ndarray]
) -> tuple[int, int, int, int]:
    """The bars from the rows' mean luma and, once the rows are known, the mean luma of the columns
    of the picture between them (`cols_between(top, end)`): numpy here, torch in `stages.device`."""
    top = _leading_black(rows)
    if top == len(rows):
        return top, 0, 0, 0
    bottom = _leading_black(rows[::-1])
    cols = cols_between(top, len(rows) - bottom)
    return top, bottom, _leading_black(cols), _leading_black(cols[::-1])


def paste_bars(out: T, source: T, extent: tuple[int, int, int, int]) -> T:
    """`out` (a copy of the cartoon, numpy or torch) with the bars' rows and columns of `source`."""
    top, bottom, left, right = extent
    h, w = out.shape[:2]
    out[:top] = source[:top]
    out[h - bottom :] = source[h - bottom :]
    out[:, :left] = source[:, :left]
    out[:, w - right :] = source[:, w - right :]
    return out


class Bars:
    """The frame stage (see the module docstring)."""

    name = "bars"

    def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
        extent = bar_extent(source)
        if not any(extent):
            return cartoon
        return paste_bars(cartoon.copy(), source, extent)

    def reset(self) -> None:
        pass  # nothing is carried across frames
