"""Odd widths and heights reach a 4:2:0-friendly even size by one repeated row or column: the
original pixels are the engine's output untouched, no resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.media.files import EncoderSettings
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.stages import StageOptions
from tests.helpers import make_video, read_video


def test_odd_frames_keep_their_pixels_and_repeat_the_edge(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_video(tmp_path / "odd.mkv", width=63, height=47, frames=3, audio=None, codec="ffv1",
                     pix_fmt="yuv444p")  # fmt: skip
    out = tmp_path / "out.mkv"
    lossless = EncoderSettings(crf=0, pix_fmt="yuv444p")  # x264 lossless, no chroma subsampling
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    cartoonize_video(
        VideoJob(src, out, encoder=lossless, stages=StageOptions(raw=True)),
        lambda size: runner_for(request, size),
    )

    _, originals, _ = read_video(src)
    _, frames, _ = read_video(out)
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
    with runner_for(request) as runner:
        cartoons = [
            runner(original[None])[0] for original in originals
        ]  # (47, 63, 3) each, as the pipeline runs them
    for frame, cartoon in zip(frames, cartoons, strict=True):
        # every original pixel where it was (RGB -> YUV 4:4:4 -> RGB rounds by a level or two);
        # a stretch by one pixel moves this noisy picture's pixels onto their neighbours' values
        assert np.abs(frame[:47, :63].astype(int) - cartoon.astype(int)).max() <= 3
        assert np.array_equal(frame[47, :63], frame[46, :63])  # the added row repeats its neighbour
        assert np.array_equal(frame[:, 63], frame[:, 62])  # and the added column
