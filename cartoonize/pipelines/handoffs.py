"""How quickly the pipeline's threads hand the GIL to each other.

The video pipeline's threads (decode, engine, stages, mux) spend most of their time in C code
that releases the GIL: FFmpeg decoding, swscale, x264, numpy copies, CUDA calls. Each such call
must take the GIL back when it returns, and if another thread is running Python (a compiled
engine's Python wrapper launching its kernels, say), CPython makes it wait until that thread has
held the GIL for the switch interval: 5 ms by default. A thread that returns from C a few times a
frame then waits up to 5 ms each time, and at 60-90 frames a second that is the frame budget.

Measured on the 2-core CPU (`python -m cartoonize.measure.handoffs`, an engine with 10 ms of Python
and 11 ms of device time a 720p frame, 89 fps by itself): 49-57 fps with the 5 ms interval, 65-72
with 0.5 ms (four runs; 1, 0.2 and 0.1 ms were level with 0.5). An FFmpeg decode of a 1080p frame
beside a thread running Python took 24 ms at 5 ms and 5 ms at 0.5, as with nothing beside it;
a numpy copy of its RGB, 8.0 ms and 2.7 ms.
The pipelines run with `SWITCH_INTERVAL_S` and put the interpreter's own back when they end.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SWITCH_INTERVAL_S = 0.0005  # CPython's default is 0.005

_lock = threading.Lock()
_users = 0  # pipelines running with the short interval (several may run at once in one process)
_saved: float | None = None  # the interval before the first of them started


@contextmanager
def quick_handoffs(interval: float | None = SWITCH_INTERVAL_S) -> Iterator[None]:
    """Run the body with the GIL's switch interval at most `interval` seconds (None: leave it as
    it is). Pipelines running at once share the setting; the last to end restores the
    interpreter's own value, unless someone else changed it meanwhile."""
    global _users, _saved
    if interval is None:
        yield
        return
    with _lock:
        if _users == 0:
            _saved = sys.getswitchinterval()
        _users += 1
        if sys.getswitchinterval() > interval:
            sys.setswitchinterval(interval)
        ours = sys.getswitchinterval()
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved is not None:
                if sys.getswitchinterval() == ours:  # nobody else set it since
                    sys.setswitchinterval(_saved)
                _saved = None
