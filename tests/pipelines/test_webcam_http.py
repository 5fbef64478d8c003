"""`cartoonize webcam --input http://...` (an IP camera's MJPEG, a video on a web server), against
real servers on 127.0.0.1: one that takes the connection and never answers is an error within the
open timeout, where the open waited for ever (and Ctrl-C with it); a video served over HTTP plays
to its end as a file does."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cartoonize.errors import CartoonizeError
from cartoonize.media import capture
from cartoonize.media.capture import Capture, CaptureSpec
from cartoonize.pipelines.webcam import WebcamJob, run_webcam
from cartoonize.stages import StageOptions
from tests.pipelines.test_webcam_streams import Inverse


def test_a_server_that_never_answers_is_an_error_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "OPEN_TIMEOUT", 1.0)
    outcome: list[BaseException | None] = []
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(1)  # the kernel takes the connection; nothing ever answers
        url = f"http://127.0.0.1:{mute.getsockname()[1]}/video.mjpg"

        def open_it() -> None:
            try:
                Capture(CaptureSpec(url))
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - looked at below
                outcome.append(exc)

        opener = threading.Thread(target=open_it, daemon=True)
        opener.start()
        opener.join(15)
        hung = opener.is_alive()
    opener.join(15)  # the listener closed: a hung open ends with the connection reset
    assert not hung, "the open waited on the mute server"
    assert isinstance(outcome[0], CartoonizeError), outcome
    assert str(outcome[0]) == f"no answer from {url} within 1 s"


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()


def test_a_video_over_http_plays_to_its_end(small_video: Path) -> None:
    with serving(small_video.parent) as url:
        job = WebcamJob(CaptureSpec(url + small_video.name), preview=False, stages=StageOptions(raw=True))
        report = run_webcam(job, lambda _size: Inverse())
    assert report.stopped == "the input ended" and not report.failed, report.summary()
    assert report.shown > 1 and (report.width, report.height) == (64, 48)


def test_an_mjpeg_camera_that_stalls_ends_the_run_as_a_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    """An IP camera's MJPEG over HTTP (our own preview server standing in) that stops sending
    mid-stream: the read times out, and the run ends as failed (exit 1), not as an input that ended."""
    from cartoonize.media.mjpeg import PreviewServer

    monkeypatch.setattr(capture, "OPEN_TIMEOUT", 1.0)
    camera, seen = PreviewServer("127.0.0.1", 0), threading.Event()
    picture = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)

    def send() -> None:  # frames until the run has shown some, then nothing: the connection stays open
        while not seen.is_set():
            camera.publish(picture, {})
            seen.wait(1 / 30)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        job = WebcamJob(CaptureSpec(camera.url + "stream.mjpg"), preview=False, stages=StageOptions(raw=True))
        report = run_webcam(job, lambda _size: Inverse(), on_frame=lambda shown: shown >= 3 and seen.set())
    finally:
        seen.set()
        camera.close()
    assert report.shown >= 3 and report.failed, report.summary()
    assert report.stopped == f"{camera.url}stream.mjpg failed (nothing for 1 s)", report.summary()
