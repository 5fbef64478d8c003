"""`cartoonize webcam --serve`: the live preview as an MJPEG stream (multipart/x-mixed-replace,
which every browser shows in a plain <img>), for machines with no screen.

    /             a small page: the stream, with fps and latency on top (key f toggles them)
    /stream.mjpg  the stream
    /frame.jpg    the newest frame alone
    /stats.json   the live numbers

JPEGs come from PyAV's mjpeg encoder (no Pillow or OpenCV), one encode per new frame however many
browsers watch, done in the HTTP threads and only while someone watches.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import threading
import time
from fractions import Fraction
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from cartoonize.errors import CartoonizeError

JPEG_QUALITY = 4  # mjpeg quantizer, 2 (best) .. 31: 4 looks clean for flat cartoon colours
BOUNDARY = "cartoonizeframe"
# bytes of a stream the kernel may hold unsent for a viewer: a viewer on a slow link then gets
# fewer frames, each current, instead of a queue of old ones (its socket buffer grows to MBs,
# and a viewer reading 30 kB/s of a 100 kB/s stream was 40 s behind after a minute)
UNSENT_BYTES = 32 * 1024
CLIENT_TIMEOUT = 30.0  # seconds a connection may stall (a request not finished, a viewer not reading)
STOP_SHOWN = 1.0  # seconds a stopping server waits for an open page to fetch the reason it stopped

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cartoonize webcam</title>
<style>
body { margin: 0; background: #111; color: #eee; font: 14px system-ui, sans-serif; }
main { display: flex; justify-content: center; align-items: center; min-height: 100vh; }
figure { position: relative; margin: 0; }
img { display: block; max-width: 100vw; max-height: 100vh; image-rendering: auto; }
#stats { position: absolute; left: 8px; top: 8px; padding: 4px 8px; background: #000a;
         border-radius: 4px; font-variant-numeric: tabular-nums; }
</style></head>
<body><main><figure>
<img id="live" src="/stream.mjpg" alt="live cartoon">
<figcaption id="stats">connecting…</figcaption>
</figure></main>
<script>
const stats = document.getElementById("stats");
document.addEventListener("keydown", (e) => {
  if (e.key === "f") stats.hidden = !stats.hidden;
});
async function poll() {
  try {
    const s = await (await fetch("/stats.json", {cache: "no-store"})).json();
    stats.textContent = s.ended ? "stopped: " + s.ended : s.loading ? "loading the model…" :
      `${s.fps.toFixed(1)} fps · latency ${s.latency_ms.toFixed(0)} ms · dropped ${s.dropped} · ${s.view}`;
  } catch (err) { stats.textContent = "disconnected"; }
  setTimeout(poll, 500);
}
poll();
</script></body></html>
"""


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """One RGB frame as a baseline JPEG (full-range 4:2:0)."""
    import av

    h, w = rgb.shape[:2]
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height = w + w % 2, h + h % 2
    ctx.pix_fmt = "yuvj420p"
    ctx.time_base = Fraction(1, 30)
    ctx.qmin = ctx.qmax = quality  # a fixed quantizer: the encoder has no rate control to aim
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    frame.pts = 0
    packets = ctx.encode(frame) + ctx.encode(None)
    return b"".join(bytes(p) for p in packets)


