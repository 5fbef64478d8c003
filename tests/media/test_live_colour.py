"""The webcam's colours. A recording (media.outputs.Recorder) is encoded with the matrix players
assume of its size and says so: BT.709 for HD, BT.601 for SD; it was encoded as BT.601 and left
untagged, and a 720p recording played with pure green at 216 and red with 24 of green. A file or
stream given as the webcam's input (media.capture) is read as `cartoonize video` reads it: an
untagged HD file was read as BT.601."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cartoonize.media.capture import Capture, CaptureSpec
from cartoonize.media.files import BT709, LIMITED, SMPTE170M, Colour, source_colour, to_rgb
from cartoonize.media.outputs import Recorder
from tests.helpers import BARS, colour_bars, untagged_video


@pytest.mark.parametrize(("size", "matrix"), [((1280, 720), BT709), ((640, 480), SMPTE170M)])
def test_a_recording_plays_in_its_colours(tmp_path: Path, size: tuple[int, int], matrix: int) -> None:
    width, height = size
    out = tmp_path / "rec.mp4"
    bars = colour_bars(width, height)
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


@pytest.mark.parametrize(("size", "matrix"), [((1280, 720), BT709), ((640, 480), SMPTE170M)])
def test_a_file_as_the_webcam_input_is_read_as_a_video_is(
    tmp_path: Path, size: tuple[int, int], matrix: int
) -> None:
    width, height = size
    bars, clip = colour_bars(width, height), tmp_path / "untagged.mp4"
    untagged_video(clip, bars, Colour(matrix, LIMITED, 1, 1))
    with av.open(str(clip)) as container:
        assert not source_colour(next(container.decode(video=0))).tagged
    capture = Capture(CaptureSpec(input=str(clip)))
    assert capture.source.kind == "file"
    capture.start()
    capture.go()
    try:
        taken = capture.frames.take(10.0)
        assert taken is not None
        shown = taken.rgb
    finally:
        capture.stop()
    for i, colour in enumerate(BARS):
        got = shown[height // 2, (2 * i + 1) * width // (2 * len(BARS))].astype(int)
        assert np.abs(got - colour).max() <= 4, (colour, got.tolist())
