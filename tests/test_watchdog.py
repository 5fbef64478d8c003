"""The suite's backstop for a test that pytest-timeout cannot stop (tests/watchdog.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.helpers import child_env

CONFTEST = """
from tests import watchdog

def pytest_addoption(parser):
    watchdog.add_options(parser)

def pytest_configure(config):
    config.pluginmanager.register(watchdog, "cartoonize-watchdog")
"""

TESTS = """
import signal
import time

def test_stopped_by_pytest_timeout():
    time.sleep(60)

def test_deaf_to_sigalrm():
    # as a main thread blocked in C with the interpreter lock held: SIGALRM never runs its handler
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(60)

def test_never_reached(tmp_path_factory):
    open(__file__ + ".reached", "w").close()
"""


def test_a_test_deaf_to_the_timeout_ends_the_run_with_its_stack(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_stuck.py").write_text(textwrap.dedent(TESTS))
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-o", "timeout=1", "-o", "timeout_grace=2", str(tmp_path)],
        cwd=tmp_path, env=child_env(PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    took = time.monotonic() - start
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    # pytest-timeout stopped the first test by its own means (the watchdog let it); the second is
    # the watchdog's: its dump names the stuck line, and the run ends there
    assert re.search(r'test_stuck.py", line \d+ in test_deaf_to_sigalrm', run.stderr), output
    assert not (tmp_path / "test_stuck.py.reached").exists(), "the run went on after the stuck test"
    assert took < 30, f"the run took {took:.0f} s"
