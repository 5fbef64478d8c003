"""Live capture for `cartoonize webcam`: a camera (or any FFmpeg input) read by PyAV in its own
thread, keeping only the newest frame.

    camera ──► capture thread (decode, scale, to RGB) ──► LatestFrame (one slot) ──► whoever is ready

The slot holds one frame: a frame nobody took before the next arrived is dropped and counted, so
a slow consumer always gets the freshest picture and delay never builds up. Files and generated
sources (`lavfi`) are paced at their own timestamps, so they behave like a camera (and drop frames
as a camera would).

Every frame is delivered at the size of the first: the engine, the recording and the virtual
camera are opened for it. A source whose picture changes size on the way (a network stream
switching quality or orientation, two clips joined) is fitted into that size, its aspect ratio
kept, with black bars where it differs (the bars stage keeps them black); it was stretched.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.media.files import converter, fit_within, frame_rate, source_colour, to_rgb

# the platform's camera device format, and its first camera
CAMERA_DEFAULTS = {
    "linux": ("v4l2", "/dev/video0"),
    "darwin": ("avfoundation", "0"),
    "win32": ("dshow", "video=0"),
}
CAMERA_FORMATS = {"v4l2", "video4linux2", "avfoundation", "dshow"}
LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "udp://", "srt://", "tcp://", "rtp://")
OPEN_TIMEOUT = 10.0  # seconds to wait for a network source or a camera before giving up


@dataclass(frozen=True)
class CaptureSpec:
    """What to open: `--input`, `--input-format` and the camera options."""

    input: str | None = None  # device, URL, file, or a lavfi graph; None: the platform's camera
    input_format: str | None = None  # v4l2, avfoundation, dshow, lavfi, ... (None: guessed)
    size: tuple[int, int] | None = None  # (width, height) asked of a camera
    fps: float | None = None  # frame rate asked of a camera
    mjpeg: bool = False  # ask a camera for MJPEG (USB cameras give their big sizes at full rate only so)
    max_side: int | None = None  # downscale so the longer side is at most this


@dataclass(frozen=True)
class Source:
    """A resolved input: what PyAV opens, and how to treat it."""

    url: str
    format: str | None
    options: dict[str, str] = field(default_factory=dict)
    kind: str = "file"  # camera | network | generated | file
    label: str = ""  # how messages name it

    @property
    def paced(self) -> bool:
        """Read at the source's own timestamps (cameras and network streams pace themselves)."""
        return self.kind in ("file", "generated")


def resolve_source(spec: CaptureSpec, platform: str | None = None) -> Source:
    platform = platform or sys.platform
    fmt = spec.input_format
    url = spec.input
    default_fmt, default_device = CAMERA_DEFAULTS.get(platform, (None, None))
    if fmt is not None:
        check_input_format(fmt)
    if url is None:
        if default_fmt is None:
            raise CartoonizeError(f"no default camera on {platform}; give --input and --input-format")
        fmt, url = fmt or default_fmt, default_device
    elif fmt is None and platform == "linux" and url.startswith("/dev/video"):
        fmt = "v4l2"
    elif fmt is None and url.isdigit() and default_fmt is not None:  # `--input 1`: the second camera
        fmt = default_fmt
        url = {"linux": f"/dev/video{url}", "win32": f"video={url}"}.get(platform, url)

    assert url is not None
    if fmt in CAMERA_FORMATS:
        return Source(url, fmt, _camera_options(spec, fmt), "camera", f"camera {url}")
    if spec.size or spec.fps or spec.mjpeg:
        raise CartoonizeError(
            "--size, --fps and --mjpeg are camera options; for a file, stream or lavfi source use --max-side "
            "(and the source's own settings, e.g. testsrc2=size=640x480:rate=30)"
        )
    if fmt == "lavfi":
        return Source(url, fmt, {}, "generated", f"lavfi source {url!r}")
    if url.lower().startswith(LIVE_SCHEMES):
        if problem := missing_protocol(url, "--input", tuple(s.split(":")[0] for s in LIVE_SCHEMES)):
            raise CartoonizeError(problem)
        options = {"fflags": "nobuffer"}  # no demuxer read-ahead: lower delay
        if url.lower().startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = "tcp"  # no smeared frames from lost UDP packets
        return Source(url, fmt, options, "network", url)
    if "://" not in url and not Path(url).exists():
        raise CartoonizeError(
            f"input {url} does not exist (give a camera device, a video file, a URL, or "
            "`--input-format lavfi --input testsrc2=size=640x480:rate=30` to try without a camera)"
        )
    return Source(url, fmt, {}, "file", url)


