"""Where a live cartoon stream goes besides the screen: a recording (a file or an FFmpeg URL) and a
virtual camera that video-call apps can pick.

The recorder encodes in its own thread behind a short queue, so a slow encoder never stalls the
live loop (a frame it cannot take in time is left out of the recording and counted).
"""

from __future__ import annotations

import contextlib
import errno
import queue
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.media.capture import has_protocol, missing_protocol, v4l2_capabilities
from cartoonize.media.files import (
    EncoderSettings,
    check_output,
    container_for,
    converter,
    default_colour,
    even_size,
    muxer_options,
    open_video_encoder,
    pad_to_even,
    put_in_place,
    tag_encoder,
    temporary_sibling,
    to_yuv,
)
from cartoonize.media.gif import Palettizer
from cartoonize.media.scheduling import open_encoder

# URL scheme -> container that streams over it
URL_CONTAINERS = {"rtmp": "flv", "rtmps": "flv", "udp": "mpegts", "srt": "mpegts", "tcp": "mpegts",
                  "rtp": "rtp_mpegts"}  # fmt: skip
TIME_BASE = Fraction(1, 90000)  # capture timestamps are kept to the 90 kHz tick of MPEG
# seconds a network receiver may go without taking data: connecting, each write (FFmpeg's
# `rw_timeout` on every protocol, and a watchdog on the writer for any that ignores it), and the
# last frames when the run ends (then the stream is cut and the run ends anyway)
STALL_SECONDS = 5.0
# seconds the end of a run still waits for a stream the watchdog found stuck in a write
BROKEN_WAIT = 1.0
LIVE_ENCODER = EncoderSettings(crf=20, preset="veryfast")
_END = object()


def is_url(target: str) -> bool:
    return "://" in target


def stream_url(target: str) -> str:
    """The URL FFmpeg is given: its scheme in lower case (FFmpeg's protocol names are), and a
    tcp:// one with a write timeout (STALL_SECONDS) unless it names one: a receiver that stops
    reading would otherwise hold a write, and the job, for ever."""
    scheme, rest = target.split("://", 1)
    url = f"{scheme.lower()}://{rest}"
    if scheme.lower() == "tcp" and "timeout=" not in rest:
        url += f"{'&' if '?' in rest else '?'}timeout={int(STALL_SECONDS * 1e6)}"
    return url


def check_record_target(target: str, overwrite: bool) -> None:
    """Refuse a bad --output before the camera and the model are opened."""
    if is_url(target):
        scheme, rest = target.split("://", 1)
        scheme = scheme.lower()
        if scheme not in URL_CONTAINERS:
            usable = [name for name in URL_CONTAINERS if has_protocol(name)]
            raise CartoonizeError(
                f"--output {target}: cannot stream to {scheme}://; use {', '.join(usable)} or a file"
            )
        # a protocol this FFmpeg lacks (srt in PyAV's wheels) is said now, not once the camera is on
        if problem := missing_protocol(target, "--output", tuple(URL_CONTAINERS)):
            raise CartoonizeError(problem)
        host = rest.split("/", 1)[0].split("?", 1)[0].split("@")[-1]
        if scheme in ("udp", "tcp", "rtp", "srt") and not host.rpartition(":")[2].isdigit():
            raise CartoonizeError(f"--output {target}: give the receiver's port ({scheme}://HOST:PORT)")
        return
    path = Path(target)
    check_output(path, overwrite)
    if container_for(path)[0] == "avi":  # (its MPEG-4 encoder refused the 90 kHz clock: "Invalid argument")
        raise CartoonizeError(
            f"--output {target}: a recording keeps each frame's capture time, and AVI stores one "
            "fixed frame rate; record .mp4, .mkv or .webm"
        )


