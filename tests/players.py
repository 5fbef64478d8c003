"""Players that did not write our outputs: FFmpeg's command-line tools and headless Chromium.

The product never runs these; tests do, to show an output plays outside PyAV. Each helper says
why it cannot run (`*_missing`) so a test skips with that reason where the package is absent.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# FFmpeg's enum values (libavutil/pixfmt.h) as ffprobe names them; PyAV hands back the numbers
RANGES = {0: None, 1: "tv", 2: "pc"}
SPACES = {0: "gbr", 1: "bt709", 2: None, 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
          9: "bt2020nc", 10: "bt2020c"}  # fmt: skip
PRIMARIES = {1: "bt709", 2: None, 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020",
             12: "smpte432"}  # fmt: skip
TRANSFERS = {1: "bt709", 2: None, 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
             13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}  # fmt: skip


def ffmpeg_missing() -> str | None:
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing:
        return f"needs {' and '.join(missing)} on PATH (Debian package ffmpeg; .ci/run installs it)"
    return None


def ffmpeg_decode(path: Path) -> tuple[int, str]:
    """Decode every stream of `path` with the ffmpeg CLI, stopping at the first error: (exit code,
    what it printed). A clean file gives (0, "")."""
    proc = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's JSON for `path`: format and streams, with every frame counted (`nb_read_frames`)."""
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout)


def ffprobe_video_times(path: Path) -> list[float]:
    """Presentation times (s) of every video frame, as ffprobe reads them."""
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=best_effort_timestamp_time",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return [float(f["best_effort_timestamp_time"]) for f in json.loads(proc.stdout)["frames"]]


def colour_tags_as_pyav_reads_them(path: Path) -> dict[str, str | None]:
    """The first video stream's colour tags in ffprobe's names, as PyAV (the writer's library)
    reads them back: what the file claims, to compare with what ffprobe reports."""
    import av

    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        values = {"color_range": (RANGES, ctx.color_range), "color_space": (SPACES, ctx.colorspace),
                  "color_primaries": (PRIMARIES, ctx.color_primaries),
                  "color_transfer": (TRANSFERS, ctx.color_trc)}  # fmt: skip
    names = {}
    for key, (table, value) in values.items():
        assert int(value) in table, f"{key} {int(value)}: add FFmpeg's name for it to tests/players.py"
        names[key] = table[int(value)]
    return names


def colour_tags_ffprobe(stream: dict[str, Any]) -> dict[str, str | None]:
    """An ffprobe stream's colour tags; absent or `unknown` is None."""
    keys = ("color_range", "color_space", "color_primaries", "color_transfer")
    return {k: None if stream.get(k) in (None, "unknown", "unspecified") else stream[k] for k in keys}


# ---------------------------------------------------------------------------------------- Chromium

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--no-default-browser-check",
]  # fmt: skip
MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
        ".mkv": "video/x-matroska", ".gif": "image/gif"}  # fmt: skip
# what the page asks canPlayType about: the codecs our outputs carry
CAN_PLAY = {
    "mp4 h264+aac": 'video/mp4; codecs="avc1.42E01E, mp4a.40.2"',
    "mp4 h264 high": 'video/mp4; codecs="avc1.64001F"',
    "webm vp9+opus": 'video/webm; codecs="vp9, opus"',
    "webm vp9+vorbis": 'video/webm; codecs="vp9, vorbis"',
    "webm vp8+vorbis": 'video/webm; codecs="vp8, vorbis"',
}

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>player check</title></head>
<body style="margin:0;background:#333">
<video id="v" preload="auto" playsinline></video>
<canvas id="c"></canvas>
<script>
const v = document.getElementById("v");
const out = {canPlayType: {}, events: [], samples: [], src: SRC};
for (const [name, type] of Object.entries(CAN_PLAY)) out.canPlayType[name] = v.canPlayType(type);
const t0 = performance.now();
const now = () => Math.round(performance.now() - t0);
for (const e of ["loadedmetadata", "loadeddata", "canplay", "playing", "waiting", "stalled", "ended", "error"])
  v.addEventListener(e, () => out.events.push([e, now(), v.readyState, v.currentTime]));
