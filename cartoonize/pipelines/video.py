"""`cartoonize video`: decode -> engine -> encode, overlapped, every frame and timestamp kept.

    decode thread ──frames──► bounded queue ──► engine (this thread, batches) ──► [stages thread] ──► bounded queue ──► mux thread
         └─────────── audio / subtitle packets ────────────────────────────────────────────────────────────────────┘

The frame stages (exposure, stabilization: `cartoonize.stages`) run in their own thread, in
presentation order, so their optical flow and blending overlap the engine's next batch instead of
adding to it; with every stage off (`--raw`) the thread is not started.

The mux thread alone touches the output container: it encodes cartoon frames with their source
timestamps, copies audio and subtitle packets as they are where the container stores their codec,
and re-encodes audio where it does not. The output goes to a temporary file beside OUTPUT and is
moved into place only when complete.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.media import hdr
from cartoonize.media.captions import carries_captions
from cartoonize.media.clock import PreviewCut, from_origin, timeline_origin
from cartoonize.media.deinterlace import Deinterlacer
from cartoonize.media.files import (
    ATTACHED_PIC,
    AUDIO_REENCODE,
    ENCODERS,
    SQUARE_PIXELS,
    SUBTITLE_TEXT,
    TEXT_SUBTITLES,
    WRITE_ERRNOS,
    Colour,
    EncoderSettings,
    atomic_output,
    audio_plan,
    check_codec,
    check_output,
    codec_name,
    colour_tags,
    container_for,
    converter,
    declared_duration,
    default_colour,
    encodable_layout,
    encodable_rate,
    ends_mid_packet,
    even_size,
    ffmpeg_path,
    fit_within,
    frame_rate,
    main_video,
    muxer_options,
    muxer_refusal,
    open_video_encoder,
    pad_to_even,
    pixel_aspect,
    silent_audio,
    source_colour,
    stored_colour,
    stream_start,
    subtitle_copyable,
    tag_encoder,
    to_rgb,
    to_yuv,
)
from cartoonize.media.gif import MIN_DELAY, Palettizer, loop_option
from cartoonize.media.held import HeldFrames
from cartoonize.media.metadata import carry as carry_metadata
from cartoonize.pipelines.handoffs import SWITCH_INTERVAL_S, quick_handoffs
from cartoonize.runners.base import Runner
from cartoonize.stages import StageChain, StageOptions, build_stages
from cartoonize.stages.upsample import network_frame, network_size

_END = object()  # end of stream marker on the queues


@dataclass(frozen=True)
class VideoJob:
    input: Path
    output: Path
    max_side: int | None = None  # downscale so the longer side is at most this before inference
    batch: int = 1  # frames per engine call
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    overwrite: bool = False
    max_frames: int | None = None  # stop after this many frames (a quick preview of a long clip)
    queue_frames: int = 16  # bound on decoded frames waiting for the engine (memory at 4K: ~400 MB)
    stages: StageOptions = field(default_factory=StageOptions)  # what happens between engine and encoder
    window: Window | None = None  # one segment of the video (pipelines.segments); None: all of it
    # the GPU frame path: decoded 4:2:0 planes go to the runner, which converts to RGB and back
    # itself (on its own CUDA stream), or leaves that to the frame stages on its device
    # (stages.device); `--max-side` scales there too. Only where nothing else needs RGB on the host
    # (no numpy frame stages, no --infer-side, a yuv420p output). Off: FFmpeg converts on the CPU.
    yuv_frames: bool = False
    # with the frame stages on the runner's GPU (stages.device), the frames the network saw and its
    # cartoons stay there for them (runners.base.DeviceFrame): no download and upload in between.
    # Off only to measure what that saves.
    keep_on_device: bool = True
    # the GIL's switch interval while the job runs (pipelines.handoffs): a thread back from FFmpeg,
    # x264 or CUDA waits at most this long for another that is running Python. None: the
    # interpreter's own (5 ms), only to measure what the short one saves.
    switch_interval: float | None = SWITCH_INTERVAL_S
    # frames the decoder flags as interlaced (1080i broadcast, DV, AVCHD) are deinterlaced with
    # FFmpeg's bwdif before the network sees them (media.deinterlace); off: left woven, combed
    deinterlace: bool = True


@dataclass(frozen=True)
class Window:
    """The frames of one segment, by presentation timestamp in the video stream's time base (None:
    open end). Decoding seeks to the keyframe `seek`; frames before `preroll` are skipped, frames
    from `preroll` to `start` go through the engine and the stages (warming temporal ones) and are
    dropped; frames in [start, end) are encoded. Only the video is written: the join carries the
    other streams once."""

    seek: int | None = None
    preroll: int | None = None
    start: int | None = None
    end: int | None = None

    def skips(self, pts: int) -> bool:
        return self.preroll is not None and pts < self.preroll

    def ended(self, pts: int) -> bool:
        return self.end is not None and pts >= self.end

    def keeps(self, pts: int) -> bool:
        return (self.start is None or pts >= self.start) and not self.ended(pts)


@dataclass
class VideoReport:
    frames: int
    width: int
    height: int
    seconds: float
    engine_seconds: float  # the pipeline's time inside engine calls (starting and collecting batches)
    engine: str
    video_codec: str
    stages: str  # the frame stages that ran, or "none"
    streams: list[str]  # one note per non-video stream: copied, re-encoded or dropped
    colour: str = ""  # the matrix and range the video was decoded and encoded with (and tagged)
    # rgb: FFmpeg converts on the CPU; device: so, and the engine's frames stay on its GPU for the
    # stages there; yuv: the runner converts the planes
    frame_path: str = "rgb"
    load_seconds: float = 0.0  # of `seconds`: loading the engine (a compile, a warm cache's reload)
    # seconds each thread (decode, engine, stages, mux) spent blocked on a queue: the one that
    # hardly waits is the bottleneck
    waits: dict[str, float] = field(default_factory=dict)
    not_planes: str = ""  # why the GPU frame path was asked for (--yuv-frames) and not taken
    damaged: int = 0  # video packets the decoder refused as damaged: skipped, their frames missing
    left_out: int = 0  # frames the output format cannot show and were not written (GIF: too close)
    first_written: int | None = None  # the timestamp of the first frame written, where frames are left out
    interlaced: int = 0  # frames the decoder flagged as interlaced
    hdr: str = ""  # an HDR source: how it was brought to SDR (media.hdr.describe)
    captions: bool = False  # the video stream carried closed captions, which are not kept (media.captions)
    deinterlaced: bool = True  # ... and bwdif deinterlaced them (else --no-deinterlace left them)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def running_fps(self) -> float:
        """Frames per second once the engine is loaded: the rate a long video approaches. (The
        decoder fills its queue while the engine loads, so a short clip reads a little high.)"""
        running = self.seconds - self.load_seconds
        return self.frames / running if running > 0 else 0.0

    @property
    def engine_share(self) -> float:
        """Near 1: the engine is the bottleneck; lower: decode or encode is."""
        return min(1.0, self.engine_seconds / self.seconds) if self.seconds else 0.0


def left_out_note(left_out: int, frames: int, container: str) -> str:
    """The note for `left_out` of `frames` frames not written (VideoReport.left_out): to a GIF,
    too close together; to an AVI, on the tick of the frame before (media.held)."""
    why = (
        f"a GIF frame lasts at least {float(MIN_DELAY):.2f} s; browsers play shorter ones slowly"
        if container == "gif"
        else f"{container.upper()} holds one frame a tick of its frame rate, and these fell on the "
        "tick of the frame before, as in a constant-rate encode"
    )
    return f"video: {left_out} of {frames} frames left out ({why})"


def interlace_note(interlaced: int, deinterlaced: bool) -> str:
    """The summary's line for `interlaced` frames (VideoReport.interlaced)."""
    frames = f"{interlaced} interlaced frame{'s' if interlaced > 1 else ''}"
    if deinterlaced:
        return f"deinterlaced {frames} (bwdif, one frame for each)"
    return f"{frames} left interlaced (--no-deinterlace): moving edges keep their comb teeth"


