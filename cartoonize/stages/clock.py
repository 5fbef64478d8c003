"""The time between frames, for the stages that follow the picture over time.

A stage that carries the picture from frame to frame (stabilization) must remember a span of
time, not a count of frames: a blend that keeps 3/4 of the previous frame remembers three times as
long at 10 fps as at 30 fps, and a camera that drops frames would make it forget at the rate
frames happen to arrive. Such a stage asks its `FrameClock` how long ago the previous frame was,
and weighs that frame by it. (A stage that estimates a constant of the shot, such as exposure's
brightness offset, counts frames instead: each is one more sample, whatever the rate.)
"""

from __future__ import annotations

import math

# seconds from one frame to the next where frames carry no time (a photo sequence in a test, a
# caller that passes none): 25 fps, FFmpeg's own guess for a stream that declares no rate
NOMINAL_PERIOD = 1.0 / 25.0


class FrameClock:
    """Seconds since the previous frame. Where a frame has no time, or its time does not move
    forward (a repeated timestamp), the last period seen stands in (NOMINAL_PERIOD at first)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._last: float | None = None
        self._period = NOMINAL_PERIOD

    def tick(self, at: float | None) -> float:
        if at is not None:
            if self._last is not None and at > self._last:
                self._period = at - self._last
            self._last = at
        return self._period


def kept(period: float, memory: float) -> float:
    """The share of the past an exponential memory of `memory` seconds keeps after `period`
    seconds: exp(-period / memory). It compounds: two steps of 1/50 s keep what one of 1/25 s does."""
    return math.exp(-period / memory)
