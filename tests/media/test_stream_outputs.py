"""The webcam's network outputs (media.outputs.Recorder to a URL) against real receivers on
127.0.0.1: one that refuses is an error before the model loads; one that stops reading ends the
stream within seconds, with the reason (the job hung for ever, at its end or on Ctrl-C)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest

from cartoonize.errors import CartoonizeError
from cartoonize.media import outputs
from cartoonize.media.outputs import Recorder, check_record_target, stream_url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_receiver_that_refuses_is_an_error_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(CartoonizeError, match=r"cannot connect \(Connection refused\)"):
        Recorder(f"tcp://127.0.0.1:{_free_port()}", 160, 120, Fraction(15))
    assert time.perf_counter() - started < 3


def test_urls_are_checked_before_anything_opens() -> None:
    with pytest.raises(CartoonizeError, match=r"give the receiver's port \(udp://HOST:PORT\)"):
        check_record_target("udp://127.0.0.1", overwrite=False)
    check_record_target("UDP://127.0.0.1:9000", overwrite=False)
    assert stream_url("UDP://127.0.0.1:9000") == "udp://127.0.0.1:9000"  # FFmpeg's names are lower case
    assert stream_url("tcp://h:1?listen=0").startswith("tcp://h:1?listen=0&timeout=")
    assert stream_url("tcp://h:1?timeout=7") == "tcp://h:1?timeout=7"  # the user's own kept


@contextlib.contextmanager
def _deaf_receiver() -> Iterator[int]:
    """A TCP receiver on 127.0.0.1 (its port) that takes a connection and never reads, with a
    small receive buffer, so that writes to it stall soon."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    taken: list[socket.socket] = []
    threading.Thread(target=lambda: taken.append(listener.accept()[0]), daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        for sock in [*taken, listener]:
            sock.close()


@pytest.mark.parametrize("url_timeout", [True, False], ids=["tcp-timeout", "no-timeout"])
def test_a_receiver_that_stops_reading_ends_the_stream(
    url_timeout: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It takes a connection and never reads. With the URL's own write timeout (tcp://) the
    writes fail; without one (rtmp://, or a tcp:// URL that names a long one) the closing wait
    gives up: either way `close` ends within seconds, saying why."""
    monkeypatch.setattr(outputs, "STALL_SECONDS", 1.0)
    with _deaf_receiver() as port:
        url = f"tcp://127.0.0.1:{port}" if url_timeout else f"tcp://127.0.0.1:{port}?timeout=600000000"
        recorder = Recorder(url, 320, 240, Fraction(30))
        rng = np.random.default_rng(0)
        for i in range(300):  # noise: about 2 MB of H.264, more than the socket's buffers hold
            recorder.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), i / 30)
            time.sleep(0.005)
        started = time.perf_counter()
        with pytest.raises(
            CartoonizeError, match=r"failed \(Connection timed out\)|stopped taking the stream"
        ):
            recorder.close()
        assert time.perf_counter() - started < 4


@pytest.mark.skipif(sys.platform != "linux", reason="v4l2loopback is Linux's")
def test_a_virtual_camera_device_that_is_none_is_refused_at_once() -> None:
    """`--virtual-cam-device /dev/null` (or a real camera): refused when the outputs open, before
    the model loads, with the way to make one; it failed at the first frame, after "publishing"."""
    from cartoonize.media.outputs import VirtualCam

    with pytest.raises(
        CartoonizeError, match=r"/dev/null is not a v4l2loopback device: not a video device; load"
    ):
        VirtualCam("/dev/null", 64, 48, 15.0)


# -- a receiver that stalls: RTMP (the protocol with no write timeout of its own) -----------------


def _rtmp_receiver(port: int, packets: int, done: threading.Event) -> threading.Thread:
    """A real RTMP server (FFmpeg's, through PyAV) on 127.0.0.1 that takes the stream, reads
    `packets` packets and then stops reading (as a stalled server, or a host gone without a
    FIN, does): the connection's small receive buffer and the sender's fill up. It lets go when
    `done` is set."""
    import av

    def serve() -> None:
        with contextlib.suppress(av.FFmpegError):
            # no `timeout`: PyAV's interrupt callback takes the GIL, which the sender's RTMP
            # handshake holds (a daemon thread: if nobody connects, it ends with the tests)
            container = av.open(f"rtmp://127.0.0.1:{port}/live/x", "r", format="flv",
                                options={"listen": "1", "recv_buffer_size": "4096"})  # fmt: skip
            for got, _packet in enumerate(container.demux()):
                if got >= packets:
                    break
            done.wait(30)
            container.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    time.sleep(0.3)  # listening
    return thread


def _ticker() -> tuple[list[float], threading.Event]:
    """A thread that notes the time every 20 ms: its longest gap is how long the GIL was held."""
    ticks: list[float] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.02)

    threading.Thread(target=run, daemon=True).start()
    return ticks, stop


def test_an_rtmp_receiver_that_stops_reading_ends_the_stream_while_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The live loop is told (recorder.error) within seconds of the receiver's stall, and `close`
    neither waits nor freezes the process: frames were dropped silently for as long as the run
    lasted, and closing a stream stuck in RTMP held the GIL (Ctrl-C could not end it)."""
    monkeypatch.setattr(outputs, "STALL_SECONDS", 1.0)
    port, done = _free_port(), threading.Event()
    _rtmp_receiver(port, 5, done)
    recorder = Recorder(f"rtmp://127.0.0.1:{port}/live/x", 320, 240, Fraction(30))
    rng = np.random.default_rng(0)
    try:
        deadline = time.perf_counter() + 20
        while recorder.error is None and time.perf_counter() < deadline:
            recorder.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), time.perf_counter())
            time.sleep(0.01)
        assert recorder.error is not None, f"no stall seen in 20 s ({recorder.written} frames written)"
        assert "the receiver stopped taking the stream (nothing sent for 1 s)" in recorder.error
        ticks, stop = _ticker()
        started = time.perf_counter()
        with pytest.raises(CartoonizeError, match="stopped taking the stream"):
            recorder.close()
        time.sleep(0.2)
        stop.set()
        assert time.perf_counter() - started < 2.5
        assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.5  # nothing held the GIL
    finally:
        done.set()


def test_a_protocol_without_a_write_timeout_is_caught_by_the_watchdog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A URL whose own timeout overrides `rw_timeout` (tcp:// naming a long one) stands in for a
    protocol that ignores it: the writer stuck in one frame is noticed by `write`."""
    monkeypatch.setattr(outputs, "STALL_SECONDS", 1.0)
    with _deaf_receiver() as port:
        recorder = Recorder(f"tcp://127.0.0.1:{port}?timeout=600000000", 320, 240, Fraction(30))
        rng = np.random.default_rng(0)
        deadline = time.perf_counter() + 20
        while recorder.error is None and time.perf_counter() < deadline:
            recorder.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), time.perf_counter())
            time.sleep(0.01)
        assert recorder.error is not None and "stopped taking the stream" in recorder.error
        started = time.perf_counter()
        with pytest.raises(CartoonizeError, match="stopped taking the stream"):
            recorder.close()
        assert time.perf_counter() - started < 2.5


MUTE_RECEIVER = """
import socket, sys, time
from fractions import Fraction
from cartoonize.errors import CartoonizeError
from cartoonize.media import outputs
outputs.STALL_SECONDS = 1.0
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)  # the kernel completes the connection; nothing ever answers
started = time.perf_counter()
try:
    outputs.Recorder(f"rtmp://127.0.0.1:{listener.getsockname()[1]}/live/x", 64, 48, Fraction(30))
except CartoonizeError as exc:
    print(f"{exc} after {time.perf_counter() - started:.1f} s")
"""


def test_an_rtmp_receiver_that_never_answers_is_an_error_within_seconds() -> None:
    """The RTMP handshake ran with the GIL held and no timeout: a server that took the
    connection and said nothing froze the whole process for ever (Ctrl-C too). In a child, so
    that a hang is a failure here, not a hung suite."""
    from tests.conftest import ROOT

    try:
        done = subprocess.run([sys.executable, "-c", MUTE_RECEIVER], cwd=ROOT, capture_output=True,
                              text=True, timeout=20)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the connection to a mute RTMP receiver hung")
    assert "rtmp://127.0.0.1:" in done.stdout and ": no answer within 1 s after" in done.stdout, done


def test_a_udp_output_with_no_listener_does_not_block() -> None:
    recorder = Recorder(f"udp://127.0.0.1:{_free_port()}", 160, 120, Fraction(30))
    started = time.perf_counter()
    for i in range(30):
        recorder.write(np.full((120, 160, 3), i * 8, np.uint8), i / 30)
    recorder.close()
    assert time.perf_counter() - started < 5
    assert (recorder.written, recorder.error) == (30, None)
