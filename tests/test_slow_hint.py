"""The one line a long job gets on how to speed it up, from the rate its frames come out at."""

from __future__ import annotations

from cartoonize.progress import RATE_AFTER_S, with_slow_hint


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def run(seconds_per_frame: float, total: int, load_s: float = 30.0) -> tuple[list[tuple[int, str]], int]:
    """(frame count when each line was said, the line) and how many updates reached the bar."""
    clock, said, seen = Clock(), [], []
    at = [0]
    update = with_slow_hint(lambda d, t: seen.append(d), lambda line: said.append((at[0], line)),
                            "try --infer-side", clock)  # fmt: skip
    clock.t += load_s  # the engine loads before the first frame: not part of the rate
    for done in range(1, total + 1):
        clock.t += seconds_per_frame
        at[0] = done
        update(done, total)
    return said, len(seen)


def test_a_long_job_hears_once_how_long_and_what_to_try() -> None:
    said, seen = run(16.0, 1440)  # a minute of 24 fps 1080p on a laptop's CPU
    assert seen == 1440  # the bar still gets every update
    # the first frame starts the clock (after the load); one more frame of 16 s passes RATE_AFTER_S
    assert said == [(2, "about 6 h 23 min to go at 0.062 fps; try --infer-side")]


def test_a_short_or_fast_job_hears_nothing() -> None:
    assert run(16.0, 30)[0] == []  # 8 minutes
    assert run(0.05, 10_000)[0] == []  # 8 minutes at 20 fps
    assert run(16.0, 1, load_s=10_000)[0] == []  # a slow load is not a slow job


def test_the_rate_waits_for_enough_seconds_of_frames() -> None:
    said, _ = run(RATE_AFTER_S / 4, 10_000, load_s=0.0)
    assert [done for done, _ in said] == [5]  # the first frame, then four more make RATE_AFTER_S
