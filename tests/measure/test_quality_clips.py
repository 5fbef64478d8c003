"""`just quality` end to end on a generated clip with a tiny model: both passes, the table, the
recording served again by --reuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartoonize.choose import EngineRequest
from cartoonize.measure.quality_clips import measure_clip, table, time_clip
from tests.helpers import make_video

pytest.importorskip("cv2", reason="the quality benchmark's optical flow needs OpenCV")


def test_two_passes_one_network_run_and_reuse(tiny_checkpoint: Path, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "clip.mp4", width=64, height=48, frames=8, audio=None)
    out = tmp_path / "out"
    out.mkdir()
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    first = measure_clip(clip, out, request, max_side=64, frames=6)
    assert first.raw.frames == first.staged.frames == 6
    assert first.stages == "stabilize + exposure + bars"
    assert first.staged.psnr_all is not None and first.staged.psnr_all < 100  # the stages changed it
    # the third pass: the defaults less the temporal blend, which is the only difference left
    assert first.steadied is not None and first.steadied.frames == 6
    assert first.steadied.psnr_all is not None and first.staged.psnr_all < first.steadied.psnr_all
    again = measure_clip(
        clip, out, EngineRequest(engine="torch", model=tmp_path / "absent.pt"), 64, 6, reuse=True
    )
    assert again.staged.psnr_all == pytest.approx(first.staged.psnr_all)  # same network output, no model
    rows = table([first, again])
    assert len(rows) == 4 and rows[2].startswith("| clip.mp4 | 6 |")
    assert rows[0].count("|") == rows[2].count("|") == 10  # nine columns, each row filled


def test_timing_counts_the_frames_it_ran_and_fills_a_column(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A clip shorter than the frames asked is timed over the frames it has (8, not 48), and the
    table gains an end-to-end fps column, filled for the timed clip only."""
    clip = make_video(tmp_path / "clip.mp4", width=64, height=48, frames=8, audio=None)
    out = tmp_path / "out"
    out.mkdir()
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    result = measure_clip(clip, out, request, max_side=64, frames=None)
    timing = time_clip(clip, out, request, max_side=64, frames=48, rounds=1)
    assert timing["frames"] == 8 and timing["rounds"] == 1
    seconds = timing["seconds"]
    assert timing["fps_raw"] == pytest.approx(8 / seconds["raw"][0])
    assert timing["fps_default"] == pytest.approx(8 / seconds["default"][0])
    assert timing["time_ratio"] == pytest.approx(seconds["default"][0] / seconds["raw"][0])
    other = measure_clip(clip, out, request, 64, None, reuse=True)
    other.clip = "other.mp4"
    rows = table([result, other], {"clip.mp4": timing})
    assert rows[0].count("|") == rows[2].count("|") == rows[3].count("|") == 11  # ten columns
    assert rows[2].endswith(
        f" {timing['fps_raw']:.2f} → {timing['fps_default']:.2f} ({timing['time_ratio']:.2f}) |"
    )
    assert rows[3].endswith(" not timed |")