def damage_note(damaged: int) -> str:
    """The summary's line for `damaged` video packets skipped (VideoReport.damaged)."""
    return (
        f"skipped {damaged} damaged video packet{'s' if damaged > 1 else ''} of the input "
        "(the frames there are missing, as in a player)"
    )


@dataclass(frozen=True)
class VideoProbe:
    width: int  # upright, after --max-side
    height: int
    rotation: int  # degrees counter-clockwise to turn a decoded frame upright (from the display matrix)
    coded_size: tuple[int, int]  # (width, height) to scale a decoded frame to before rotating
    frames_estimate: int | None
    duration: float | None  # seconds, as the container declares
    rate: Fraction | None
    time_base: Fraction
    colour: Colour | None = None  # the source's matrix/range/primaries/transfer (from its first frame)
    source_size: tuple[int, int] = (0, 0)  # (width, height) as the decoder gives frames
    pix_fmt: str | None = None  # the decoder's pixel format (yuv420p, nv12, ...)
    # the shape of a pixel, upright (anamorphic DV, DVD, HDV and broadcast video: 16:9 stored in
    # 720×480 or 1440×1080); None for square pixels
    pixel_aspect: Fraction | None = None
    origin: Fraction = Fraction(0)  # seconds: the source's clock at its start, taken off every timestamp
    declared: float | None = (
        None  # seconds: the video's own duration as the file says (media.files.declared_duration)
    )
    # FFmpeg's rate from the timestamps' steps (av_guess_frame_rate): above the average where the
    # rate varies (a phone's video, a held frame); AVI's clock where it is the finer one
    step_rate: Fraction | None = None
    # seconds on the source's clock where the video's own first timestamp is: `declared` counts
    # from it (in a transport stream the sound often starts first, and `origin` with it)
    start: Fraction = Fraction(0)


def _open_input(path: Path):  # -> av.container.InputContainer
    import av

    if not path.exists():
        raise CartoonizeError(f"input {path} does not exist")
    if path.is_dir():
        raise CartoonizeError(f"input {path} is a folder; give a video file")
    if not path.is_file():  # a pipe (/dev/stdin, a FIFO) or a device: it can be read only once
        raise CartoonizeError(
            f"input {path} is a pipe or a device, not a file: a video is read more than once (probed, "
            "then cartoonized); save it to a file first"
        )
    try:
        container = av.open(ffmpeg_path(path), "r")
    except av.FFmpegError as exc:
        raise CartoonizeError(f"{path} is not a readable video ({_reason(exc)})") from None
    if main_video(container) is None:
        cover = " (only a cover picture)" if container.streams.video else ""
        container.close()
        raise CartoonizeError(f"{path} has no video stream{cover}")
    if is_still_picture(container):
        container.close()
        raise CartoonizeError(f"{path} is a photo, not a video; `cartoonize image {path} -o {path.stem}_cartoon.png` "
                              "cartoonizes a photo")  # fmt: skip
    return container


def is_still_picture(container) -> bool:  # noqa: ANN001 - an input av container
    """Whether FFmpeg read the file as one still picture (JPEG, PNG, WebP, BMP, TIFF: its image
    demuxers, `image2` and the `*_pipe` ones), not a video: `cartoonize video photo.jpg out.mp4`
    made a video of one frame lasting 40 ms, without a word. (An animated GIF or APNG has a
    demuxer of its own and stays a video.)"""
    name = container.format.name
    return name == "image2" or name.endswith("_pipe")


def _written_failure(worker: _Worker, output: Path) -> BaseException:
    """A worker's error for the caller: an FFmpeg error while the output was written (a muxer or
    an encoder refusing what it was given) as one line naming the output, not a traceback; a full
    disk or an I/O error stays an OSError, for `atomic_output` to say so."""
    import av

    exc = worker.error
    assert exc is not None
    if worker.name != "mux" or not isinstance(exc, av.FFmpegError):
        return exc
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return exc
    return CartoonizeError(f"FFmpeg could not write {output} ({_reason(exc)})")


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _rotation_of(container, stream) -> tuple[int, Colour | None]:  # noqa: ANN001
    """Degrees counter-clockwise from the first frame's display matrix (a multiple of 90), and
    the first frame's colour."""
    import av

    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation / 90.0)) * 90 % 360, source_colour(frame)
    except av.FFmpegError:
        return 0, None
    return 0, None