class Recorder:
    """Records RGB frames with their capture times (seconds on any clock; the first becomes 0).
    A file is written beside its final name and moved into place by `close`."""

    def __init__(self, target: str, width: int, height: int, rate: Fraction | None,
                 overwrite: bool = False, settings: EncoderSettings = LIVE_ENCODER) -> None:  # fmt: skip
        import av

        self.target = target
        self.written = 0
        self.dropped = 0
        self.error: str | None = None
        self._partial: Path | None = None  # a file is written here, then moved onto `target`
        check_record_target(target, overwrite)
        self._overwrite = overwrite
        options: dict[str, str] = {}
        if is_url(target):
            fmt, codec, where = URL_CONTAINERS[target.split("://", 1)[0].lower()], "h264", stream_url(target)
            # a write the receiver does not take within this fails (ETIMEDOUT): without it a receiver
            # that stops reading, or vanishes without closing, held the RTMP writer for ever
            options["rw_timeout"] = str(int(STALL_SECONDS * 1e6))
        else:
            fmt, codec = container_for(Path(target))
            self._partial = temporary_sibling(Path(target))
            where = str(self._partial)
        try:
            self._out = av.open(where, "w", format=fmt, timeout=10.0, options=options,
                                container_options=muxer_options(fmt))  # fmt: skip
        except av.FFmpegError as exc:
            raise CartoonizeError(f"cannot open --output {target} ({_reason(exc)})") from None
        settings = settings.for_codec(codec)
        self._gif = settings.pix_fmt == "pal8"
        # a GIF's palette frames have no chroma to halve: the camera's own size, odd or not
        w, h = (width, height) if self._gif else even_size(width, height)
        self._stream = open_video_encoder(self._out, settings, codec, w, h, rate or Fraction(30), TIME_BASE)
        # converted with, and tagged as, what players assume of its size (BT.709 for HD): PyAV's
        # own conversion used BT.601 untagged, and a 720p recording's greens played 15 % dark
        self._colour = default_colour(w, h)
        tag_encoder(self._stream, self._colour)
        if is_url(target) and self._stream.codec_context.name == "libx264":
            self._stream.options = {**self._stream.options, "tune": "zerolatency"}  # no frame lookahead
        if is_url(target):
            self._connect()
        self._origin: float | None = None
        self._last_pts = -1
        self._busy_since: float | None = None  # time.monotonic() the writer took its current frame
        self._finished = threading.Event()  # the output is closed (or, broken, abandoned)
        self._queue: queue.Queue = queue.Queue(maxsize=32)
        self._thread = threading.Thread(target=self._run, name="record", daemon=True)
        self._thread.start()

    def _connect(self) -> None:
        """Connect to the receiver now, before the model loads (FFmpeg would on the first frame), so
        that a receiver that refuses, or is not there, is an error at once; a connection that
        hangs (a host that drops the packets) is one after STALL_SECONDS."""
        import av

        done: list[BaseException | None] = []

        def connect() -> None:
            try:
                open_encoder(self._stream)
                self._out.start_encoding()
                done.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                done.append(exc)

        thread = threading.Thread(target=connect, name="connect", daemon=True)
        thread.start()
        thread.join(STALL_SECONDS)
        if not done:  # left to end with the process: the container is in its hands
            raise CartoonizeError(f"--output {self.target}: no answer within {STALL_SECONDS:g} s")
        if getattr(done[0], "errno", None) == errno.ETIMEDOUT:  # `rw_timeout`: connected, then silence
            raise CartoonizeError(f"--output {self.target}: no answer within {STALL_SECONDS:g} s")
        if isinstance(done[0], av.FFmpegError):
            reason = (
                "this FFmpeg has no such protocol"
                if isinstance(done[0], av.ProtocolNotFoundError)
                else _reason(done[0])
            )
            raise CartoonizeError(f"--output {self.target}: cannot connect ({reason})")
        if done[0] is not None:
            raise done[0]

    def write(self, rgb: np.ndarray, captured: float) -> None:
        if self._origin is None:
            self._origin = captured
        pts = max(round((captured - self._origin) / TIME_BASE), self._last_pts + 1)
        self._last_pts = pts
        try:
            self._queue.put_nowait((pts, rgb))
        except queue.Full:
            self.dropped += 1
        busy = self._busy_since
        if self.error is None and is_url(self.target) and busy is not None:
            # the writer has been in one frame this long: a protocol that ignores `rw_timeout`
            if time.monotonic() - busy > STALL_SECONDS + 1:
                self.error = self._stalled()

    def _stalled(self) -> str:
        return (
            f"--output {self.target}: the receiver stopped taking the stream (nothing sent for "
            f"{STALL_SECONDS:g} s); cut after {self.written} frames"
        )

    def _run(self) -> None:
        import av

        palettize = Palettizer(self._stream.width, self._stream.height, TIME_BASE) if self._gif else None
        writer = converter()
        try:
            open_encoder(self._stream)  # its threads kept out of real-time (media/scheduling)
            while (item := self._queue.get()) is not _END:
                self._busy_since = time.monotonic()
                pts, rgb = item
                if palettize is not None:  # GIF: each frame's own 256 colours
                    for indexed in palettize(rgb, pts):
                        self._out.mux(self._stream.encode(indexed))
                        self.written += 1
                    self._busy_since = None
                    continue
                frame = to_yuv(pad_to_even(rgb), self._colour, self._stream.pix_fmt, writer)
                frame.pts, frame.time_base = pts, TIME_BASE
                self._out.mux(self._stream.encode(frame))
                self.written += 1
                self._busy_since = None
            for indexed in palettize.flush() if palettize is not None else ():
                self._out.mux(self._stream.encode(indexed))
            self._out.mux(self._stream.encode(None))  # flush the encoder's delayed frames
        except (av.FFmpegError, OSError) as exc:
            timed_out = getattr(exc, "errno", None) == errno.ETIMEDOUT and is_url(self.target)
            self.error = self.error or (
                self._stalled() if timed_out else f"--output {self.target} failed ({_reason(exc)})"
            )
            if is_url(self.target):
                # a broken stream is left open, never closed or collected: its trailer and an
                # RTMP stream's goodbye would each wait `rw_timeout` on the dead connection, in
                # FFmpeg calls that hold the GIL (the whole process, Ctrl-C too, stood still)
                self._finished.set()
                threading.Event().wait()
            while self._queue.get() is not _END:  # let `close` finish
                pass
        try:  # the trailer (and a stream's goodbye): `close` waits for them only so long
            self._out.close()
        except Exception as exc:  # noqa: BLE001 - closing a broken stream can fail in many ways
            self.error = self.error or f"--output {self.target} failed ({_reason(exc)})"
        self._finished.set()

    def close(self, keep: bool = True) -> None:
        """Flush and finalize (a file is moved into place); raises if the recording failed.
        `keep=False` (after a crash) drops a partial file instead."""
        if not keep:
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
        if is_url(self.target):  # a receiver may have stopped reading: not waited for for ever
            deadline = time.monotonic() + (STALL_SECONDS if self.error is None else BROKEN_WAIT)
            if not self._finished.is_set():
                with contextlib.suppress(queue.Full):
                    self._queue.put(_END, timeout=max(0.0, deadline - time.monotonic()))
            self._finished.wait(max(0.0, deadline - time.monotonic()))
            if not self._finished.is_set():  # stuck in a write: left to end with the process
                self.error = self.error or self._stalled()
        else:
            self._queue.put(_END)
            self._thread.join()
        if self._partial is not None:
            if self.error is None and keep and self.written:
                try:
                    put_in_place(self._partial, Path(self.target), self._overwrite)
                except CartoonizeError as exc:  # another job wrote the target meanwhile: kept
                    self.error = str(exc)
            self._partial.unlink(missing_ok=True)
        if self.error is not None and keep:
            raise CartoonizeError(self.error)


