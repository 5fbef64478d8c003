"""`webcam --serve`'s HTTP server (media.mjpeg.PreviewServer) with real sockets on 127.0.0.1: a
viewer on a slow link gets current frames, not an ever longer queue; viewers that vanish or
stall cost no traceback and no thread for ever; the page learns why the stream stopped."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from cartoonize.media import mjpeg
from cartoonize.media.mjpeg import PreviewServer


def _parts(read: Callable[[], bytes]) -> Iterator[bytes]:
    """The JPEG parts of a multipart stream, as `read` hands out its bytes."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            data = read()
            if not data:
                return
            buffer += data
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lengths = [
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ]
        if not lengths:
            continue
        while len(buffer) < lengths[0]:
            data = read()
            if not data:
                return
            buffer += data
        yield buffer[: lengths[0]]
        buffer = buffer[lengths[0] :]


def _viewer(port: int, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: test\r\n\r\n")
    return sock


@pytest.fixture
def server() -> Iterator[PreviewServer]:
    """A server on a free port, fed 15 noisy 160x120 frames a second (about 7 kB of JPEG each)."""
    serving = PreviewServer("127.0.0.1", 0)
    stop = threading.Event()

    def publish() -> None:
        rng = np.random.default_rng(0)
        while not stop.is_set():
            serving.publish(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), {"fps": 15.0})
            time.sleep(1 / 15)

    feeder = threading.Thread(target=publish, daemon=True)
    feeder.start()
    yield serving
    stop.set()
    feeder.join()
    if not serving.closed:
        serving.close()


def _port(server: PreviewServer) -> int:
    return int(server.url.rsplit(":", 1)[1].strip("/"))


def test_a_slow_viewer_sees_current_frames(server: PreviewServer) -> None:
    """A viewer reading 30 kB/s of a stream of about 100 kB/s: each part it gets was new at most
    a few seconds before. Its socket's buffer queued megabytes, and it was 7.6 s behind after
    10 s, 40 s after a minute."""
    port, first_seen, stop = _port(server), {}, threading.Event()

    def fast() -> None:  # a viewer on a fast link: when each part was new
        sock = _viewer(port)
        for part in _parts(lambda: sock.recv(65536)):
            first_seen.setdefault(hashlib.md5(part).digest(), time.perf_counter())
            if stop.is_set():
                break
        sock.close()

    threading.Thread(target=fast, daemon=True).start()
    time.sleep(1.0)
    slow, start, taken = _viewer(port, receive_buffer=8192), time.perf_counter(), [0]

    def read_slowly() -> bytes:
        data = slow.recv(1024)
        taken[0] += len(data)
        time.sleep(max(0.0, start + taken[0] / 30_000 - time.perf_counter()))
        return data

    lags = []
    for part in _parts(read_slowly):
        seen = first_seen.get(hashlib.md5(part).digest())
        if seen is not None:
            lags.append(time.perf_counter() - seen)
        if time.perf_counter() - start > 10:
            break
    stop.set()
    slow.close()
    assert len(lags) > 10
    print(f"slow viewer's lag: first {lags[0]:.1f} s, last {lags[-1]:.1f} s, worst {max(lags):.1f} s")
    assert max(lags[len(lags) // 2 :]) < 3.5


def test_viewers_that_vanish_print_nothing(server: PreviewServer, capfd: pytest.CaptureFixture[str]) -> None:
    """A viewer that resets its connection (a killed tab, a dropped network) at any point is no
    traceback: socketserver printed one for each."""
    port = _port(server)
    for path in ("/", "/stats.json", "/frame.jpg", "/stream.mjpg"):
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()  # with SO_LINGER 0: a reset, not a goodbye
    time.sleep(1.0)
    assert "Traceback" not in capfd.readouterr().err


def test_the_page_says_the_model_is_loading_until_the_first_cartoon() -> None:
    serving = PreviewServer("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(serving.url + "stats.json", timeout=5) as answer:
            assert json.loads(answer.read())["loading"] is True  # the page: "loading the model…"
        serving.publish(np.zeros((48, 64, 3), np.uint8), {"fps": 3.0})
        with urllib.request.urlopen(serving.url + "stats.json", timeout=5) as answer:
            assert json.loads(answer.read())["loading"] is False
        with urllib.request.urlopen(serving.url, timeout=5) as answer:
            assert "loading the model" in answer.read().decode()
    finally:
        serving.close()


def test_head_and_a_stalled_connection(server: PreviewServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """HEAD is answered (link checkers, `curl -I`; it was 501); a connection that never finishes
    its request is closed after CLIENT_TIMEOUT (it held a thread for as long as it stayed open)."""
    request = urllib.request.Request(server.url + "stats.json", method="HEAD")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200 and answer.headers["Content-Type"] == "application/json"
        assert answer.read() == b""
    monkeypatch.setattr(mjpeg, "CLIENT_TIMEOUT", 1.0)
    quick = PreviewServer("127.0.0.1", 0)
    try:
        sock = socket.create_connection(("127.0.0.1", _port(quick)))
        sock.sendall(b"GET / HTTP/1.1\r\n")  # and nothing more
        sock.settimeout(10)
        started = time.perf_counter()
        assert sock.recv(1024) == b""  # closed by the server
        assert time.perf_counter() - started < 5
        sock.close()
    finally:
        quick.close()


def test_an_open_page_learns_why_the_stream_stopped(server: PreviewServer) -> None:
    """The page polls /stats.json twice a second; a server that stops while a page is open
    answers it once more, with the reason, before it goes (the page only ever said
    "disconnected")."""
    answers: list[dict] = []

    def page() -> None:
        while True:
            try:
                with urllib.request.urlopen(server.url + "stats.json", timeout=2) as answer:
                    answers.append(json.loads(answer.read()))
            except OSError:
                return
            time.sleep(0.5)

    polling = threading.Thread(target=page, daemon=True)
    polling.start()
    time.sleep(1.2)
    server.close("150 frames shown")
    polling.join(5)
    assert answers and answers[-1]["ended"] == "150 frames shown", answers[-1:]
