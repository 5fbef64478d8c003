"""The encoder per container, as the README says: H.264 in .mp4, .mov and .mkv, VP9 in .webm."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.errors import CartoonizeError
from cartoonize.media.files import EncoderSettings
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.pipelines.workers import InProcess
from tests.helpers import make_video, read_video


@pytest.mark.parametrize(
    ("suffix", "container", "codec"),
    [
        (".mp4", "mp4", "h264"),
        (".mov", "mov", "h264"),
        (".mkv", "matroska", "h264"),
        (".webm", "webm", "vp9"),
    ],
)
def test_video_codec_for_each_container(
    suffix: str, container: str, codec: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    src = make_video(tmp_path / "in.mkv", width=64, height=48, frames=4, audio=None)
    out = tmp_path / f"out{suffix}"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size))
    with av.open(str(out)) as c:
        assert container in c.format.name.split(",")
        (video,) = c.streams.video
        assert video.codec_context.name == codec
        assert video.codec_context.pix_fmt == "yuv420p"  # what every player decodes
        assert sum(1 for _ in c.decode(video)) == 4
    assert (
        report.video_codec in {"libx264", "h264_nvenc"}
        if codec == "h264"
        else report.video_codec == "libvpx-vp9"
    )


@pytest.mark.parametrize("segments", [1, 2])
def test_hevc_in_mp4_is_tagged_for_apple_players(
    segments: int, tiny_checkpoint: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`--codec hevc` in .mp4: QuickTime, Safari and iOS play HEVC only under the `hvc1` tag
    (FFmpeg writes `hev1` unless told), single pass and joined segments alike; and x265 keeps
    its two dozen lines of info off the user's terminal."""
    from cartoonize.media.files import EncoderSettings
    from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
    from cartoonize.pipelines.workers import InProcess

    src = make_video(tmp_path / "in.mp4", width=64, height=48, frames=12, audio=None, gop=6)
    out = tmp_path / "out.mp4"
    job = VideoJob(src, out, encoder=EncoderSettings(codec="hevc"))
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    if segments == 1:
        cartoonize_video(job, lambda size: runner_for(request, size))
    else:
        report = cartoonize_many([(src, out)], job, request, InProcess(), SplitOptions(segments))
        assert [r.status for r in report.results] == ["done"] and "2 segments" in report.results[0].message
    with av.open(str(out)) as c:
        (video,) = c.streams.video
        assert video.codec_context.name == "hevc" and video.codec_tag == "hvc1"
        assert sum(1 for _ in c.decode(video)) == 12
    assert "x265 [info]" not in capfd.readouterr().err


@pytest.mark.parametrize("codec", ["auto", "h264"])
def test_avi_has_one_tick_a_frame(codec: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """AVI stores a frame per tick of its time base: with the source's (1/12288 from an .mp4)
    a 12 fps clip read back as hundreds of frames a second, empty ones between, and H.264's
    decode times went backwards. One frame period a tick, as the ffmpeg tool writes it."""
    src = make_video(tmp_path / "in.mp4", width=64, height=48, frames=12, rate=12, audio=None)
    with av.open(str(src)) as c:
        assert c.streams.video[0].time_base != Fraction(1, 12)
    out = tmp_path / "out.avi"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    job = VideoJob(src, out, encoder=EncoderSettings(codec=codec))
    cartoonize_video(job, lambda size: runner_for(request, size))
    with av.open(str(out)) as c:
        video = c.streams.video[0]
        assert video.time_base == Fraction(1, 12) and video.average_rate == 12
        packets = [p for p in c.demux(video) if p.size]
        assert len(packets) == 12
        dts = [p.dts for p in packets]
        assert dts == sorted(dts) and len(set(dts)) == 12 and dts[-1] <= 13


def test_avi_segments_are_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", frames=12, rate=12, audio=None, gop=4)
    out = tmp_path / "out.avi"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    with pytest.raises(CartoonizeError, match=r"an \.avi output runs in one pass .* drop --segments"):
        cartoonize_many([(src, out)], VideoJob(src, out), request, InProcess(), SplitOptions(2))
    assert not out.exists()


def test_prores_for_editors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`--codec prores`: ProRes 422 HQ, 10-bit 4:2:2, in .mov, every frame at its time and within
    a level or two of the cartoon in the same 4:2:2 losslessly (an editor's intermediate; it was "no prores encoder could
    be opened here", as the encoder takes no 4:2:0)."""
    src = make_video(tmp_path / "in.mp4", width=64, height=48, frames=12, rate=12, audio=None)
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    outs = {}
    for name, settings in (("prores.mov", EncoderSettings(codec="prores")),
                           ("exact.mkv", EncoderSettings(codec="ffv1", pix_fmt="yuv422p10le"))):  # fmt: skip
        outs[name] = tmp_path / name
        cartoonize_video(VideoJob(src, outs[name], encoder=settings), lambda size: runner_for(request, size))
    with av.open(str(outs["prores.mov"])) as c:
        video = c.streams.video[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("prores", "yuv422p10le")
        assert video.codec_context.profile == "HQ"
    pts_a, frames_a, tb_a = read_video(outs["prores.mov"])
    pts_b, frames_b, tb_b = read_video(outs["exact.mkv"])
    times_a, times_b = [float(p * tb_a) for p in pts_a], [float(p * tb_b) for p in pts_b]
    assert len(pts_a) == 12 and np.allclose(times_a, times_b, atol=0.001)  # (Matroska counts ms)
    # the tiny model's cartoon is noise, a lossy codec's hardest picture: ProRes HQ keeps it at
    # PSNR 37 dB here (Hayao's cartoon of FFmpeg's testsrc2: 1.7 levels on average from FFV1's 4:2:0)
    mse = np.mean([(a.astype(float) - b.astype(float)) ** 2 for a, b in zip(frames_a, frames_b, strict=True)])
    psnr = 10 * np.log10(255**2 / mse)
    assert psnr > 32, psnr
