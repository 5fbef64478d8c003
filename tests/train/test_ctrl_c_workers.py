"""Ctrl-C in a terminal reaches every process of the job, the DataLoader workers too: the run says
"stopping" once, from the main process, and the workers end without a word."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
from tests.helpers import child_env, stoppable  # noqa: E402
from tests.train.conftest import REPO, tiny_args  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs POSIX process groups")


def test_ctrl_c_to_the_process_group_says_stopping_once(folders: tuple[Path, Path], tmp_path: Path) -> None:
    photos, cartoons = folders
    out = tmp_path / "run"
    args = ["--photos", str(photos), "--cartoons", str(cartoons), "--out", str(out)]
    args += tiny_args(
        steps_per_epoch=5000, workers=2, init_epochs=1, init_decay_epochs=0, adv_epochs=0, decay_epochs=0
    )
    process = subprocess.Popen(
        stoppable([sys.executable, "-m", "train", *args]),
        cwd=tmp_path,
        env=child_env(PYTHONPATH=str(REPO)),
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,  # its own group, as a terminal's job: the signal goes to the group
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "samples" / "epoch_000.png").exists():  # the first epoch (and its workers) next
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.5)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr.count("Ctrl-C: stopping after this step") == 1, stderr
    assert "Traceback" not in stderr and "stopped: saved" in stderr, stderr
