"""The GIL's switch interval while a pipeline runs (pipelines.handoffs) and its benchmark."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cartoonize.pipelines.handoffs import SWITCH_INTERVAL_S, quick_handoffs
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.runners.base import Runner
from cartoonize.stages import StageOptions

OWN = 0.004  # an interval of the test's own, unlike CPython's default and ours


def near(seconds: float):  # noqa: ANN201 - CPython keeps the interval in whole microseconds
    return pytest.approx(seconds, abs=2e-6)


@pytest.fixture
def own_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(OWN)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_the_interval_is_short_inside_and_restored_after(own_interval: None) -> None:
    with quick_handoffs():
        assert sys.getswitchinterval() == near(SWITCH_INTERVAL_S)
    assert sys.getswitchinterval() == near(OWN)
    with quick_handoffs(None):  # None: the interpreter's own
        assert sys.getswitchinterval() == near(OWN)


def test_an_error_inside_still_restores(own_interval: None) -> None:
    with pytest.raises(KeyError), quick_handoffs():
        raise KeyError("boom")
    assert sys.getswitchinterval() == near(OWN)


def test_a_shorter_interval_already_set_is_kept(own_interval: None) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S / 5)
    with quick_handoffs():
        assert sys.getswitchinterval() == near(SWITCH_INTERVAL_S / 5)
    assert sys.getswitchinterval() == near(SWITCH_INTERVAL_S / 5)


def test_pipelines_running_at_once_restore_when_the_last_ends(own_interval: None) -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, float] = {}

    def first() -> None:
        with quick_handoffs():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with quick_handoffs():
            second_in.set()
            first_out.wait(5)
            seen["after the first ended"] = sys.getswitchinterval()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen["after the first ended"] == near(SWITCH_INTERVAL_S)
    assert sys.getswitchinterval() == near(OWN)


def test_a_change_made_meanwhile_is_not_undone(own_interval: None) -> None:
    with quick_handoffs():
        sys.setswitchinterval(0.002)  # the caller's own decision, mid-run
    assert sys.getswitchinterval() == near(0.002)


class Recording(Runner):
    """Returns its frames; notes the switch interval the engine thread runs under."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: set[float] = set()

    def load(self) -> None:
        pass

    def infer(self, frames: np.ndarray) -> np.ndarray:
        self.seen.add(sys.getswitchinterval())
        return frames


@pytest.mark.parametrize("interval", [SWITCH_INTERVAL_S, None])
def test_video_runs_with_the_jobs_interval(
    interval: float | None, own_interval: None, small_video: Path, tmp_path: Path
) -> None:
    runner = Recording()
    job = VideoJob(small_video, tmp_path / "out.mp4", stages=StageOptions(raw=True), switch_interval=interval)
    report = cartoonize_video(job, lambda _size: runner)
    assert report.frames == 24
    assert len(runner.seen) == 1 and runner.seen.pop() == near(interval or OWN)
    assert sys.getswitchinterval() == near(OWN)


def test_the_webcam_runs_with_the_short_interval(own_interval: None) -> None:
    from cartoonize.media.capture import CaptureSpec
    from cartoonize.pipelines.webcam import WebcamJob, run_webcam

    runner = Recording()
    job = WebcamJob(CaptureSpec("testsrc2=size=64x48:rate=30", "lavfi"), preview=False, frames=5)
    assert run_webcam(job, lambda _size: runner).shown == 5
    assert len(runner.seen) == 1 and runner.seen.pop() == near(SWITCH_INTERVAL_S)
    assert sys.getswitchinterval() == near(OWN)


def test_the_benchmark_compares_with_the_default_interval(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from cartoonize.measure.handoffs import main

    out = tmp_path / "handoffs.json"
    args = [str(small_video), "--frames", "8", "--host-ms", "2", "--device-ms", "2"]
    assert main([*args, "--engine", "torch", "--model", str(tiny_checkpoint), "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["engine"], r["baseline"]) for r in rows] == [
        ("launch-bound (emulated)", True), ("launch-bound (emulated)", False), ("torch", True), ("torch", False)
    ]  # fmt: skip
    assert {r["switch_interval_ms"] for r in rows} == {5.0, SWITCH_INTERVAL_S * 1000}
    assert all(r["frames"] == 8 and r["fps"] > 0 for r in rows)
    assert rows[0]["vs_baseline"] == 1.0 and rows[1]["vs_baseline"] == pytest.approx(
        rows[1]["fps"] / rows[0]["fps"], rel=0.01
    )
    assert 0 < rows[0]["alone_fps"] <= 500  # 2 ms of device a frame: at most 500 fps
    assert "vs 5 ms" in capsys.readouterr().out


def test_the_benchmark_refuses_a_missing_clip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cartoonize.measure.handoffs import main

    assert main([str(tmp_path / "nope.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err
