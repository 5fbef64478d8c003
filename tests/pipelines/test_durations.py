"""Videos whose frames do not fill their time evenly are whole, not "truncated": a slideshow (a
picture every few seconds), a screen recording whose last frame is held, a Matroska file whose
sound runs past its picture. A raw H.264 stream (a dashcam's .h264) keeps its own frame rate.
Before, the last frame's start was compared with the file's duration (for Matroska, its longest
stream's), and these were refused; the raw stream was written at FFmpeg's 25 fps default."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from cartoonize.pipelines.video import VideoJob, cartoonize_video, probe
from cartoonize.stages import StageOptions
from tests.helpers import _write_sine, make_video, pattern
from tests.pipelines.test_yuv_frames import Identity

RAW = StageOptions(raw=True)


def write_clip(path: Path, starts: list[Fraction], last: Fraction, audio_seconds: float = 0.0) -> Path:
    """Frames at `starts` (seconds), the last shown for `last` seconds (its packet's duration), and
    a sine of `audio_seconds` where asked."""
    with av.open(str(path), "w") as out:
        webm = path.suffix == ".webm"
        video = out.add_stream("libvpx-vp9" if webm else "libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.time_base = Fraction(1, 600)
        video.options = (
            {"lag-in-frames": "0", "auto-alt-ref": "0"} if webm else {"bf": "0"}
        )  # a packet a frame
        sound = None
        if audio_seconds:  # every stream before the first packet: the header is written then
            sound = out.add_stream("libopus" if path.suffix in (".mkv", ".webm") else "aac", rate=48000)
            sound.layout = "stereo"
        packets = []
        for i, start in enumerate(starts):
            frame = av.VideoFrame.from_ndarray(pattern(64, 48, i), format="rgb24")
            frame.pts, frame.time_base = round(start * 600), Fraction(1, 600)
            packets += video.encode(frame)
        packets += video.encode(None)
        for packet, start, end in zip(packets, starts, [*starts[1:], starts[-1] + last], strict=True):
            packet.duration = round((end - start) / packet.time_base)
        for packet in packets:
            out.mux(packet)
        if sound is not None:
            _write_sine(out, sound, audio_seconds)
    return path


def run(source: Path, tmp_path: Path) -> int:
    report = cartoonize_video(VideoJob(source, tmp_path / "out.mp4", stages=RAW), lambda size: Identity())
    return report.frames


def test_a_slideshow_is_whole(tmp_path: Path) -> None:
    """Four pictures three seconds apart, the last shown three seconds: 12 s of video."""
    clip = write_clip(
        tmp_path / "slides.mp4", [Fraction(3 * k) for k in range(4)], Fraction(3), audio_seconds=12
    )
    assert run(clip, tmp_path) == 4


def test_a_held_last_frame_is_whole(tmp_path: Path) -> None:
    """Four seconds at 30 fps, then the last frame held 1.5 s (a screen recording that stopped
    changing): declared 5.5 s."""
    clip = write_clip(tmp_path / "screen.mp4", [Fraction(k, 30) for k in range(121)], Fraction(3, 2))
    assert probe(clip, None).declared == 5.5 and run(clip, tmp_path) == 121


def test_matroska_sound_longer_than_its_picture(tmp_path: Path) -> None:
    """Matroska gives no stream its duration: the file's is its longest stream's (3 s of sound);
    the video's own is its DURATION tag (1 s)."""
    for suffix in (".mkv", ".webm"):
        clip = write_clip(
            tmp_path / f"sound{suffix}", [Fraction(k, 30) for k in range(30)], Fraction(1, 30), 3.0
        )
        info = probe(clip, None)
        assert info.declared is not None and abs(info.declared - 1.0) < 0.05, (suffix, info.declared)
        report = cartoonize_video(
            VideoJob(clip, tmp_path / f"out{suffix}.mp4", stages=RAW), lambda size: Identity()
        )
        assert report.frames == 30


def test_a_raw_h264_stream_keeps_its_frame_rate(tmp_path: Path) -> None:
    """An Annex B .h264 file (no container, no timestamps) at 50 fps: its timing information says
    50; FFmpeg's raw demuxer assumes 25, which made the output twice as long."""
    with av.open(str(tmp_path / "dashcam.h264"), "w", format="h264") as out:
        video = out.add_stream("libx264", rate=50)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(pattern(64, 48, i), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    assert probe(tmp_path / "dashcam.h264", None).rate == 50
    assert run(tmp_path / "dashcam.h264", tmp_path) == 50
    with av.open(str(tmp_path / "out.mp4")) as written:
        stream = written.streams.video[0]
        assert stream.average_rate == 50 and abs(float(stream.duration * stream.time_base) - 1.0) < 0.05


def test_a_file_cut_short_is_still_truncated(tmp_path: Path) -> None:
    """The check still catches a file whose frames stop well before its video's declared end."""
    import pytest

    from cartoonize.errors import CartoonizeError

    clip = write_clip(tmp_path / "full.mkv", [Fraction(k, 30) for k in range(90)], Fraction(1, 30))
    data = clip.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 3])
    with pytest.raises(
        CartoonizeError, match=r"cut\.mkv is truncated: it declares 3\.0 s of video but it stops at"
    ):
        run(tmp_path / "cut.mkv", tmp_path)
    assert np.isfinite(probe(clip, None).declared or np.nan)


