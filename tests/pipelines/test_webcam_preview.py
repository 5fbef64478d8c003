"""The preview, seen from outside: the window on a virtual X display (Xvfb), grabbed with
FFmpeg's x11grab, and the --serve page and MJPEG stream fetched by a real HTTP client."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.media.capture import CaptureSpec
from cartoonize.pipelines.image import read_image, write_image
from cartoonize.pipelines.webcam import WebcamJob, run_webcam
from cartoonize.stages import StageOptions
from tests.bound_children import bound, webcam_child
from tests.conftest import ROOT, SHARED_MEDIA
from tests.helpers import interrupt, start_serving

LAVFI = ["--input-format", "lavfi", "--input", "testsrc2=size=320x240:rate=30"]
SCREEN = (1024, 768)


@pytest.fixture
def xvfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private X display (DISPLAY is set to it for the test). Xvfb picks a free display number
    itself and writes it to a pipe once it accepts connections (`-displayfd`): no guessing a
    number from lock files, and no client that connects before the server is ready (a socket file
    left by an earlier server made SDL fall back to its invisible driver, seen once in a CI run)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install -y xvfb)")
    ready, write_end = os.pipe()
    proc = subprocess.Popen(
        bound(["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_end,),
    )  # fmt: skip
    os.close(write_end)
    answer = b""
    deadline = time.monotonic() + 20
    while not answer.endswith(b"\n"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            os.close(ready)
            pytest.skip("Xvfb did not start")
        if select.select([ready], [], [], 0.2)[0]:
            chunk = os.read(ready, 64)
            if not chunk:  # closed without a number: it failed
                continue
            answer += chunk
    os.close(ready)
    display = f":{int(answer)}"
    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    yield display
    proc.terminate()
    proc.wait(5)


def grab_screen(display: str) -> np.ndarray:
    """A screenshot of the whole X display, through FFmpeg's x11grab."""
    import av

    options = {"video_size": f"{SCREEN[0]}x{SCREEN[1]}", "draw_mouse": "0"}
    with av.open(display, format="x11grab", options=options) as grab:
        return next(grab.decode(video=0)).to_ndarray(format="rgb24")


def window_area(screen: np.ndarray) -> tuple[slice, slice] | None:
    """Where the (only) window is: the bounding box of the non-black pixels."""
    lit = screen.max(axis=2) > 16
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


@pytest.mark.parametrize(
    ("model", "source"),
    [
        ("tiny_checkpoint", CaptureSpec("testsrc2=size=320x240:rate=30", "lavfi", max_side=160)),
        pytest.param("hayao_checkpoint", CaptureSpec(str(SHARED_MEDIA / "big_buck_bunny_0_30.webm"), max_side=160),
                     marks=[pytest.mark.shared, pytest.mark.slow], id="hayao"),
    ],
    ids=["tiny", "hayao"],
)  # fmt: skip
def test_window_shows_original_and_cartoon_and_takes_keys(xvfb: str, tmp_path: Path, model: str,
                                                          source: CaptureSpec, request) -> None:  # fmt: skip
    """Side by side, the window's right half must be the engine's cartoon of its left half; keys
    f (overlay off), s (snapshot), space (original only) and closing the window all work."""
    import pygame

    engine = EngineRequest("torch", model=request.getfixturevalue(model), device="cpu")
    # --raw: the window shows the network's own frame, which the test recomputes beside it
    job = WebcamJob(
        source, side_by_side=True, frames=200, snapshot_dir=tmp_path, stages=StageOptions(raw=True)
    )
    shots: dict[str, np.ndarray] = {}
    messages: list[str] = []

    def press(key: int) -> None:
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))

    def on_frame(shown: int) -> None:
        if shown == 3:
            press(pygame.K_f)
        elif shown == 8:
            shots["both"] = grab_screen(xvfb)
            press(pygame.K_s)
        elif shown == 12:
            press(pygame.K_SPACE)
        elif shown == 16:
            shots["original"] = grab_screen(xvfb)
            pygame.event.post(pygame.event.Event(pygame.QUIT))

    report = run_webcam(job, lambda size: runner_for(engine, size), messages.append, on_frame)
    assert report.stopped == "window closed", report.summary()
    assert 16 <= report.shown < 20

    w, h = report.width, report.height
    screenshot = tmp_path / f"webcam-window-{model.split('_')[0]}.png"
    write_image(screenshot, shots["both"])
    print(f"\nscreenshot of the preview window: {screenshot}")

    area = window_area(shots["both"])
    assert area is not None, "the window shows nothing (all black)"
    window = shots["both"][area]
    assert window.shape[:2] == (2 * h, 4 * w), window.shape  # original | cartoon, enlarged x2
    original, cartoon = window[::2, : 2 * w : 2], window[::2, 2 * w :: 2]  # undo the enlargement
    assert original.std() > 10 and cartoon.std() > 5
    with runner_for(engine) as runner:
        expected = runner(np.ascontiguousarray(original)[None])[0]
    assert np.abs(cartoon.astype(int) - expected).mean() < 2.0  # the cartoon of the frame beside it
    assert np.abs(cartoon.astype(int) - original).mean() > 8  # and not the original again

    only = shots["original"][window_area(shots["original"])]
    assert only.shape[:2] == (4 * h, 4 * w)  # space: the original alone, enlarged x4

    snapshots = list(tmp_path.glob("cartoonize-*.png"))
    assert len(snapshots) == 1 and any("saved snapshot" in m for m in messages)
    assert read_image(snapshots[0]).shape == (h, 2 * w, 3)  # what was shown, without the window scale


