"""A webcam child started as the tests start theirs ends when the test process is killed outright
(SIGKILL runs no `finally`): it ran on for ever on its endless lavfi source."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import child_env

# stands in for the test process: starts the child as the webcam tests do, says its pid once it
# serves the preview (it is the live webcam, not a child that failed at once), then waits
TEST_PROCESS = """
import json, subprocess, sys, threading
from tests.bound_children import webcam_child
child = subprocess.Popen(webcam_child(json.loads(sys.argv[1])), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
for line in child.stdout:
    if "serving the preview at" in line:
        print(child.pid, flush=True)
        break
threading.Event().wait()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_webcam_child_ends_with_a_killed_test_process(tmp_path: Path, tiny_checkpoint: Path) -> None:
    args = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=30",
        "--serve",
        "0",
        "--model",
        str(tiny_checkpoint),
    ]
    tester = subprocess.Popen([sys.executable, "-c", TEST_PROCESS, json.dumps(args)], cwd=tmp_path,
                              env=child_env(PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert tester.stdout is not None
    try:
        ready, _, _ = select.select([tester.stdout], [], [], 60)
        said = tester.stdout.readline() if ready else ""
        assert said.strip().isdigit(), "the webcam child did not start serving"
        child = int(said)
        ended = os.pidfd_open(child)  # readable once the child has ended
    finally:
        tester.kill()  # as a CI timeout or the OOM killer ends pytest
        tester.wait()
    try:
        assert select.select([ended], [], [], 20)[0], "the webcam child outlived the test process"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        os.close(ended)
