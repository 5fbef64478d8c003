"""Generated test media (PyAV only): small videos with known content, audio, timing and rotation."""

from __future__ import annotations

import contextlib
import io
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from cartoonize.media.files import Colour

# What stops a job early, with the exit code a shell gives each: Ctrl-C, a `kill` (SIGTERM: a job
# scheduler, a container stopping) and a closed terminal (SIGHUP), which the CLI handles as Ctrl-C.
STOPS = [pytest.param(signal.SIGINT, 130, id="ctrl-c"), pytest.param(signal.SIGTERM, 143, id="kill"),
         pytest.param(signal.SIGHUP, 129, id="hangup")]  # fmt: skip

VIDEO_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx"}


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process running `cartoonize`: this one's plus `extra`, without
    mutmut's MUTANT_UNDER_TEST. A child cannot find mutmut's mutants or its configuration from the
    test's folder (its trampolines would stop it with an error of mutmut's own), so it runs the code
    as it is; mutmut credits only in-process tests anyway."""
    env = {key: value for key, value in os.environ.items() if key != "MUTANT_UNDER_TEST"}
    return {**env, **extra}


def stoppable(command: list[str]) -> list[str]:
    """`command` for a child that a test will stop with a signal. A shell that starts the suite in
    the background (`cmd &` without job control) ignores SIGINT, `nohup` ignores SIGHUP; a child
    inherits an ignored signal, and then neither Python nor the CLI would handle the test's signal.
    GNU `env --default-signal` gives the child the default dispositions, as a terminal's command
    has. (Not a `preexec_fn`: that makes Python fork this many-threaded test process and run Python
    in the child before exec, which the subprocess documentation warns can deadlock.)"""
    ignored = [number.name for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
               if signal.getsignal(number) == signal.SIG_IGN]  # fmt: skip
    return ["env", f"--default-signal={','.join(ignored)}", *command] if ignored else command


def cpu_auto(checkpoint: Path) -> tuple[str, str]:
    """(runner name, precision) that `--engine auto --precision auto` runs on this CPU for
    `checkpoint`: ONNX Runtime fp32, or PyTorch bf16 where this CPU runs bf16 natively and
    `cpu_choice` measured it faster. The choice is remembered in the test session's cache, so
    the run under test (in process or a child) makes the same one."""
    from cartoonize.choose import EngineRequest, cpu_choice

    choice = cpu_choice(EngineRequest(engine="auto", model=checkpoint, device="cpu"))
    return ("torch", "bf16") if choice.precision == "bf16" else ("onnxruntime", "fp32")


def pattern(width: int, height: int, index: int) -> np.ndarray:
    """A frame whose orientation is obvious: a red block in the top-left quarter, a green bar
    along the bottom, a moving gradient elsewhere."""
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 2] = ((xx + 3 * index) * 255 // max(width, 1)) % 256
    frame[..., 1] = (yy * 128 // max(height, 1)).astype(np.uint8)
    frame[: height // 4, : width // 4] = (230, 20, 20)
    frame[-max(height // 8, 2) :, :] = (20, 200, 20)
    return frame


def moving_bars(width: int, height: int, instant: float) -> np.ndarray:
    """A scene at `instant` (in fields): bright vertical bars sliding right, 5 px a field, on a
    dark background with a gentle vertical gradient; its edges comb when two instants are woven."""
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.zeros((height, width, 3), np.uint8)
    frame[...] = (40 + yy * 60 // max(height, 1))[..., None].astype(np.uint8)
    frame[((xx - round(5 * instant)) // 12) % 3 == 0] = (230, 200, 60)
    return frame


def weave(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """One interlaced frame, bottom field first (as DV): the odd lines from `first`, the even from
    `second`."""
    woven = second.copy()
    woven[1::2] = first[1::2]
    return woven


def make_interlaced(path: Path, width: int = 96, height: int = 64, frames: int = 12, rate: int = 25,
                    gop: int | None = None) -> Path:  # fmt: skip
    """An H.264 clip coded interlaced (x264's PAFF/MBAFF), bottom field first: each frame weaves
    two instants of `moving_bars` 1/(2·rate) s apart, and the decoder flags it so. (PyAV cannot
    mark a frame top field first, and libx264 codes each frame's own order.)"""
    import av

    with av.open(str(path), "w") as out:
        options = {"flags": "+ilme+ildct", "x264-params": "bff=1", "crf": "12"}
        video = out.add_stream("libx264", rate=rate, options=options)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if gop:
            video.codec_context.gop_size = gop
        for i in range(frames):
            woven = weave(moving_bars(width, height, 2 * i), moving_bars(width, height, 2 * i + 1))
            frame = av.VideoFrame.from_ndarray(woven, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
    return path


def make_dv(path: Path, frames: int = 8) -> Path:
    """A DV camcorder file (NTSC: 720×480 at 30000/1001 fps, 4:1:1, interlaced bottom field first,
    pixels 8:9 wide), as FFmpeg's own DV encoder and muxer write it."""
    import av

    with av.open(str(path), "w", format="dv") as out:
        video = out.add_stream("dvvideo", rate=Fraction(30000, 1001))
        video.width, video.height, video.pix_fmt = 720, 480, "yuv411p"
        for i in range(frames):
            woven = weave(moving_bars(720, 480, 2 * i), moving_bars(720, 480, 2 * i + 1))
            frame = av.VideoFrame.from_ndarray(woven, format="rgb24").reformat(format="yuv411p")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
    return path


def comb(frame: np.ndarray) -> float:
    """How combed a picture is: the mean distance, in levels, of each line from the average of the
    lines above and below it (a woven frame of motion: large; a whole picture: small)."""
    grey = frame.astype(np.float64).mean(axis=2) if frame.ndim == 3 else frame.astype(np.float64)
    return float(np.abs(grey[1:-1] - (grey[:-2] + grey[2:]) / 2).mean())


def make_video(
    path: Path,
    width: int = 64,
    height: int = 48,
    frames: int = 24,
    rate: int | Fraction = 12,
    audio: str | None = "aac",
    durations: list[int] | None = None,
    time_base: Fraction | None = None,
    codec: str | None = None,
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    audio_rate: int = 48000,
) -> Path:
    """Write a test clip. `durations` (in `time_base` ticks, one per frame) makes it variable
    frame rate; `audio` names an encoder (aac, libopus, libmp3lame) for a sine track as long as
    the video. Odd sizes need a codec and pixel format that allow them (ffv1 with yuv444p). `gop`:
    at most this many frames from one keyframe to the next (a long clip that can be cut)."""
    import av

    rate = Fraction(rate)
    time_base = time_base or (Fraction(1, 90000) if durations else 1 / rate)
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec or VIDEO_CODECS[path.suffix], rate=rate)
        even = pix_fmt == "yuv420p"  # 4:2:0 needs even sides
        video.width, video.height = (width + width % 2, height + height % 2) if even else (width, height)
        video.pix_fmt = pix_fmt
        if gop:
            video.codec_context.gop_size = gop
        video.time_base = video.codec_context.time_base = time_base
        sound = None
        if audio:
            sound = out.add_stream(audio, rate=audio_rate)
            sound.layout = "stereo"
        pts = 0
        for i in range(frames):
            image = pattern(width, height, i)
            if even:
                image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            out.mux(video.encode(frame))
            pts += durations[i] if durations else 1
        out.mux(video.encode(None))
        if sound is not None:
            seconds = float(pts * time_base)
            _write_sine(out, sound, seconds, audio_rate)
    return path


def _write_sine(out, stream, seconds: float, rate: int = 48000) -> None:  # noqa: ANN001
    import av

    ctx = stream.codec_context
    if not ctx.is_open:
        ctx.open()
    size = ctx.frame_size or 1024
    fmt = ctx.format.name
    resampler = av.AudioResampler(format=fmt, layout="stereo", rate=rate, frame_size=size)
    total = int(seconds * rate)
    t = np.arange(total) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stereo = np.stack([wave, wave])
    frame = av.AudioFrame.from_ndarray(stereo, format="fltp", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    for chunk in resampler.resample(frame):
        out.mux(stream.encode(chunk))
    for chunk in resampler.resample(None):
        out.mux(stream.encode(chunk))
    out.mux(stream.encode(None))


def set_display_rotation(path: Path, degrees: int) -> None:
    """Write a display matrix into an mp4/mov's video track header (tkhd), as phones do.
    `degrees` is counter-clockwise, the convention of FFmpeg's av_display_rotation_get."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    assert at > 0, "no track header"
    version = data[at + 4]
    matrix_at = at + 4 + 4 + (32 if version == 1 else 20) + 16
    one, minus, zero, w = 0x00010000, 0xFFFF0000, 0, 0x40000000
    # FFmpeg's matrix is the transpose of the rotation: rotation r ccw stores (cos, -sin; sin, cos)
    # read as a = cos, b = -sin, c = sin, d = cos in tkhd order (a, b, u, c, d, v, x, y, w)
    table = {90: (zero, minus, zero, one, zero), 180: (minus, zero, zero, zero, minus),
             270: (zero, one, zero, minus, zero), 0: (one, zero, zero, zero, one)}  # fmt: skip
    a, b, u, c, d = table[degrees % 360]
    struct.pack_into(">9I", data, matrix_at, a, b, u, c, d, 0, 0, 0, w)
    path.write_bytes(bytes(data))


def read_video(path: Path) -> tuple[list[int], list[np.ndarray], Fraction]:
    """Presentation timestamps, RGB frames and the time base of the first video stream."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return [f.pts for f in frames], [f.to_ndarray(format="rgb24") for f in frames], stream.time_base


def with_subtitles(video: Path, cues: list[tuple[float, float, str]], path: Path) -> Path:
    """`video` remuxed into `path` (a .mkv) with a SubRip track of `cues` (start s, end s, text):
    the cues go through FFmpeg's own SRT demuxer, as a user's .srt would."""
    import av

    def stamp(t: float) -> str:
        ms = round(t * 1000)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    srt = path.with_suffix(".srt")
    srt.write_text(
        "".join(f"{i}\n{stamp(a)} --> {stamp(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))
    )
    with av.open(str(video)) as src, av.open(str(srt)) as subs, av.open(str(path), "w") as out:
        streams = {s: out.add_stream_from_template(s) for s in (*src.streams, subs.streams[0])}
        for container in (src, subs):  # each input demuxed once, all its streams together
            for packet in container.demux():
                if packet.size:  # not a demuxer's flush packet
                    packet.stream = streams[packet.stream]
                    out.mux(packet)
    return path


def read_subtitles(path: Path) -> list[tuple[float, float, str]]:
    """(start s, end s, text) of every packet of the first subtitle track."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        tb = stream.time_base
        return [(float(p.pts * tb), float((p.pts + p.duration) * tb), bytes(p).decode())
                for p in c.demux(stream) if p.size]  # fmt: skip


def top_level_boxes(path: Path) -> list[str]:
    """The types of an ISO-BMFF file's top-level boxes in file order (`ftyp`, `moov`, `mdat`, ...),
    read from the box headers: a 32-bit size and a type, where size 1 means a 64-bit size follows
    and size 0 means the box runs to the end of the file."""
    boxes = []
    end = path.stat().st_size
    with path.open("rb") as f:
        at = 0
        while at < end:
            f.seek(at)
            header = f.read(8)
            assert len(header) == 8, f"{path.name}: a box header is cut short at byte {at}"
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                (size,) = struct.unpack(">Q", f.read(8))
            elif size == 0:
                size = end - at
            assert size >= 8 and at + size <= end, f"{path.name}: box {kind!r} at {at} has size {size}"
            boxes.append(kind.decode("latin-1"))
            at += size
    return boxes


def run_main(args: list[str], capsys) -> tuple[int, str, str]:  # noqa: ANN001 - pytest's CaptureFixture
    """The whole CLI (`cartoonize.cli.main`) in this process: (exit code, stdout, stderr)."""
    from cartoonize.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@contextlib.contextmanager
def everything_printed() -> Iterator[list[str]]:
    """What the block writes to the terminal, however it writes it: to file descriptors 1 and 2
    (C and C++ libraries) and to `sys.stdout` / `sys.stderr` (print, warnings, logging's last
    resort). The list it yields holds that text once the block ends. For what pytest's `capfd`
    cannot reach: fixtures shared by several tests."""
    printed: list[str] = []
    python = io.StringIO()
    with tempfile.TemporaryFile() as sink:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(python), contextlib.redirect_stderr(python):
                yield printed
        finally:
            for fd, old in zip((1, 2), saved, strict=True):
                os.dup2(old, fd)
                os.close(old)
        sink.seek(0)
        printed.append(sink.read().decode(errors="replace") + python.getvalue())


def start_serving(args: list[str], cwd: Path, root: Path) -> tuple[subprocess.Popen[str], str]:
    """`cartoonize webcam ARGS --serve 0` in a child process (this checkout first on the path);
    the process (killed with this one) and the address it printed. The caller terminates it."""
    from tests.bound_children import webcam_child  # it builds on this module

    env = child_env(PYTHONPATH=str(root))
    proc = subprocess.Popen(
        webcam_child([*args, "--serve", "0"]),
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    printed, deadline = b"", time.monotonic() + 120
    while b"serving the preview at" not in printed or not printed.endswith(b"\n"):
        # read with a deadline: a child that hangs before printing must not hang the suite
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(proc.stdout.fileno(), 4096) if ready else b""
        if not chunk:  # the child ended, or the deadline passed
            proc.kill()
            raise AssertionError(
                f"no address printed ({proc.poll()}): {printed.decode(errors='replace')[-800:]}"
            )
        printed += chunk
    line = next(line for line in printed.decode().splitlines() if "serving the preview at" in line)
    return proc, line.split(" at ", 1)[1].strip()


def interrupt(proc: subprocess.Popen[str], sent: signal.Signals = signal.SIGINT) -> str:
    """Ctrl-C (or another signal) a running `cartoonize` child and return its output, whitespace
    folded; the child is killed if it has not ended within 30 s (the caller then sees a timeout)."""
    try:
        proc.send_signal(sent)
        return " ".join(proc.communicate(timeout=30)[0].split())
    finally:
        proc.kill()


def record_pattern(out: Path, frames: int, rate: int, width: int = 64, height: int = 48):  # noqa: ANN201
    """`frames` test frames through the live recorder into `out`, captured `1/rate` s apart, then
    closed; returns the recorder (its counts)."""
    from cartoonize.media.outputs import Recorder

    recorder = Recorder(str(out), width, height, Fraction(rate))
    for i in range(frames):
        recorder.write(pattern(width, height, i), i / rate)
    recorder.close()
    return recorder


BARS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 150, 60), (235, 235, 235), (20, 20, 20)]


def colour_bars(width: int, height: int) -> np.ndarray:
    rgb = np.zeros((height, width, 3), np.uint8)
    for i, colour in enumerate(BARS):
        rgb[:, i * width // len(BARS) : (i + 1) * width // len(BARS)] = colour
    return rgb


def untagged_video(path: Path, rgb: np.ndarray, colour: Colour) -> None:
    """Frames encoded with `colour`'s matrix and no colour tags, as many cameras and encoders write them."""
    import av

    from cartoonize.media.files import converter, to_yuv

    height, width = rgb.shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "10"}
        writer = converter()
        for i in range(3):
            frame = to_yuv(rgb, colour, using=writer)
            frame.colorspace = frame.color_range = frame.color_primaries = frame.color_trc = 2  # unspecified
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
