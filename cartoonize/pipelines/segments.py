"""One long video in keyframe-aligned segments, cartoonized in parallel and joined without
re-encoding.

    plan:  demux the video packets (no decoding): their timestamps and which are keyframes;
           cut at the keyframes nearest to N equal parts of the duration
    run:   each segment is one `cartoonize_video` call with a `Window`: it seeks to the keyframe
           before its start, runs `preroll` frames through the engine and the frame stages and
           drops them (temporal stages start warm), then encodes the frames of [start, end)
    join:  remux the segments' video packets, in order, into one output; audio and subtitles are
           carried once from the source, exactly as a single pass carries them

The frames and timestamps handed to the encoders are a single pass's; what differs is the
encoder's own choices, since each segment begins with a keyframe (with a lossless codec the
decoded output is identical).
"""

from __future__ import annotations

import bisect
import heapq
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from cartoonize.errors import CartoonizeError
from cartoonize.media.clock import from_origin, timeline_origin
from cartoonize.media.files import (
    container_for,
    ends_mid_packet,
    ffmpeg_path,
    frame_rate,
    hidden_sibling,
    main_video,
    process_tag,
    silent_audio,
    sweep_leftovers,
)
from cartoonize.media.gif import frame_blocks
from cartoonize.media.metadata import carry as carry_metadata
from cartoonize.pipelines.video import (
    CUT_MID_PACKET,
    EditListCut,
    Window,
    carry_packet,
    empty_note,
    flush_reencoded,
    map_other_streams,
    output_options,
)
from cartoonize.stages.exposure import WINDOW_FRAMES

# frames of pre-roll when the chain has temporal stages: enough for the exposure stage's running
# average to be rebuilt exactly (about 3 s at 30 fps); the stabilization's blend settles sooner
TEMPORAL_PREROLL = WINDOW_FRAMES - 1


@dataclass(frozen=True)
class Segment:
    window: Window
    frames: int  # frames it encodes
    preroll: int  # frames it runs through the engine first and drops


@dataclass(frozen=True)
class SegmentPlan:
    segments: list[Segment]
    frames: int  # all the video's frames
    note: str  # how it was cut, for the summary


def keyframe_index(path: Path) -> tuple[list[int], list[int]]:
    """Presentation timestamps of every video frame, sorted, and of the keyframes, from the
    packets alone (no decoding)."""
    import av

    try:
        with av.open(ffmpeg_path(path)) as container:
            stream = main_video(container)
            if stream is None:
                raise CartoonizeError(f"{path} has no video stream")
            frames, keys = [], []
            for packet in container.demux(stream):
                if packet.pts is None:  # demux ends with an empty flush packet
                    continue
                frames.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
    except av.FFmpegError as exc:
        raise CartoonizeError(f"{path} is not a readable video ({exc})") from None
    frames.sort()
    keys.sort()
    if not frames:
        raise CartoonizeError(f"{path}: no video frame to split")
    return frames, keys


def _cuts(frames: list[int], usable: list[int], wanted: int) -> list[int]:
    """`wanted` of the keyframe timestamps `usable` (after the first frame, sorted) where segments
    start, each the nearest to its share of the video's span that leaves enough keyframes after it
    for the cuts still to come; all of them where there are no more than `wanted`."""
    if wanted >= len(usable):
        return list(usable)
    span, cuts, low = frames[-1] - frames[0], [], 0
    for part in range(1, wanted + 1):
        target = frames[0] + span * part / (wanted + 1)
        high = len(usable) - 1 - (wanted - part)  # the last this cut may take
        at = min(max(bisect.bisect_left(usable, target, low, high + 1), low), high)
        best = min(sorted({max(at - 1, low), at}), key=lambda i: abs(usable[i] - target))
        cuts.append(usable[best])
        low = best + 1
    return cuts


