"""An ONNX Runtime run stops within a node of the graph when a signal interrupts it (Ctrl-C, a
container's SIGTERM with its grace period): Python handles a signal only when the call it is in
returns, and the job went on for the rest of the frame (16 s for a full-size frame here under
load; a container is killed after 10 s, its hidden partial file left behind)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cartoonize.choose import cached_onnx
from cartoonize.runners.onnxruntime import OnnxRuntimeRunner


class Stopped(Exception):
    """What the test's signal raises in the main thread, as the CLI's SIGTERM handler does."""


def test_a_signal_ends_a_run_at_once(tiny_checkpoint: Path) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are handled in the main thread")
    frames = np.random.default_rng(0).integers(0, 256, (1, 720, 1280, 3), dtype=np.uint8)

    def stop(signum: int, frame: object) -> None:
        raise Stopped

    previous = signal.signal(signal.SIGUSR1, stop)
    try:
        with OnnxRuntimeRunner(cached_onnx(tiny_checkpoint, "fp32")) as run:
            expected = run(frames)  # the first run sets ONNX Runtime up: slower
            started = time.perf_counter()
            run(frames)
            whole = time.perf_counter() - started  # one frame's run, on this machine, now
            # to another thread than the main one, as the kernel may hand a process's signal to
            # any of its threads (ONNX Runtime's): the main thread, waiting, must still see it
            timer = threading.Timer(
                whole / 10, lambda: signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
            )
            started = time.perf_counter()
            timer.start()
            with pytest.raises(Stopped):
                run(frames)
            ended = time.perf_counter() - started
            timer.join()
            assert ended < 0.6 * whole, (ended, whole)  # a tenth to the signal, then a node or so
            assert np.array_equal(run(frames), expected)  # the runner still works after
    finally:
        signal.signal(signal.SIGUSR1, previous)