@functools.cache
def has_protocol(scheme: str) -> bool:
    """Whether this FFmpeg (the one PyAV was built with) has the `scheme` protocol: PyAV's own
    wheels have no srt, for one. FFmpeg is asked to open a URL of it with only `file` allowed
    (`protocol_whitelist`): it looks the protocol up, then refuses it by the list before its open
    touches the network."""
    import av

    try:
        av.open(f"{scheme}://127.0.0.1:9/", "r", options={"protocol_whitelist": "file"}).close()
    except av.ProtocolNotFoundError:
        return False
    except av.FFmpegError:  # "not on whitelist": it is there
        pass
    return True


def missing_protocol(url: str, what: str, schemes: tuple[str, ...]) -> str | None:
    """The one-line refusal for a URL whose protocol this FFmpeg lacks, naming those of `schemes`
    it has; None where it has this one."""
    scheme = url.split("://", 1)[0].lower()
    if has_protocol(scheme):
        return None
    import av

    usable = ", ".join(f"{name}://" for name in schemes if name != scheme and has_protocol(name))
    return (
        f"{what} {url}: this FFmpeg (the one PyAV {av.__version__} bundles) has no {scheme}:// protocol; "
        f"use {usable}, or install a PyAV built against an FFmpeg that has it"
    )


def check_input_format(fmt: str) -> None:
    """`--input-format` names an input format of this FFmpeg, or a one-line error says it does
    not (rather than blaming the input, which is then read as a file name)."""
    import av

    try:
        readable = av.ContainerFormat(fmt).is_input
    except ValueError:
        readable = False
    if not readable:
        raise CartoonizeError(
            f"unknown --input-format {fmt}: this FFmpeg reads no such input format "
            "(`ffmpeg -demuxers` lists them; e.g. v4l2, avfoundation, dshow, lavfi)"
        )


def _camera_options(spec: CaptureSpec, fmt: str) -> dict[str, str]:
    options: dict[str, str] = {}
    if spec.size:
        options["video_size"] = f"{spec.size[0]}x{spec.size[1]}"
    if spec.fps:
        options["framerate"] = f"{spec.fps:g}"
    if spec.mjpeg:
        options[{"dshow": "vcodec", "avfoundation": "pixel_format"}.get(fmt, "input_format")] = "mjpeg"
    return options


def describe_request(spec: CaptureSpec) -> str:
    """'1280x720 at 30 fps in MJPEG', from what was asked."""
    text = f"{spec.size[0]}x{spec.size[1]}" if spec.size else "the default size"
    if spec.fps:
        text += f" at {spec.fps:g} fps"
    return text + (" in MJPEG" if spec.mjpeg else "")


def open_source(source: Source, spec: CaptureSpec):  # -> av.container.InputContainer
    """Open the input, turning each way it can fail into a one-line error that says what to do."""
    import av

    # anything read over a network, a video on a web server or an IP camera's http:// MJPEG too:
    # a server that took the connection and never answered held the open for ever, deaf to Ctrl-C
    remote = source.kind in ("camera", "network") or "://" in source.url
    try:
        container = av.open(
            source.url, "r", format=source.format, options=source.options,
            timeout=(OPEN_TIMEOUT, OPEN_TIMEOUT) if remote else None,
        )  # fmt: skip
    except av.FFmpegError as exc:
        raise CartoonizeError(_open_problem(source, spec, exc)) from None
    if not container.streams.video:
        container.close()
        raise CartoonizeError(f"{source.label} has no video stream")
    stream = container.streams.video[0]
    if source.kind == "file":
        stream.thread_type = "AUTO"  # frame threads add delay, which pacing hides
    if spec.size and source.kind == "camera":
        got = (stream.codec_context.width, stream.codec_context.height)
        if got != spec.size:  # some drivers quietly substitute a size they have
            container.close()
            raise CartoonizeError(size_problem(source, spec, f"it offered {got[0]}x{got[1]} instead"))
    return container


