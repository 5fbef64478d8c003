"""Interlaced video through `cartoonize video`: the network sees whole frames (bwdif), one for
each, at the source's times; single pass and segments alike; `--no-deinterlace` leaves them."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.cli import main
from cartoonize.media.files import EncoderSettings, frame_rate
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.pipelines.workers import InProcess
from cartoonize.runners.base import Runner
from cartoonize.stages import StageOptions
from tests.helpers import comb, make_dv, make_interlaced, make_video, read_video

LOSSLESS = EncoderSettings(codec="ffv1")


class Identity(Runner):
    """The network's input comes out as its output: what the engine saw, written."""

    name, device, precision = "identity", "cpu", "fp32"

    def load(self) -> None:
        pass

    def infer(self, frames: np.ndarray) -> np.ndarray:
        return frames


def _decoded(path: Path) -> tuple[list[np.ndarray], list[Fraction]]:
    """The frames and their times in seconds."""
    times, frames, time_base = read_video(path)
    return frames, [t * time_base for t in times]


@pytest.mark.parametrize("deinterlace", [True, False])
def test_the_engine_sees_whole_frames_at_the_sources_times(tmp_path: Path, deinterlace: bool) -> None:
    src = make_interlaced(tmp_path / "dv.mp4", frames=12)
    out = tmp_path / "out.mkv"
    job = VideoJob(src, out, encoder=LOSSLESS, stages=StageOptions(raw=True), deinterlace=deinterlace)
    report = cartoonize_video(job, lambda _size: Identity())
    assert (report.frames, report.interlaced, report.deinterlaced) == (12, 12, deinterlace)
    source, source_times = _decoded(src)
    frames, times = _decoded(out)
    assert times == source_times == [Fraction(i, 25) for i in range(12)], times
    combed = np.mean([comb(f) for f in source])
    seen = np.mean([comb(f) for f in frames])
    if deinterlace:
        assert seen < combed / 20, (seen, combed)
    else:  # as it was: the woven frames themselves
        assert seen > combed * 0.8, (seen, combed)


def test_a_progressive_video_is_not_touched(tmp_path: Path) -> None:
    src = make_video(tmp_path / "p.mp4", width=64, height=48, frames=8, audio=None)
    outputs = []
    for deinterlace in (True, False):
        job = VideoJob(src, tmp_path / f"{deinterlace}.mkv", encoder=LOSSLESS, stages=StageOptions(raw=True),
                       deinterlace=deinterlace)  # fmt: skip
        assert cartoonize_video(job, lambda _size: Identity()).interlaced == 0
        outputs.append(_decoded(job.output))
    (on, on_times), (off, off_times) = outputs
    assert on_times == off_times and all(np.array_equal(a, b) for a, b in zip(on, off, strict=True))


def test_segments_of_interlaced_video_join_to_the_single_pass(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """bwdif rebuilds a frame from the ones either side too: a segment decodes from the keyframe
    before its own (as it does for an open GOP), its first frame has the one before it, and the
    frame after its last is decoded to finish it. The joined video is the single pass's, frame for
    frame, with no pre-roll (no temporal stage)."""
    src = make_interlaced(tmp_path / "i.mp4", frames=16, gop=4)
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    job = VideoJob(src, tmp_path / "one.mkv", encoder=LOSSLESS, stages=StageOptions(raw=True))
    cartoonize_video(job, lambda size: runner_for(request, size))
    joined = tmp_path / "joined.mkv"
    report = cartoonize_many([(src, joined)], VideoJob(src, joined, encoder=LOSSLESS, stages=StageOptions(raw=True)),
                             request, InProcess(), SplitOptions(4))  # fmt: skip
    (result,) = report.of("done")
    assert "4 segments" in result.message and "deinterlaced 16 interlaced frames" in result.message, (
        result.message
    )
    one, one_times = _decoded(job.output)
    parts, part_times = _decoded(joined)
    assert part_times == one_times
    assert [int(np.abs(a.astype(int) - b).max()) for a, b in zip(one, parts, strict=True)] == [0] * 16


def test_the_summary_says_so(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_interlaced(tmp_path / "i.mp4", frames=6)
    common = ["--model", str(tiny_checkpoint), "--engine", "torch", "--raw"]
    for args in ([str(tmp_path / "a.mp4")], [str(tmp_path / "b.mp4"), "--no-deinterlace"]):
        with pytest.raises(SystemExit) as done:
            main(["video", str(src), *args, *common])
        assert done.value.code == 0
    captured = capsys.readouterr()
    printed = " ".join((captured.out + captured.err).split())  # rich wraps long lines
    assert "deinterlaced 6 interlaced frames (bwdif, one frame for each)" in printed, printed
    assert "6 interlaced frames left interlaced (--no-deinterlace)" in printed, printed
    assert len(read_video(tmp_path / "b.mp4")[1]) == 6


def test_a_dv_camcorder_file(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """DV (720×480 NTSC, interlaced, 8:9 pixels): FFmpeg 7.1's DV demuxer declares an average
    rate of 60000 fps, and an encoder opened at it could not finish the MP4 (a traceback). The
    output is 29.97 fps, every frame at its time, deinterlaced, its pixel shape kept."""
    import av

    src = make_dv(tmp_path / "tape.dv", frames=6)
    with av.open(str(src)) as container:
        assert frame_rate(container.streams.video[0]) == Fraction(30000, 1001)
    out = tmp_path / "tape.mp4"
    with pytest.raises(SystemExit) as done:
        main(["video", str(src), str(out), "--model", str(tiny_checkpoint), "--engine", "torch", "--raw",
              "--max-side", "180"])  # fmt: skip
    assert done.value.code == 0
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(30000, 1001) and stream.sample_aspect_ratio == Fraction(8, 9)
    times, frames, time_base = read_video(out)
    assert [t * time_base for t in times] == [Fraction(1001 * i, 30000) for i in range(6)]
