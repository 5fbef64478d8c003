"""cuDNN's algorithm timing (runners.cudnn): on for jobs of one frame size on CUDA, never for the
CPU, and off with CARTOONIZE_CUDNN_BENCHMARK=0."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.runners.cudnn import ENV, time_algorithms


@pytest.fixture
def benchmark_off() -> Iterator[None]:
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def test_on_unless_the_environment_says_no(benchmark_off: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "0")
    assert time_algorithms() is False and torch.backends.cudnn.benchmark is False
    monkeypatch.delenv(ENV)
    assert time_algorithms() is True and torch.backends.cudnn.benchmark is True


def test_a_cpu_job_leaves_it_alone(benchmark_off: None, tiny_checkpoint: Path) -> None:
    runner_for(EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu"), (48, 64))
    assert torch.backends.cudnn.benchmark is False


@pytest.mark.gpu
def test_a_cuda_job_of_one_size_turns_it_on_and_photos_do_not(
    benchmark_off: None, tiny_checkpoint: Path
) -> None:
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cuda")
    runner_for(request)  # photos: no frame size
    assert torch.backends.cudnn.benchmark is False
    runner_for(request, (48, 64))
    assert torch.backends.cudnn.benchmark is True