def probe(path: Path, max_side: int | None, square_pixels: bool = False, even: bool = True) -> VideoProbe:
    """What the job needs to know of the video at `path`, the output's size included. With
    `square_pixels` (an output that cannot say its pixels are not square: VP9 in WebM, GIF), an
    anamorphic source is scaled to square pixels, widened (or made taller) to its display shape.
    With `even`, `--max-side` fits within even sides (4:2:0); without (GIF's palette frames), to
    the nearest pixel."""
    container = _open_input(path)
    try:
        stream = main_video(container)
        rotation, colour = _rotation_of(container, stream)
        coded_w, coded_h = stream.codec_context.width, stream.codec_context.height
        if coded_w <= 0 or coded_h <= 0:
            raise CartoonizeError(f"{path}: the video stream has no picture size (corrupt header?)")
        up_w, up_h = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
        aspect = pixel_aspect(stream, rotation)
        if aspect and square_pixels:
            up_w, up_h = (round(up_w * aspect), up_h) if aspect > 1 else (up_w, round(up_h / aspect))
            aspect = None
        width, height = fit_within(up_w, up_h, max_side, even)
        coded = (height, width) if rotation in (90, 270) else (width, height)
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        rate = frame_rate(stream)
        estimate = stream.frames or (round(duration * float(rate)) if duration and rate else None)
        return VideoProbe(width, height, rotation, coded, estimate, duration, rate, stream.time_base, colour,
                          (coded_w, coded_h), stream.codec_context.pix_fmt, aspect, timeline_origin(container),
                          declared_duration(container, stream),
                          Fraction(stream.guessed_rate) if stream.guessed_rate else None,
                          stream_start(stream))  # fmt: skip
    finally:
        container.close()


class _Stop(Exception):
    """Raised inside a worker when another stage failed or the user interrupted."""


class _Pipe:
    """A bounded queue whose put/get give up when the pipeline is stopping. `waits` adds up, per
    thread name, the seconds spent blocked here: what a thread did not wait, it worked."""

    def __init__(self, size: int, stop: threading.Event, waits: dict[str, float] | None = None) -> None:
        self.q: queue.Queue = queue.Queue(size)
        self.stop = stop
        self.waits = waits if waits is not None else {}

    def _waited(self, since: float) -> None:
        name = threading.current_thread().name  # each thread adds to its own entry only
        self.waits[name] = self.waits.get(name, 0.0) + time.perf_counter() - since

    def put(self, item: object) -> None:
        since = time.perf_counter()
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                self._waited(since)
                return
            except queue.Full:
                pass
        raise _Stop

    def get(self) -> Any:
        since = time.perf_counter()
        while not self.stop.is_set():
            try:
                item = self.q.get(timeout=0.1)
                self._waited(since)
                return item
            except queue.Empty:
                pass
        raise _Stop


