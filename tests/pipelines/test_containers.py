"""The encoder per container, as the README says: H.264 in .mp4, .mov and .mkv, VP9 in .webm."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from tests.helpers import make_video


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
