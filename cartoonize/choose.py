"""The choice of a runner for a request.

`runner_from_path()` opens an engine file by its suffix; `runner_for()` resolves `--engine`,
`--style`/`--model`, `--device` and `--precision` into a runner. It sits above `parity` (an ONNX
Runtime runner for a checkpoint is a parity-checked export) and the engine store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cartoonize.errors import CartoonizeError
from cartoonize.runners.base import Runner
from cartoonize.styles import DEFAULT_STYLE

__all__ = ["EngineRequest", "Runner", "checkpoint_path", "runner_for", "runner_from_path"]


@dataclass(frozen=True)
class EngineRequest:
    engine: str = "auto"  # auto | torch | compile | onnxruntime | a path to an engine file
    style: str | None = None  # a pretrained style name ...
    model: Path | None = None  # ... or a checkpoint; neither means the default style
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (fp16 on CUDA, fp32 on CPU) | fp32 | fp16
    frame_size: tuple[int, int] | None = None  # (H, W) of the frames, when known: engines have shapes

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def resolved_precision(self) -> str:
        if self.precision != "auto":
            return self.precision
        return "fp16" if self.resolved_device() == "cuda" else "fp32"


def cached_onnx(checkpoint_path: Path, precision: str) -> Path:
    """Export a checkpoint to ONNX once (parity-checked) and reuse it; keyed by its bytes."""
    from cartoonize.parity import export_with_parity
    from cartoonize.styles import cache_dir, sha256_of

    key = sha256_of(checkpoint_path)[:16]
    path = cache_dir() / "onnx" / f"{checkpoint_path.stem}.{key}.{precision}.onnx"
    if not path.exists():
        export_with_parity(checkpoint_path, path, precision, photo_size=128)
    return path


def checkpoint_path(request: EngineRequest) -> Path:
    from cartoonize.styles import style_checkpoint

    if request.model is not None and request.style is not None:
        raise CartoonizeError("give either --style or --model, not both")
    return request.model if request.model is not None else style_checkpoint(request.style or DEFAULT_STYLE)


def _torch_runner(request: EngineRequest) -> Runner:
    from cartoonize.model import load_checkpoint
    from cartoonize.runners.torch import TorchRunner

    checkpoint = load_checkpoint(checkpoint_path(request))
    return TorchRunner(checkpoint, request.resolved_device(), request.resolved_precision())


def _compile_runner(request: EngineRequest) -> Runner:
    from cartoonize.engines.store import source_from
    from cartoonize.model import load_checkpoint
    from cartoonize.runners.compile import CompileRunner

    path = checkpoint_path(request)
    key = source_from(request.style, request.model, None).key()
    return CompileRunner(load_checkpoint(path), request.resolved_device(), request.resolved_precision(),
                         frame_size=request.frame_size, model_key=key)  # fmt: skip


def _onnxruntime_runner(request: EngineRequest) -> Runner:
    from cartoonize.runners.onnxruntime import OnnxRuntimeRunner

    onnx_path = cached_onnx(checkpoint_path(request), request.resolved_precision())
    return OnnxRuntimeRunner(onnx_path, request.resolved_device())


def _onnx_file_runner(path: Path, request: EngineRequest) -> Runner:
    from cartoonize.runners.onnxruntime import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, request.resolved_device())


def _checkpoint_file_runner(path: Path, request: EngineRequest) -> Runner:
    from cartoonize.model import load_checkpoint
    from cartoonize.runners.torch import TorchRunner

    return TorchRunner(load_checkpoint(path), request.resolved_device(), request.resolved_precision())


def _checked_manifest(path: Path, request: EngineRequest):  # -> Manifest
    """An engine's manifest, checked against this machine and the frame size, and against an
    explicit --device / --precision (an engine has exactly one of each)."""
    from cartoonize.engines.store import check_engine

    manifest = check_engine(path, request.frame_size)
    for option, asked, built in (("device", request.device, manifest.spec.device),
                                 ("precision", request.precision, manifest.spec.precision)):  # fmt: skip
        if asked not in ("auto", built):
            raise CartoonizeError(
                f"{path.name} is a {built} engine; drop --{option} {asked} or build one: "
                f"`{manifest.spec.command().replace(f'--{option} {built}', f'--{option} {asked}')}`"
            )
    return manifest


def _aoti_file_runner(path: Path, request: EngineRequest) -> Runner:
    from cartoonize.runners.aoti import AotiRunner

    return AotiRunner(path, _checked_manifest(path, request))


def _tensorrt_file_runner(path: Path, request: EngineRequest) -> Runner:
    from cartoonize.runners.tensorrt import TensorRTRunner

    return TensorRTRunner(path, _checked_manifest(path, request))


# engine file suffix -> how to open it
RUNNERS_BY_SUFFIX: dict[str, Callable[[Path, EngineRequest], Runner]] = {
    ".onnx": _onnx_file_runner,
    ".pt": _checkpoint_file_runner,
    ".pt2": _aoti_file_runner,
    ".plan": _tensorrt_file_runner,
    ".engine": _tensorrt_file_runner,
}


def _stored_runner(backend: str) -> Callable[[EngineRequest], Runner]:
    """`--engine aoti|tensorrt`: the stored engine of that backend for this model, device and frame size."""

    def opener(request: EngineRequest) -> Runner:
        from cartoonize.engines.store import BuildSpec, ShapeProfile, best_engine, padded, source_from

        if request.frame_size is None:
            raise CartoonizeError(f"--engine {backend} needs the frame size (give --shape)")
        source = source_from(request.style, request.model, None)
        device = request.resolved_device()
        precision = None if request.precision == "auto" else request.precision
        engine = best_engine(source, request.frame_size, device, precision, backend=backend)
        if engine is None:
            spec = BuildSpec(source, backend, request.resolved_precision(), device,
                             ShapeProfile.static(padded(request.frame_size)))  # fmt: skip
            raise CartoonizeError(f"no stored {backend} engine fits here; build one: `{spec.command()}`")
        return runner_from_path(engine, request)

    return opener


# --engine NAME -> how to build a runner from --style/--model
RUNNERS_BY_NAME: dict[str, Callable[[EngineRequest], Runner]] = {
    "torch": _torch_runner,
    "eager": _torch_runner,
    "compile": _compile_runner,
    "onnxruntime": _onnxruntime_runner,
    "aoti": _stored_runner("aoti"),
    "tensorrt": _stored_runner("tensorrt"),
}


def runner_from_path(path: Path, request: EngineRequest | None = None) -> Runner:
    path = Path(path)
    if not path.is_file():
        raise CartoonizeError(f"engine file not found: {path}")
    opener = RUNNERS_BY_SUFFIX.get(path.suffix.lower())
    if opener is None:
        raise CartoonizeError(
            f"{path.name}: unknown engine type; expected one of {', '.join(sorted(RUNNERS_BY_SUFFIX))}"
        )
    return opener(path, request or EngineRequest())


def stored_engine_for(request: EngineRequest) -> Path | None:
    """The best engine in the store for this request's model, device, precision and frame size."""
    from cartoonize.engines.store import best_engine, source_from

    if request.frame_size is None:
        return None
    source = source_from(request.style, request.model, None)
    precision = None if request.precision == "auto" else request.precision
    return best_engine(source, request.frame_size, request.resolved_device(), precision)


