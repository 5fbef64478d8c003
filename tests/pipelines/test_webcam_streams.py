"""`cartoonize webcam --output rtmp://...` against a real RTMP server on 127.0.0.1 that stops
reading mid-stream: the run ends within seconds, saying why, where it ran on for ever with every
frame silently left out of the stream."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cartoonize.media import outputs
from cartoonize.media.capture import CaptureSpec
from cartoonize.pipelines.webcam import WebcamJob, run_webcam
from cartoonize.runners.base import Runner
from cartoonize.stages import StageOptions
from tests.media.test_stream_outputs import _free_port, _rtmp_receiver

NOISE = "nullsrc=size=320x240:rate=30,geq=random(1)*255:128:128"  # H.264 that fills buffers fast


class Inverse(Runner):
    name = "inverse"

    def load(self) -> None:
        pass

    def infer(self, frames: np.ndarray) -> np.ndarray:
        return 255 - frames


def test_a_stalled_stream_ends_the_run_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outputs, "STALL_SECONDS", 1.0)
    port, done = _free_port(), threading.Event()
    _rtmp_receiver(port, 5, done)
    job = WebcamJob(CaptureSpec(NOISE, "lavfi"), preview=False, output=f"rtmp://127.0.0.1:{port}/live/x",
                    stages=StageOptions(raw=True))  # fmt: skip
    started = time.perf_counter()

    def give_up(_shown: int) -> None:  # the bug: it ran until stopped
        if time.perf_counter() - started > 25:
            raise KeyboardInterrupt

    try:
        report = run_webcam(job, lambda _size: Inverse(), on_frame=give_up)
    finally:
        done.set()
    assert report.failed and not report.interrupted, report.summary()
    assert "the receiver stopped taking the stream (nothing sent for 1 s); cut after" in report.stopped
    assert report.shown > 0