LOOPBACK_HINT = (
    "load the v4l2loopback module with `sudo modprobe v4l2loopback devices=1 exclusive_caps=1` "
    "(Debian/Ubuntu package v4l2loopback-dkms), or install pyvirtualcam (`pip install pyvirtualcam`)"
)


def find_loopback(sysfs: Path = Path("/sys/class/video4linux"), dev: Path = Path("/dev")) -> str:
    for node in sorted(sysfs.glob("video*")):
        caps = v4l2_capabilities(dev / node.name)
        if caps is not None and caps[0] == "v4l2 loopback":
            return str(dev / node.name)
    raise CartoonizeError(f"no virtual camera device (v4l2loopback) found: {LOOPBACK_HINT}")


class VirtualCam:
    """Publishes frames as a camera: through pyvirtualcam where it is installed (OBS's virtual
    camera on Windows and macOS, v4l2loopback on Linux), else straight into a v4l2loopback
    device with PyAV's v4l2 output. `muxer` lets tests write the same stream to a file."""

    def __init__(self, device: str | None, width: int, height: int, fps: float, muxer: str = "v4l2") -> None:
        self.width, self.height = even_size(width, height)
        self._cam: Any = None  # a pyvirtualcam.Camera
        self._out: Any = None  # an av OutputContainer on the loopback device
        try:
            import pyvirtualcam
        except ImportError:
            pyvirtualcam = None
        if pyvirtualcam is not None and muxer == "v4l2":
            try:
                self._cam = pyvirtualcam.Camera(self.width, self.height, fps, device=device,
                                                fmt=pyvirtualcam.PixelFormat.RGB)  # fmt: skip
            except RuntimeError as exc:
                raise CartoonizeError(f"no virtual camera: {exc}; {LOOPBACK_HINT}") from None
            self.device = self._cam.device
            return
        if muxer == "v4l2" and sys.platform != "linux":
            raise CartoonizeError(
                "--virtual-cam needs pyvirtualcam here (`pip install pyvirtualcam`, and OBS)"
            )
        self.device = device or find_loopback()
        self._open_v4l2(muxer, fps)

    def _open_v4l2(self, muxer: str, fps: float) -> None:
        import av

        if muxer == "v4l2" and not Path(self.device).exists():
            raise CartoonizeError(f"virtual camera {self.device} does not exist: {LOOPBACK_HINT}")
        caps = v4l2_capabilities(Path(self.device)) if muxer == "v4l2" else None
        if muxer == "v4l2" and (caps is None or caps[0] != "v4l2 loopback"):
            # said before the model loads (a real camera, /dev/null: it failed at the first frame)
            what = f"{caps[1]} ({caps[0]})" if caps else "not a video device"
            raise CartoonizeError(
                f"virtual camera {self.device} is not a v4l2loopback device: {what}; {LOOPBACK_HINT}"
            )
        try:
            self._out = av.open(self.device, "w", format=muxer)
        except av.FFmpegError as exc:
            raise CartoonizeError(
                f"cannot write to {self.device} ({_reason(exc)}); is it a v4l2loopback device? {LOOPBACK_HINT}"
            ) from None
        self._stream = self._out.add_stream("rawvideo", rate=Fraction(fps).limit_denominator(1001))
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuyv422"  # YUYV: the format every video-call app takes from a webcam

    def write(self, rgb: np.ndarray) -> None:
        frame = pad_to_even(rgb)
        if self._cam is not None:
            self._cam.send(np.ascontiguousarray(frame))
            return
        import av

        assert self._out is not None
        try:
            self._out.mux(self._stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        except av.FFmpegError as exc:
            raise CartoonizeError(f"virtual camera {self.device} failed ({_reason(exc)})") from None

    def close(self) -> None:
        if self._cam is not None:
            self._cam.close()
        if self._out is not None:
            with contextlib.suppress(Exception):
                self._out.close()


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
