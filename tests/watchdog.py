"""A backstop for pytest-timeout: a test stuck where its SIGALRM cannot reach ends the run with
every thread's stack, instead of hanging it until CI gives up.

pytest-timeout (`timeout` in pyproject.toml) raises in the test's main thread from a SIGALRM
handler. That handler only runs when the main thread next executes Python: a thread blocked in C
with the interpreter lock held (a `fork()` waiting on another library's at-fork handler, a C
extension waiting on a thread that needs the lock) never gets there, and an exception raised where
Python swallows it (an at-fork callback, a `__del__`) is lost. CI once sat 80 minutes in such a
test with nothing printed. Here, `faulthandler`'s own C thread, which needs no lock, writes every
thread's Python stack to the real stderr and exits with status 1 once a test has run `timeout_grace`
seconds past its timeout (`timeout_grace`): the run fails fast and shows where it stopped.
"""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterator
from typing import IO

import pytest

GRACE = 120  # seconds past pytest-timeout's limit, which gets the first chance to fail the test

_stream: IO[str] | None = None


def add_options(parser: pytest.Parser) -> None:
    parser.addini("timeout_grace", f"seconds a test may run past `timeout` before the watchdog dumps "
                  f"every thread's stack and ends the run (default {GRACE})", default=str(GRACE))  # fmt: skip


def real_stderr(config: pytest.Config) -> IO[str]:
    """A copy of the terminal's stderr, taken with pytest's capture paused (during a test, file
    descriptor 2 is pytest's capture file, which nobody reads after an exit)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
    try:
        return os.fdopen(os.dup(2), "w", buffering=1)
    finally:
        if capture is not None:
            capture.resume_global_capture()


def limit_of(item: pytest.Item) -> float | None:
    """pytest-timeout's limit for `item` (its `timeout` mark, else the ini value); None for none."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        value = marker.args[0]
    else:
        try:
            value = item.config.getini("timeout")
        except ValueError:  # pytest-timeout is not installed: no ini key
            return None
    seconds = float(value or 0)
    return seconds if seconds > 0 else None


def pytest_configure(config: pytest.Config) -> None:
    global _stream
    _stream = real_stderr(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _stream
    if _stream is not None:
        _stream.close()
        _stream = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    limit = limit_of(item)
    if limit is None or _stream is None:
        yield
        return
    grace = float(item.config.getini("timeout_grace"))
    faulthandler.dump_traceback_later(limit + grace, exit=True, file=_stream)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
