"""The choice of a runner for a request.

`runner_from_path()` opens an engine file by its suffix; `runner_for()` resolves `--engine`,
`--style`/`--model`, `--device` and `--precision` into a runner. It sits above `parity` (an ONNX
Runtime runner for a checkpoint is a parity-checked export) and the engine store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cartoonize.errors import CartoonizeError
from cartoonize.runners.base import Runner
from cartoonize.styles import DEFAULT_STYLE

__all__ = [
    "CpuChoice",
    "EngineRequest",
    "Runner",
    "checkpoint_path",
    "cpu_choice",
    "runner_for",
    "runner_from_path",
]


@dataclass(frozen=True)
class EngineRequest:
    engine: str = "auto"  # auto | torch | compile | onnxruntime | a path to an engine file
    style: str | None = None  # a pretrained style name ...
    model: Path | None = None  # ... or a checkpoint; neither means the default style
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (fp16 on CUDA; CPU: fp32, or bf16 by `cpu_choice`) | fp32 | fp16 | bf16
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
    """Export a checkpoint to ONNX once (parity-checked) and reuse it; keyed by its bytes. The
    export goes to a temporary name and takes the cache's name only once it passed the check, so a
    run stopped mid-export (or two segment workers exporting at once) never leaves a partial or
    unchecked graph that a later run would load."""
    from cartoonize.media.files import atomic_output
    from cartoonize.parity import export_with_parity
    from cartoonize.styles import cache_dir, cache_folder, sha256_of

    key = sha256_of(checkpoint_path)[:16]
    path = cache_dir() / "onnx" / f"{checkpoint_path.stem}.{key}.{precision}.onnx"
    if not path.exists():
        with atomic_output(cache_folder("onnx") / path.name) as partial:
            export_with_parity(checkpoint_path, partial, precision, photo_size=128)
    return path


def imported_for(request: EngineRequest):  # -> ImportedModel | None
    """The imported ONNX model a --style names (`cartoonize models add`), or None."""
    from cartoonize.imported.store import find_model

    return find_model(request.style) if request.model is None else None


def no_checkpoint(name: str) -> CartoonizeError:
    """What to say where an imported model is asked for something only PyTorch can do."""
    return CartoonizeError(
        f"{name} is an imported ONNX model, with no PyTorch module: run it with --engine auto or "
        f"onnxruntime (CPU or CUDA), or build a TensorRT engine (`cartoonize build-engine --style {name} "
        "--backend tensorrt --shape HxW` on a CUDA GPU)"
    )


def checkpoint_path(request: EngineRequest) -> Path:
    from cartoonize.imported.store import unknown_style
    from cartoonize.styles import STYLES, style_checkpoint

    if request.model is not None and request.style is not None:
        raise CartoonizeError("give either --style or --model, not both")
    if request.model is not None:
        return request.model
    name = request.style or DEFAULT_STYLE
    if name.lower() not in STYLES:
        raise no_checkpoint(name) if imported_for(request) is not None else unknown_style(name)
    return style_checkpoint(name)


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

    if request.precision == "bf16":
        raise CartoonizeError(
            "ONNX Runtime runs fp32 or fp16 here; for bf16 use --engine torch or an AOTInductor engine"
        )
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
    """An engine's manifest, checked against this machine and the frame size, against an explicit
    --device / --precision (an engine has exactly one of each), and against an explicit --style or
    --model (an engine runs the network it was built from, whatever else is asked)."""
    from cartoonize.engines.store import check_engine, same_source, source_from

    manifest = check_engine(path, request.frame_size)
    if request.style is not None or request.model is not None:
        wanted = source_from(request.style, request.model, None)
        if not same_source(manifest.spec.source, wanted):
            option = "--style" if request.style is not None else "--model"
            raise CartoonizeError(
                f"{path.name} was built from {manifest.spec.source.describe()}, not {wanted.describe()}; "
                f"drop {option} or build one: `{replace(manifest.spec, source=wanted).command()}`"
            )
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
        from cartoonize.engines.store import (
            BuildSpec,
            ShapeProfile,
            best_engine,
            padded,
            same_source,
            shape_text,
            source_from,
            store_entries,
        )

        if request.frame_size is None:
            raise CartoonizeError(f"--engine {backend} needs the frame size (give --shape)")
        source = source_from(request.style, request.model, None)
        device = request.resolved_device()
        if backend == "tensorrt" and device != "cuda":  # no engine to find, none to build
            why = "not with --device cpu" if request.device == "cpu" else "and there is none here"
            raise CartoonizeError(
                f"--engine tensorrt runs on an NVIDIA GPU with CUDA, {why}; leave --engine at auto "
                "(ONNX Runtime on the CPU)"
            )
        precision = None if request.precision == "auto" else request.precision
        engine = best_engine(source, request.frame_size, device, precision, backend=backend)
        if engine is None:
            spec = BuildSpec(source, backend, request.resolved_precision(), device,
                             ShapeProfile.static(padded(request.frame_size)))  # fmt: skip
            # each stored one's sizes, and its precision where one was asked (bf16 asked, fp32 stored)
            sizes = sorted({e.manifest.spec.profile.describe() + (f" {e.manifest.spec.precision}" if precision else "")
                            for e in store_entries()
                            if e.usable and e.manifest is not None and e.manifest.spec.backend == backend
                            and e.manifest.spec.device == device and same_source(e.manifest.spec.source, source)})  # fmt: skip
            stored = (
                f"the stored ones take {', '.join(sizes)}" if sizes else f"none is stored for {source.key()}"
            )
            raise CartoonizeError(
                f"no stored {backend}{' ' + precision if precision else ''} engine fits "
                f"{shape_text(request.frame_size)} (HxW) on {device} ({stored}); build one: `{spec.command()}`"
            )
        return runner_from_path(engine, request)

    return opener


SIZED_ENGINES = ("aoti", "tensorrt")  # stored engines, built for a frame size: runner_for needs one

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
    device = request.resolved_device()
    if request.precision == "auto" and device == "cpu":
        # fp32, as auto runs on a CPU; a bf16 engine only where bf16 measured faster here (`cpu_choice`):
        # emulated, or native without AMX, it is slower than fp32 (engines/cpu.py)
        fp32 = best_engine(source, request.frame_size, device, "fp32")
        if fp32 is not None:
            return fp32
        bf16 = best_engine(source, request.frame_size, device, "bf16")
        return bf16 if bf16 is not None and cpu_choice(request).precision == "bf16" else None
    precision = None if request.precision == "auto" else request.precision
    return best_engine(source, request.frame_size, device, precision)


def stored_runner_for(request: EngineRequest, frame_size: tuple[int, int]) -> Runner | None:
    """`--engine auto` for one frame size of many (a folder of photos): the stored engine built for
    it, or None where there is none (the job's other runner then runs it)."""
    request = replace(request, frame_size=(frame_size[0], frame_size[1]))
    engine = stored_engine_for(request)
    return runner_from_path(engine, request) if engine is not None else None


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

    if os.environ.get("CARTOONIZE_NO_COMPILE") == "1":
        return False
    return device != "cuda" or importlib.util.find_spec("triton") is not None


def _auto_runner(request: EngineRequest) -> Runner:
    """The best backend available here (`auto_choice`); on the CPU, PyTorch bf16 instead of ONNX
    Runtime fp32 where `cpu_choice` measured it faster and close enough to fp32."""
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
    if choice == "onnxruntime" and device == "cpu":
        if request.precision == "bf16" or (
            request.precision == "auto" and cpu_choice(request).precision == "bf16"
        ):
            return _torch_runner(replace(request, precision="bf16"))
    return RUNNERS_BY_NAME[choice](request)


# -- the CPU's choice between PyTorch bf16 and ONNX Runtime fp32 (issue 12) -------------------------

CPU_CHOICE_SHAPE = (180, 320)  # (H, W) the two are timed at: the sizes a CPU user infers at
CPU_CHOICE_VERSION = 1  # bump when the measurement changes, so old records are measured again


@dataclass(frozen=True)
class CpuChoice:
    """What `--engine auto --precision auto` runs on this CPU for one model, and why."""

    precision: str  # "bf16" (PyTorch) or "fp32" (ONNX Runtime)
    reason: str
    psnr_db: float | None = None  # bf16 against fp32 on a photo (None: not measured)
    bf16_fps: float | None = None
    onnxruntime_fps: float | None = None

    @classmethod
    def decide(cls, psnr_db: float, bf16_fps: float, onnxruntime_fps: float) -> CpuChoice:
        from cartoonize.parity import PSNR_THRESHOLDS

        figures = {"psnr_db": round(psnr_db, 2), "bf16_fps": round(bf16_fps, 3),
                   "onnxruntime_fps": round(onnxruntime_fps, 3)}  # fmt: skip
        threshold = PSNR_THRESHOLDS["bf16"]
        if psnr_db < threshold:
            return cls("fp32", f"bf16 parity {psnr_db:.1f} dB < {threshold:g} dB", **figures)
        if bf16_fps <= onnxruntime_fps:
            why = f"ONNX Runtime fp32 {onnxruntime_fps:.2f} fps ≥ PyTorch bf16 {bf16_fps:.2f} fps"
            return cls("fp32", why, **figures)
        why = f"PyTorch bf16 {bf16_fps:.2f} fps > ONNX Runtime fp32 {onnxruntime_fps:.2f} fps, parity {psnr_db:.1f} dB"
        return cls("bf16", why, **figures)


def _fps(runner: Runner, frames, calls: int = 3) -> float:  # noqa: ANN001
    import time

    runner(frames)  # warm-up
    started = time.perf_counter()
    for _ in range(calls):
        runner(frames)
    return calls / (time.perf_counter() - started)


def measure_cpu_choice(checkpoint: Path) -> CpuChoice:
    """bf16 parity against fp32 on a photo, then PyTorch bf16 and ONNX Runtime fp32 timed in the
    same run on the same photo."""
    from cartoonize.export import reference_photo
    from cartoonize.model import load_checkpoint
    from cartoonize.parity import parity
    from cartoonize.runners.onnxruntime import OnnxRuntimeRunner
    from cartoonize.runners.torch import TorchRunner

    photo = reference_photo(*CPU_CHOICE_SHAPE)
    model = load_checkpoint(checkpoint)
    with TorchRunner(model, "cpu", "fp32") as ref:
        expected = ref(photo)
    with TorchRunner(model, "cpu", "bf16") as bf16:
        check = parity(expected, bf16(photo))
        bf16_fps = _fps(bf16, photo)
    with OnnxRuntimeRunner(cached_onnx(checkpoint, "fp32"), "cpu") as ort:
        ort_fps = _fps(ort, photo)
    return CpuChoice.decide(float(check.psnr_db), bf16_fps, ort_fps)


def cpu_choice(request: EngineRequest) -> CpuChoice:
    """fp32 on a CPU without native bf16 (never measured: bf16 is emulated there); else the
    measured choice, remembered per model, PyTorch build and CPU in the cache."""
    import json

    import torch

    from cartoonize.engines.cpu import cpu_capabilities, describe_bf16, native_bf16
    from cartoonize.media.files import write_atomic
    from cartoonize.styles import cache_dir, sha256_of

    caps = cpu_capabilities()
    if not native_bf16(caps):
        return CpuChoice("fp32", f"no native bf16 on this CPU ({describe_bf16(caps)})")
    checkpoint = checkpoint_path(request)
    machine = (
        f"{caps.get('cpu_name', 'cpu')}|{caps.get('isa')}|torch {torch.__version__}|v{CPU_CHOICE_VERSION}"
    )
    record = cache_dir() / "cpu_choice" / f"{checkpoint.stem}.{sha256_of(checkpoint)[:16]}.json"
    try:
        saved = json.loads(record.read_text())
        if saved.get("machine") == machine:
            return CpuChoice(**saved["choice"])
    except (OSError, ValueError, TypeError, KeyError):
        pass  # none yet, or unreadable: measure again
    choice = measure_cpu_choice(checkpoint)
    with contextlib.suppress(OSError):  # a cache that cannot be written: measured again next time
        write_atomic(record, json.dumps({"machine": machine, "choice": asdict(choice)}, indent=1).encode())
    return choice


def _imported_runner(model, request: EngineRequest) -> Runner:  # model: ImportedModel
    """An imported model: a stored TensorRT engine built from it, else ONNX Runtime (CUDA where
    onnxruntime-gpu is installed, else the CPU) in the precision its graph is in, so an explicit
    --precision that differs is refused. PyTorch, torch.compile and AOTInductor cannot run it:
    `--engine torch|eager|compile|aoti` is refused, not quietly swapped for ONNX Runtime."""
    from cartoonize.runners.base import fitted_size
    from cartoonize.runners.onnxruntime import OnnxRuntimeRunner, available_providers

    spec = model.manifest.spec
    if request.frame_size is not None:  # a fixed-size model says so before anything loads
        fitted_size(request.frame_size, spec.multiple, spec.fixed_size, model.name)
    if request.engine in ("torch", "eager", "compile", "aoti"):  # each needs the PyTorch module
        raise CartoonizeError(f"--engine {request.engine}: {no_checkpoint(model.name)}")
    if request.engine == "tensorrt":  # the stored engine built from it, or a message saying how to build one
        return RUNNERS_BY_NAME["tensorrt"](request)
    if request.engine == "auto" and (engine := stored_engine_for(request)) is not None:
        return runner_from_path(engine, request)
    if request.precision not in ("auto", spec.precision):  # as --engine onnxruntime refuses bf16
        bf16 = " (bf16 is for the built-in styles' PyTorch and AOTInductor runners)"
        raise CartoonizeError(
            f"--precision {request.precision}: the imported model {model.name} runs {spec.precision} on "
            f"ONNX Runtime (the precision its graph is in); drop --precision"
            f"{bf16 if request.precision == 'bf16' else ''}"
        )
    device = request.resolved_device()
    if request.device == "auto" and "CUDAExecutionProvider" not in available_providers():
        device = "cpu"
    return OnnxRuntimeRunner(model.onnx_path, device)


def runner_for(request: EngineRequest, frame_size: tuple[int, int] | None = None) -> Runner:
    """Resolve a request into a runner. `frame_size` (H, W) lets the store pick a matching engine."""
    if frame_size is not None:
        request = replace(request, frame_size=(frame_size[0], frame_size[1]))
        if request.resolved_device() == "cuda":  # one size for the whole job: time cuDNN's algorithms
            from cartoonize.runners.cudnn import time_algorithms

            time_algorithms()
    if request.engine in ("auto", *RUNNERS_BY_NAME) and (imported := imported_for(request)) is not None:
        return _imported_runner(imported, request)
    if request.engine == "auto":
        return _auto_runner(request)
    if request.engine in RUNNERS_BY_NAME:
        return RUNNERS_BY_NAME[request.engine](request)
    if request.engine.endswith(tuple(RUNNERS_BY_SUFFIX)) or Path(request.engine).exists():
        return runner_from_path(Path(request.engine), request)
    raise unknown_engine(request.engine)


def unknown_engine(engine: str) -> CartoonizeError:
    return CartoonizeError(
        f"--engine {engine!r}: use auto, {', '.join(RUNNERS_BY_NAME)}, or a path to an engine file"
    )


def check_engine(engine: str) -> None:
    """A one-line error now, before any work, for an --engine that is neither a name `runner_for`
    knows nor an engine file here."""
    if engine in ("auto", *RUNNERS_BY_NAME) or Path(engine).is_file():
        return
    if engine.endswith(tuple(RUNNERS_BY_SUFFIX)):
        raise CartoonizeError(f"engine file not found: {engine}")
    raise unknown_engine(engine)
