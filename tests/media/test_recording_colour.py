"""A webcam recording (media.outputs.Recorder) is encoded with the matrix players assume of its
size and says so: BT.709 for HD, BT.601 for SD. It was encoded as BT.601 and left untagged, and a
720p recording played with pure green at 216 and red with 24 of green."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cartoonize.media.files import BT709, SMPTE170M, source_colour, to_rgb
from cartoonize.media.outputs import Recorder

BARS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 150, 60), (235, 235, 235), (20, 20, 20)]


def _bars(width: int, height: int) -> np.ndarray:
    rgb = np.zeros((height, width, 3), np.uint8)
    for i, colour in enumerate(BARS):
        rgb[:, i * width // len(BARS) : (i + 1) * width // len(BARS)] = colour
    return rgb


@pytest.mark.parametrize(("size", "matrix"), [((1280, 720), BT709), ((640, 480), SMPTE170M)])
def test_a_recording_plays_in_its_colours(tmp_path: Path, size: tuple[int, int], matrix: int) -> None:
    width, height = size
    out = tmp_path / "rec.mp4"
    bars = _bars(width, height)
    recorder = Recorder(str(out), width, height, Fraction(30), overwrite=True)
    for i in range(6):
        recorder.write(bars, i / 30)
    recorder.close()
    assert recorder.error is None and recorder.written == 6
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
        assert (container.streams.video[0].codec_context.colorspace, frame.colorspace) == (matrix, matrix)
        shown = to_rgb(frame, source_colour(frame))  # as a player decodes it, by its tags
    for i, colour in enumerate(BARS):
        x = (2 * i + 1) * width // (2 * len(BARS))  # the middle of each bar, away from chroma's edges
        got = shown[height // 2, x].astype(int)
        assert np.abs(got - colour).max() <= 3, (colour, got.tolist())
