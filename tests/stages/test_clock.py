"""The time between frames that temporal stages weigh their memory by."""

from __future__ import annotations

import math

import pytest

from cartoonize.stages.clock import NOMINAL_PERIOD, FrameClock, kept


def test_the_clock_gives_the_time_since_the_previous_frame() -> None:
    clock = FrameClock()
    assert clock.tick(10.0) == NOMINAL_PERIOD == 1 / 25  # the first frame: nothing before it
    assert clock.tick(10.1) == pytest.approx(0.1)
    assert clock.tick(10.1 + 1 / 30) == pytest.approx(1 / 30)
    assert clock.tick(10.1 + 1 / 30) == pytest.approx(1 / 30)  # a repeated time: the last period
    assert clock.tick(None) == pytest.approx(1 / 30)  # no time: the last period
    assert clock.tick(12.0) == pytest.approx(12.0 - 10.1 - 1 / 30)  # a gap (dropped frames) counts whole
    assert clock.tick(11.0) == pytest.approx(12.0 - 10.1 - 1 / 30)  # back in time (a seek): the last period
    assert clock.tick(11.5) == pytest.approx(0.5)  # ... and it goes on from the new time
    clock.reset()
    assert clock.tick(None) == NOMINAL_PERIOD
    assert clock.tick(3.0) == NOMINAL_PERIOD


def test_kept_is_an_exponential_memory_in_seconds() -> None:
    assert kept(0.25, 0.25) == pytest.approx(math.exp(-1))
    assert kept(1 / 50, 0.25) ** 2 == pytest.approx(kept(1 / 25, 0.25))  # two short steps = one long
    assert kept(0.0, 0.25) == 1.0
    assert kept(0.1, 0.25) < kept(1 / 30, 0.25) < 1.0  # a longer wait keeps less
