"""Key s in the preview window (under Xvfb): a snapshot goes into --snapshots, made if it is not
there yet, and one that cannot be written is said in a line while the session goes on. Both ended
the live session (and its recording) with an FFmpeg traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartoonize.media.capture import CaptureSpec
from cartoonize.pipelines.image import read_image
from cartoonize.pipelines.webcam import WebcamJob, run_webcam
from cartoonize.stages import StageOptions
from tests.pipelines.test_webcam_preview import xvfb  # noqa: F401 - the fixture
from tests.pipelines.test_webcam_streams import Inverse

FRAMES = 12


def snapshot_at(folder: Path, output: Path) -> tuple[list[str], object]:
    """A live session of FRAMES frames, recorded to `output`, with key s pressed at the third."""
    import pygame

    job = WebcamJob(CaptureSpec("testsrc2=size=160x120:rate=30", "lavfi"), output=str(output), frames=FRAMES,
                    snapshot_dir=folder, stages=StageOptions(raw=True))  # fmt: skip
    said: list[str] = []

    def on_frame(shown: int) -> None:
        if shown == 3:
            pygame.event.post(
                pygame.event.Event(pygame.KEYDOWN, key=pygame.K_s, mod=0, unicode="", scancode=0)
            )

    return said, run_webcam(job, lambda _size: Inverse(), said.append, on_frame)


@pytest.mark.usefixtures("xvfb")
def test_a_snapshot_folder_that_is_not_there_yet_is_made(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "shots"
    said, report = snapshot_at(folder, tmp_path / "live.mp4")
    assert report.stopped == f"{FRAMES} frames shown", report.summary()
    shots = list(folder.glob("cartoonize-*.png"))
    assert len(shots) == 1 and f"saved snapshot {shots[0]}" in said, said
    assert read_image(shots[0]).shape == (120, 160, 3)


@pytest.mark.usefixtures("xvfb")
def test_a_snapshot_that_cannot_be_written_is_said_and_the_session_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    said, report = snapshot_at(tmp_path / "a-file" / "shots", tmp_path / "live.mp4")
    assert report.stopped == f"{FRAMES} frames shown" and not report.failed, report.summary()
    assert any(
        line.startswith(f"could not save a snapshot in {tmp_path / 'a-file' / 'shots'} (") for line in said
    )
    assert (tmp_path / "live.mp4").stat().st_size > 0  # the recording was finished
