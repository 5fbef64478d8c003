"""Threads kept in the scheduling class they had: an encoder may not make the job real-time.

SVT-AV1 (`--codec libsvtav1`), when the process runs as root (a container's default user), moves
the thread that opens it, and the forty-odd worker threads it starts, to SCHED_FIFO at priority
99: the highest real-time class, above the kernel's own threads. Every thread started afterwards
inherits it. Measured here: `cartoonize video … --codec libsvtav1` ran its main thread and 45–62
of its threads at real-time 99 from the encoder check on, and a CPU-bound process beside it got
12–68 % of the loop count it had on the idle machine (68–92 % beside the job in the normal class);
in the test suite, once a test had opened SVT-AV1, no other Python thread ran while ONNX Runtime's
spinning workers ran a frame (a 5 ms ticker's longest gap was the whole run). SVT-AV1 writes the
same packets in the normal class (as it does for any user but root).

`kept()` puts back in the normal class every thread of this process that entered a real-time
class during its block. Linux only (`/proc/self/task`); elsewhere it does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["kept", "open_encoder", "put_back", "realtime_threads"]

REALTIME = {getattr(os, name) for name in ("SCHED_FIFO", "SCHED_RR") if hasattr(os, name)}


def realtime_threads() -> set[int]:
    """The kernel ids of this process's threads in a real-time scheduling class."""
    if not REALTIME:
        return set()
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return set()
    found = set()
    for tid in map(int, tids):
        try:
            if os.sched_getscheduler(tid) in REALTIME:
                found.add(tid)
        except OSError:  # the thread ended meanwhile
            continue
    return found


def put_back(tids: set[int]) -> None:
    """Put these threads of this process in the normal scheduling class."""
    for tid in tids:
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        except OSError:  # ended meanwhile
            continue


@contextmanager
def kept() -> Iterator[None]:
    """Threads that enter a real-time class in this block are put back in the normal one."""
    before = realtime_threads()
    try:
        yield
    finally:
        put_back(realtime_threads() - before)


def open_encoder(stream: Any) -> None:  # noqa: ANN401 - an av stream
    """Open `stream`'s encoder now (PyAV would on its first frame), the job's threads kept in the
    class they had. Its settings must all be made before."""
    context = stream.codec_context
    if not context.is_open:
        with kept():
            context.open()
