"""A job split into segments loads its imported model once a segment: `models remove` from
another process mid-job refuses (naming the job's process) instead of failing every later segment
with "unknown style", on each executor that runs here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cartoonize.choose import EngineRequest
from cartoonize.imported.add import AddJob, add_model
from cartoonize.imported.detect import Options
from cartoonize.imported.store import models_dir
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.video import VideoJob
from cartoonize.pipelines.workers import Event, InProcess, LocalProcesses
from cartoonize.stages import StageOptions
from tests.helpers import child_env, make_video
from tests.imported.tiny import mix_model


@pytest.mark.parametrize(
    "executor",
    [pytest.param(InProcess, id="in-process"),
     pytest.param(lambda: LocalProcesses(2), id="2-processes", marks=pytest.mark.slow)],  # two workers start torch
)  # fmt: skip
def test_a_removal_mid_job_is_refused_and_every_segment_runs(
    executor,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one_thread: None,  # noqa: ANN001
) -> None:
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    add_model(AddJob(mix_model(tmp_path / "mix.onnx", "nhwc"), "mix", Options()))
    src = make_video(tmp_path / "in.mp4", frames=36, gop=12, audio=None)
    out = tmp_path / "out.mp4"
    removals: list[subprocess.CompletedProcess[str]] = []

    def remove_after_the_first_segment(event: Event) -> None:
        if event.kind == "done" and not removals:  # a real other process, as a user's second terminal
            removals.append(subprocess.run([sys.executable, "-m", "cartoonize", "models", "remove", "mix"],
                                           capture_output=True, text=True, env=child_env(), timeout=120))  # fmt: skip

    request = EngineRequest("auto", style="mix", device="cpu")
    job = VideoJob(src, out, stages=StageOptions(raw=True))
    report = cartoonize_many([(src, out)], job, request, executor(), SplitOptions(3),
                             on_event=remove_after_the_first_segment)  # fmt: skip
    assert [r.status for r in report.results] == ["done"], report.lines()
    assert len(removals) == 1 and removals[0].returncode == 1, removals
    assert f"in use by a running job (PID {os.getpid()})" in removals[0].stderr, removals[0].stderr
    assert (models_dir() / "mix").is_dir()
