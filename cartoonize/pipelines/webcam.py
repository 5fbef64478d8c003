"""`cartoonize webcam`: a live cartoon camera with as little delay as the engine allows.

    capture thread ──newest frame only──► engine (this thread) ──► window / browser (--serve)
      (drops what the engine                   │                 ──► recorder thread (--output)
       had no time for)                        └───────────────────► virtual camera (--virtual-cam)

Frames are never queued in front of the engine: the capture keeps one slot and overwrites it, so
when inference is slower than the camera, old frames are dropped and the delay stays one frame's
inference plus at most one camera interval. Latency is measured per frame from its arrival in the
capture thread to the moment it is on screen (or handed to the browser server).
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from cartoonize.errors import CartoonizeError, Terminated
from cartoonize.media.capture import Capture, Captured, CaptureSpec
from cartoonize.pipelines.handoffs import quick_handoffs
from cartoonize.runners.base import Runner
from cartoonize.stages import StageChain, StageOptions, build_stages
from cartoonize.stages.upsample import network_frame, network_size


@dataclass(frozen=True)
class WebcamJob:
    capture: CaptureSpec = field(default_factory=CaptureSpec)
    preview: bool = True  # a window (off with --no-preview, and when --serve shows it in a browser)
    serve: tuple[str, int] | None = None  # (host, port) of the MJPEG preview server
    output: str | None = None  # a file or an FFmpeg URL to record the cartoon stream to
    overwrite: bool = False
    virtual_cam: bool = False
    virtual_cam_device: str | None = None  # None: the first v4l2loopback device
    side_by_side: bool = False  # show original | cartoon
    frames: int | None = None  # stop after this many frames shown
    snapshot_dir: Path = Path(".")  # where key s saves PNGs
    stall_seconds: float = 10.0  # a camera silent this long is treated as gone
    stages: StageOptions = field(default_factory=StageOptions)  # what happens between engine and display


@dataclass
class WebcamReport:
    shown: int = 0
    dropped: int = 0  # captured frames the engine had no time for
    seconds: float = 0.0  # from the first frame shown to the last
    latencies: list[float] = field(default_factory=list)  # capture -> display, seconds, per frame
    width: int = 0
    height: int = 0
    engine: str = ""
    stopped: str = ""  # why it ended
    failed: bool = False  # ended by a fault (camera lost, output broken), not by the user or the input
    interrupted: bool = False  # Ctrl-C
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return (self.shown - 1) / self.seconds if self.shown > 1 and self.seconds > 0 else 0.0

    def latency_ms(self, percentile: float) -> float:
        return float(np.percentile(self.latencies, percentile)) * 1000 if self.latencies else 0.0

    def summary(self) -> str:
        total = self.shown + self.dropped
        share = f" ({100 * self.dropped / total:.0f} %)" if total else ""
        return (
            f"{self.shown} frames shown, {self.dropped} dropped{share}, {self.fps:.1f} fps, latency median "
            f"{self.latency_ms(50):.0f} ms, 95th percentile {self.latency_ms(95):.0f} ms "
            f"({self.width}x{self.height}, {self.engine}); stopped: {self.stopped}"
        )


class _Live:
    """Rolling fps and latency for the overlay (the last second or so)."""

    def __init__(self, window: int = 30) -> None:
        self.times: deque[float] = deque(maxlen=window)
        self.latencies: deque[float] = deque(maxlen=window)

    def add(self, shown_at: float, latency: float) -> None:
        self.times.append(shown_at)
        self.latencies.append(latency)

    @property
    def fps(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(self.times[-1] - self.times[0], 1e-9)

    @property
    def latency_ms(self) -> float:
        return float(np.median(self.latencies)) * 1000 if self.latencies else 0.0


# The network's longer side for a CPU webcam when --infer-side is not given: the smallest side
# measured, since none reaches 8 fps on a 2-core CPU. Measured on the quiet 2-core dev machine
# (AMD EPYC, AVX2; 2026-12-02): CPU time per 640x360 frame, one thread (ONNX Runtime + guided
# upsampling + shrink), 306 ms at 128 px and 378 ms at 160; shown at 640x360 with stabilization
# and exposure on, 3.25 fps at 128 (median latency 324 ms), 2.81 at 160, 1.90 at 192, and 4.68 fps
# at --max-side 160 (160x90 shown). On a quiet 2-core Intel Xeon (AVX-512; 2026-12-02), after the
# guided upsampling's planar rewrite: 138 ms at 128 px, 213 at 160, 282 at 192; shown at 640x360,
# 4.89 fps at 128 (median latency 217 ms), 3.71 at 160, 3.19 at 192, and 6.82 fps at --max-side 160.
# Running the network in its own thread, overlapped with the stages, measured 5.8-6.9 fps at 128 px
# but 300-370 ms median latency there, so the loop stays serial. On a 2-core Xeon with AMX, where
# `auto` runs PyTorch bf16 (2026-12-02): 14.3 fps at 128 (median latency 91 ms), 12.0 at 160, 10.2
# at 192, 7.1 at 256; ONNX Runtime fp32 at 128 on the same CPU 7.1 fps (159 ms). Re-measure with
# `python -m cartoonize.measure.webcam --configs max160,128,160,192` or `--cpu-cost 128,160,192`.
CPU_WEBCAM_INFER_SIDE = 128


def auto_infer_side(device: str, max_side: int | None = None) -> int | None:
    """--infer-side when not given: on the CPU, CPU_WEBCAM_INFER_SIDE; on a GPU, none (full size).
    Nor where --max-side already makes the picture small (at most twice that side): there the
    upsampling would cost about what the smaller inference saves."""
    if max_side is not None and max_side <= 2 * CPU_WEBCAM_INFER_SIDE:
        return None
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return CPU_WEBCAM_INFER_SIDE if device == "cpu" else None


def parse_size(text: str) -> tuple[int, int]:
    """`--size 1280x720` -> (1280, 720)."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 16 or int(h) < 16:
        raise CartoonizeError(f"--size {text}: give WIDTHxHEIGHT, e.g. 1280x720")
    return int(w), int(h)


