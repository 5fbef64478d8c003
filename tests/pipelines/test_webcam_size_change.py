"""`cartoonize webcam` on a source whose picture changes size mid-stream (a network stream switching
quality or orientation; here two MPEG-TS clips of different sizes joined, as a .ts stream is):
every frame keeps its aspect ratio, fitted between black bars into the size the run opened with,
where the second clip was stretched to the first one's size."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from cartoonize.media.capture import Capture, CaptureSpec
from cartoonize.pipelines.webcam import WebcamJob, run_webcam
from cartoonize.runners.base import Runner
from cartoonize.stages import StageOptions
from tests.helpers import read_video

SIZES = [(96, 54), (54, 96)]  # landscape, then the same stream turned portrait
FRAMES = 15  # of each size, at 30 fps


def disc(width: int, height: int) -> np.ndarray:
    """A white disc on a coloured ramp: round in any picture that keeps the aspect ratio."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = 40 + x * 120 // width
    rgb[..., 2] = 40 + y * 120 // height
    r = min(width, height) // 3
    rgb[(x - width // 2) ** 2 + (y - height // 2) ** 2 < r * r] = 255
    return rgb


def two_size_stream(path: Path) -> Path:
    """One MPEG-TS stream whose picture changes size after FRAMES frames (two segments joined
    byte for byte, each with its own H.264 parameter sets, as HLS and broadcast streams switch)."""
    import av

    parts = []
    for i, (width, height) in enumerate(SIZES):
        part = path.with_suffix(f".{i}.ts")
        with av.open(str(part), "w", format="mpegts") as out:
            stream = out.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for n in range(FRAMES):
                frame = av.VideoFrame.from_ndarray(disc(width, height), format="rgb24")
                frame.pts, frame.time_base = i * FRAMES + n, Fraction(1, 30)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        parts.append(part.read_bytes())
    path.write_bytes(b"".join(parts))
    return path


def disc_box(rgb: np.ndarray) -> tuple[int, int]:
    """(width, height) of the white disc."""
    white = np.argwhere(rgb.min(axis=2) > 200)
    (y0, x0), (y1, x1) = white.min(axis=0), white.max(axis=0)
    return int(x1 - x0 + 1), int(y1 - y0 + 1)


def assert_round_between_bars(rgb: np.ndarray) -> None:
    width, height = disc_box(rgb)
    assert abs(width - height) <= 3, f"the disc is {width}x{height}: the picture was stretched"
    bar = (rgb.shape[1] - round(SIZES[1][0] * rgb.shape[0] / SIZES[1][1])) // 2  # 33 of 96 columns
    assert bar > 10 and rgb[:, : bar - 2].max() < 20 and rgb[:, -(bar - 2) :].max() < 20, "no black bars"


class Same(Runner):
    """A real runner whose cartoon is the frame itself, so what was recorded shows the geometry."""

    name = "same"

    def load(self) -> None:
        pass

    def infer(self, frames: np.ndarray) -> np.ndarray:
        return frames.copy()


def test_the_capture_keeps_the_aspect_ratio_when_the_size_changes(tmp_path: Path) -> None:
    capture = Capture(CaptureSpec(str(two_size_stream(tmp_path / "two.ts"))))
    capture.start()
    capture.go()
    got = []
    while (item := capture.frames.take(timeout=10.0)) is not None:
        got.append(item)
    capture.stop()
    assert got[0].index == 1 and got[-1].index == 2 * FRAMES  # (the first and the last are never dropped)
    assert {item.rgb.shape for item in got} == {(54, 96, 3)}, "every frame at the first size"
    assert abs(np.subtract(*disc_box(got[0].rgb))) <= 3
    assert_round_between_bars(got[-1].rgb)
    assert all(item.letterboxed == (SIZES[1] if item.index > FRAMES else None) for item in got)


def test_the_recording_keeps_its_size_and_the_picture_its_shape(tmp_path: Path) -> None:
    out = tmp_path / "live.mp4"
    said: list[str] = []
    job = WebcamJob(CaptureSpec(str(two_size_stream(tmp_path / "two.ts"))), preview=False, output=str(out),
                    stages=StageOptions(raw=True))  # fmt: skip
    report = run_webcam(job, lambda _size: Same(), said.append)
    assert report.stopped == "the input ended" and not report.failed, report.summary()
    notes = [line for line in said if "changed its picture to 54x96" in line]
    assert len(notes) == 1 and "fitted into 96x54" in notes[0] and "aspect ratio kept" in notes[0], said
    _, frames, _ = read_video(out)
    assert {frame.shape for frame in frames} == {(54, 96, 3)}
    assert abs(np.subtract(*disc_box(frames[0]))) <= 3
    assert_round_between_bars(frames[-1])
