"""A pull from a server that trickles (a byte at a time, never silent long enough for the stall
timeout) fails with one line naming the rate, instead of running for hours; a server that is
merely uneven is not cut off. Real HTTP on 127.0.0.1 (the mirror of test_styles_download), with
the floor's window made small so each case takes about a second."""

# ruff: noqa: F811 - the mirror fixture is imported from test_styles_download and taken as an argument
from __future__ import annotations

import threading

import pytest

from cartoonize import styles
from cartoonize.errors import CartoonizeError
from cartoonize.styles import pull_style
from tests.test_styles_download import B_URL, Mirror, cache_entries, cached_whole, mirror  # noqa: F401 - a fixture

WINDOW_S = 0.5
MIN_RATE = 20_000  # bytes/s: 10 kB a window; the trickle sends under 50 B/s, the others MB/s


@pytest.fixture
def small_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(styles, "RATE_WINDOW_S", WINDOW_S)
    monkeypatch.setattr(styles, "MIN_RATE", MIN_RATE)


def test_a_trickling_server_fails_with_the_rate(mirror: Mirror, small_floor: None) -> None:
    mirror.mode = "trickle"
    errors: list[CartoonizeError] = []

    def pull() -> None:
        try:
            pull_style("tiny")
        except CartoonizeError as exc:
            errors.append(exc)

    puller = threading.Thread(target=pull)
    puller.start()
    puller.join(timeout=20)  # the floor ends it in about WINDOW_S; the trickle alone, in ~2 hours
    if puller.is_alive():
        mirror.release.set()  # the server ends the trickle, and the pull with it
        puller.join()
        pytest.fail("the trickle kept the pull going for 20 s")
    assert len(errors) == 1
    message = str(errors[0])
    assert "\n" not in message
    assert message.startswith("download failed: ") and B_URL.replace("\\", "") in message, message
    assert f"in the last {WINDOW_S:g} s (" in message and "under the 20.0 kB/s" in message, message
    assert "try again later, or set CARTOONIZE_WEIGHTS_URL" in message, message
    assert cache_entries() == []
    mirror.mode = "ok"
    pull_style("tiny")
    assert cached_whole()


def test_a_pause_within_a_fast_pull_is_not_a_trickle(mirror: Mirror, small_floor: None) -> None:
    """Silent for longer than the window, then at full speed: the rate over the window that ends
    with the burst is high (the floor judges a rate, not gaps: those are the stall timeout's)."""
    mirror.mode, mirror.pause_s = "pause", 2 * WINDOW_S
    pull_style("tiny")
    assert cached_whole()


@pytest.mark.parametrize(
    ("received", "window", "rate", "expected"),
    [(60, 120.0, 10_000, "60 B in the last 120 s (0.5 B/s), under the 10.0 kB/s that brings a style's "
                         "44.6 MB within 74 min"),
     (250_000, 60.0, 5_000, "250.0 kB in the last 60 s (4.2 kB/s), under the 5.0 kB/s that brings a "
                            "style's 44.6 MB within 2.5 h")],
)  # fmt: skip
def test_the_message_reads(
    monkeypatch: pytest.MonkeyPatch, received: int, window: float, rate: int, expected: str
) -> None:
    monkeypatch.setattr(styles, "RATE_WINDOW_S", window)
    monkeypatch.setattr(styles, "MIN_RATE", rate)
    floor = styles._RateFloor()
    floor.start -= window  # as though the pull began a window ago, and nothing came since
    floor.marks[0] = (floor.start, 0)
    assert floor.slow(received) == expected