def print_cameras(say: Callable[[str], None]) -> None:
    """`--list`: the cameras this machine shows, and what --input takes for each."""
    from cartoonize.media.capture import list_cameras

    cameras = list_cameras()
    if not cameras:
        say(
            "no cameras found (try a video file or `--input-format lavfi --input testsrc2=size=640x480:rate=30`)"
        )
    for camera in cameras:
        say(f"{camera.id}\t{camera.name}" + (f"  ({camera.note})" if camera.note else ""))


def run_webcam(
    job: WebcamJob,
    make_runner: Callable[[tuple[int, int]], Runner],
    on_status: Callable[[str], None] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> WebcamReport:
    """Run until the user quits, the input ends, `job.frames` are shown, or Ctrl-C (reported as
    `interrupted`, after every output is finalized). `make_runner((H, W))` gives the unentered
    runner; `on_status(message)` hears about snapshots, the server address and the like;
    `on_frame(frames_shown)` is called after each frame is shown."""
    from cartoonize.media.outputs import Recorder, VirtualCam, check_record_target

    say = on_status or (lambda _message: None)
    if job.output:
        check_record_target(job.output, job.overwrite)  # before the camera light goes on
    report = WebcamReport()
    capture = Capture(job.capture)
    recorder = None
    with contextlib.ExitStack() as stack:
        stack.enter_context(quick_handoffs())  # the capture thread takes its new frame without waiting
        stack.callback(capture.stop)
        capture.start()
        first = _first_frame(capture, job.stall_seconds)
        report.height, report.width = first.rgb.shape[:2]
        try:
            # every output opens before the model loads, so a bad one fails at once
            window = server = vcam = None
            if job.serve:
                from cartoonize.media.mjpeg import PreviewServer

                server = PreviewServer(*job.serve)
                stack.callback(lambda: server.close(report.stopped))
                everywhere = (
                    " (on every interface: other machines use this one's address)"
                    if server.everywhere
                    else ""
                )
                say(f"serving the preview at {server.url}{everywhere}")
            elif job.preview:
                from cartoonize.media.preview import PreviewWindow

                window = PreviewWindow(f"cartoonize webcam - {capture.source.label}")
                stack.callback(window.close)
                window.show(first.rgb, ["loading the model..."])
            if job.virtual_cam:
                fps = float(capture.rate or 30)
                vcam = VirtualCam(job.virtual_cam_device, report.width, report.height, fps)
                stack.callback(vcam.close)
                say(f"publishing to the virtual camera {vcam.device}")
            if job.output:
                recorder = Recorder(job.output, report.width, report.height, capture.rate, job.overwrite)
            infer_side = job.stages.infer_side  # the network may run smaller; the chain upsamples back
            runner = stack.enter_context(make_runner(network_size(report.height, report.width, infer_side)))
            report.engine = runner.describe()
            chain = build_stages(replace(job.stages, device=getattr(runner, "device", "cpu")))
            small = network_frame(first.rgb, infer_side)
            chain(first.rgb, runner(small[None])[0])  # warm-up: first calls allocate and pick kernels
            chain.reset()
            if small.shape != first.rgb.shape:
                report.engine += f", inferring at {small.shape[1]}x{small.shape[0]}"
            report.engine += f"; stages: {chain.describe()}"  # whatever size the network runs at
            _loop(job, capture, runner, chain, report, window, server, recorder, vcam, say, on_frame)
        except BaseException:
            if recorder is not None:
                recorder.close(keep=False)
            raise
        if recorder is not None:
            try:
                recorder.close()
            except CartoonizeError as exc:  # the summary first, then this error (cli)
                report.stopped, report.failed = str(exc), True
            else:
                url = "://" in recorder.target
                why = "the receiver or the network too slow" if url else "the encoder too slow"
                lost = f", {recorder.dropped} left out ({why})" if recorder.dropped else ""
                report.notes.append(
                    f"{'streamed to' if url else 'wrote'} {recorder.target}: {recorder.written} frames{lost}"
                )
    return report


def _first_frame(capture: Capture, stall_seconds: float) -> Captured:
    """The first frame tells the size the engine works at; a source that gives none is an error."""
    item = capture.frames.take(timeout=stall_seconds)
    if item is None:
        why = capture.frames.reason if capture.frames.closed else f"nothing within {stall_seconds:.0f} s"
        raise CartoonizeError(f"{capture.source.label} delivered no frame ({why})")
    return item


def _loop(job: WebcamJob, capture: Capture, runner: Runner, chain: StageChain, report: WebcamReport, window, server,
          recorder, vcam, say: Callable[[str], None], on_frame: Callable[[int], None] | None) -> None:  # fmt: skip
    view, overlay = "cartoon", True
    live = _Live()
    shown_image: np.ndarray | None = None
    sizes_said: set[tuple[int, int]] = set()  # the sizes the source changed to, each said once
    poll = 0.02 if window is not None else 0.25  # how often a waiting window reads its keys
    capture.go()
    first_shown = last_frame = time.perf_counter()
    try:
        while True:
            for action in window.actions() if window is not None else ():
                if action == "quit":
                    report.stopped = "window closed"
                    return
                if action == "toggle":
                    view = "original" if view == "cartoon" else "cartoon"
                elif action == "overlay":
                    overlay = not overlay
                elif action == "snapshot" and shown_image is not None:
                    say(_snapshot(job.snapshot_dir, shown_image))
            item = capture.frames.take(timeout=poll)
            if item is None:
                if capture.frames.closed:
                    report.stopped = capture.frames.reason
                    # a file's end is the end; a camera's or a stream's, or a read that failed, a fault
                    report.failed = (
                        capture.source.kind in ("camera", "network") or report.stopped != "the input ended"
                    )
                    return
                if time.perf_counter() - last_frame > job.stall_seconds:
                    report.stopped = f"{capture.source.label} sent no frame for {job.stall_seconds:.0f} s"
                    report.failed = True
                    return
                continue
            last_frame = time.perf_counter()
            if item.letterboxed is not None and item.letterboxed not in sizes_said:
                sizes_said.add(item.letterboxed)
                say(f"{capture.source.label} changed its picture to {item.letterboxed[0]}x{item.letterboxed[1]}: "
                    f"fitted into {report.width}x{report.height}, the size this run opened with, its aspect ratio "
                    "kept (black bars where it differs)")  # fmt: skip
            small = network_frame(item.rgb, job.stages.infer_side)
            # the capture time: temporal stages count in seconds, so dropped frames are time passed
            cartoon = chain(item.rgb, runner(small[None])[0], item.captured)
            if recorder is not None:
                recorder.write(cartoon, item.captured)
                if recorder.error:
                    report.stopped, report.failed = recorder.error, True
                    return
            if vcam is not None:
                vcam.write(cartoon)
            shown_image = _compose(item.rgb, cartoon, view, job.side_by_side)
            if window is not None:
                lines = _overlay_lines(live, report, capture, view) if overlay else None
                window.show(shown_image, lines)
            if server is not None:
                server.publish(shown_image, {"fps": live.fps, "latency_ms": live.latency_ms,
                                             "dropped": capture.frames.dropped, "view": view})  # fmt: skip
            now = time.perf_counter()
            if report.shown == 0:
                first_shown = now
            report.shown += 1
            report.latencies.append(now - item.captured)
            report.seconds = now - first_shown
            report.dropped = capture.frames.dropped
            live.add(now, now - item.captured)
            if on_frame is not None:
                on_frame(report.shown)
            if job.frames and report.shown >= job.frames:
                report.stopped = f"{job.frames} frames shown"
                return
    except KeyboardInterrupt as exc:
        why = f"terminated ({exc.name})" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
        report.stopped, report.interrupted = why, True
    finally:
        report.dropped = capture.frames.dropped


def _snapshot(folder: Path, image: np.ndarray) -> str:
    """Save what is shown as a PNG in `folder` (made if need be); what happened, in one line. A
    snapshot that cannot be written is said and the session goes on: it ended the session (and
    its recording) with a traceback."""
    import av

    from cartoonize.pipelines.image import write_image

    path = folder / f"cartoonize-{datetime.now():%Y%m%d-%H%M%S-%f}.png"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_image(path, image)
    except (OSError, av.FFmpegError, CartoonizeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return f"could not save a snapshot in {folder} ({reason.splitlines()[0]}); going on"
    return f"saved snapshot {path}"


def _compose(original: np.ndarray, cartoon: np.ndarray, view: str, side_by_side: bool) -> np.ndarray:
    if view == "original":
        return original
    return np.concatenate([original, cartoon], axis=1) if side_by_side else cartoon


def _overlay_lines(live: _Live, report: WebcamReport, capture: Capture, view: str) -> list[str]:
    return [
        f"{live.fps:5.1f} fps   latency {live.latency_ms:4.0f} ms",
        f"dropped {capture.frames.dropped}   {view}   {report.width}x{report.height}",
        "q quit  space original/cartoon  s snapshot  f overlay",
    ]