function snapshot() {
  const c = document.getElementById("c");
  c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext("2d").drawImage(v, 0, 0);
  return {at: v.currentTime, png: c.toDataURL("image/png")};
}
v.addEventListener("loadedmetadata", () => {
  out.metadata = {readyState: v.readyState, videoWidth: v.videoWidth, videoHeight: v.videoHeight,
                  duration: v.duration};
  v.play().catch(e => { out.playError = String(e); });
});
v.addEventListener("timeupdate", () => {
  if (!out.snapshot && v.currentTime >= v.duration / 2) out.snapshot = snapshot();
});
let sent = false;
function send() {
  if (sent) return;
  sent = true;
  out.final = {readyState: v.readyState, networkState: v.networkState, videoWidth: v.videoWidth,
               videoHeight: v.videoHeight, duration: v.duration, currentTime: v.currentTime,
               ended: v.ended, paused: v.paused};
  if (v.error) out.error = {code: v.error.code, message: v.error.message};
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
  if (q) out.quality = {totalVideoFrames: q.totalVideoFrames, droppedVideoFrames: q.droppedVideoFrames};
  out.decodedBytes = {video: v.webkitVideoDecodedByteCount, audio: v.webkitAudioDecodedByteCount};
  fetch("/result", {method: "POST", body: JSON.stringify(out)});
}
const timer = setInterval(() => {
  out.samples.push([now(), v.currentTime]);
  if (v.ended || v.error || now() > LIMIT_MS) { clearInterval(timer); send(); }
}, 100);
v.src = SRC;
</script></body></html>
"""


# A GIF as the browser decodes it for an <img>: WebCodecs' ImageDecoder is Blink's own image
# decoder, frame delays included as the browser will show them (a delay of 10 ms or less plays as
# 100 ms). Every frame's duration (µs) and size, the loop count, and a PNG of the middle frame.
GIF_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>gif check</title></head>
<body><canvas id="c"></canvas>
<script>
const out = {src: SRC, durations: []};
(async () => {
  try {
    const data = await (await fetch(SRC)).arrayBuffer();
    out.supported = await ImageDecoder.isTypeSupported("image/gif");
    const decoder = new ImageDecoder({data, type: "image/gif"});
    await decoder.tracks.ready;
    await decoder.completed;
    const track = decoder.tracks.selectedTrack;
    Object.assign(out, {frameCount: track.frameCount, animated: track.animated,
                        repetitionCount: track.repetitionCount});
    const middle = Math.floor(track.frameCount / 2);
    for (let i = 0; i < track.frameCount; i++) {
      const {image} = await decoder.decode({frameIndex: i});
      out.durations.push(image.duration);
      out.width = image.displayWidth; out.height = image.displayHeight;
      if (i === middle) {
        const c = document.getElementById("c");
        c.width = image.displayWidth; c.height = image.displayHeight;
        c.getContext("2d").drawImage(image, 0, 0);
        out.snapshot = {index: i, png: c.toDataURL("image/png")};
      }
      image.close();
    }
  } catch (e) { out.error = String(e); }
  fetch("/result", {method: "POST", body: JSON.stringify(out)});
})();
</script></body></html>
"""


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def chromium_env(folder: Path) -> dict[str, str]:
    """Chromium's environment with TMPDIR in the test's own folder: Chromium makes an
    `org.chromium.Chromium.*` folder (its singleton socket) under TMPDIR and leaves it behind when
    it is stopped by a signal, as `_stop` does; there, it goes with the test's folder. The folder's
    path must be short (a `tempfile` folder, not pytest's tmp_path): the socket's whole path has to
    fit in 108 bytes, or Chromium cannot start."""
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TMPDIR": str(folder / "tmp")}