def video_span(path: Path) -> tuple[float, float | None]:
    """Seconds from the video's first frame to where its last one ends, by its packets' pts and
    durations, and the stream's declared duration (MP4, MOV: what players and editors show)."""
    with av.open(str(path)) as written:
        stream = written.streams.video[0]
        spans = [(p.pts, p.pts + (p.duration or 0)) for p in written.demux(stream) if p.pts is not None]
        declared = float(stream.duration * stream.time_base) if stream.duration else None
        return float((max(e for _, e in spans) - min(s for s, _ in spans)) * stream.time_base), declared


def test_the_last_frame_keeps_its_own_time(tmp_path: Path) -> None:
    """A held last frame (a screen recording that stopped changing) and a slideshow's last picture
    are shown as long in the cartoon as in the source. The encoder's packets have no duration, and
    the muxer gave the last frame one frame period: the video ended 1.5 s (3 s) early, before its
    sound. MP4 and MOV take the length from the last packet in decoding order (libx264's B-frames
    put another frame there); Matroska and WebM from the frame that ends last; GIF from its delay."""
    screen = write_clip(tmp_path / "screen.mp4", [Fraction(k, 30) for k in range(121)], Fraction(3, 2), 5.5)
    slides = write_clip(tmp_path / "slides.mp4", [Fraction(3 * k) for k in range(4)], Fraction(3))
    for clip, length in ((screen, 5.5), (slides, 12.0)):
        for suffix in (".mp4", ".mov", ".mkv", ".webm", ".gif"):
            out = tmp_path / f"{clip.stem}_cartoon{suffix}"
            cartoonize_video(VideoJob(clip, out, stages=RAW), lambda size: Identity())
            span, declared = video_span(out)
            if suffix in (".mp4", ".mov"):  # a packet's duration there is its step in decoding order
                span = declared or 0.0
            assert abs(span - length) < 0.011, (out.name, span)


def test_a_variable_rate_video_into_avi(tmp_path: Path) -> None:
    """AVI stores one frame a tick of its frame rate. A video whose average rate is below its
    frames' own (30 fps, then a frame held 1.5 s: 22 fps on average) put two frames on one tick of
    the average, and the encoder's refusal ended the run with a traceback; now the tick is the
    frames' own period and every frame is written. Frames that still meet on a tick (a rate far
    from the average) are left out with a note, as a constant-rate encode drops them."""
    clip = write_clip(tmp_path / "screen.mp4", [Fraction(k, 30) for k in range(121)], Fraction(3, 2))
    report = cartoonize_video(VideoJob(clip, tmp_path / "screen.avi", stages=RAW), lambda size: Identity())
    assert (report.frames, report.left_out) == (121, 0)
    with av.open(str(tmp_path / "screen.avi")) as written:
        assert sum(1 for p in written.demux(video=0) if p.size) == 121

    burst = [Fraction(k) for k in range(7)] + [Fraction(6) + Fraction(1, 30)]  # 1 fps, one 30 fps step
    clip = write_clip(tmp_path / "burst.mp4", burst, Fraction(1))
    report = cartoonize_video(VideoJob(clip, tmp_path / "burst.avi", stages=RAW), lambda size: Identity())
    assert (report.frames, report.left_out) == (8, 1)
    assert report.streams[0].startswith("video: 1 of 8 frames left out (AVI holds one frame a tick"), (
        report.streams
    )


def test_a_phones_irregular_average_rate_into_avi(tmp_path: Path) -> None:
    """A phone's variable rate averages to a fraction like 1125000/106343 fps; AVI's tick was one
    period of it, whose denominator MPEG-4 Part 2 cannot hold (16 bits), and the encoder's refusal
    to open ended the run with a traceback. The tick now keeps within 16 bits, every frame on it."""
    durations = [9000] * 5 + [8098] * 3 + [7199] * 3 + [8099] * 3 + [8997] * 3 + [9007, 9007, 8993]
    durations += [9000, 9000, 8100, 8100, 8124]  # 72-100 ms at 1/90000, as fire_vfr.mp4's
    clip = make_video(tmp_path / "phone.mp4", frames=len(durations), durations=durations, audio=None)
    rate = probe(clip, None).rate
    assert rate is not None and rate.denominator > 65535
    report = cartoonize_video(VideoJob(clip, tmp_path / "phone.avi", stages=RAW), lambda size: Identity())
    assert (report.frames, report.left_out) == (25, 0)
    with av.open(str(tmp_path / "phone.avi")) as written:
        stream = written.streams.video[0]
        assert stream.time_base.denominator <= 65535
        assert sum(1 for p in written.demux(stream) if p.size) == 25
        assert abs(float(1 / stream.time_base) - float(rate)) < 1e-3  # a tick: one period of the average