def plan_segments(path: Path, count: int | None = None, seconds: float | None = None,
                  preroll: int = 0) -> SegmentPlan:  # fmt: skip
    """Cut `path` into `count` segments (or segments of about `seconds`) at keyframes. Fewer come
    out where the video has fewer keyframes than that."""
    import av

    frames, keys = keyframe_index(path)
    with av.open(ffmpeg_path(path)) as container:
        time_base = main_video(container).time_base or Fraction(1, 90000)  # demuxers set one
    span = frames[-1] - frames[0]
    if count is None:
        if not seconds or seconds <= 0:
            raise CartoonizeError("give a number of segments or a segment length in seconds")
        count = max(1, math.ceil(float(span * time_base) / seconds))
    bounds = [None, *_cuts(frames, [k for k in keys if k > frames[0]], count - 1), None]
    segments = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        first = 0 if start is None else bisect.bisect_left(frames, start)
        stop = len(frames) if end is None else bisect.bisect_left(frames, end)
        warm = min(preroll, first)
        window = Window(start=start, end=end)
        if start is not None:
            preroll_pts = frames[first - warm]
            # decode from the keyframe before this segment's own: an open GOP's leading frames
            # need the one before, and the pre-roll frames may lie there too
            seek = keys[max(0, bisect.bisect_right(keys, min(preroll_pts, start - 1)) - 1)]
            window = Window(seek=seek, preroll=preroll_pts, start=start, end=end)
        segments.append(Segment(window, stop - first, warm))
    n, k = len(segments), len(keys)
    note = f"{n} segment{'s' if n != 1 else ''} at keyframes"
    if n < count:  # every keyframe after the first frame starts one
        keyframes = f"{k} keyframes allow" if k != 1 else "1 keyframe allows"
        note += f" (asked for {count}; the video's {keyframes} {n})"
    return SegmentPlan(segments, len(frames), note)


def parts_folder(output: Path, pid: int | None = None) -> Path:
    """The hidden folder beside `output` where process `pid` (default: this one) of this machine
    writes its segments of it. The machine and the process name it (`process_tag`), so a run can
    tell a folder whose run has ended from one still in use, also in a folder several machines share."""
    return hidden_sibling(output, f"{output.suffix}.cartoonize-{process_tag(pid)}.segments")


def make_parts_folder(output: Path) -> Path:
    """This process's `parts_folder` of `output`, made empty. Those that killed runs on this machine
    left behind are removed first (`sweep_leftovers`): a run killed with SIGKILL (or a power cut)
    cannot remove its own, and the next run's has another name. A folder of a run still going (the
    same output in another terminal) is left alone."""
    ours = parts_folder(output)
    sweep_leftovers(output.parent)
    shutil.rmtree(ours, ignore_errors=True)  # (a process id an ended run had)
    ours.mkdir()
    return ours


def _video_packets(
    parts: list[Path], starts: list[int | None], source_tb: Fraction, origin: Fraction
) -> Iterator:
    """Every video packet of the segment files, in order, on the source's timeline less `origin`
    seconds (as a single pass writes it). A container that stores a late start as an edit list in
    its coarse movie timescale (mp4, mov) reads back a little off; each segment begins with the
    keyframe at its planned start (or, in a GIF, the first frame it kept: `starts`), which puts it
    back."""
    import av

    for part, start in zip(parts, starts, strict=True):
        with av.open(ffmpeg_path(part)) as container:
            stream = container.streams.video[0]
            part_tb = stream.time_base or source_tb
            shift: int | None = None
            for packet in container.demux(stream):
                if not packet.size or packet.pts is None:
                    continue
                if shift is None:
                    shift = 0 if start is None else round((start * source_tb - origin) / part_tb) - packet.pts
                if shift:
                    packet.pts += shift
                    if packet.dts is not None:
                        packet.dts += shift
                yield packet


def _gif_frame(packet, header: bool):  # noqa: ANN001, ANN201 - an av.Packet
    """A GIF frame of a segment file without its file's trailer, and its header unless `header`."""
    import av

    body = frame_blocks(bytes(packet), header)
    if len(body) == packet.size:
        return packet
    frame = av.Packet(body)
    frame.pts, frame.dts, frame.time_base = packet.pts, packet.dts, packet.time_base
    frame.duration, frame.is_keyframe = packet.duration, packet.is_keyframe
    return frame


def _when(packet) -> float:  # noqa: ANN001
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float((stamp or 0) * packet.time_base)


