"""Every matrix FFmpeg's path converts a source with (`media.files._SWS_MATRIX`) is the one the
torch conversions use: FCC, SMPTE 240M and BT.2020 (CL, which swscale takes as NCL) as well as
BT.601 and BT.709, both ways, and end to end through `--yuv-frames`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cartoonize.media.files import _SWS_MATRIX, Colour, converter, to_rgb, to_yuv
from cartoonize.media.yuv import YuvSpec, frame_planes, rgb_to_yuv420, yuv420_to_rgb
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.stages import StageOptions
from tests.helpers import colour_bars, read_video
from tests.media.test_yuv import smooth
from tests.pipelines.test_yuv_frames import Identity

MATRICES = sorted(_SWS_MATRIX)


@pytest.mark.parametrize("full", [False, True], ids=["limited", "full"])
@pytest.mark.parametrize("matrix", MATRICES)
def test_each_matrix_ffmpeg_knows_converts_as_ffmpeg_does(matrix: int, full: bool) -> None:
    """YUV made by FFmpeg with `matrix` reads back as FFmpeg reads it, and RGB written with it
    is what FFmpeg writes, within 2 levels on a smooth picture (3 at most in chroma, under one
    on average); BT.601 in place of SMPTE 240M is 30 levels off in saturated greens."""
    colour = Colour(matrix, 2 if full else 1, 2, 2)
    rgb = smooth(48, 64)
    frame = to_yuv(rgb, colour, using=converter())
    planes = frame_planes(frame)
    spec = YuvSpec(matrix, full, 8)
    ours = yuv420_to_rgb(*(torch.from_numpy(p.astype(np.int32)) for p in planes), spec).numpy()
    theirs = to_rgb(frame, colour)
    read = np.abs(ours.astype(int) - theirs.astype(int))
    assert read.max() <= 2, (matrix, full, read.max())
    written = [p.numpy().astype(int) for p in rgb_to_yuv420(torch.from_numpy(rgb), spec)]
    for mine, ffmpegs in zip(written, planes, strict=True):  # chroma: a level more here and there,
        off = np.abs(mine - ffmpegs.astype(int))  # where swscale's chroma filter rounds otherwise
        assert off.max() <= 3 and off.mean() < 1.0, (matrix, full, off.max(), off.mean())


def tagged_bars(path: Path, matrix: int) -> Path:
    """Colour bars encoded losslessly with `matrix` and tagged with it (limited range)."""
    import av

    colour = Colour(matrix, 1, 2, 2)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.colorspace, stream.options = matrix, {"crf": "0"}
        for i in range(3):
            frame = to_yuv(colour_bars(96, 64), colour)
            frame.colorspace, frame.pts = matrix, i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("matrix", [7, 1])  # SMPTE 240M (was read as BT.601); BT.709 beside it
def test_yuv_path_reads_and_writes_the_sources_rarer_matrices(matrix: int, tmp_path: Path) -> None:
    """A clip tagged SMPTE 240M comes out of `--yuv-frames` with the colours FFmpeg's
    path gives it: the centre of each bar within 2 levels (its greens were 34 levels dark)."""
    src = tagged_bars(tmp_path / "bars.mp4", matrix)
    bars = []
    for yuv in (False, True):
        out = tmp_path / f"out-{yuv}.mp4"
        report = cartoonize_video(
            VideoJob(src, out, yuv_frames=yuv, stages=StageOptions(raw=True)), lambda size: Identity()
        )
        assert report.frame_path == ("yuv" if yuv else "rgb")
        frames = np.stack(read_video(out)[1]).astype(int)
        bars.append(frames[:, 16:48, 8:96:16])  # each bar's centre column, away from the edges
    diff = np.abs(bars[0] - bars[1])
    assert diff.max() <= 2, diff.max()
