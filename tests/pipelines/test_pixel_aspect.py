"""Anamorphic video (DV, DVD, HDV, broadcast: 16:9 stored in 720×480 or 1440×1080 pixels that are
not square) keeps its shape: the output says its pixels' shape as the source does, or, where the
output cannot say it (VP9 in WebM, GIF), is scaled to square pixels of the same display shape."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from tests.helpers import pattern
from tests.pipelines.conftest import cartoonize_in

WIDE = Fraction(32, 27)  # NTSC DVD 16:9: 720×480 shown as 853×480; here 96×64 shown as 16:9


def anamorphic(path: Path, sar: Fraction = WIDE, frames: int = 24) -> Path:
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        video.codec_context.sample_aspect_ratio = sar
        video.codec_context.gop_size = 6
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(96, 64, i), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def shape(path: Path) -> tuple[int, int, Fraction | None, int]:
    """(width, height, sample aspect ratio, frames) as FFmpeg reads the output back."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return stream.width, stream.height, stream.sample_aspect_ratio, sum(1 for _ in c.decode(stream))


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".avi"])
def test_the_pixel_shape_is_kept(suffix: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = anamorphic(tmp_path / "in.mp4")
    assert shape(src)[2] == WIDE
    out = tmp_path / f"out{suffix}"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size))
    assert shape(out) == (96, 64, WIDE, 24)


@pytest.mark.parametrize(("sar", "size"), [(WIDE, (114, 64)), (Fraction(2, 3), (96, 96))])
@pytest.mark.parametrize("suffix", [".webm", ".gif"])
def test_outputs_that_cannot_say_it_get_square_pixels(
    suffix: str, sar: Fraction, size: tuple[int, int], tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Wide pixels widen the picture (96 × 32/27 = 114); tall ones make it taller (64 × 3/2)."""
    src = anamorphic(tmp_path / "in.mp4", sar)
    out = tmp_path / f"out{suffix}"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size))
    width, height, sar_out, frames = shape(out)
    assert (width, height) == size and sar_out in (None, 1) and frames == 24


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_segments_keep_it(suffix: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = anamorphic(tmp_path / "in.mp4")
    out = tmp_path / f"out{suffix}"
    cartoonize_in(src, out, tiny_checkpoint, segments=2)
    width, height, sar, frames = shape(out)
    assert (width, height, sar if sar != 1 else None, frames) == (
        (96, 64, WIDE, 24) if suffix == ".mp4" else (114, 64, None, 24)
    )
