"""An encoder may not make the job real-time (media/scheduling.py). SVT-AV1, run as root, moved the
thread that opened it and its forty-odd workers to SCHED_FIFO at priority 99, and every thread the
job started afterwards inherited it: ONNX Runtime's spinning workers then held the cores, and the
job's own threads (the signal handler among them) waited for each whole frame."""

from __future__ import annotations

import os
import threading
from fractions import Fraction
from pathlib import Path

import pytest

from cartoonize.media.files import EncoderSettings, encoder_problem
from cartoonize.media.scheduling import kept, realtime_threads
from tests.helpers import pattern, run_main


def _may_go_realtime() -> bool:
    """Whether this process may enter a real-time class (root, or CAP_SYS_NICE), as SVT-AV1 does
    only then: tried on a thread of its own, put back at once."""
    allowed: list[bool] = []

    def attempt() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except (OSError, AttributeError):
            allowed.append(False)
            return
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        allowed.append(True)

    worker = threading.Thread(target=attempt)
    worker.start()
    worker.join()
    return allowed[0]


needs_realtime = pytest.mark.skipif(
    not _may_go_realtime(),
    reason="this process may not enter a real-time class (not root): nothing to put back",
)


def needs_svt() -> None:
    import av

    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this FFmpeg has no SVT-AV1 encoder (libsvtav1)")


@needs_realtime
def test_threads_made_realtime_in_the_block_are_put_back() -> None:
    seen: dict[str, object] = {}

    def work() -> None:  # on a thread of its own: the test's thread is never made real-time
        release = threading.Event()
        with kept():
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            child = threading.Thread(target=release.wait)  # started real-time, so it is too
            child.start()
            seen["inside"] = len(realtime_threads())
        seen["after"] = realtime_threads()
        seen["policy"] = os.sched_getscheduler(0)
        release.set()
        child.join()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen["inside"] == 2
    assert seen["after"] == set()
    assert seen["policy"] == os.SCHED_OTHER


@needs_realtime
def test_a_thread_real_time_before_the_block_stays_so() -> None:
    seen: dict[str, int] = {}

    def work() -> None:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))  # the user's own choice (chrt)
        try:
            with kept():
                pass
            seen["policy"] = os.sched_getscheduler(0)
        finally:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen["policy"] == os.SCHED_RR


@needs_realtime
def test_an_svt_av1_video_job_runs_at_the_normal_class(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole CLI in this process: the encoder check opens SVT-AV1 once, the job again."""
    needs_svt()
    out = tmp_path / "out.mkv"
    code, _, err = run_main(["video", str(small_video), str(out), "--model", str(tiny_checkpoint),
                             "--engine", "torch", "--codec", "libsvtav1"], capsys)  # fmt: skip
    assert code == 0, err
    assert out.exists()
    assert realtime_threads() == set()
    assert "Svt[info]" not in err  # its twenty lines of settings


@needs_realtime
def test_the_encoder_check_and_the_live_recorder_leave_no_real_time_thread(tmp_path: Path) -> None:
    needs_svt()
    from cartoonize.media.outputs import Recorder

    assert encoder_problem("libsvtav1") is None
    assert realtime_threads() == set()
    recorder = Recorder(
        str(tmp_path / "live.mkv"), 64, 48, Fraction(12), settings=EncoderSettings(codec="libsvtav1")
    )
    for i in range(6):
        recorder.write(pattern(64, 48, i), i / 12)
    recorder.close()
    assert recorder.error is None and recorder.written == 6
    assert realtime_threads() == set()
