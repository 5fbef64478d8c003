"""`just quality` end to end on a generated clip with a tiny model: both passes, the table, the
recording served again by --reuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartoonize.choose import EngineRequest
from cartoonize.measure.quality_clips import measure_clip, table
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
