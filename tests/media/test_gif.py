"""GIF output: palette frames made by FFmpeg's filters, whole videos, segments and the live
recorder written as GIFs, and read back by PyAV as a viewer would decode them."""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.media.files import EncoderSettings, audio_plan, container_for
from cartoonize.media.gif import MIN_DELAY, Palettizer
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many, find_videos
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.pipelines.workers import InProcess
from tests.helpers import make_video, read_video, record_pattern

COLOURS = np.array([[230, 40, 40], [40, 200, 60], [30, 60, 220], [250, 230, 90], [20, 20, 20], [245, 245, 245]],
                   np.uint8)  # fmt: skip


def flat_blocks(width: int, height: int, shift: int) -> np.ndarray:
    """Six flat colours in vertical bands that move `shift` pixels: a cartoon's kind of frame."""
    band = (np.arange(width) + shift) * len(COLOURS) // width % len(COLOURS)
    return np.ascontiguousarray(np.broadcast_to(COLOURS[band][None], (height, width, 3)))


def indexed(frames: list) -> list[np.ndarray]:
    return [frame.to_ndarray(format="rgb24") for frame in frames]


def test_flat_colours_come_back_exactly() -> None:
    palettize = Palettizer(96, 64, Fraction(1, 12))
    frames = [flat_blocks(96, 64, 5 * i) for i in range(6)]
    out = [f for i, rgb in enumerate(frames) for f in palettize(rgb, i)] + palettize.flush()
    assert [f.format.name for f in out] == ["pal8"] * 6
    assert [f.pts for f in out] == list(range(6))
    for got, want in zip(indexed(out), frames, strict=True):
        np.testing.assert_array_equal(got, want)  # fewer than 256 colours: the palette holds each


def test_a_smooth_gradient_keeps_within_a_few_levels() -> None:
    """A sky-like ramp of 7,673 colours in 256: a few levels off anywhere, on average and over
    every 8×8 block (a swapped channel or a palette taken from another frame is tens off)."""
    x = np.linspace(0, 1, 256)[None, :, None]
    y = np.linspace(0, 1, 64)[:, None, None]
    ramp = np.concatenate([80 + 100 * x + 40 * y, 150 + 80 * x - 30 * y, 200 + 50 * x + 0 * y], 2)
    ramp = ramp.astype(np.uint8)
    [frame] = Palettizer(256, 64, Fraction(1, 25))(ramp, 0)
    error = frame.to_ndarray(format="rgb24").astype(float) - ramp
    assert np.abs(error).mean() < 2
    assert np.abs(error.reshape(8, 8, 32, 8, 3).mean(axis=(1, 3))).max() < 4


@pytest.mark.parametrize(("rate", "kept"), [(60, 30), (120, 20), (100, 30), (50, 60), (25, 60),
                                            (Fraction(30000, 1001), 60), (Fraction(60000, 1001), 30)])  # fmt: skip
@pytest.mark.parametrize("first", [0, 1, 7])
def test_frames_closer_than_a_browser_plays_are_left_out(rate: Fraction | int, kept: int, first: int) -> None:
    """60 frames from frame number `first` on (a segment starts anywhere): the frames kept are
    the same ones whatever the first, and none is closer than MIN_DELAY to the last."""
    rate = Fraction(rate)
    palettize = Palettizer(32, 16, 1 / rate, rate)
    numbers = range(first, first + 60)
    out = [f for i in numbers for f in palettize(flat_blocks(32, 16, i), i)] + palettize.flush()
    every = 60 // kept
    assert [f.pts for f in out] == [i for i in numbers if i % every == 0]
    assert palettize.left_out == 60 - len(out)
    times = [f.pts / rate for f in out]  # exact: 100 fps keeps frames exactly MIN_DELAY apart
    assert min(b - a for a, b in pairwise(times)) >= MIN_DELAY


def test_frames_of_no_known_rate_keep_their_distance() -> None:
    """Capture times or a variable rate: a burst 5 ms apart keeps one frame in four."""
    palettize = Palettizer(32, 16, Fraction(1, 1000))
    kept = [f.pts for i in range(20) for f in palettize(flat_blocks(32, 16, i), 5 * i)]
    assert kept == [0, 20, 40, 60, 80] and palettize.left_out == 15


def test_gif_is_an_output_type_without_audio() -> None:
    assert container_for(Path("x.GIF")) == ("gif", "gif")
    assert EncoderSettings().for_codec("gif").pix_fmt == "pal8"
    assert EncoderSettings().for_codec("h264") == EncoderSettings()