def test_cli_window_under_xvfb_and_ctrl_c(xvfb: str, tmp_path: Path, tiny_checkpoint: Path) -> None:
    """The command itself opens a visible window with live content, and Ctrl-C closes it with
    exit 130."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        webcam_child([*LAVFI, "--max-side", "160", "--model", str(tiny_checkpoint)]),
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # the window shows within seconds; the deadline allows a 2-core machine loaded by other tests
        deadline, first = time.monotonic() + 180, None
        while time.monotonic() < deadline and proc.poll() is None:
            screen = grab_screen(xvfb)
            area = window_area(screen)
            if area is not None and screen[area].shape[:2] == (480, 640):
                if first is None:
                    first = screen[area]
                elif np.abs(screen[area].astype(int) - first).mean() > 1:
                    break  # live: the picture moves
            time.sleep(0.3)
        else:
            pytest.fail(f"no live window appeared: {proc.communicate(timeout=10)[0] if proc.poll() else ''}")
        write_image(tmp_path / "cli-window.png", screen)
        print(f"\nscreenshot of the CLI's window: {tmp_path / 'cli-window.png'}")
        text = interrupt(proc)
    finally:
        proc.kill()
    assert proc.returncode == 130, text
    assert "interrupted (Ctrl-C)" in text and "Traceback" not in text


def first_frame(url: str, patience: float = 90.0) -> bytes:
    """GET /frame.jpg as a viewer that refreshes would: the server answers 503 ("no frame yet")
    when none came within its 10 s wait, as on a loaded 2-core machine while the child still loads
    the model; ask again until `patience` runs out."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return urllib.request.urlopen(url, timeout=20).read()
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or time.monotonic() > deadline:
                raise


def test_serve_page_stream_and_frame(tmp_path: Path, tiny_checkpoint: Path) -> None:
    proc, url = start_serving([*LAVFI, "--max-side", "160", "--model", str(tiny_checkpoint)], tmp_path, ROOT)
    try:
        page = urllib.request.urlopen(url, timeout=10).read().decode()
        assert '<img id="live" src="/stream.mjpg"' in page

        jpeg = first_frame(url + "frame.jpg")
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
        (tmp_path / "frame.jpg").write_bytes(jpeg)
        frame = read_image(tmp_path / "frame.jpg")
        assert frame.shape == (120, 160, 3) and frame.std() > 5
        print(f"\nframe served over HTTP: {tmp_path / 'frame.jpg'}")

        with urllib.request.urlopen(url + "stream.mjpg", timeout=20) as stream:
            assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
            received = b""
            while received.count(b"Content-Type: image/jpeg") < 3:
                received += stream.read(4096)
        assert received.startswith(b"--cartoonizeframe\r\nContent-Type: image/jpeg")

        import json

        stats = json.loads(urllib.request.urlopen(url + "stats.json", timeout=10).read())
        assert stats["fps"] > 1 and stats["latency_ms"] > 0
        text = interrupt(proc)
    finally:
        proc.kill()
    assert proc.returncode == 130, text
    assert "frames shown" in text and "Traceback" not in text
