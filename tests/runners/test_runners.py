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
    "compile": lambda ckpt: runner_for(EngineRequest(engine="compile", model=ckpt, device="cpu")),
}
# torch.compile on a 2-core CPU takes about a minute of CPU time a new size: the fast suite runs
# the odd size (padded to 40x24), the other shapes (batch 2, 3) run with -m slow
COMPILE_FAST_SHAPES = {(1, 37, 23, 3)}


@pytest.fixture(params=sorted(RUNNERS))
def runner(request: pytest.FixtureRequest, tiny_checkpoint: Path) -> Runner:
    return RUNNERS[request.param](tiny_checkpoint)


@pytest.mark.parametrize("shape", [(1, 32, 32, 3), (2, 48, 64, 3), (1, 37, 23, 3), (3, 6, 10, 3)])
def test_contract_and_parity(
    runner: Runner, tiny_checkpoint: Path, shape: tuple[int, ...], request: pytest.FixtureRequest
) -> None:
    if (
        runner.name == "compile"
        and shape not in COMPILE_FAST_SHAPES
        and "slow" not in request.config.option.markexpr
    ):
        pytest.skip("compile: a new size costs a compile; this shape runs with -m slow")
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


@pytest.mark.parametrize(
    ("device", "stored", "compiles", "ort_cuda", "expected"),
    [
        ("cuda", True, True, True, "stored"),
        ("cuda", False, True, True, "compile"),
        ("cuda", False, False, True, "onnxruntime"),
        ("cuda", False, False, False, "torch"),
        ("cpu", True, True, False, "stored"),
        ("cpu", False, True, False, "onnxruntime"),
    ],
)
def test_auto_order(device: str, stored: bool, compiles: bool, ort_cuda: bool, expected: str) -> None:
    from cartoonize.choose import auto_choice

    assert auto_choice(device, stored, compiles, ort_cuda) == expected


@pytest.mark.gpu
def test_auto_on_cuda_is_compile(tiny_checkpoint: Path) -> None:
    runner = runner_for(EngineRequest(engine="auto", model=tiny_checkpoint, device="cuda"), (64, 64))
    assert runner.name == "compile" and runner.device == "cuda" and runner.precision == "fp16"
    with runner as r:
        out = r(np.zeros((1, 64, 64, 3), np.uint8))
    assert out.shape == (1, 64, 64, 3) and r.shapes == {(1, 64, 64): True}


SECOND_LOAD = """
import json, sys, time
import numpy as np
from torch._dynamo.utils import counters
from cartoonize.choose import EngineRequest, runner_for
started = time.perf_counter()
with runner_for(EngineRequest(engine="compile", model=sys.argv[1], device="cpu")) as run:
    run(np.zeros((1, 37, 23, 3), np.uint8))
print(json.dumps({"hit": counters["inductor"]["fxgraph_cache_hit"], "miss": counters["inductor"]["fxgraph_cache_miss"],
                  "shapes": [list(k) + [v] for k, v in run.shapes.items()], "seconds": time.perf_counter() - started}))
"""


def test_compile_second_load_reuses_the_cache(tiny_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    """A second process at a size compiled before: Inductor's FX graph cache under the cartoonize
    cache answers (a hit, no miss); each process prints the notice once; the parity result and
    the compile time are remembered."""
    import json
    import os
    import subprocess
    import sys

    from cartoonize.runners.compile import ChecksFile, inductor_cache_dir

    frames = np.random.default_rng(4).integers(0, 256, (1, 37, 23, 3), dtype=np.uint8)
    with RUNNERS["compile"](tiny_checkpoint) as run:
        run(frames)
        assert run.shapes == {(1, 40, 24): True}
    assert any(inductor_cache_dir().rglob("*")), "Inductor wrote its cache under $CARTOONIZE_CACHE"
    root = str(Path(__file__).resolve().parents[2])
    import torch

    # the child compiles for the thread count this process has (earlier tests may have set it):
    # Inductor's CPU code, and so its cache key, depend on it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": str(torch.get_num_threads())}  # fmt: skip
    child = subprocess.run([sys.executable, "-c", SECOND_LOAD, str(tiny_checkpoint)], capture_output=True,
                           text=True, env=env, timeout=600)  # fmt: skip
    assert child.returncode == 0, child.stderr[-2000:]
    second = json.loads(child.stdout.strip().splitlines()[-1])
    assert second["hit"] >= 1 and second["miss"] == 0 and second["shapes"] == [[1, 40, 24, True]], second
    assert "compiling the engine for 40x24 (batch 1), first run only, ~" in child.stderr
    (record,) = [v for k, v in ChecksFile().read().items() if ".cpu.fp32.40x24.b1." in k]
    assert record["passes"] and record["psnr_db"] >= 45 and record["compile_s"] > 0, json.dumps(record)
    print(f"second process: {second['seconds']:.1f} s to a first cartoon (compile {record['compile_s']} s)")


def test_compile_failure_falls_back_to_eager_with_one_warning(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No working C++ compiler (a real failure of Inductor on the CPU): eager PyTorch, one warning."""
    from torch._inductor import config

    frames = np.random.default_rng(5).integers(0, 256, (1, 12, 16, 3), dtype=np.uint8)
    with TorchRunner(load_checkpoint(tiny_checkpoint)) as ref:
        expected = ref(frames)
    from cartoonize.runners import compile as compile_runner

    monkeypatch.setattr(compile_runner, "inductor_caches", _no_caches)
    # Inductor's own patch (restores its config on exit; monkeypatch would delete the entries)
    with config.patch({"cpp.cxx": ("/bin/false",), "fx_graph_cache": False}):
        with pytest.warns(UserWarning, match="torch.compile failed for 12x16") as caught:
            with RUNNERS["compile"](tiny_checkpoint) as run:
                out = run(frames)
                run(frames)
    assert len([w for w in caught if "torch.compile" in str(w.message)]) == 1
    assert np.array_equal(out, expected) and "fell back to eager" in run.describe()


def _no_caches():  # the failure test must not find a cached graph for its size
    import contextlib

    return contextlib.nullcontext()


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
