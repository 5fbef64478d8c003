"""Fixtures for the scale-out tests: a 20 s clip to cut into segments and its single-pass
cartoons, made once per session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import make_video, set_display_rotation


@contextmanager
def torch_on_one_thread() -> Iterator[None]:
    """Torch on one thread in this process, as each worker runs it: on a shared 2-core machine a
    2-thread pool waits on the scheduler at every operation of the tiny model."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    with torch_on_one_thread():
        yield


@pytest.fixture(scope="session")
def lossless_single_pass(
    long_clip: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The long clip through the tiny model in one pass, per-frame stages, stored losslessly
    (FFV1): what the segment runs on local processes and on Ray are compared with."""
    from tests.pipelines.test_segments import LOSSLESS, PER_FRAME, single_pass

    out = tmp_path_factory.mktemp("single") / "single.mkv"
    with torch_on_one_thread():
        return single_pass(long_clip, out, tiny_checkpoint, encoder=LOSSLESS, stages=PER_FRAME)


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 20 s of 64×48 video at a variable frame rate (steps of 1/30, 1/15 and 1/10 s), a
    keyframe at least every 24 frames, a stereo AAC track and a 90° display rotation."""
    rng = np.random.default_rng(7)
    durations = [int(d) for d in rng.choice([3000, 6000, 9000], size=300)]  # 1/90000 s ticks
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    make_video(path, width=64, height=48, frames=len(durations), durations=durations, audio="aac", gop=24)
    set_display_rotation(path, 90)
    return path


def cartoonize_in(src: Path, out: Path, checkpoint: Path, segments: int = 1) -> None:
    """`src` cartoonized into `out` by the tiny model in one pass, or cut into `segments` and
    joined (in this process): the two ways a test compares."""
    from cartoonize.choose import EngineRequest, runner_for
    from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
    from cartoonize.pipelines.video import VideoJob, cartoonize_video
    from cartoonize.pipelines.workers import InProcess

    request = EngineRequest(engine="torch", model=checkpoint, device="cpu")
    if segments == 1:
        cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size))
        return
    report = cartoonize_many([(src, out)], VideoJob(src, out), request, InProcess(), SplitOptions(segments))
    assert report.of("done"), report.lines()
