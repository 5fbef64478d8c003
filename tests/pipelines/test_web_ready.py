"""Web-ready outputs: every mp4/mov the video pipeline or the webcam recorder writes has its index
(`moov`) before the media (`mdat`), so a browser streaming it over HTTP starts at once."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.media.files import muxer_options
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.pipelines.workers import InProcess
from tests.helpers import make_video, record_pattern, top_level_boxes


def moov_first(path: Path) -> bool:
    boxes = top_level_boxes(path)
    assert "moov" in boxes and "mdat" in boxes, boxes
    return boxes.index("moov") < boxes.index("mdat")


def test_box_reader_sees_the_muxer_default_order(tmp_path: Path) -> None:
    """Without faststart FFmpeg writes moov last: the reader tells the two orders apart."""
    plain = make_video(tmp_path / "plain.mp4", frames=4, audio=None)
    assert top_level_boxes(plain)[0] == "ftyp"
    assert not moov_first(plain)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".m4v"])
def test_video_output_has_moov_before_mdat(
    suffix: str, small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / f"out{suffix}"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    cartoonize_video(VideoJob(small_video, out), lambda size: runner_for(request, size))
    assert moov_first(out), top_level_boxes(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # the temporary file was renamed
    with av.open(str(out)) as c:  # still a complete file after the rewrite
        assert c.streams.video[0].frames == 24 and c.streams.audio


@pytest.mark.parametrize("suffix", [".mp4", ".mov"])
def test_joined_segments_have_moov_before_mdat(suffix: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The join writes the output itself: with the same muxer options (it put moov last)."""
    src = make_video(tmp_path / "in.mp4", frames=24, rate=12, gop=6)
    out = tmp_path / f"out{suffix}"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_many([(src, out)], VideoJob(src, out), request, InProcess(), SplitOptions(3))
    assert report.of("done"), report.lines()
    assert moov_first(out), top_level_boxes(out)


def test_recorder_file_has_moov_before_mdat(tmp_path: Path) -> None:
    out = tmp_path / "webcam.mp4"
    recorder = record_pattern(out, 12, 12)
    assert moov_first(out), top_level_boxes(out)
    with av.open(str(out)) as c:
        assert c.streams.video[0].frames == recorder.written > 0


def test_only_the_mov_family_gets_faststart() -> None:
    assert muxer_options("mp4") == muxer_options("mov") == {"movflags": "+faststart"}
    assert muxer_options("matroska") == muxer_options("webm") == muxer_options("flv") == {}


def test_faststart_benchmark_prints_and_writes_ratios(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from cartoonize.measure.faststart import main

    out = tmp_path / "faststart.json"
    args = [str(small_video), "--model", str(tiny_checkpoint), "--engine", "torch", "--repeats", "1"]
    [result] = main([*args, "--frames", "6", "--json", str(out)])
    assert json.loads(out.read_text()) == [result]
    assert result["frames"] == 6 and result["job_ratio"] >= 1.0
    for row in result["remux"].values():
        assert row["plain_s"] > 0 and row["faststart_s"] > 0 and row["mux_ratio"] > 0
    assert "small.mp4 (cartoon)" in capsys.readouterr().out
