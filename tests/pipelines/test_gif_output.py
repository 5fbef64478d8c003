"""A GIF written by `cartoonize video`: its picture keeps the source's size, odd sides included
(palette frames have no chroma planes to halve), and it plays as many times as a GIF source does."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.media.gif import Palettizer, loop_option
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.pipelines.workers import InProcess
from tests.helpers import make_video, pattern, read_video, record_pattern


def write_gif(path: Path, width: int, height: int, frames: int = 3, loop: str | None = None) -> Path:
    """A GIF of moving stripes, its NETSCAPE loop block as FFmpeg's muxer writes it for `loop`
    (None: the muxer's default, 0, for ever; -1: no block, played once)."""
    options = {} if loop is None else {"loop": loop}
    with av.open(str(path), "w", container_options=options) as out:
        stream = out.add_stream("gif", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "pal8"
        palettize = Palettizer(width, height, Fraction(1, 10))
        for i in range(frames):
            x = (np.arange(width) + 7 * i) % 32 * 8
            rgb = np.stack(np.broadcast_arrays(x[None], np.arange(height)[:, None] * 4, 128), -1)
            for indexed in palettize(rgb.astype(np.uint8), i):
                out.mux(stream.encode(indexed))
        out.mux(stream.encode(None))
    return path


def cartoonize(src: Path, out: Path, checkpoint: Path, **job):  # noqa: ANN201 - a VideoReport
    request = EngineRequest(engine="torch", model=checkpoint, device="cpu")
    return cartoonize_video(VideoJob(src, out, **job), lambda size: runner_for(request, size))


def picture_size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        return ctx.width, ctx.height


@pytest.mark.parametrize(("max_side", "size"), [(None, (95, 63)), (63, (63, 42)), (31, (31, 21))])
def test_an_odd_sized_gif_keeps_its_size(
    max_side: int | None, size: tuple[int, int], tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """95×63 became 96×64, its last row and column repeated; with --max-side the fit was made
    even (62×42 for 63)."""
    src = write_gif(tmp_path / "odd.gif", 95, 63)
    out = tmp_path / "out.gif"
    report = cartoonize(src, out, tiny_checkpoint, max_side=max_side)
    assert (report.width, report.height) == size
    assert picture_size(out) == size
    _, frames, _ = read_video(out)
    assert len(frames) == 3 and all(f.shape == (size[1], size[0], 3) for f in frames)


def test_an_odd_sized_video_becomes_a_gif_of_its_size(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_video(tmp_path / "odd.mkv", width=95, height=63, frames=3, audio=None, codec="ffv1",
                     pix_fmt="yuv444p")  # fmt: skip
    out = tmp_path / "out.gif"
    cartoonize(src, out, tiny_checkpoint)
    assert picture_size(out) == (95, 63)
    # a 4:2:0 output still needs even sides, and gets them
    mp4 = tmp_path / "out.mp4"
    cartoonize(src, mp4, tiny_checkpoint)
    assert picture_size(mp4) == (96, 64)


@pytest.mark.parametrize("loop", ["3", "2", "-1", "0"])
def test_a_gif_plays_as_often_as_its_source(loop: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A GIF that played three times (NETSCAPE loop 2 or 3) or once (no loop block) became one
    that never stops."""
    src = write_gif(tmp_path / "src.gif", 32, 24, loop=loop)
    assert loop_option(src) == loop  # (what the source says)
    out = tmp_path / "out.gif"
    cartoonize(src, out, tiny_checkpoint)
    assert loop_option(out) == loop
    assert (b"NETSCAPE2.0" in out.read_bytes()) == (loop != "-1")


def test_a_gif_of_a_video_loops_for_ever(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_video(tmp_path / "clip.mp4", frames=3, audio=None)
    out = tmp_path / "out.gif"
    cartoonize(src, out, tiny_checkpoint)
    assert loop_option(out) == "0"


def test_loop_option_reads_what_is_there(tmp_path: Path) -> None:
    assert loop_option(write_gif(tmp_path / "a.gif", 8, 8, loop="7")) == "7"
    (tmp_path / "b.gif").write_bytes(b"GIF89a")  # cut short: not a GIF to read a block from
    assert loop_option(tmp_path / "b.gif") is None
    (tmp_path / "c.gif").write_bytes(b"not a gif at all")  # another source: the muxer's own loop
    assert loop_option(tmp_path / "c.gif") is None


def test_segments_of_a_gif_play_as_often_as_its_source(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = write_gif(tmp_path / "src.gif", 95, 63, frames=9, loop="2")
    out = tmp_path / "out.gif"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_many([(src, out)], VideoJob(src, out), request, InProcess(), SplitOptions(3))
    assert [r.status for r in report.results] == ["done"]
    assert picture_size(out) == (95, 63)
    assert loop_option(out) == "2"


def test_the_webcam_records_a_gif_of_the_cameras_size(tmp_path: Path) -> None:
    """A camera of odd size recorded to a GIF: its size, not one more pixel each way."""
    out = tmp_path / "live.gif"
    record_pattern(out, 6, 10, width=65, height=49)
    assert picture_size(out) == (65, 49)
    with av.open(str(out)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(first[:, -1].astype(int) - pattern(65, 49, 0)[:, -1]).mean() < 40  # no repeated column


def test_a_batch_of_gifs_reports_the_size_written(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The batch summary's size is the GIF's own (it said 62×42 of a 63×42 file)."""
    src = write_gif(tmp_path / "odd.gif", 95, 63)
    out = tmp_path / "out.gif"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    job = VideoJob(src, out, max_side=63)
    report = cartoonize_many([(src, out)], job, request, InProcess(), SplitOptions())
    assert (report.width, report.height) == picture_size(out) == (63, 42)