def chromium_missing() -> str | None:
    if chromium_binary() is None:
        return "needs a headless Chromium on PATH (Debian package chromium; .ci/run installs it)"
    return None


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET / the page, GET /media/NAME a file (with byte ranges, as a media element asks for),
    POST /result what the page found."""

    page: bytes
    files: dict[str, Path]
    results: queue.Queue
    log: list[tuple[str, str | None, int]]  # (path, Range header, status)

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path in ("/", "/index.html"):
            return self._send(200, self.page, "text/html; charset=utf-8")
        name = self.path.removeprefix("/media/")
        if name not in self.files:
            return self._send(404, b"not found", "text/plain")
        path = self.files[name]
        data = path.read_bytes()
        wanted = self.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted or "")
        if not match or not any(match.groups()):
            return self._send(200, data, MIME.get(path.suffix, "application/octet-stream"), wanted)
        first, last = match.groups()
        if first:
            start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
        else:  # the final N bytes
            start, end = max(0, len(data) - int(last)), len(data) - 1
        if start >= len(data) or start > end:
            self.log.append((self.path, wanted, 416))
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.log.append((self.path, wanted, 206))
        self.send_response(206)
        self.send_header("Content-Type", MIME.get(path.suffix, "application/octet-stream"))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data[start : end + 1])

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/result":
            self.results.put(json.loads(body))
        self._send(204, b"", "text/plain")

    def _send(self, status: int, body: bytes, kind: str, wanted: str | None = None) -> None:
        if self.path.startswith("/media/"):
            self.log.append((self.path, wanted, status))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)


@contextlib.contextmanager
def media_server(video: Path, limit_ms: int, page: str = PAGE) -> Iterator[tuple[str, type[_Handler]]]:
    """A real HTTP server on 127.0.0.1 serving `page` (the player page) for `video`: (its URL, the
    handler class whose `results` queue gets the page's findings and whose `log` lists the media
    requests)."""
    src = f"/media/{video.name}"
    page = page.replace("SRC", json.dumps(src)).replace("CAN_PLAY", json.dumps(CAN_PLAY))
    page = page.replace("LIMIT_MS", str(limit_ms))
    handler = type("Handler", (_Handler,), {"page": page.encode(), "files": {video.name: video},
                                            "results": queue.Queue(), "log": []})  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="media-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    finally:
        server.shutdown()
        server.server_close()


def play_in_chromium(
    video: Path, limit_ms: int = 8000, wait_s: float = 60, page: str = PAGE
) -> dict[str, Any]:
    """Load `video` in a `<video>` element of a page served over HTTP to headless Chromium, let it
    play to the end (or for `limit_ms`), and return what the page saw: `metadata` (readyState,
    videoWidth, videoHeight, duration at loadedmetadata), `final` (the same plus currentTime,
    ended), `samples` ([ms, currentTime] every 100 ms), `events`, `canPlayType`, `error`,
    `snapshot` (a PNG data URL of a frame past the middle), and `requests` (the server's log).
    `chromium_log` holds Chromium's own output. `page=GIF_PAGE` decodes a GIF instead (what that
    page says it returns)."""
    binary = chromium_binary()
    assert binary is not None, chromium_missing()
    with media_server(video, limit_ms, page) as (url, handler), tempfile.TemporaryDirectory() as profile:
        log_path = Path(profile) / "chromium.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}/data", url],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env=chromium_env(Path(profile)),
            )  # fmt: skip
            try:
                result = handler.results.get(timeout=wait_s)
            except queue.Empty:
                result = {"timeout": f"no result from the page within {wait_s:.0f} s"}
            finally:
                _stop(proc)
        result["requests"] = list(handler.log)
        result["chromium_log"] = log_path.read_text(errors="replace")[-4000:]
    return result


def _stop(proc: subprocess.Popen) -> None:
    """End the Chromium we started and the helpers it spawned (its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