def auto_choice(device: str, stored_engine: bool, compile_usable: bool, onnxruntime_cuda: bool) -> str:
    """What `--engine auto` runs: 'stored' (a TensorRT/AOTInductor engine built for this model,
    device and frame size), 'compile', 'onnxruntime' or 'torch'.

    On CUDA: a stored engine, then torch.compile (3.6x eager fp16 on an H200, DESIGN.md), then
    ONNX Runtime's CUDA provider, then eager PyTorch. On the CPU: a stored engine, else ONNX
    Runtime: compile measured no faster here (see README's speed table) and costs minutes of
    compiling on first use."""
    if stored_engine:
        return "stored"
    if device == "cuda":
        if compile_usable:
            return "compile"
        return "onnxruntime" if onnxruntime_cuda else "torch"
    return "onnxruntime"


def compile_usable(device: str) -> bool:
    """torch.compile can run here: Inductor's GPU code needs Triton; `CARTOONIZE_NO_COMPILE=1`
    turns it off for `auto`."""
    import importlib.util
    import os

    if os.environ.get("CARTOONIZE_NO_COMPILE") == "1":
        return False
    return device != "cuda" or importlib.util.find_spec("triton") is not None


def _auto_runner(request: EngineRequest) -> Runner:
    """The best backend available here (`auto_choice`)."""
    from cartoonize.runners.onnxruntime import available_providers

    engine = stored_engine_for(request)
    device = request.resolved_device()
    choice = auto_choice(
        device,
        engine is not None,
        compile_usable(device),
        device == "cuda" and "CUDAExecutionProvider" in available_providers(),
    )
    if engine is not None and choice == "stored":
        return runner_from_path(engine, request)
    return RUNNERS_BY_NAME[choice](request)


def runner_for(request: EngineRequest, frame_size: tuple[int, int] | None = None) -> Runner:
    """Resolve a request into a runner. `frame_size` (H, W) lets the store pick a matching engine."""
    if frame_size is not None:
        request = replace(request, frame_size=(frame_size[0], frame_size[1]))
    if request.engine == "auto":
        return _auto_runner(request)
    if request.engine in RUNNERS_BY_NAME:
        return RUNNERS_BY_NAME[request.engine](request)
    if request.engine.endswith(tuple(RUNNERS_BY_SUFFIX)) or Path(request.engine).exists():
        return runner_from_path(Path(request.engine), request)
    raise CartoonizeError(
        f"--engine {request.engine!r}: use auto, {', '.join(RUNNERS_BY_NAME)}, or a path to an engine file"
    )