def size_problem(source: Source, spec: CaptureSpec, detail: str) -> str:
    return (
        f"{source.label} does not offer {describe_request(spec)} ({detail}); "
        f"`ffmpeg -f {source.format} -list_formats all -i {source.url}` lists what it offers, "
        "or leave out --size/--fps"
    )


def _timed_out(exc: Exception) -> bool:
    """PyAV's timeout interrupts FFmpeg, which reports an 'immediate exit' (AVERROR_EXIT)."""
    import av

    return (
        isinstance(exc, (av.error.ExitError, TimeoutError)) or getattr(exc, "errno", None) == errno.ETIMEDOUT
    )


def _open_problem(source: Source, spec: CaptureSpec, exc: Exception) -> str:
    code = getattr(exc, "errno", None)
    reason = (getattr(exc, "strerror", None) or str(exc)).splitlines()[0]
    if _timed_out(exc):
        return f"no answer from {source.label} within {OPEN_TIMEOUT:g} s"
    if source.kind == "camera":
        if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
            return (
                f"no camera at {source.url} (`cartoonize webcam --list` shows the cameras here; without one, "
                "try `--input-format lavfi --input testsrc2=size=640x480:rate=30` or `--input VIDEO_FILE`)"
            )
        if code == errno.EBUSY:
            return f"{source.label} is busy: another program is using it; close that program and try again"
        if code in (errno.EACCES, errno.EPERM):
            return (
                f"no permission to open {source.label}: add yourself to the `video` group "
                "(`sudo usermod -aG video $USER`, then log in again)"
            )
        if code == errno.ENOTTY:
            return f"{source.url} is not a camera (it does not answer camera requests)"
        if code in (errno.EINVAL, errno.EIO) and (spec.size or spec.fps or spec.mjpeg):
            return size_problem(source, spec, reason)
        return f"cannot open {source.label} ({reason})"
    if source.kind == "generated":
        return f"{source.label} is not a valid FFmpeg source graph ({reason})"
    return f"cannot read {source.label} ({reason})"


class Captured:
    """One captured frame. Its RGB picture (upright, scaled to --max-side) is made in the capture
    thread while the consumer keeps up (off the critical path), and on first use otherwise: when
    the engine is slower than the camera most frames are dropped, and converting those would only
    steal CPU from the engine."""

    def __init__(self, captured: float, index: int, rgb: np.ndarray | None = None,
                 convert: Callable[[], np.ndarray] | None = None,
                 letterboxed: tuple[int, int] | None = None) -> None:  # fmt: skip
        self.captured = captured  # time.perf_counter() when the frame arrived (after pacing, for files)
        self.index = index  # frames delivered by the source so far, this one included
        # the source's own (width, height) where it differs from the first frame's: this picture
        # was fitted into the first frame's size, its aspect ratio kept (black bars where it differs)
        self.letterboxed = letterboxed
        self._rgb = rgb
        self._convert = convert

    @property
    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            assert self._convert is not None
            self._rgb, self._convert = self._convert(), None
        return self._rgb


