"""Every runner keeps the one contract and agrees with the PyTorch reference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for, runner_from_path
from cartoonize.errors import CartoonizeError
from cartoonize.model import load_checkpoint
from cartoonize.parity import parity
from cartoonize.runners.base import Runner, pad_to_multiple
from cartoonize.runners.torch import TorchRunner
from tests.reference import reference_frames

# name -> how to build that runner for the tiny checkpoint (later backends add themselves here)
RUNNERS: dict[str, Callable[[Path], Runner]] = {
    "torch": lambda ckpt: runner_for(EngineRequest(engine="torch", model=ckpt, device="cpu")),
    "onnxruntime": lambda ckpt: runner_for(EngineRequest(engine="onnxruntime", model=ckpt, device="cpu")),
}


@pytest.fixture(params=sorted(RUNNERS))
def runner(request: pytest.FixtureRequest, tiny_checkpoint: Path) -> Runner:
    return RUNNERS[request.param](tiny_checkpoint)


@pytest.mark.parametrize("shape", [(1, 32, 32, 3), (2, 48, 64, 3), (1, 37, 23, 3), (3, 6, 10, 3)])
def test_contract_and_parity(runner: Runner, tiny_checkpoint: Path, shape: tuple[int, ...]) -> None:
    frames = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    expected = reference_frames(load_checkpoint(tiny_checkpoint), frames)  # not the torch runner
    with runner as r:
        out = r(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert parity(expected, out).psnr_db >= 45


def test_rejects_wrong_frames(runner: Runner) -> None:
    with runner as r, pytest.raises(ValueError, match="uint8"):
        r(np.zeros((1, 8, 8, 3), np.float32))
    with runner as r, pytest.raises(ValueError, match="N, H, W, 3"):
        r(np.zeros((8, 8, 3), np.uint8))


def test_pad_reflects_to_multiple_of_four() -> None:
    frames = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(1, 5, 7, 3)
    padded = pad_to_multiple(frames)
    assert padded.shape == (1, 8, 8, 3)
    assert np.array_equal(padded[:, :5, :7], frames)
    assert np.array_equal(padded[0, 5, :7], frames[0, 3])  # reflection, not zeros


def test_selection_by_path_and_errors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    assert isinstance(runner_from_path(tiny_checkpoint), TorchRunner)
    with pytest.raises(CartoonizeError, match="not found"):
        runner_from_path(tmp_path / "missing.onnx")
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(CartoonizeError, match="unknown engine type"):
        runner_from_path(tmp_path / "x.bin")
    with pytest.raises(CartoonizeError, match="use auto"):
        runner_for(EngineRequest(engine="magic", model=tiny_checkpoint))


def test_auto_on_cpu_is_onnxruntime(tiny_checkpoint: Path) -> None:
    runner = runner_for(EngineRequest(engine="auto", model=tiny_checkpoint, device="cpu"))
    assert runner.name == "onnxruntime" and runner.device == "cpu"


def test_fp16_on_cpu_is_refused_not_silently_changed(tiny_checkpoint: Path) -> None:
    with pytest.raises(CartoonizeError, match="fp16 runs on a CUDA GPU"):
        runner_for(EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu", precision="fp16"))


@pytest.mark.gpu
@pytest.mark.parametrize("channels_last", [False, True])
def test_torch_cuda_fp16_agrees_with_fp32(
    tiny_checkpoint: Path, hayao_checkpoint: Path, channels_last: bool
) -> None:
    from cartoonize.export import reference_photo

    photo = reference_photo(256, 256)
    checkpoint = load_checkpoint(hayao_checkpoint)
    with TorchRunner(checkpoint, "cpu", "fp32") as ref:
        expected = ref(photo)
    with TorchRunner(checkpoint, "cuda", "fp16", channels_last=channels_last) as gpu:
        actual = gpu(photo)
    assert parity(expected, actual).psnr_db >= 38


def test_submit_gives_what_a_call_gives(runner: Runner) -> None:
    """Two batches in flight (how the video pipeline uses a runner), collected in either order."""
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (1, 37, 23, 3), dtype=np.uint8) for _ in range(2))
    with runner:
        first, second = runner.submit(a), runner.submit(b)
        out_b, out_a = second(), first()
        assert np.array_equal(out_a, runner(a)) and np.array_equal(out_b, runner(b))
        assert out_a.shape == a.shape


@pytest.mark.gpu
def test_cuda_batches_in_flight_do_not_share_buffers(tiny_checkpoint: Path) -> None:
    """On CUDA `submit` queues the copies and the engine and returns at once; two batches in
    flight must come back intact, whichever is collected first."""
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8) for _ in range(3)]
    with TorchRunner(load_checkpoint(tiny_checkpoint), "cuda", "fp16") as gpu:
        expected = [gpu(f) for f in frames]
        handles = [gpu.submit(f) for f in frames]
        results = [handles[2](), handles[0](), handles[1]()]
    for got, want in zip(results, [expected[2], expected[0], expected[1]], strict=True):
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