class _Worker(threading.Thread):
    def __init__(self, name: str, target: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self._stop_all = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except _Stop:
            pass
        except BaseException as exc:  # handed to the main thread
            self.error = exc
            self._stop_all.set()


def cartoonize_video(
    job: VideoJob,
    make_runner: Callable[[tuple[int, int]], Runner],
    on_progress: Callable[[int, int | None], None] | None = None,
    make_chain: Callable[[StageOptions], StageChain] = build_stages,
) -> VideoReport:
    """Cartoonize `job.input` into `job.output`. `make_runner((H, W))` gives the (unentered)
    runner for the frame size; `on_progress(frames_done, frames_expected)` reports progress;
    `make_chain` builds the frame stages from `job.stages`."""
    import av

    check_output(job.output, job.overwrite, (job.input,))
    check_codec(job.output, job.encoder.codec)
    container_name, default_codec = container_for(job.output)
    job = replace(job, encoder=encoder_for(job.encoder).for_codec(default_codec))
    # palette frames (GIF) have no chroma planes to halve: the source's own size, odd or not (padded
    # to even, a 95×63 GIF became 96×64 with its last row and column twice)
    even = job.encoder.pix_fmt != "pal8"
    info = probe(job.input, job.max_side, square_pixels=container_name in SQUARE_PIXELS, even=even)
    out_w, out_h = even_size(info.width, info.height) if even else (info.width, info.height)
    network = network_size(info.height, info.width, job.stages.infer_side)
    if network == (info.height, info.width):  # an --infer-side the frame is within: nothing to upsample
        job = replace(job, stages=replace(job.stages, infer_side=None))
    infer_side = job.stages.infer_side  # the network may run smaller; the chain upsamples back
    runner = make_runner(network)
    chain = make_chain(replace(job.stages, device=getattr(runner, "device", "cpu")))  # where the runner runs
    window = job.window
    codec = default_codec if job.encoder.codec == "auto" else job.encoder.codec
    colour = info.colour or default_colour(*info.coded_size)
    planes, not_planes = _plane_path(
        job, info, runner, chain, stored_colour(colour, container_name, codec, out_w, out_h)
    )
    on_device = planes is None and _keeps_on_device(job, runner, chain)
    # a batch's cartoons as numpy frames, or left on the runner's device for the stages there
    submit: Callable[[np.ndarray], Callable[[], Any]] = (
        runner.submit_on_device if on_device else runner.submit  # type: ignore[attr-defined]
    )
    if planes is not None:
        from cartoonize.media.yuv import frame_from_planes, frame_planes
        from cartoonize.stages.flow import luma_of_plane

        # the stages' source on this path: the decoder's luma, upright, for the flow (the RGB frame
        # is made on the device)
        luma_black, luma_span = planes.source.scales()[:2]
        submit_planes = planes.submit_on_device if chain else planes.submit
    expected = info.frames_estimate
    if job.max_frames is not None:
        expected = min(expected or job.max_frames, job.max_frames)

    stop = threading.Event()
    waits: dict[str, float] = {}  # thread name -> seconds blocked on the queues
    engine_thread = threading.current_thread().name  # the engine runs on the calling thread
    frames_q = _Pipe(job.queue_frames, stop, waits)
    mux_q = _Pipe(job.queue_frames + 64, stop, waits)  # audio packets run ahead of video frames
    staged_q = _Pipe(job.queue_frames, stop, waits)  # engine -> stages thread (only when a stage is on)
    notes: dict[int, str] = {}  # input stream index -> what became of that stream
    cut_short = False  # a transport stream that stops partway through a packet (said after the streams)
    last_pts: int | None = None
    started = time.perf_counter()

    with quick_handoffs(job.switch_interval), atomic_output(job.output, replace=job.overwrite) as tmp:
        source = _open_input(job.input)
        output = av.open(
            ffmpeg_path(tmp),
            "w",
            format=container_name,
            container_options=output_options(container_name, job.input),
        )
        try:
            vin = main_video(source)
            vin.thread_type = "AUTO"
            vout = open_video_encoder(
                output,
                job.encoder,
                default_codec,
                out_w,
                out_h,
                info.rate,
                output_time_base(container_name, info),
            )
            # HDR (HLG, PQ) is brought to SDR BT.709 as it is decoded, for the network (media/hdr)
            tone_map = hdr.ToneMap(colour.trc, *info.coded_size) if hdr.is_hdr(colour) else None
            out_colour = stored_colour(
                hdr.SDR if tone_map is not None else colour, container_name, codec, out_w, out_h
            )
            tag_encoder(vout, out_colour)  # the output says what it is, like the source (or explicitly)
            if info.pixel_aspect:  # shown as wide as the source is, not squeezed to its storage
                vout.codec_context.sample_aspect_ratio = info.pixel_aspect
            palettize = (
                Palettizer(out_w, out_h, info.time_base, info.rate) if job.encoder.pix_fmt == "pal8" else None
            )
            copies, reencode = (
                ({}, {})
                if window
                else map_other_streams(source, output, container_name, notes, silent_audio(job.input))
            )
            if window is None:  # (a segment's piece: the join carries them once)
                preview_end = Fraction(job.max_frames) / info.rate if job.max_frames and info.rate else None
                carry_metadata(source, output, info.origin, preview_end)  # title, date, place; chapters
            carried: set[int] = set()  # indexes of the input streams that had packets
            cut = EditListCut(container_name)

            damaged = [0]  # video packets skipped as damaged (written by the decode thread)
            deinterlacer = Deinterlacer(vin.time_base, enabled=job.deinterlace)
            interlaced = [0]  # of the frames taken, those that came in interlaced
            ends: list[int | None] = [None]  # where the last frame taken ends, in the stream's ticks
            captioned = [
                False
            ]  # closed captions inside the video stream, which cannot follow (media.captions)

            def decode() -> None:
                k = info.rotation // 90
                wanted = [vin, *copies]
                next_pts, count, ended = 0, 0, False
                step = frame_period(info)
                reader = converter()  # this thread's swscale context, kept from frame to frame
                cut = (
                    PreviewCut(mux_q.put, info.origin)
                    if job.max_frames is not None and window is None
                    else None
                )

                def take(frame) -> bool:  # noqa: ANN001 - an av.VideoFrame; False: past the window
                    nonlocal count, next_pts
                    if job.max_frames is not None and count >= job.max_frames:
                        return True
                    if window and frame.pts is not None:
                        if window.ended(frame.pts):
                            return False
                        if window.skips(frame.pts):
                            return True
                    count += 1
                    if not captioned[0] and carries_captions(frame):  # one look a frame until found
                        captioned[0] = True
                    if deinterlacer.woven(frame) and (
                        window is None or frame.pts is None or window.keeps(frame.pts)
                    ):
                        interlaced[0] += 1  # (a segment's pre-roll is the segment before's to count)
                    pts = frame.pts if frame.pts is not None else next_pts
                    next_pts = pts + step
                    ends[0] = max(
                        ends[0] or pts, pts + (frame.duration or step)
                    )  # held frames: their own time
                    if planes is not None:
                        yuv = frame_planes(frame, info.source_size, using=reader)
                        luma = None
                        if chain:
                            luma = luma_of_plane(yuv[0], luma_black, luma_span, planes.source.bits)
                            luma = np.ascontiguousarray(np.rot90(luma, k)) if k else luma
                            chain.ahead(luma)
                        frames_q.put((pts, luma, yuv))  # (pts, the stages' source, the engine's)
                    else:
                        if tone_map is not None:
                            rgb = tone_map(frame)
                        else:
                            rgb = to_rgb(frame, colour, *info.coded_size, using=reader)
                        if k:
                            rgb = np.ascontiguousarray(np.rot90(rgb, k))
                        if chain:
                            chain.ahead(rgb)  # stages may start on the source now (the flow)
                        frames_q.put((pts, rgb, network_frame(rgb, infer_side)))
                    if cut is not None:
                        cut.shown_to(next_pts * info.time_base)
                    return True

                try:
                    if window and window.seek is not None:
                        source.seek(window.seek, stream=vin)  # lands on the keyframe at or before
                    for packet in source.demux(wanted):
                        full = job.max_frames is not None and count >= job.max_frames
                        if ended or (full and (cut is None or cut.past(packet))):
                            break
                        if packet.stream is vin:
                            if full:
                                continue
                            try:
                                decoded = packet.decode()
                            except av.InvalidDataError:
                                # a damaged packet (a bad sector, a glitch in a recording): its
                                # frames are lost and the rest decode, as FFmpeg's players go on.
                                # Counted where its frame would be written (not in a segment's
                                # pre-roll, nor past its end: the next segment counts it)
                                if window is None or packet.pts is None or window.keeps(packet.pts):
                                    damaged[0] += 1
                                continue
                            for frame in (f for d in decoded for f in deinterlacer.push(d)):
                                if not take(frame):
                                    ended = True  # frames come out in presentation order
                                    break
                        elif packet.dts is not None:  # demux ends with empty flush packets
                            cut.hold(packet) if cut is not None else mux_q.put(
                                from_origin(packet, info.origin)
                            )
                    if not ended:
                        for frame in deinterlacer.flush():  # the frames bwdif held to look ahead
                            if not take(frame):
                                break
                    if cut is not None and count < (job.max_frames or 0):
                        cut.release_all()  # the video ended first: its sound goes on, as in a whole run
                except av.FFmpegError as exc:
                    raise CartoonizeError(f"{job.input} is corrupt or truncated ({_reason(exc)})") from None
                frames_q.put(_END)

            shift = round(info.origin / info.time_base)  # the video's ticks before the output's 0

            held = HeldFrames(vout, output.mux, info.time_base, container_name)  # each frame's own duration

            def mux() -> None:
                writer = converter()
                while (item := mux_q.get()) is not _END:
                    if isinstance(item, tuple):
                        pts, rgb = item
                        if isinstance(rgb, tuple):  # planes from the GPU frame path
                            frame = frame_from_planes(*rgb)
                            for name, value in colour_tags(out_colour).items():
                                setattr(frame, name, value)
                        elif palettize is not None:  # GIF: the frame's own 256 colours
                            for indexed in palettize(rgb, pts):
                                start, indexed.pts = indexed.pts, indexed.pts - shift
                                held.put(indexed, start)
                            continue
                        else:
                            frame = to_yuv(pad_to_even(rgb), out_colour, job.encoder.pix_fmt, writer)
                        frame.pts, frame.time_base = pts - shift, info.time_base
                        held.put(frame, pts)
                        continue
                    carried.add(item.stream.index)
                    carry_packet(item, output, copies, reencode, cut)
                flush_reencoded(output, reencode)
                for indexed in palettize.flush() if palettize is not None else ():
                    start, indexed.pts = indexed.pts, indexed.pts - shift
                    held.put(indexed, start)
                # the last frame, as long as the source's; a segment's lasts until the next
                # segment's first (the decoder's duration of a variable-rate frame is a guess)
                held.end(
                    window.end if window is not None and window.end is not None else last_end(info, ends[0])
                )

            def run_stages() -> None:
                while (item := staged_q.get()) is not _END:
                    pts, rgb, cartoon, keep = item
                    at = float(pts * info.time_base)
                    if planes is not None:  # the stages on the device give the encoder's planes
                        cartoon = chain.planes(rgb, cartoon, at, planes.target)
                    else:
                        cartoon = chain(rgb, cartoon, at)
                    if keep:
                        mux_q.put((pts, cartoon))
                mux_q.put(_END)

            workers = [_Worker("decode", decode, stop), _Worker("mux", mux, stop)]
            if chain:
                workers.append(_Worker("stages", run_stages, stop))
            to_mux = staged_q if chain else mux_q
            for worker in workers:
                worker.start()
            done, engine_seconds, load_seconds = 0, 0.0, 0.0

            def collect(batch: list, cartoons_of: Callable[[], Any]) -> None:
                nonlocal done, engine_seconds, last_pts
                t0 = time.perf_counter()
                cartoons: Any = cartoons_of()
                engine_seconds += time.perf_counter() - t0
                if planes is not None and not chain:  # cartoons: (Y, U, V) batches
                    cartoons = [tuple(p[i] for p in cartoons) for i in range(len(batch))]
                for (pts, rgb, _), cartoon in zip(batch, cartoons, strict=True):
                    # a pre-roll frame (segments) warms the stages; the previous segment keeps it
                    keep = not window or window.keeps(pts)
                    if keep:
                        if last_pts is not None and pts <= last_pts:
                            pts = last_pts + 1  # encoders need strictly increasing timestamps
                        last_pts = pts
                    if chain:
                        staged_q.put((pts, rgb, cartoon, keep))
                    elif keep:
                        mux_q.put((pts, cartoon))
                done += len(batch)
                if on_progress:
                    on_progress(done, expected)

            try:
                loading = time.perf_counter()
                with runner:
                    load_seconds = time.perf_counter() - loading
                    # one batch in flight: the next is handed to the engine before this one is
                    # collected, so a GPU has queued work while the host stacks, copies and waits
                    in_flight: tuple[list, Callable[[], np.ndarray]] | None = None
                    ended = False
                    while not ended:
                        batch, ended = _next_batch(frames_q, job.batch)
                        started_now = None
                        if batch:
                            t0 = time.perf_counter()
                            if planes is not None:
                                ys, us, vs = (  # one frame: views, as below
                                    batch[0][2][i][None]
                                    if len(batch) == 1
                                    else np.stack([f[i] for _, _, f in batch])
                                    for i in range(3)
                                )
                                started_now = (batch, submit_planes(ys, us, vs))
                            else:
                                # one frame: a view, not a copy (np.stack copies, ~1 ms a 1080p frame)
                                smalls = [small for _, _, small in batch]
                                stacked = smalls[0][None] if len(smalls) == 1 else np.stack(smalls)
                                started_now = (batch, submit(stacked))
                            engine_seconds += time.perf_counter() - t0
                        if in_flight is not None:
                            collect(*in_flight)
                        in_flight = started_now
                    if in_flight is not None:
                        collect(*in_flight)
                to_mux.put(_END)
            except _Stop:
                pass
            except BaseException:
                stop.set()
                raise
            finally:
                for worker in workers:
                    worker.join(timeout=30 if not stop.is_set() else 5)
            for worker in workers:
                if worker.error is not None:
                    raise _written_failure(worker, job.output)
            if done == 0:
                if damaged[0]:
                    raise CartoonizeError(
                        f"{job.input} is corrupt or truncated (no video frame could be decoded; "
                        f"{damaged[0]} damaged packets)"
                    )
                raise CartoonizeError(f"{job.input}: no video frame could be decoded")
            left_out = held.left_out + (palettize.left_out if palettize is not None else 0)
            if left_out:
                notes[vin.index] = left_out_note(left_out, done, container_name)
            for stream in copies if job.max_frames is None else ():  # a preview stops reading early
                if stream.index not in carried:  # declared but empty: say so, not "copied"
                    notes[stream.index] = empty_note(stream)
            if job.max_frames is None and window is None:
                _check_complete(job.input, info, ends[0])
                cut_short = ends_mid_packet(source, job.input)
        finally:
            stop.set()
            output.close()
            source.close()
    return VideoReport(
        frames=done, width=out_w, height=out_h, seconds=time.perf_counter() - started,
        engine_seconds=engine_seconds, engine=runner.describe(), video_codec=vout.codec_context.name,
        stages=chain.describe(),
        streams=[*notes.values(), *([CUT_MID_PACKET] if cut_short else [])], colour=out_colour.describe(), hdr=hdr.describe(colour) if tone_map else "", frame_path="yuv" if planes is not None else "device" if on_device else "rgb",
        load_seconds=load_seconds, not_planes=not_planes, damaged=damaged[0], left_out=held.left_out + (palettize.left_out if palettize else 0), first_written=palettize.first_kept if palettize else None, interlaced=interlaced[0], deinterlaced=job.deinterlace, captions=captioned[0], waits={("engine" if k == engine_thread else k): round(v, 3) for k, v in waits.items()},
    )  # fmt: skip


def output_options(container_name: str, source: Path) -> dict[str, str]:
    """The output's muxer options (media.files.muxer_options): a GIF of a GIF plays as many times
    as the source does (once, three times, for ever); of anything else, for ever (the muxer's own)."""
    options = muxer_options(container_name)
    if container_name == "gif" and (loop := loop_option(source)) is not None:
        options["loop"] = loop
    return options


def encoder_for(settings: EncoderSettings) -> EncoderSettings:
    """`settings` with a codec name outside ENCODERS (`--codec av1`) replaced by the encoder FFmpeg
    picks for it (libsvtav1), which gets its own options (media.files._encoder_options) as a name
    in ENCODERS does: under the codec's name, `--crf` was ignored and SVT-AV1 logged 20 lines."""
    import av

    if settings.codec == "auto" or settings.codec in ENCODERS:
        return settings
    try:
        return replace(settings, codec=av.Codec(settings.codec, "w").name)
    except ValueError:  # no such encoder: `check_codec` has said so already
        return settings


def output_time_base(container_name: str, info: VideoProbe) -> Fraction:
    """The output video's time base: the source's, whose timestamps are copied; in AVI, which
    stores one frame per tick of it (a 1/12800 time base made a 25 fps clip a 600 fps one with
    empty frames between), one frame period, each frame at its nearest tick. Where the rate varies,
    the period of its steps (the average's would put two frames on one tick, and the encoder
    refused the second), unless that is more than twice the average (FFmpeg's guess is then its
    time base, not a frame rate); frames that still meet on a tick are left out (media.held). Its
    denominator stays within 16 bits, as MPEG-4 Part 2 (AVI's encoder) needs: a phone's variable
    rate averaged 750000/71393 fps, and the encoder refused to open."""
    if container_name == "avi" and info.rate:
        rate = info.rate
        if info.step_rate and rate < info.step_rate <= 2 * rate:
            rate = info.step_rate
        return (1 / Fraction(rate)).limit_denominator(MPEG4_TIME_BASE_DENOMINATOR)
    return info.time_base


MPEG4_TIME_BASE_DENOMINATOR = 65535  # vop_time_increment_resolution is a 16-bit field


def frame_period(info: VideoProbe) -> int:
    """Ticks of the stream's time base from one frame to the next, for frames the decoder gives
    no timestamp (a raw H.264 or HEVC stream has none): one period at the stream's rate, which for
    a raw stream is FFmpeg's own guess (25 fps), as the ffmpeg tool assumes. Without a rate, one tick."""
    if info.rate and info.time_base:
        return max(1, round(1 / (info.rate * info.time_base)))
    return 1


def _plane_path(
    job: VideoJob, info: VideoProbe, runner: Runner, chain: StageChain, target: Colour
) -> tuple[Any, str]:
    """The runner's YUV frame path for this job, or None where FFmpeg converts on the CPU; and,
    where `--yuv-frames` was asked for and cannot be, why (for the summary). With frame stages,
    only where they all run on the runner's device and take its frames there. `target`: the
    colour the encoder's planes are in (`stored_colour`)."""
    if not job.yuv_frames:
        return None, ""
    from cartoonize.runners.base import TensorRunner, YuvFrames

    if not isinstance(runner, TensorRunner):
        return None, f"the {runner.describe()} engine takes RGB frames from the host"
    if job.encoder.pix_fmt != "yuv420p":
        return None, f"the encoder takes {job.encoder.pix_fmt}, not yuv420p"
    if info.colour is None:
        return None, "the source's colour matrix could not be read"
    if hdr.is_hdr(info.colour):
        return None, "an HDR source is tone-mapped to SDR as it is decoded, on the CPU"
    source_size, fmt = info.source_size, info.pix_fmt
    from cartoonize.media.files import FULL
    from cartoonize.media.yuv import PLANE_FORMATS, YuvSpec

    if fmt not in PLANE_FORMATS:
        return None, f"the decoder gives {fmt} frames, not 4:2:0 planes"
    if chain and not _keeps_on_device(job, runner, chain):
        where = (
            "--infer-side shrinks the frames for the network on the host"
            if job.stages.infer_side
            else "the frame stages run on the host"
        )
        return None, where
    source = YuvSpec(info.colour.matrix, info.colour.range == FULL, PLANE_FORMATS[fmt])
    size = info.coded_size if info.coded_size != source_size else None  # --max-side, scaled on the device
    return YuvFrames(runner, source, YuvSpec(target.matrix, target.range == FULL, 8), info.rotation, size), ""


def _keeps_on_device(job: VideoJob, runner: Runner, chain: StageChain) -> bool:
    """Whether the engine's frames and cartoons go to the stages as `DeviceFrame`s, left on the
    runner's GPU: a TensorRunner whose frame stages run on its device and take them, at the
    network's full size (an `--infer-side` cartoon is upsampled on the CPU first)."""
    from cartoonize.runners.base import TensorRunner

    return (
        job.keep_on_device
        and not job.stages.infer_side
        and isinstance(runner, TensorRunner)
        and chain.takes_device_frames(runner.device)
    )


def _next_batch(frames_q: _Pipe, size: int) -> tuple[list, bool]:
    """Up to `size` (pts, frame, network frame) items, and whether the stream ended."""
    batch: list = []
    while len(batch) < size:
        item = frames_q.get()
        if item is _END:
            return batch, True
        batch.append(item)
    return batch, False


def empty_note(stream) -> str:  # noqa: ANN001
    return f"{stream.type} #{stream.index} {codec_name(stream)}: no packets in the input, nothing to carry"


def map_other_streams(source, output, container_name: str, notes: dict[int, str],  # noqa: ANN001
                      silent: frozenset[int] = frozenset()):  # fmt: skip
    """Copy or re-encode audio, copy subtitles where the container takes them; note each choice.
    `silent`: the audio streams that hold no packets (`silent_audio`), left out."""

    copies, reencode = {}, {}
    timecode = source_timecode(source)
    if timecode and container_name in TIMECODE_CONTAINERS:
        # an editor lines the output up with the source by it; the first frame is the source's first
        output.streams.video[0].metadata["timecode"] = timecode
    carry_labels(main_video(source), output.streams.video[0])
    for stream in source.streams:
        if stream.type == "audio":
            plan = audio_plan(container_name, stream)
            name = codec_name(stream)
            if stream.index in silent:  # declared alone, it is an empty track (.mkv, .webm)
                notes[stream.index] = f"audio #{stream.index} {name}: left out (no packets in the input)"
                continue
            if not plan:
                notes[stream.index] = (
                    f"audio #{stream.index} {name}: left out ({container_name} holds no audio)"
                )
                continue
            why = f"{container_name} cannot store {name}"
            if plan == "copy":
                copied, refusal = _copied(output, stream, container_name)
                if copied is not None:
                    copies[stream] = copied
                    notes[stream.index] = f"audio #{stream.index} {name}: copied"
                    continue
                plan = AUDIO_REENCODE[container_name]  # FFmpeg's muxer refuses it after all
                if "does not support" not in refusal:  # this stream of the codec, not the codec
                    why = f"{container_name} cannot store it: {refusal}"
            ctx = stream.codec_context
            encoder = output.add_stream(plan, rate=encodable_rate(plan, ctx.sample_rate or 48000))
            encoder.layout = encodable_layout(plan, encoder.rate, ctx.layout)
            # PyAV's audio encoder converts what it is given to its own sample format, layout,
            # rate and frame size (its own AudioResampler), flushing that too at the end
            reencode[stream] = encoder
            copies[stream] = encoder
            notes[stream.index] = f"audio #{stream.index} {name}: re-encoded to {plan} ({why})"
            if ctx.sample_rate and encoder.rate != ctx.sample_rate:
                notes[stream.index] += f", resampled {ctx.sample_rate} -> {encoder.rate} Hz"
            if ctx.layout and encoder.layout.nb_channels < ctx.layout.nb_channels:
                notes[stream.index] += (
                    f", {ctx.layout.nb_channels} channels downmixed to {encoder.layout.name}"
                )
        elif stream.type == "subtitle":
            name = codec_name(stream)
            text = SUBTITLE_TEXT.get(container_name)
            copied = (
                _copied(output, stream, container_name)[0]
                if subtitle_copyable(container_name, stream)
                else None
            )
            if copied is not None:
                copies[stream] = copied
                notes[stream.index] = f"subtitle #{stream.index} {name}: copied"
            elif text and name in TEXT_SUBTITLES:
                copies[stream] = reencode[stream] = subtitle_encoder(stream, output, text)
                notes[stream.index] = (
                    f"subtitle #{stream.index} {name}: converted to {text} ({container_name} cannot store {name})"
                )
            else:
                hint = "" if container_name == "matroska" else "; use .mkv"
                notes[stream.index] = (
                    f"subtitle #{stream.index} {name}: dropped ({container_name} cannot store it{hint})"
                )
        elif stream.type == "attachment" and container_name == "matroska":
            # a file carried in the container (an ASS subtitle's fonts): Matroska keeps it as it is
            output.add_attachment(stream.name, stream.mimetype, stream.data)
            notes[stream.index] = f"attachment #{stream.index} {stream.name}: copied"
        elif stream.type == "data" and timecode and timecode in stream.metadata.values():
            notes[stream.index] = f"data #{stream.index} (timecode {timecode}): " + (
                "kept, as the video's timecode" if container_name in TIMECODE_CONTAINERS else "left out"
            )
        elif stream.index != main_video(source).index:
            notes[stream.index] = left_out_stream(stream, container_name)
    for stream, out in copies.items():
        carry_labels(stream, out)
        if container_name == "mov" and stream.type == "subtitle" and int(stream.disposition) & FORCED:
            notes[stream.index] += (
                ", not marked forced (QuickTime's muxer writes no such flag; .mp4 and .mkv do)"
            )
    return copies, reencode


FORCED = 0x40  # AV_DISPOSITION_FORCED


def _copied(output, stream, container_name: str):  # noqa: ANN001, ANN202 - an output container, an input stream
    """An output stream copying `stream` as it is, or None where FFmpeg's muxer cannot store it,
    and the muxer's reason: its codec (Matroska: QuickTime's mov_text subtitles and its IMA ADPCM,
    A-law or µ-law audio, an IP camera's), or this stream of it (MP4: MP3 below 16 kHz), which the
    muxer says only when it writes the header (`muxer_refusal`)."""
    refusal = muxer_refusal(container_name, stream)
    if refusal is not None:
        return None, refusal
    try:
        return output.add_stream_from_template(stream), ""
    except ValueError as exc:
        return None, str(exc)


def carry_labels(stream, out) -> None:  # noqa: ANN001 - an input and an output av stream
    """What a player shows and picks a track by: its language, its title ("Director's
    commentary"), and whether it is the default one or forced (a forced subtitle translates a
    sign or a line in another language, shown even with subtitles off)."""
    language = stream.metadata.get("language")
    if language and language != "und":
        out.metadata["language"] = language
    title = stream.metadata.get("title") or stream.metadata.get("name")  # (MP4 reads it as name)
    if title and stream.type != "video":  # the video's title would name the source's encode
        out.metadata["title"] = title
    out.disposition = stream.disposition


TIMECODE_CONTAINERS = {"mov", "mp4", "matroska"}  # their muxers write a video stream's timecode


def source_timecode(source) -> str | None:  # noqa: ANN001 - an input av container
    """The source's start timecode (HH:MM:SS:FF): on its video stream, a timecode track or the
    file itself, as cameras and editors write it."""
    places = [main_video(source), *(s for s in source.streams if s.type == "data"), source]
    found = (value for p in places for key, value in p.metadata.items() if key.lower() == "timecode")
    return next(found, None)  # (Matroska's tag is TIMECODE)


def left_out_stream(stream, container_name: str) -> str:  # noqa: ANN001 - an av.stream.Stream
    """The note for a stream the output does not carry: another video, a cover picture, a data
    track (a timecode, a camera's telemetry), an attached file outside Matroska."""
    if stream.type == "attachment":
        return f"attachment #{stream.index} {stream.name}: left out ({container_name} holds no attached files; use .mkv)"
    if stream.type == "video":
        why = "a cover picture" if int(stream.disposition) & ATTACHED_PIC else "one video is cartoonized"
        return f"video #{stream.index} {codec_name(stream)}: left out ({why})"
    return f"{stream.type} #{stream.index}: left out"


def subtitle_encoder(stream, output, codec: str):  # noqa: ANN001, ANN201 - av streams
    """An output stream of the text subtitle `codec` for the source's subtitle `stream`. Its
    header (the styles, in ASS form) is the decoder's, which exists once the decoder is open."""
    stream.codec_context.open(strict=False)
    encoder = output.add_stream(codec)
    encoder.codec_context.subtitle_header = stream.codec_context.subtitle_header
    encoder.time_base = stream.time_base
    return encoder


def carry_packet(packet, output, copies: dict, reencode: dict, cut: EditListCut | None = None) -> None:  # noqa: ANN001
    """Write one audio or subtitle packet of the source: as it is (less what `cut` leaves out),
    or re-encoded (the decoder drops what the source's edit list cuts)."""
    if packet.stream in reencode and packet.stream.type == "subtitle":
        cue = packet.stream.codec_context.decode2(packet)
        if cue is not None:  # one cue in, one cue out, at the source's time and for as long
            converted = reencode[packet.stream].codec_context.encode_subtitle(cue)
            converted.pts, converted.dts, converted.duration = packet.pts, packet.pts, packet.duration
            converted.time_base, converted.stream = packet.time_base, reencode[packet.stream]
            output.mux(converted)
    elif packet.stream in reencode:
        encoder = reencode[packet.stream]
        for decoded in packet.decode():
            output.mux(encoder.encode(decoded))
    else:
        for kept in cut.packets(packet) if cut is not None else [packet]:
            kept.stream = copies[kept.stream]
            output.mux(kept)


EDIT_LIST_CONTAINERS = {"mp4", "mov"}  # their muxers write edit lists


class EditListCut:
    """The copied packets a source's edit list cuts (the demuxer flags them to be discarded), for
    an output that has no edit lists (Matroska, WebM, AVI): there they would be played, and the
    muxer, which starts the file at its first timestamp, moved every stream by them. An MP4 whose
    sound began 0.5 s before its picture gave an .mkv with that half second of sound over no
    picture, the picture 0.52 s late. The last cut packet before a stream's first kept one goes
    with it, as its decoder's pre-roll (AAC's priming): the shift is at most that one packet."""

    def __init__(self, container_name: str) -> None:
        self.active = container_name not in EDIT_LIST_CONTAINERS
        self._last: dict = {}  # input stream -> its latest cut packet, until its first kept one

    def packets(self, packet) -> list:  # noqa: ANN001 - an av.Packet of a copied stream
        if not self.active:
            return [packet]
        if packet.is_discard:
            self._last[packet.stream] = packet
            return []
        earlier = self._last.pop(packet.stream, None)
        return [packet] if earlier is None else [earlier, packet]


def flush_reencoded(output, reencode: dict) -> None:  # noqa: ANN001
    for encoder in reencode.values():
        if encoder.type != "subtitle":  # a subtitle encoder holds nothing back
            output.mux(encoder.encode(None))


def last_end(info: VideoProbe, end: int | None) -> int | None:
    """Where the last frame taken ends (`end`, the stream's ticks), no later than the video's own
    declared end (its own start plus its declared duration): a last packet's duration that runs
    past it (a muxer's guess) is not held. (The end was the file's start plus the duration, and in a
    transport stream, whose sound starts first, it cut the last frame short by the difference.)"""
    if end is None or info.declared is None:
        return end
    return min(end, math.ceil((Fraction(info.declared) + info.start) / info.time_base))


# a transport stream cut short: it has no declared duration, so what is missing cannot be told
CUT_MID_PACKET = (
    "input: truncated (it stops partway through a transport stream packet; what came after is missing)"
)


def _check_complete(path: Path, info: VideoProbe, end: int | None) -> None:
    """A file cut short often decodes without an error; compare where the last frame ends (`end`,
    in the stream's ticks: a slideshow's last picture, a screen recording's last held frame last
    seconds) with the video's duration as the file declares it."""
    if info.declared is None or end is None or info.declared < 1.0:
        return
    decoded = float(end * info.time_base - info.start)
    if decoded < 0.9 * info.declared - 0.5:
        raise CartoonizeError(
            f"{path} is truncated: it declares {info.declared:.1f} s of video but it stops at {decoded:.1f} s"
        )
