"""A transport stream's timestamps are a broadcast's or a camcorder's running clock, often hours
in: the output starts at 0, as the ffmpeg tool's does, with the audio where it was against the
picture; an .mp4 of a 2 s recording said it lasted an hour and played a blank hour first."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.video import CUT_MID_PACKET, VideoJob, cartoonize_video
from cartoonize.pipelines.workers import InProcess
from tests.helpers import make_video
from tests.pipelines.conftest import cartoonize_in

CLOCK = 3600  # seconds on the source's clock at its first frame


def transport_stream(tmp_path: Path, options: dict[str, str] | None = None) -> Path:
    """A 2 s clip with AAC, remuxed into MPEG-TS with every timestamp `CLOCK` seconds later
    (`options`: the muxer's, `{"mpegts_m2ts_mode": "1"}` for a Blu-ray's M2TS)."""
    clip = make_video(tmp_path / "clip.mp4", frames=24, rate=12, audio="aac", gop=6)
    path = tmp_path / ("in.m2ts" if options else "in.ts")
    with av.open(str(clip)) as inp, av.open(str(path), "w", format="mpegts", options=options or {}) as out:
        streams = {s: out.add_stream_from_template(s) for s in (inp.streams.video[0], inp.streams.audio[0])}
        for packet in inp.demux(*streams):
            if packet.dts is None:
                continue
            late = round(CLOCK / packet.time_base)
            packet.pts, packet.dts = packet.pts + late, packet.dts + late
            packet.stream = streams[packet.stream]
            out.mux(packet)
    return path


def starts(path: Path) -> tuple[float, float, float]:
    """(the video's start, the audio's, the file's duration), in seconds."""
    with av.open(str(path)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        return (
            float(video.start_time * video.time_base),
            float(audio.start_time * audio.time_base),
            c.duration / 1e6,
        )


@pytest.mark.parametrize(("suffix", "segments"), [(".mp4", 1), (".webm", 1), (".mkv", 3)])
def test_the_output_starts_at_zero(suffix: str, segments: int, tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = transport_stream(tmp_path)
    video_in, audio_in, _ = starts(src)
    assert video_in > CLOCK - 1
    out = tmp_path / f"out{suffix}"
    cartoonize_in(src, out, tiny_checkpoint, segments)
    video, audio, duration = starts(out)
    assert 0 <= min(video, audio) < 0.1 and duration < 2.5, (video, audio, duration)
    # the picture and the sound stay as far apart as they were (within a tick of each output)
    assert abs((video - audio) - (video_in - audio_in)) < 0.03


def test_a_late_start_elsewhere_is_kept(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """An .mkv whose first frame is at 2 s (a cut from a longer film) keeps it: only a transport
    stream's clock is taken off."""
    src = make_video(tmp_path / "in.mkv", frames=12, rate=12, audio=None)
    late = tmp_path / "late.mkv"
    with av.open(str(src)) as inp, av.open(str(late), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:  # (Matroska gives a keyframe no dts)
                ticks = round(2 / packet.time_base)
                packet.pts, packet.stream = packet.pts + ticks, stream
                packet.dts = None if packet.dts is None else packet.dts + ticks
                out.mux(packet)
    out = tmp_path / "out.mkv"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    cartoonize_video(VideoJob(late, out), lambda size: runner_for(request, size))
    with av.open(str(out)) as c:
        first = next(c.decode(c.streams.video[0]))
        assert abs(float(first.pts * first.time_base) - 2.0) < 0.01


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_the_last_frame_lasts_as_long_as_the_sources(
    suffix: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The video's declared duration counts from its own first frame; the last frame's end was
    capped at the file's start (the sound's, 21 ms earlier: AAC's priming) plus it, so it was cut
    short by the difference and the output's video ended early."""
    src = transport_stream(tmp_path)
    video_in, audio_in, _ = starts(src)
    assert audio_in < video_in - 0.01  # the sound starts first, as in a broadcast
    out = tmp_path / f"out{suffix}"
    cartoonize_in(src, out, tiny_checkpoint, 1)
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        ends = [float((f.pts + f.duration) * f.time_base) for f in frames]
        assert len(frames) == 24 and ends[-1] - float(frames[0].pts * frames[0].time_base) == pytest.approx(
            2.0, abs=2e-3
        )
        assert float(frames[-1].duration * frames[-1].time_base) == pytest.approx(1 / 12, abs=2e-3)


@pytest.mark.parametrize(("cut", "segments"), [(0, 1), (5000, 1), (5000, 3)])
def test_a_transport_stream_cut_short_is_reported(
    cut: int, segments: int, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A .ts with its last 5000 bytes gone (a download that stopped) has no declared duration to
    compare the frames with, and FFmpeg reads it to its last whole packet without a word: it ends
    partway through a packet, which a muxer never writes. A whole one is not reported."""
    src = transport_stream(tmp_path)
    if cut:
        src.write_bytes(src.read_bytes()[:-cut])
    out = tmp_path / "out.mp4"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    if segments == 1:
        notes = cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size)).streams
    else:
        report = cartoonize_many(
            [(src, out)], VideoJob(src, out), request, InProcess(), SplitOptions(segments)
        )
        (result,) = report.results
        assert result.status == "done", result.message
        notes = [result.message]
    assert any(CUT_MID_PACKET in note for note in notes) == bool(cut), notes