def run_gif(src: Path, out: Path, checkpoint: Path, **job) -> tuple:
    request = EngineRequest(engine="torch", model=checkpoint, device="cpu")
    return cartoonize_video(VideoJob(src, out, **job), lambda size: runner_for(request, size))


def test_a_video_becomes_a_gif_with_its_timing(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.gif"
    report = run_gif(small_video, out, tiny_checkpoint)
    lossless = tmp_path / "ref.mkv"
    run_gif(small_video, lossless, tiny_checkpoint, encoder=EncoderSettings(codec="ffv1", pix_fmt="yuv444p"))
    assert report.video_codec == "gif" and report.frames == 24
    assert report.streams == ["audio #1 aac: left out (gif holds no audio)"]
    with av.open(str(out)) as c:
        assert c.format.name == "gif" and [s.type for s in c.streams] == ["video"]
    pts, frames, time_base = read_video(out)
    pts_in, _, tb_in = read_video(small_video)
    assert len(frames) == 24
    times = np.array([float(p * time_base) for p in pts])
    assert np.abs(times - np.array([float(p * tb_in) for p in pts_in])).max() <= 0.01  # GIF counts 1/100 s
    _, reference, _ = read_video(lossless)
    for got, want in zip(frames, reference, strict=True):
        # the same picture in 256 colours (the tiny model's is noise-like: the hardest case)
        assert np.abs(got.astype(int) - want).mean() < 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gif", "ref.mkv"]


def test_a_60_fps_video_plays_at_30_in_the_gif(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_video(tmp_path / "fast.mp4", frames=24, rate=60, audio=None)
    report = run_gif(src, tmp_path / "out.gif", tiny_checkpoint)
    assert report.frames == 24  # the engine saw every frame; the GIF holds every other one
    assert report.streams == [
        f"video: 12 of 24 frames left out (a GIF frame lasts at least {float(MIN_DELAY):.2f} s; "
        "browsers play shorter ones slowly)"
    ]
    pts, _, time_base = read_video(tmp_path / "out.gif")
    assert len(pts) == 12
    assert np.allclose(np.diff([float(p * time_base) for p in pts]), 2 / 60, atol=0.01)


@pytest.mark.parametrize("rate", [12, 60])
def test_gif_segments_join_into_the_single_pass(rate: int, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Each segment's GIF starts with a frame whose palette must travel with it (not in a header
    the join drops), and at 60 fps each keeps the frames the single pass keeps (odd-length
    segments too): the joined file is the single pass's, byte for byte."""
    frames = 36 if rate == 12 else 35
    src = make_video(tmp_path / "clip.mp4", frames=frames, rate=rate, audio=None, gop=5)
    single = tmp_path / "single.gif"
    run_gif(src, single, tiny_checkpoint)
    joined = tmp_path / "joined.gif"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_many([(src, joined)], VideoJob(src, joined), request, InProcess(), SplitOptions(3))
    assert [r.status for r in report.results] == ["done"]
    pts_a, frames_a, _ = read_video(single)
    pts_b, frames_b, _ = read_video(joined)
    assert pts_a == pts_b and len(frames_a) == (36 if rate == 12 else 18)
    assert ("video: 17 of 35 frames left out" in report.results[0].message) == (rate == 60)
    for a, b in zip(frames_a, frames_b, strict=True):
        np.testing.assert_array_equal(a, b)
    # and the file itself: one header and one trailer (FFmpeg's own reader skipped a second
    # header and read past a trailer mid-file, where Pillow and browsers stop)
    assert joined.read_bytes() == single.read_bytes()


def test_a_folder_of_gifs_becomes_a_folder_of_gifs(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    make_video(clips / "a.gif", frames=2, audio=None, codec="gif", pix_fmt="rgb8")
    make_video(clips / "b.mp4", frames=2, audio=None)
    pairs = find_videos([clips], tmp_path / "out")
    assert sorted((s.name, o.name) for s, o in pairs) == [("a.gif", "a.gif"), ("b.mp4", "b.mp4")]


def test_audio_plan_for_a_container_without_audio(small_video: Path) -> None:
    with av.open(str(small_video)) as c:
        assert audio_plan("gif", c.streams.audio[0]) == ""
        assert audio_plan("mp4", c.streams.audio[0]) == "copy"


def test_the_live_recorder_writes_a_gif(tmp_path: Path) -> None:
    out = tmp_path / "live.gif"
    recorder = record_pattern(out, 30, 30)
    assert recorder.written == 30 and recorder.error is None
    pts, frames, time_base = read_video(out)
    assert len(frames) == 30 and frames[0].shape == (48, 64, 3)
    assert abs(float((pts[-1] - pts[0]) * time_base) - 29 / 30) <= 0.01
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.gif"]
