"""The GPU check's profiling tools run on the CPU too: a traced window of a real `cartoonize video`
run gives a summary with the engine's ranges in it (so a GPU run spends its minutes measuring)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gpu_profile import SyncCounter, _union_ms
from tests.helpers import child_env, make_video


def test_union_of_intervals_and_gaps() -> None:
    covered, gaps = _union_ms([(0, 1000), (500, 1500), (3000, 4000), (3500, 3600)])
    assert covered == 2.5 and gaps == [1.5]


def test_profile_window_of_a_video_run(tiny_checkpoint: Path, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "in.mp4", frames=30, width=96, height=64)
    report = tmp_path / "report.json"
    child = subprocess.run(
        [sys.executable, "-m", "tests.gpu_video", str(clip), str(tmp_path / "out.mp4"), str(report),
         "--engine", "torch", "--device", "cpu", "--model", str(tiny_checkpoint), "--raw",
         "--profile", str(tmp_path / "prof"), "--profile-frames", "5,10"],
        capture_output=True, text=True, env=child_env(), timeout=300,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(report.read_text())
    profile = result["profile"]
    assert result["frames"] == 30 and profile["frames"] == 10, profile
    assert (tmp_path / "prof" / "trace.json.gz").stat().st_size > 0
    ranges = {row["name"]: row for row in profile["ranges"]}
    assert set(ranges) == {"cartoonize.submit", "cartoonize.collect"}, ranges
    # the window holds 10 frames, not the whole run (30) nor the load
    assert all(row["calls_per_frame"] == 1.0 for row in ranges.values()), ranges
    assert {row["thread"] for row in ranges.values()} == {"MainThread"}, (
        ranges
    )  # the engine's thread, by name
    assert "aten::convolution" in {row["name"] for row in profile["host_ops"]}
    assert 0 < profile["wall_ms_per_frame"] < 10_000 and profile["gpu_busy_share"] == 0.0
    assert "profile over 10 frames" in child.stdout


def test_sync_counter_counts_by_thread_and_cartoonize_place() -> None:
    """torch reports each synchronising call as a UserWarning ("called a synchronizing CUDA
    operation"); the counter files it under the thread and the place that made it (the innermost
    cartoonize frame, else the warning's own line)."""
    import threading
    import warnings

    def sync_here() -> None:
        warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)

    counter = SyncCounter()
    with counter.watching():
        sync_here()
        worker = threading.Thread(target=sync_here, name="stages")
        worker.start()
        worker.join()
        with pytest.warns(UserWarning, match="something else"):  # passed on, not counted
            warnings.warn("something else", UserWarning, stacklevel=1)
    rows = counter.report(frames=2)
    assert {row["thread"] for row in rows} == {"MainThread", "stages"}, rows
    assert all(row["per_frame"] == 0.5 and "test_gpu_profile.py:" in row["where"] for row in rows), rows
