"""Child processes of the webcam tests that end with the test process, however it ends.

A live `cartoonize webcam` on a lavfi source runs until it is stopped, and so do Xvfb and Chromium:
a test that stops them itself does so in `finally`, but a pytest killed with SIGKILL (a CI job's
timeout, the OOM killer, `kill -9` on a hung run) runs no `finally`, and they ran on for ever,
a webcam child keeping a core busy. Linux's parent-death signal (`prctl(PR_SET_PDEATHSIG)`) is set
in the child by a small Python that then execs the command: the setting survives exec, and nothing
runs between fork and exec in this many-threaded process (not a `preexec_fn`). As `workers.py`'s
`_end_with_parent` does for the product's own worker processes.
"""

from __future__ import annotations

import os
import signal
import sys

from tests.helpers import stoppable

PR_SET_PDEATHSIG = 1
# the launcher: SIGKILL when the parent ends; and if it ended before that was set, end now
_LAUNCH = (
    "import ctypes, os, sys\n"
    f"if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_PDEATHSIG}, {int(signal.SIGKILL)}, 0, 0, 0):\n"
    "    sys.exit(f'prctl(PR_SET_PDEATHSIG): {os.strerror(ctypes.get_errno())}')\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def bound(command: list[str]) -> list[str]:
    """`command` as one that is killed when this process ends (on Linux; elsewhere as it is). The
    signal follows the thread that starts the child: start it from the test's own thread, not from
    a helper thread that ends first."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-I", "-S", "-c", _LAUNCH, str(os.getpid()), *command]


def webcam_child(args: list[str]) -> list[str]:
    """`python -m cartoonize webcam ARGS`, for a child that the test stops with a signal, and that
    ends with the test process."""
    return bound(stoppable([sys.executable, "-m", "cartoonize", "webcam", *args]))