class LatestFrame:
    """A one-frame mailbox: `put` replaces whatever was not taken (and counts it dropped)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Captured | None = None
        self.closed = False  # the producer ended; `reason` says why
        self.reason = ""
        self.delivered = 0
        self.dropped = 0

    @property
    def keeping_up(self) -> bool:
        """Whether the last frame put was taken (the consumer is as fast as the source)."""
        with self._cond:
            return self._item is None

    def put(self, item: Captured) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.delivered += 1
            self._cond.notify_all()

    def close(self, reason: str) -> None:
        with self._cond:
            self.closed, self.reason = True, reason
            self._cond.notify_all()

    def take(self, timeout: float) -> Captured | None:
        """The newest frame, waiting up to `timeout` s; None on timeout or when closed and empty."""
        with self._cond:
            if self._item is None and not self.closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def reset_counts(self) -> None:
        with self._cond:
            self.delivered = self.dropped = 0


class Capture:
    """Reads `source` in a daemon thread into a `LatestFrame`. The thread alone touches the
    container (closing it from another thread while it blocks in a read is unsafe), so `stop`
    only asks; a camera stuck in a read is left to the daemon thread."""

    def __init__(self, spec: CaptureSpec, source: Source | None = None) -> None:
        self.spec = spec
        self.source = source or resolve_source(spec)
        self.container = open_source(self.source, spec)
        stream = self.container.streams.video[0]
        self.rate: Fraction | None = frame_rate(stream)
        self.frames = LatestFrame()
        self._stop = threading.Event()
        self._go = threading.Event()  # paced sources start their clock when the consumer is ready
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        # one swscale context for the frames, kept (media.files.converter); a frame is converted
        # in this thread or, when the consumer falls behind, in the consumer's: one at a time
        self._reader, self._reading = converter(), threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def go(self) -> None:
        """The consumer is ready: start the pacing clock, forget frames dropped while it loaded."""
        self.frames.reset_counts()
        self._go.set()

    def stop(self, wait: float = 2.0) -> None:
        self._stop.set()
        self._go.set()
        if self._thread.is_alive():
            self._thread.join(wait)

    def _run(self) -> None:
        import av

        reason = "the input ended"
        try:
            reason = self._read(av)
        except av.FFmpegError as exc:
            text = (getattr(exc, "strerror", None) or str(exc)).splitlines()[0]
            if _timed_out(exc):
                text = f"nothing for {OPEN_TIMEOUT:g} s"
            reason = (
                f"{self.source.label} stopped delivering frames ({text}; unplugged?)"
                if self.source.kind == "camera"
                else f"{self.source.label} failed ({text})"
            )
        except Exception as exc:  # reported to the consumer, never a silent dead thread
            reason = f"capture failed: {type(exc).__name__}: {exc}"
        finally:
            self.frames.close(reason)
            self.container.close()

    def _read(self, av) -> str:  # noqa: ANN001
        stream = self.container.streams.video[0]
        first: tuple[int, int] | None = None  # the first frame's (width, height), as decoded
        size: tuple[int, int] | None = None  # what every frame is delivered at (before rotation)
        clock: tuple[float, float] | None = None  # (perf_counter, frame time) of the pacing origin
        index = 0
        for frame in self.container.decode(stream):
            if self._stop.is_set():
                return "stopped"
            k = int(round(frame.rotation / 90.0)) % 4 if self.source.kind == "file" else 0
            if size is None:
                first = (frame.width, frame.height)
                upright = (frame.height, frame.width) if k % 2 else (frame.width, frame.height)
                w, h = fit_within(*upright, self.spec.max_side)
                size = (h, w) if k % 2 else (w, h)
            own = (frame.width, frame.height)
            picture = size if own == first else letterbox(*own, *size)
            if self.source.paced:
                if index == 1:
                    self._go.wait()
                clock = self._pace(frame, clock)
            index += 1
            convert = functools.partial(self._to_rgb, frame, size, picture, k)
            changed = own if own != first else None
            if self.frames.keeping_up:
                self.frames.put(Captured(time.perf_counter(), index, rgb=convert(), letterboxed=changed))
            else:
                self.frames.put(Captured(time.perf_counter(), index, convert=convert, letterboxed=changed))
        if self.source.kind == "camera":
            return f"{self.source.label} stopped delivering frames (unplugged?)"
        return "the input ended"

    def _to_rgb(self, frame, size: tuple[int, int], picture: tuple[int, int], k: int) -> np.ndarray:  # noqa: ANN001
        """`frame` (an av.VideoFrame) upright as RGB of `size` (width, height before rotation),
        its picture scaled to `picture` and centred on black where the two differ (`letterbox`)."""
        if picture != size:
            inside = self._to_rgb(frame, picture, picture, 0)
            rgb = np.zeros((size[1], size[0], 3), np.uint8)
            x, y = (size[0] - picture[0]) // 2, (size[1] - picture[1]) // 2
            rgb[y : y + picture[1], x : x + picture[0]] = inside
            return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb
        with self._reading:
            if self.source.kind in ("file", "network"):
                # read as `cartoonize video` and players read it: by its tags or, untagged, as its
                # size implies (BT.709 for HD; swscale's own default is BT.601 at any size)
                rgb = to_rgb(frame, source_colour(frame), *size, using=self._reader, accurate=False)
            else:  # a camera's picture by its own tags, or BT.601, UVC's default
                rgb = self._reader.reformat(
                    frame, format="rgb24", width=size[0], height=size[1], interpolation="AREA"
                )
                rgb = rgb.to_ndarray()
        return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb

    def _pace(self, frame, clock: tuple[float, float] | None) -> tuple[float, float] | None:  # noqa: ANN001
        """Sleep until the frame is due by its timestamp; resynchronise after a jump of over a second."""
        t = frame.time
        if t is None:
            return clock
        now = time.perf_counter()
        if clock is None:
            return (now, t)
        due = clock[0] + (t - clock[1])
        if abs(due - now) > 1.0:
            return (now, t)
        while not self._stop.is_set() and (left := due - time.perf_counter()) > 0:
            time.sleep(min(left, 0.05))
        return clock


def letterbox(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The size a width x height picture takes inside the box, its aspect ratio kept: the whole
    box along one side, the other side shorter (the bars around it)."""
    scale = min(box_width / width, box_height / height)
    return (min(box_width, max(1, round(width * scale))), min(box_height, max(1, round(height * scale))))