class PreviewServer:
    """Serves the newest published frame to any number of browsers."""

    def __init__(self, host: str, port: int) -> None:
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._jpeg: tuple[int, bytes] = (0, b"")
        self._encode_lock = threading.Lock()
        self._stats: dict = {"fps": 0.0, "latency_ms": 0.0, "dropped": 0, "view": "cartoon", "ended": "",
                             "loading": True}  # fmt: skip
        self.closed = False
        self._polled = 0.0  # time.monotonic() of the last /stats.json a page fetched
        self._end_shown = threading.Event()  # a page has fetched the reason the server stopped
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            server_class = type("PreviewHTTPServer", (_QuietServer,), {"address_family": family})
            self._httpd = server_class((host, port), _handler_for(self))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CartoonizeError(f"--serve {host}:{port}: the port is in use; choose another") from None
            raise CartoonizeError(f"--serve {host}:{port}: cannot listen ({exc.strerror or exc})") from None
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="serve", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = str(self._httpd.server_address[0]), self._httpd.server_address[1]
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
        return f"http://{host}:{port}/"

    @property
    def everywhere(self) -> bool:
        """Listening on every interface (0.0.0.0, ::): other machines reach it at this one's address."""
        return str(self._httpd.server_address[0]) in ("0.0.0.0", "::")

    def publish(self, rgb: np.ndarray, stats: dict) -> None:
        with self._cond:
            self._frame, self._seq = rgb, self._seq + 1
            self._stats.update(stats, loading=False)  # the first cartoon: the model is loaded
            self._cond.notify_all()

    def stats(self) -> dict:
        with self._cond:
            return dict(self._stats)

    def polled(self, stats: dict) -> None:
        """A page fetched `stats`."""
        self._polled = time.monotonic()
        if stats["ended"]:
            self._end_shown.set()

    def jpeg_after(self, seq: int, timeout: float) -> tuple[int, bytes] | None:
        """The JPEG of the first frame newer than `seq` (waiting up to `timeout` s)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > seq or self.closed, timeout) or self._seq <= seq:
                return None
            frame, current = self._frame, self._seq
        with self._encode_lock:  # one encode per frame, shared by every viewer
            if self._jpeg[0] != current:
                assert frame is not None
                self._jpeg = (current, encode_jpeg(frame))
            return self._jpeg

    def close(self, reason: str = "") -> None:
        with self._cond:
            self.closed = True
            self._stats["ended"] = reason or "stopped"
            self._cond.notify_all()
        if time.monotonic() - self._polled < 2.0:  # a page is open: it polls twice a second
            self._end_shown.wait(STOP_SHOWN)  # so that it says why the picture stopped
        self._httpd.shutdown()
        self._httpd.server_close()


class _QuietServer(ThreadingHTTPServer):
    """A viewer that goes away (a closed tab, a dropped network, a stalled reader timed out) is
    no error: socketserver printed a traceback for each."""

    daemon_threads = True
    request_queue_size = 64  # connections waiting to be accepted (5 by default)

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - socketserver's signature
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def _handler_for(server: PreviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = CLIENT_TIMEOUT  # a connection that stalls this long is closed, its thread freed

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            self._answer(body=True)

        def do_HEAD(self) -> None:  # noqa: N802 - link checkers, `curl -I`
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(PAGE.encode(), "text/html; charset=utf-8", body)
            elif path == "/stats.json":
                stats = server.stats()
                self._send(json.dumps(stats).encode(), "application/json", body)
                server.polled(stats)
            elif path == "/frame.jpg":
                got = server.jpeg_after(0, timeout=10.0)
                if got is None:
                    self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet")
                else:
                    self._send(got[1], "image/jpeg", body)
            elif path == "/stream.mjpg":
                self._stream(body)
            else:
                self.send_error(HTTPStatus.NOT_FOUND)

        def _send(self, content: bytes, kind: str, body: bool = True) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(content)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(content)

        def _stream(self, body: bool = True) -> None:
            if body and hasattr(socket, "TCP_NOTSENT_LOWAT") and self.connection.family != socket.AF_UNIX:
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, UNSENT_BYTES)
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if not body:
                return
            seq = 0
            try:
                self.wfile.write(f"--{BOUNDARY}\r\n".encode())
                while not server.closed:
                    got = server.jpeg_after(seq, timeout=1.0)
                    if got is None:
                        continue
                    seq, jpeg = got
                    head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    # each part ends with the next boundary: a browser shows a part only once it sees
                    # the boundary after it, so sending it now (not with the next frame) saves a
                    # whole frame interval of display delay
                    self.wfile.write(head.encode() + jpeg + f"\r\n--{BOUNDARY}\r\n".encode())
                    self.wfile.flush()
            except OSError:
                pass  # the browser went away, or stopped reading for CLIENT_TIMEOUT

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet by default
            pass

    return Handler


def parse_address(text: str) -> tuple[str, int]:
    """`--serve [HOST:]PORT` -> (host, port); the host defaults to this machine only."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CartoonizeError(f"--serve {text}: give PORT or HOST:PORT, e.g. 8080 or 0.0.0.0:8080")
    return host, int(port)
