"""Engines on a CUDA GPU: AOTInductor fp16, the torch CUDA runner, the bench, and TensorRT.

Skipped without a GPU (marker `gpu`) or without the tensorrt package (marker `tensorrt`); the
TensorRT tests have not been run on the development machines, where TensorRT cannot be installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cartoonize.engines.store import read_manifest
from tests.engines.test_engines import run_cli

SIZE = 64


def _photo_batch(n: int = 2) -> np.ndarray:
    from cartoonize.export import reference_photo

    photo = reference_photo(SIZE, SIZE)
    return np.ascontiguousarray(np.concatenate([photo, photo[:, ::-1]][:n]))


@pytest.mark.gpu
def test_torch_cuda_fp16_matches_fp32(tiny_checkpoint: Path) -> None:
    from cartoonize.model import load_checkpoint
    from cartoonize.parity import parity
    from cartoonize.runners.torch import TorchRunner

    checkpoint = load_checkpoint(tiny_checkpoint)
    frames = _photo_batch()
    with TorchRunner(checkpoint, "cpu", "fp32") as ref, TorchRunner(checkpoint, "cuda", "fp16") as half:
        check = parity(ref(frames), half(frames))
    assert check.passes("fp16"), check.describe()


@pytest.mark.gpu
@pytest.mark.slow
def test_aoti_fp16_cuda_build_and_run(tiny_checkpoint: Path) -> None:
    import torch

    from cartoonize.choose import runner_from_path
    from cartoonize.model import load_checkpoint
    from cartoonize.parity import parity
    from cartoonize.runners.torch import TorchRunner

    code, text = run_cli("build-engine", "--model", str(tiny_checkpoint), "--backend", "aoti",
                         "--precision", "fp16", "--device", "cuda", "--shape", f"{SIZE}x{SIZE}")  # fmt: skip
    assert code == 0, text
    (engine,) = Path(os.environ["CARTOONIZE_ENGINES"]).glob(f"*.aoti.fp16.{SIZE}x{SIZE}.sm*.pt2")
    manifest = read_manifest(engine)
    assert manifest is not None and manifest.device["type"] == "cuda" and manifest.parity["psnr_db"] >= 38
    frames = _photo_batch()
    with TorchRunner(load_checkpoint(tiny_checkpoint)) as ref, runner_from_path(engine) as run:
        check = parity(ref(frames), run(frames))
        out = run.infer_tensor(torch.from_numpy(frames).cuda())  # device in, device out
        assert out.is_cuda and out.dtype == torch.uint8
    assert check.passes("fp16"), check.describe()


@pytest.mark.gpu
def test_bench_json_on_cuda(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code, text = run_cli("bench", "--engine", "torch", "--model", str(tiny_checkpoint), "--device", "cuda",
                         "--precision", "fp16", "--shape", f"{SIZE}x{SIZE}", "--iters", "5", "--warmup", "2",
                         "--json", str(out))  # fmt: skip
    assert code == 0, text
    report = json.loads(out.read_text())
    assert report["timing"].startswith("CUDA events") and report["engine"]["fps"] > 0
    assert report["torch_eager"]["fps"] > 0
    peak, engine = report["peak_tflops"], report["engine"]  # CUDA fp16 without --peak-tflops: the H200 figure
    assert peak and engine["fraction_of_peak"] == pytest.approx(engine["tflops"] / peak, rel=1e-2, abs=2e-4)
    assert report["floor_fps"] == pytest.approx(peak * 1e12 / (report["gflop_per_frame"] * 1e9), rel=1e-2)


@pytest.mark.tensorrt
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_build_and_run(tiny_checkpoint: Path, precision: str) -> None:
    import torch

    from cartoonize.choose import runner_from_path
    from cartoonize.model import load_checkpoint
    from cartoonize.parity import parity
    from cartoonize.runners.torch import TorchRunner

    code, text = run_cli("build-engine", "--model", str(tiny_checkpoint), "--backend", "tensorrt",
                         "--precision", precision, "--device", "cuda", "--shape", f"{SIZE}x{SIZE}",
                         "--batch", "2")  # fmt: skip
    assert code == 0, text
    store = Path(os.environ["CARTOONIZE_ENGINES"])
    (engine,) = store.glob(f"*.tensorrt.{precision}.{SIZE}x{SIZE}.sm*.b2.plan")
    assert list(store.glob("timing-cache.*.bin")), "the timing cache is kept in the store"
    frames = _photo_batch()
    with TorchRunner(load_checkpoint(tiny_checkpoint)) as ref, runner_from_path(engine) as run:
        check = parity(ref(frames), run(frames))
        x = torch.from_numpy(frames).cuda()
        first, again = run.infer_tensor(x), run.infer_tensor(x)  # CUDA graph replay
        assert torch.equal(first, again) and first.is_cuda
        assert run(frames[:1]).shape == (1, SIZE, SIZE, 3)  # a short batch through a batch-2 engine
    assert check.passes(precision), check.describe()


@pytest.mark.tensorrt
@pytest.mark.slow
def test_tensorrt_dynamic_profile(tiny_checkpoint: Path) -> None:
    code, text = run_cli("build-engine", "--model", str(tiny_checkpoint), "--backend", "tensorrt",
                         "--device", "cuda", "--min-shape", "32x32", "--opt-shape", "64x64",
                         "--max-shape", "96x128")  # fmt: skip
    assert code == 0, text
    from cartoonize.choose import EngineRequest, runner_for

    request = EngineRequest(engine="auto", model=tiny_checkpoint, device="cuda", precision="fp16")
    with runner_for(request, (48, 100)) as run:
        assert run.name == "tensorrt"
        from cartoonize.export import reference_photo

        assert run(reference_photo(48, 100)).shape == (1, 48, 100, 3)