def join_segments(
    source: Path,
    parts: list[Path],
    plan: SegmentPlan,
    output: Path,
    damaged: int = 0,
    left_out: int = 0,
    firsts: list[int | None] | None = None,
) -> list[str]:
    """Remux the video of `parts` (the plan's segment files, in order) into `output`, with the
    source's audio and subtitles carried as a single pass carries them. Returns the notes on
    those streams. `damaged`: the video packets the segments skipped as damaged, each a frame
    fewer than the source holds; `left_out`: the frames the segments chose not to write (a GIF's
    frames too close to show); `firsts`: each segment's first frame written, where it is not the
    one at its planned start (a GIF's segment may leave that one out).

    Decode timestamps: each segment's encoder starts its own a few frames before its first
    picture, which can reach back over the end of the previous segment; such a timestamp is
    raised to one tick after the previous packet's (never past its presentation time, which stays
    exactly the single pass's)."""
    import av

    container_name, _ = container_for(output)
    notes: dict[int, str] = {}
    cut_short = False  # a transport stream that stops partway through a packet (said after the streams)
    carried: set[int] = set()
    try:
        with av.open(ffmpeg_path(source)) as src, av.open(ffmpeg_path(parts[0])) as first, \
                av.open(ffmpeg_path(output), "w", format=container_name,
                        container_options=output_options(container_name, source)) as out:  # fmt: skip
            template = first.streams.video[0]
            vout = out.add_stream_from_template(template)
            vout.time_base = template.time_base
            vout.codec_tag = template.codec_tag  # as the segments were written (HEVC's hvc1; 0: the muxer's)
            if rate := frame_rate(main_video(src)):  # a timecode track counts frames at this rate
                vout.codec_context.framerate = rate
            copies, reencode = map_other_streams(src, out, container_name, notes, silent_audio(source))
            cut = EditListCut(container_name)
            origin = timeline_origin(src)
            carry_metadata(src, out, origin)  # the source's title, date, place and chapters, once
            others = (
                (from_origin(p, origin) for p in src.demux(list(copies)) if p.dts is not None)
                if copies
                else iter(())
            )
            starts = [
                first if first is not None else segment.window.start
                for segment, first in zip(plan.segments, firsts or [None] * len(parts), strict=True)
            ]
            video = _video_packets(parts, starts, main_video(src).time_base or Fraction(1, 90000), origin)
            written, last_dts = 0, None
            # one pass over both, by time: the muxer interleaves what it is given in order
            for packet in heapq.merge(video, others, key=_when):
                if packet.stream.type == "video":
                    if packet.dts is None:  # Matroska stores no decode times: any rising ones up to pts do
                        packet.dts = packet.pts if last_dts is None else min(last_dts + 1, packet.pts)
                    if last_dts is not None and packet.dts <= last_dts:
                        packet.dts = last_dts + 1
                        if packet.pts is not None and packet.dts > packet.pts:
                            raise CartoonizeError(f"segments do not join at {_when(packet):.3f} s "
                                                  "(decode timestamps overlap); use fewer segments")  # fmt: skip
                    last_dts = packet.dts
                    if container_name == "gif":  # one header and trailer, the muxer's own
                        packet = _gif_frame(packet, header=not written)
                    packet.stream = vout
                    out.mux(packet)
                    written += 1
                else:
                    carried.add(packet.stream.index)
                    carry_packet(packet, out, copies, reencode, cut)
            flush_reencoded(out, reencode)
            for stream in copies:
                if stream.index not in carried:
                    notes[stream.index] = empty_note(stream)
            cut_short = ends_mid_packet(src, source)
    except av.FFmpegError as exc:
        if isinstance(exc, OSError):  # a full or read-only disk: the caller names the file
            raise
        raise CartoonizeError(f"the segments could not be joined ({exc})") from None
    expected = plan.frames - left_out
    if not expected - damaged <= written <= expected:
        lost = f" ({damaged} damaged packets skipped)" if damaged else ""
        lost += f" ({left_out} left out on purpose)" if left_out else ""
        raise CartoonizeError(f"the segments hold {written} frames; the source has {plan.frames}{lost}")
    return [*notes.values(), *([CUT_MID_PACKET] if cut_short else [])]