@dataclass(frozen=True)
class Camera:
    id: str  # what --input takes
    name: str
    note: str = ""


def list_cameras(platform: str | None = None) -> list[Camera]:
    """The cameras this machine shows. Linux: the video capture nodes under /dev (names from
    sysfs, capabilities from the driver); macOS and Windows: FFmpeg's device listing."""
    platform = platform or sys.platform
    if platform == "linux":
        return _v4l2_cameras()
    fmt = CAMERA_DEFAULTS.get(platform, (None,))[0]
    return _ffmpeg_listed_cameras(fmt) if fmt else []


V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_VIDEO_OUTPUT = 0x00000002
V4L2_CAP_DEVICE_CAPS = 0x80000000
VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability), 104 bytes


def v4l2_capabilities(path: Path) -> tuple[str, str, int] | None:
    """(driver, card, device caps) of a V4L2 node; None when it cannot be asked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buf = bytearray(104)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf)
    except OSError:
        return None
    finally:
        os.close(fd)
    driver = bytes(buf[:16]).split(b"\0")[0].decode(errors="replace")
    card = bytes(buf[16:48]).split(b"\0")[0].decode(errors="replace")
    caps = int.from_bytes(buf[84:88], "little")
    device_caps = int.from_bytes(buf[88:92], "little")
    return driver, card, device_caps if caps & V4L2_CAP_DEVICE_CAPS else caps


def _v4l2_cameras(sysfs: Path = Path("/sys/class/video4linux"), dev: Path = Path("/dev")) -> list[Camera]:
    found = []
    for node in sorted(sysfs.glob("video*"), key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0):
        name_file = node / "name"
        name = name_file.read_text().strip() if name_file.exists() else node.name
        caps = v4l2_capabilities(dev / node.name)
        note = ""
        if caps is not None:
            driver, _card, device_caps = caps
            if driver == "v4l2 loopback":
                note = "virtual camera (v4l2loopback): --virtual-cam can write to it"
            elif not device_caps & V4L2_CAP_VIDEO_CAPTURE:
                continue  # a camera's metadata node, not a picture source
        found.append(Camera(str(dev / node.name), name, note))
    return found


def _ffmpeg_listed_cameras(fmt: str) -> list[Camera]:
    """avfoundation and dshow print their devices to FFmpeg's log; collect and parse it."""
    import av
    import av.logging

    dummy = "" if fmt == "avfoundation" else "dummy"
    with av.logging.Capture() as logs:
        try:
            av.open(dummy, format=fmt, options={"list_devices": "true"}).close()
        except av.FFmpegError:
            pass  # listing always ends in an "error": there is nothing to open
    cameras, video = [], True
    for _level, _name, message in logs:
        text = message.strip()
        if "audio devices" in text.lower():
            video = False
        if fmt == "avfoundation" and video and text.startswith("[") and "]" in text:
            index, _, name = text[1:].partition("] ")
            if index.isdigit():
                cameras.append(Camera(index, name))
        elif fmt == "dshow" and text.startswith('"') and "(video)" in text:
            name = text.split('"')[1]
            cameras.append(Camera(f"video={name}", name))
    return cameras
