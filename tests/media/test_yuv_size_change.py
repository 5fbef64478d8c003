"""The YUV frame path on a stream whose picture changes size mid-stream (two clips joined, a
stream switching quality): each frame is brought to the size the stream opened with, in its own
planes' format, as FFmpeg's path brings each RGB frame to it, so batches stack and the encoder and
the stages get the size they were opened for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cartoonize.media.files import Colour, EncoderSettings, converter, to_rgb
from cartoonize.media.yuv import PLANE_FORMATS, YuvSpec, frame_planes, yuv420_to_rgb
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.stages import StageOptions
from tests.helpers import pattern, read_video
from tests.pipelines.test_yuv_frames import Identity

BT601 = Colour(6, 1, 6, 6, True)  # BT.601 limited range, as the frames below are made
LOSSLESS = EncoderSettings(crf=0)  # what differs is the two paths, not two encodes


def clip(path: Path, width: int, height: int, frames: int) -> Path:
    """An H.264 MPEG-TS clip of `pattern` frames, which can be joined to another by bytes."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(width, height, i), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("fmt", ["yuv420p", "nv12", "yuv420p10le"])
@pytest.mark.parametrize("reader", [False, True], ids=["own-context", "converter"])
def test_frame_planes_scale_a_frame_of_another_size(fmt: str, reader: bool) -> None:
    """Planes of a 128x80 frame asked for at 96x64: that size, and the picture FFmpeg's RGB path
    gives at that size, within the chroma filters' few levels (a crop or a wrong layout would
    be tens of levels off)."""
    import av

    rgb = pattern(128, 80, 3)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=fmt, dst_colorspace=5, dst_color_range=1
    )
    y, u, v = frame_planes(frame, (96, 64), converter() if reader else None)
    assert (y.shape, u.shape, v.shape) == ((64, 96), (32, 48), (32, 48))
    import torch

    spec = YuvSpec(6, False, PLANE_FORMATS[fmt])
    ours = yuv420_to_rgb(*(torch.from_numpy(p.astype(np.int32)) for p in (y, u, v)), spec).numpy()
    theirs = to_rgb(frame, BT601, 96, 64)
    diff = np.abs(ours.astype(int) - theirs.astype(int))
    assert diff.mean() < 2.0, diff.mean()
    assert frame_planes(frame, (128, 80))[0].shape == (80, 128)  # its own size: as it is


@pytest.mark.parametrize(("batch", "max_side"), [(1, None), (4, None), (4, 64)])
def test_yuv_path_takes_a_size_change_mid_stream(tmp_path: Path, batch: int, max_side: int | None) -> None:
    """96x64 then 128x80 (two clips joined), in batches that hold both sizes: the video is made
    at the first size, as FFmpeg's path makes it, with the same frames within a few levels
    (before, a batch of both sizes stopped the run with numpy's 'all input arrays must have the
    same shape'): a traceback)."""
    first, second = clip(tmp_path / "a.ts", 96, 64, 6), clip(tmp_path / "b.ts", 128, 80, 6)
    src = tmp_path / "joined.ts"
    src.write_bytes(first.read_bytes() + second.read_bytes())
    frames, reports = [], []
    for yuv in (False, True):
        out = tmp_path / f"out-{yuv}.mp4"
        job = VideoJob(src, out, max_side, batch, LOSSLESS, yuv_frames=yuv, stages=StageOptions(raw=True))
        reports.append(cartoonize_video(job, lambda size: Identity()))
        frames.append(np.stack(read_video(out)[1]).astype(int))
    assert [r.frame_path for r in reports] == ["rgb", "yuv"]
    assert frames[0].shape == frames[1].shape and frames[0].shape[0] == 12
    assert frames[1].shape[1:3] == ((64, 96) if max_side is None else (42, 64))  # the first clip's size
    # the second clip's frames, scaled to the first size: as close as the first clip's (about 1.1
    # levels on this pattern of hard edges, where the two paths' chroma filters differ)
    after = np.abs(frames[0][6:] - frames[1][6:])
    assert after.mean() < 2.0, after.mean()
