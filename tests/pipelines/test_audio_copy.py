"""Audio is copied packet by packet where the output container stores its codec: the output's
packets are the input's, byte for byte, at the input's times."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.pipelines.video import VideoJob, VideoReport, cartoonize_video
from tests.helpers import make_video
from tests.pipelines.conftest import cartoonize_in


def cartoonized(src: Path, out: Path, checkpoint: Path) -> VideoReport:
    request = EngineRequest(engine="torch", model=checkpoint, device="cpu")
    return cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size))


def audio_packets(path: Path) -> tuple[list[tuple[bytes, float, float]], float, float]:
    """(payload, pts s, dts s) of every audio packet, the first video frame's time, and the
    coarser of the two streams' ticks."""
    with av.open(str(path)) as c:
        audio, video = c.streams.audio[0], c.streams.video[0]
        tb = audio.time_base
        packets = [(bytes(p), float(p.pts * tb), float(p.dts * tb)) for p in c.demux(audio) if p.size]
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        first = next(c.decode(video))
        tick = max(float(tb), float(video.time_base))
        return packets, float(first.pts * video.time_base), tick


@pytest.mark.parametrize(
    ("source", "codec", "suffix"),
    [(".mp4", "aac", ".mp4"), (".mp4", "aac", ".mkv"), (".mkv", "libopus", ".mp4")],
)
def test_copied_audio_is_the_input_packets(
    source: str, codec: str, suffix: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    src = make_video(tmp_path / f"in{source}", frames=24, rate=12, audio=codec)
    out = tmp_path / f"out{suffix}"
    report = cartoonized(src, out, tiny_checkpoint)
    assert any(note.endswith(": copied") for note in report.streams), report.streams

    before, video_in, tick_in = audio_packets(src)
    after, video_out, tick_out = audio_packets(out)
    assert len(after) == len(before) > 40
    assert [p for p, _, _ in after] == [p for p, _, _ in before]  # the bytes, not a re-encode
    # a muxer may shift every track alike (Matroska moves AAC's negative priming time to 0):
    # each packet keeps its time relative to the picture
    shift = video_out - video_in
    assert abs(shift) < 0.05
    tick = max(tick_in, tick_out) + 1e-9
    for (_, pts_a, dts_a), (_, pts_b, dts_b) in zip(before, after, strict=True):
        assert abs(pts_b - pts_a - shift) <= tick and abs(dts_b - dts_a - shift) <= tick


def test_reencoded_audio_keeps_its_sample_rate(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """AAC at 44.1 kHz into .avi becomes MP3 at 44.1 kHz (a rate MP3 takes), not MP3 at the
    48 kHz fallback: nothing is resampled that need not be, and the note says no resampling."""
    src = make_video(tmp_path / "in.mp4", frames=12, rate=12, audio="aac", audio_rate=44100)
    out = tmp_path / "out.avi"
    report = cartoonized(src, out, tiny_checkpoint)
    assert report.streams == ["audio #1 aac: re-encoded to libmp3lame (avi cannot store aac)"], report.streams
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.sample_rate == 44100


def test_audio_the_muxer_refuses_at_its_header_is_reencoded(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """MP4 stores MP3, but its muxer refuses MP3 below 16 kHz (an old phone's, a dictaphone's)
    only when it writes the header, at the first packet: the run ended with a traceback. It is
    re-encoded to AAC, and the note gives the muxer's reason."""
    src = make_video(tmp_path / "in.mkv", frames=12, rate=12, audio="libmp3lame", audio_rate=8000)
    out = tmp_path / "out.mp4"
    report = cartoonized(src, out, tiny_checkpoint)
    assert report.streams == [
        "audio #1 mp3: re-encoded to aac (mp4 cannot store it: muxing mp3 at 8000hz is not standard)"
    ], report.streams
    with av.open(str(out)) as c:
        audio = c.streams.audio[0]
        assert (audio.codec_context.name, audio.codec_context.sample_rate) == ("aac", 8000)
        assert sum(f.samples for f in c.decode(audio)) >= 8000  # the clip's 1 s of sound
    out = tmp_path / "out.mov"  # QuickTime's muxer takes it: copied
    report = cartoonized(src, out, tiny_checkpoint)
    assert report.streams == ["audio #1 mp3: copied"], report.streams


def test_a_muxer_refusal_left_is_one_line(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever else a muxer or an encoder refuses while the output is written (raised in the
    mux thread) is one line naming the output, exit 1, and no file: it was a traceback naming the
    hidden temporary file. (The refusal is injected: the known ones are handled before.)"""
    import av

    from tests.helpers import run_main

    def refused(packet, output, *rest) -> None:  # noqa: ANN001
        raise av.error.ArgumentError(22, "Invalid argument", output.name)

    monkeypatch.setattr("cartoonize.pipelines.video.carry_packet", refused)
    src = make_video(tmp_path / "in.mp4", frames=12, rate=12, audio="aac")
    out = tmp_path / "out.mp4"
    code, _, err = run_main(["video", str(src), str(out), "--model", str(tiny_checkpoint), "-q"], capsys)
    assert code == 1 and err.splitlines() == [f"error: FFmpeg could not write {out} (Invalid argument)"], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def sound_cut_by_an_edit_list(path: Path) -> Path:
    """A 2 s MP4 whose AAC track was encoded from 0.5 s before the picture: the muxer's edit list
    cuts that half second (the demuxer flags its packets as to be discarded)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.codec_context.gop_size = 6  # keyframes to cut segments at
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        for i in range(24):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 12)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        for k in range(-24, 94):  # 1024 samples a frame, from 0.512 s before the first picture to 2 s
            chunk = av.AudioFrame.from_ndarray(
                np.zeros((2, 1024), np.float32), format="fltp", layout="stereo"
            )
            chunk.sample_rate, chunk.pts, chunk.time_base = 48000, k * 1024, Fraction(1, 48000)
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize(("suffix", "segments"), [(".mkv", 1), (".mp4", 1), (".mkv", 2)])
def test_sound_the_sources_edit_list_cuts_stays_cut(
    suffix: str, segments: int, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Copied into Matroska, which has no edit lists, the cut packets were played: 0.5 s of sound
    before the picture, and every stream moved 0.52 s later (the muxer starts at the first packet)."""
    src = sound_cut_by_an_edit_list(tmp_path / "in.mp4")
    with av.open(str(src)) as c:
        assert sum(1 for p in c.demux(c.streams.audio[0]) if p.is_discard) > 20
    out = tmp_path / f"out{suffix}"
    if segments == 1:
        assert cartoonized(src, out, tiny_checkpoint).streams == ["audio #1 aac: copied"]
    else:  # joined, the sound copied once from the source
        cartoonize_in(src, out, tiny_checkpoint, segments)
    with av.open(str(out)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        first = next(c.decode(video))
        assert float(first.pts * video.time_base) < 0.03  # moved by one packet at most (the pre-roll)
        seconds = sum(f.samples for f in c.decode(audio)) / 48000
        assert abs(seconds - 2.0) < 0.05, seconds  # the picture's 2 s, not 2.5


def audio_seconds(path: Path) -> tuple[int, int, float]:
    """(sample rate, channels, seconds of decoded audio) of the first audio stream."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        samples = sum(frame.samples for frame in c.decode(stream))
        rate = stream.codec_context.sample_rate
        return rate, stream.codec_context.channels, samples / rate


@pytest.mark.parametrize("layout", ["mono", "stereo"])
def test_resampled_audio_lasts_as_long_and_keeps_its_channels(
    layout: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """AAC at 44.1 kHz into .webm becomes Opus at 48 kHz (the only rate Opus takes): resampled,
    said so, in the encoder's own sample format and frame size, as long as the source's audio,
    and with the source's channels (mono stays mono)."""
    src = make_video(tmp_path / "in.mp4", frames=24, rate=12, audio="aac", audio_rate=44100)
    if layout == "mono":  # the helper writes stereo: remux a mono re-encode of it
        mono = tmp_path / "mono.mp4"
        with av.open(str(src)) as inp, av.open(str(mono), "w") as out:
            vin, ain = inp.streams.video[0], inp.streams.audio[0]
            vout = out.add_stream_from_template(vin)
            aout = out.add_stream("aac", rate=44100)
            aout.layout = "mono"
            resample = av.AudioResampler(format="fltp", layout="mono", rate=44100, frame_size=1024)
            for packet in inp.demux(vin, ain):
                if packet.stream is vin and packet.dts is not None:
                    packet.stream = vout
                    out.mux(packet)
                elif packet.stream is ain:
                    for frame in packet.decode():
                        for chunk in resample.resample(frame):
                            out.mux(aout.encode(chunk))
            for chunk in resample.resample(None):
                out.mux(aout.encode(chunk))
            out.mux(aout.encode(None))
        src = mono
    out = tmp_path / "out.webm"
    report = cartoonized(src, out, tiny_checkpoint)
    assert report.streams == [
        "audio #1 aac: re-encoded to libopus (webm cannot store aac), resampled 44100 -> 48000 Hz"
    ], report.streams
    rate_in, channels_in, seconds_in = audio_seconds(src)
    rate, channels, seconds = audio_seconds(out)
    assert (rate_in, rate) == (44100, 48000) and channels == channels_in == (1 if layout == "mono" else 2)
    assert abs(seconds - seconds_in) < 0.05, (seconds, seconds_in)


def with_pcm(video: Path, path: Path, layout: str, seconds: float = 2.0) -> Path:
    """`video`'s picture with a 24-bit PCM track of `layout` in the container of `path`: Matroska and
    AVI store a PCM track's channel count but not its layout, so it reads back as "N channels"
    (a camera's .avi, a raw multichannel master)."""
    with av.open(str(video)) as inp, av.open(str(path), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        sound = out.add_stream("pcm_s24le", rate=48000)
        sound.layout = layout
        for packet in inp.demux(vin):
            if packet.dts is not None:
                packet.stream = vout
                out.mux(packet)
        channels = sound.codec_context.layout.nb_channels
        samples = int(seconds * 48000)
        wave = (3000 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(wave, channels)[None], format="s16", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = 48000, 0, Fraction(1, 48000)
        out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    return path


@pytest.mark.parametrize(
    ("layout", "suffix", "channels", "note"),
    [
        ("stereo", ".mp4", 2, ""),
        ("5.1", ".mp4", 6, ""),
        ("7.1", ".webm", 8, ""),
        ("5.1", ".avi", 2, ", 6 channels downmixed to stereo"),  # MP3 holds two
    ],
)
def test_audio_of_no_named_layout_is_reencoded(
    layout: str, suffix: str, channels: int, note: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """PCM that the container gives no channel layout (read as "2 channels", "6 channels") is
    re-encoded with the standard layout of as many channels where the encoder takes it, and
    downmixed to stereo, said so, where it does not; it crashed the AAC encoder before."""
    picture = make_video(tmp_path / "pic.mp4", frames=24, rate=12, audio=None)
    src = with_pcm(picture, tmp_path / "in.mkv", layout)
    with av.open(str(src)) as c:
        assert c.streams.audio[0].codec_context.layout.name == f"{channels if not note else 6} channels"
    out = tmp_path / f"out{suffix}"
    report = cartoonized(src, out, tiny_checkpoint)
    encoder = {".mp4": "aac", ".webm": "libopus", ".avi": "libmp3lame"}[suffix]
    container = {".mp4": "mp4", ".webm": "webm", ".avi": "avi"}[suffix]
    expected = f"audio #1 pcm_s24le: re-encoded to {encoder} ({container} cannot store pcm_s24le)"
    assert report.streams == [expected + note], report.streams
    rate, got, seconds = audio_seconds(out)
    assert got == channels and abs(seconds - 2.0) < 0.05, (got, seconds)
