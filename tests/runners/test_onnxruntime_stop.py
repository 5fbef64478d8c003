"""An ONNX Runtime run stops within a node of the graph when a signal interrupts it (Ctrl-C, a
container's SIGTERM with its grace period): Python handles a signal only when the call it is in
returns, and the job went on for the rest of the frame (16 s for a full-size frame here under
load; a container is killed after 10 s, its hidden partial file left behind)."""

from __future__ import annotations

import gc
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cartoonize.export import INPUT_NAME, OUTPUT_NAME
from cartoonize.runners.onnxruntime import OnnxRuntimeRunner

NODES = 120  # many nodes of a like size: the run can end after any of them


class Stopped(Exception):
    """What the test's signal raises in the main thread, as the CLI's SIGTERM handler does."""


def many_small_nodes(path: Path) -> Path:
    """uint8 frames in and out, as the runner takes them, through `NODES` 3×3 convolutions that
    each give their input back (the centre tap 1): the output is the input."""
    import onnx
    from onnx import TensorProto, helper

    kernel = np.zeros((3, 3, 3, 3), np.float32)
    kernel[range(3), range(3), 1, 1] = 1.0
    nodes = [helper.make_node("Transpose", [INPUT_NAME], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Cast", ["nchw"], ["x0"], to=TensorProto.FLOAT)]  # fmt: skip
    for k in range(NODES):
        nodes.append(helper.make_node("Conv", [f"x{k}", "kernel"], [f"x{k + 1}"], pads=[1, 1, 1, 1]))
    nodes += [helper.make_node("Cast", [f"x{NODES}"], ["u8"], to=TensorProto.UINT8),
              helper.make_node("Transpose", ["u8"], [OUTPUT_NAME], perm=[0, 2, 3, 1])]  # fmt: skip
    shape = ["n", "h", "w", 3]
    graph = helper.make_graph(
        nodes, "stop", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, shape)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.UINT8, shape)],
        [onnx.numpy_helper.from_array(kernel, "kernel")],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


def test_a_signal_ends_a_run_at_once(tmp_path: Path) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are handled in the main thread")
    # 720p: a run of about half a second to a second, so what is fixed (the 50 ms wake, a thread
    # waiting for a core) is small beside it
    frames = np.random.default_rng(0).integers(0, 256, (1, 720, 1280, 3), dtype=np.uint8)

    def stop(signum: int, frame: object) -> None:
        raise Stopped

    previous = signal.signal(signal.SIGUSR1, stop)
    try:
        with OnnxRuntimeRunner(many_small_nodes(tmp_path / "nodes.onnx")) as run:
            assert np.array_equal(run(frames), frames)  # the first run sets ONNX Runtime up: slower
            started = time.perf_counter()
            run(frames)
            whole = time.perf_counter() - started  # one run, on this machine, now
            # to another thread than the main one, as the kernel may hand a process's signal to
            # any of its threads (ONNX Runtime's): the main thread, waiting, must still see it
            timer = threading.Timer(
                whole / 10, lambda: signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
            )
            # no collection of the suite's garbage while it is timed: a full one, after a thousand
            # tests, holds the interpreter a tenth of a second, and the handler with it
            gc.collect()
            gc.disable()
            try:
                started = time.perf_counter()
                timer.start()
                with pytest.raises(Stopped):
                    run(frames)
                ended = time.perf_counter() - started
            finally:
                gc.enable()
            timer.join()
            # a tenth to the signal, at most 50 ms to see it, a node or two (1/120 each): about 0.2
            # of a run. Without the stop the run goes on to its end, 1.1 of a run
            assert ended < 0.5 * whole, (ended, whole)
            assert np.array_equal(run(frames), frames)  # the runner still works after
    finally:
        signal.signal(signal.SIGUSR1, previous)
