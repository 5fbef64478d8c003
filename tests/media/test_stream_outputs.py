"""The webcam's network outputs (media.outputs.Recorder to a URL) against real receivers on
127.0.0.1: one that refuses is an error before the model loads; one that stops reading ends the
stream within seconds, with the reason (the job hung for ever, at its end or on Ctrl-C)."""

from __future__ import annotations

import socket
import sys
import threading
import time
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


@pytest.mark.parametrize("url_timeout", [True, False], ids=["tcp-timeout", "no-timeout"])
def test_a_receiver_that_stops_reading_ends_the_stream(
    url_timeout: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It takes a connection and never reads. With the URL's own write timeout (tcp://) the
    writes fail; without one (rtmp://, or a tcp:// URL that names a long one) the closing wait
    gives up: either way `close` ends within seconds, saying why."""
    monkeypatch.setattr(outputs, "STALL_SECONDS", 1.0)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    taken: list[socket.socket] = []
    threading.Thread(target=lambda: taken.append(listener.accept()[0]), daemon=True).start()
    port = listener.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}" if url_timeout else f"tcp://127.0.0.1:{port}?timeout=600000000"
    recorder = Recorder(url, 320, 240, Fraction(30))
    rng = np.random.default_rng(0)
    try:
        for i in range(300):  # noise: about 2 MB of H.264, more than the socket's buffers hold
            recorder.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), i / 30)
            time.sleep(0.005)
        started = time.perf_counter()
        with pytest.raises(
            CartoonizeError, match=r"failed \(Connection timed out\)|stopped taking the stream"
        ):
            recorder.close()
        assert time.perf_counter() - started < 4
    finally:
        for sock in [*taken, listener]:
            sock.close()


@pytest.mark.skipif(sys.platform != "linux", reason="v4l2loopback is Linux's")
def test_a_virtual_camera_device_that_is_none_is_refused_at_once() -> None:
    """`--virtual-cam-device /dev/null` (or a real camera): refused when the outputs open, before
    the model loads, with the way to make one; it failed at the first frame, after "publishing"."""
    from cartoonize.media.outputs import VirtualCam

    with pytest.raises(
        CartoonizeError, match=r"/dev/null is not a v4l2loopback device: not a video device; load"
    ):
        VirtualCam("/dev/null", 64, 48, 15.0)
