"""`--engine auto`'s order on a GPU machine, decided from its inputs (the engine store, the
machine it describes, the device and ONNX Runtime's providers), so it is checked without a GPU:
a stored TensorRT engine, then an AOTInductor engine, then torch.compile, ONNX Runtime's CUDA
provider, PyTorch on CUDA, and ONNX Runtime on the CPU."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cartoonize.choose import auto_choice
from cartoonize.engines.store import (
    BuildSpec,
    EngineSource,
    Machine,
    Manifest,
    ShapeProfile,
    best_engine,
    write_manifest,
)

H200 = Machine(torch="2.13.0", tensorrt="10.13.0", gpu="NVIDIA H200", capability="sm90", cpu="x86_64 avx2")
HAYAO = EngineSource("style", "hayao")
SHAPE = (720, 1280)


def stored(folder: Path, backend: str, precision: str = "fp16", machine: Machine = H200) -> Path:
    """An engine file of `backend` for Hayao at 720x1280 on `machine`'s GPU, with its manifest."""
    spec = BuildSpec(HAYAO, backend, precision, "cuda", ShapeProfile.static(SHAPE))
    path = folder / spec.file_name(machine.target("cuda"))
    path.write_bytes(f"{backend} {precision} engine".encode())
    version = machine.backend_version(backend)
    assert version is not None
    manifest = Manifest(spec, version, machine.describe_device("cuda"),
                        hashlib.sha256(path.read_bytes()).hexdigest(), 1.0)  # fmt: skip
    write_manifest(path, manifest)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    folder = tmp_path / "engines"
    folder.mkdir()
    return folder


def test_tensorrt_before_aoti_before_the_runtimes(store: Path) -> None:
    aoti = stored(store, "aoti")
    plan = stored(store, "tensorrt")
    assert best_engine(HAYAO, SHAPE, "cuda", None, store, H200) == plan
    assert auto_choice("cuda", plan is not None, True, True) == "stored"
    plan.unlink()  # no TensorRT engine: the AOTInductor one
    assert best_engine(HAYAO, SHAPE, "cuda", None, store, H200) == aoti
    aoti.unlink()  # no engine at all: the runtimes, CUDA provider first
    engine = best_engine(HAYAO, SHAPE, "cuda", None, store, H200)
    assert engine is None
    assert auto_choice("cuda", engine is not None, True, True) == "compile"
    assert auto_choice("cuda", engine is not None, False, True) == "onnxruntime"
    assert auto_choice("cuda", engine is not None, False, False) == "torch"
    assert auto_choice("cpu", engine is not None, True, False) == "onnxruntime"


def test_an_engine_this_machine_cannot_run_is_passed_over(store: Path) -> None:
    plan = stored(store, "tensorrt")
    aoti = stored(store, "aoti")
    no_tensorrt = Machine("2.13.0", None, "NVIDIA H200", "sm90", "x86_64 avx2")
    assert best_engine(HAYAO, SHAPE, "cuda", None, store, no_tensorrt) == aoti
    other_gpu = Machine("2.13.0", "10.13.0", "NVIDIA L4", "sm89", "x86_64 avx2")
    assert best_engine(HAYAO, SHAPE, "cuda", None, store, other_gpu) is None
    no_gpu = Machine("2.13.0", "10.13.0", None, None, "x86_64 avx2")
    assert best_engine(HAYAO, SHAPE, "cuda", None, store, no_gpu) is None
    assert best_engine(HAYAO, (1080, 1920), "cuda", None, store, H200) is None  # outside its shape
    assert best_engine(EngineSource("style", "paprika"), SHAPE, "cuda", None, store, H200) is None
    assert best_engine(HAYAO, SHAPE, "cuda", None, store, H200) == plan


def test_fp16_is_preferred_on_cuda_unless_fp32_is_asked(store: Path) -> None:
    fp32 = stored(store, "tensorrt", "fp32")
    fp16 = stored(store, "tensorrt", "fp16")
    assert best_engine(HAYAO, SHAPE, "cuda", None, store, H200) == fp16
    assert best_engine(HAYAO, SHAPE, "cuda", "fp32", store, H200) == fp32
