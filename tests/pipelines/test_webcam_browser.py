"""`cartoonize webcam --serve` seen in a real browser: Debian's Chromium, headless (driven through
the DevTools protocol), opens the page and screenshots it twice; the picture must be the live cartoon (a non-uniform image where the page
shows the stream, and a different one a moment later). Skips with a reason where Chromium is absent
(`apt-get install -y chromium`; .ci/run installs it)."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cartoonize.pipelines.image import read_image
from tests.bound_children import bound
from tests.conftest import ROOT
from tests.helpers import start_serving

WINDOW = (480, 360)
SOURCE = "testsrc2=size=320x240:rate=15"  # moving colour bars and a counter: every frame differs


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("Chromium is not installed (apt-get install -y chromium)")


class DevTools:
    """Headless Chromium driven over `--remote-debugging-pipe` (the DevTools protocol as
    NUL-separated JSON on file descriptors 3 and 4: no WebSocket client needed)."""

    def __init__(self, browser: str, profile: Path) -> None:
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars",
                "--remote-debugging-pipe", "about:blank"]  # fmt: skip
        # Chromium reads the protocol on descriptor 3 and writes on 4: a small Python puts the pipe
        # ends there and execs it (not a `preexec_fn`, which forks this many-threaded process)
        place = ("import fcntl, os, sys\n"
                 "fds = [int(fd) for fd in sys.argv[1:3]]\n"
                 "ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5) for fd in fds]  # above 3 and 4\n"
                 "for fd in fds: os.close(fd)\n"
                 "for end, target in zip(ends, (3, 4)): os.dup2(end, target); os.close(end)\n"
                 "os.execv(sys.argv[3], sys.argv[3:])\n")  # fmt: skip
        self.proc = subprocess.Popen(bound([sys.executable, "-c", place, str(to_browser), str(from_browser), *args]),
                                     pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def call(self, method: str, timeout: float = 60, **params: object) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:  # events may come between: the deadline holds for the whole wait
            assert time.monotonic() < deadline, f"Chromium did not answer {method}"
            while b"\0" not in self._buffer:
                assert time.monotonic() < deadline, f"Chromium did not answer {method}"
                ready, _, _ = select.select([self._read], [], [], 1.0)
                if ready:
                    chunk = os.read(self._read, 1 << 20)
                    assert chunk, f"Chromium closed the pipe (exit {self.proc.poll()})"
                    self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=WINDOW[1], deviceScaleFactor=1,
                  mobile=False)  # fmt: skip

    def evaluate(self, expression: str) -> object:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self, path: Path) -> np.ndarray:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return read_image(path)

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except AssertionError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._write)
        os.close(self._read)


def wait_until(check, seconds: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.25)


def stats(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url + "stats.json", timeout=10).read())


def middle_of(shot: np.ndarray) -> tuple[slice, slice]:
    """The page centres the 320×240 stream on a #111 background: its middle is the picture."""
    h, w = shot.shape[:2]
    return slice(h // 2 - 80, h // 2 + 80), slice(w // 2 - 110, w // 2 + 110)


def picture_change(first: np.ndarray, second: np.ndarray) -> float:
    """Mean absolute difference, in levels, of the stream's area in two screenshots."""
    middle = middle_of(first)
    return float(np.abs(first[middle].astype(np.int16) - second[middle]).mean())


def test_serve_shows_the_live_cartoon_in_chromium(tmp_path: Path, tiny_checkpoint: Path) -> None:
    browser = chromium()
    args = ["--input-format", "lavfi", "--input", SOURCE, "--model", str(tiny_checkpoint), "--engine", "torch",
            "--infer-side", "160"]  # fmt: skip
    proc, url = start_serving(args, tmp_path, ROOT)
    try:
        deadline = time.monotonic() + 120
        while stats(url)["fps"] <= 0:  # two frames shown: the model is loaded and frames flow
            assert time.monotonic() < deadline and proc.poll() is None, "no frames were served"
            time.sleep(0.5)

        browser_session = DevTools(browser, tmp_path / "profile")
        try:
            browser_session.open(url)
            # the <img> has decoded a frame of the stream, and the page's script shows the numbers
            wait_until(lambda: (browser_session.evaluate("document.getElementById('live').naturalWidth") or 0) > 0,
                       60, "the browser shows no frame of the stream")  # fmt: skip
            wait_until(lambda: "fps" in str(browser_session.evaluate("document.getElementById('stats').textContent")),
                       30, "the page's live numbers never appeared")  # fmt: skip
            first = browser_session.screenshot(tmp_path / "first.png")
            # live: the picture moves on. The tiny network's cartoon is low in contrast and the
            # pattern moves slowly, so screenshots are taken until it has (not after a fixed delay)
            second, change, deadline = first, 0.0, time.monotonic() + 45
            while change <= 2 and time.monotonic() < deadline:
                time.sleep(0.5)
                second = browser_session.screenshot(tmp_path / "second.png")
                change = picture_change(first, second)
            size = browser_session.evaluate(
                "[document.getElementById('live').naturalWidth, document.getElementById('live').naturalHeight]"
            )
        finally:
            browser_session.close()
        print(f"\nscreenshots: {tmp_path / 'first.png'} {tmp_path / 'second.png'}")
    finally:
        proc.terminate()
        proc.wait(30)

    assert size == [320, 240], size  # the stream is the camera's size: full-size output from 160-px inference
    assert first.shape[:2] == (WINDOW[1], WINDOW[0])
    middle = middle_of(first)
    for shot in (first, second):
        picture = shot[middle].astype(np.float64)
        # a uniform area (an <img> with nothing decoded, a black box) has a spread of a level or two;
        # the tiny network's low-contrast cartoon of the test pattern measured 19.9 to 40
        assert picture.std() > 8, "the stream area is uniform: no picture was shown"
        assert np.abs(picture - 17).mean() > 20, "the stream area is the page background"
    assert change > 2, f"the two screenshots are the same picture ({change:.2f}): the stream is not live"
