"""`cartoonize build-engine`: build an engine for a spec, check it against the fp32 reference on a
real photo (the parity gate), and write it into the store with its manifest.

    spec ──► checkpoint (style / model) ──► torch.export ──► AOTInductor .pt2
         └─► ONNX (exported, or --onnx) ──► TensorRT .plan
    engine + torch fp32 (CPU) on a photo at the profile's opt shape ──► PSNR ≥ threshold ──► manifest
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.engines.store import (
    BuildSpec,
    EngineSource,
    Manifest,
    ShapeProfile,
    current_machine,
    manifest_path,
    padded,
    shape_text,
    store_dir,
    write_manifest,
)
from cartoonize.errors import CartoonizeError
from cartoonize.export import reference_photo
from cartoonize.media.files import put_in_place, temporary_sibling
from cartoonize.parity import PSNR_THRESHOLDS, Parity, parity

# seconds the parity gate's child may take to load and run a fresh engine: a Hayao AOTInductor
# package loads in seconds where it works; TensorRT deserialises in well under a minute
GATE_TIMEOUT_S = 180.0

Step = Callable[[str], None]  # reports the stage the build is in ("exporting", "compiling", ...)

# the engine files each backend writes (what `runner_from_path` opens as that backend's engine)
ENGINE_SUFFIXES = {"aoti": (".pt2",), "tensorrt": (".plan", ".engine")}


@dataclass(frozen=True)
class BuildResult:
    engine: Path
    manifest: Manifest
    parity: Parity


def parity_frames(shape: tuple[int, int], batch: int) -> np.ndarray:
    """The reference photo at the profile's opt shape, one variant per batch slot."""
    photo = reference_photo(*shape)[0]
    variants = [photo, photo[:, ::-1], photo[::-1], photo[::-1, ::-1]]
    return np.ascontiguousarray(np.stack([variants[i % 4] for i in range(batch)]))


def _child_argv(engine: Path, inputs: Path, outputs: Path) -> list[str]:
    return [
        sys.executable,
        "-X",
        "faulthandler",
        "-m",
        "cartoonize.pipelines.build",
        *map(str, (engine, inputs, outputs)),
    ]


class EngineCrashed(CartoonizeError):
    """The engine died natively (a signal) when loaded and run; `where` is the innermost Python
    frame faulthandler printed, `log` the child's full error output."""

    def __init__(self, message: str, signal_name: str, where: str, log: Path | None) -> None:
        super().__init__(message)
        self.signal_name, self.where, self.log = signal_name, where, log


def innermost_frame(stderr: str) -> str:
    """`function (file:line)` of the crashing thread's innermost frame in faulthandler's report."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("Current thread", "Thread")) and "most recent call first" in line:
            match = re.match(r'\s+File "(.+)", line (\d+) in (\S+)', "".join(lines[i + 1 : i + 2]))
            if match:
                path, number, function = match.groups()
                short = "/".join(Path(path).parts[-3:])
                return f"{function} ({short}:{number})"
    return ""


def _crash_report(engine: Path, text: str) -> Path | None:
    """Keep the child's faulthandler report (for a bug report upstream) in the temp folder."""
    report = Path(tempfile.gettempdir()) / f"cartoonize-crash-{engine.stem.lstrip('.')}.log"
    try:
        report.write_text(text)
    except OSError:
        return None
    return report


def gate_timeout() -> float:
    """Seconds the gate's child may take to load and run the engine (`CARTOONIZE_GATE_TIMEOUT`)."""
    return float(os.environ.get("CARTOONIZE_GATE_TIMEOUT", GATE_TIMEOUT_S))


def run_isolated(engine: Path, frames: np.ndarray) -> np.ndarray:
    """Run a freshly built engine on `frames` in a child process. A native crash while loading or
    running it (an AOTInductor CUDA package of the Hayao network died in `aoti_load_package` on an
    H200 with torch 2.11) then becomes an EngineCrashed error instead of killing the build silently;
    so does a child that hangs (on the same machine on 2026-12-04 the fp16 package, built in 30 s,
    had given no result 150 s later): after `gate_timeout()` its faulthandler prints where every
    thread was and ends it."""
    timeout = gate_timeout()
    with tempfile.TemporaryDirectory(prefix="cartoonize-gate-") as tmp:
        inputs, outputs = Path(tmp) / "frames.npy", Path(tmp) / "cartoon.npy"
        np.save(inputs, frames)
        env = {**os.environ, "CARTOONIZE_GATE_TIMEOUT": str(timeout)}
        try:
            proc = subprocess.run(_child_argv(engine, inputs, outputs), capture_output=True, text=True, env=env,
                                  timeout=timeout + 30)  # fmt: skip
        except subprocess.TimeoutExpired as exc:  # even faulthandler's watchdog did not get to run
            stderr = (
                exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
            )
            raise _hung(engine, timeout, stderr) from None
        if proc.returncode == 1 and proc.stderr.lstrip().startswith("Timeout ("):
            raise _hung(engine, timeout, proc.stderr)
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            where = innermost_frame(proc.stderr)
            log = _crash_report(engine, proc.stderr)
            raise EngineCrashed(
                f"{engine.name} crashed ({name}{' in ' + where if where else ''}) when loaded and run for "
                f"the parity gate; nothing was kept{f' (its report: {log})' if log else ''}. This is a fault "
                "of the backend on this machine: try another --backend, or run without an engine "
                "(`--engine torch`)",
                name, where, log,
            )  # fmt: skip
        if proc.returncode != 0 or not outputs.exists():
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            detail = lines[-1] if lines else f"exit {proc.returncode}"
            raise CartoonizeError(f"{engine.name} failed when run for the parity gate: {detail}")
        return np.load(outputs)


def _hung(engine: Path, timeout: float, stderr: str) -> EngineCrashed:
    where = innermost_frame(stderr)
    log = _crash_report(engine, stderr)
    return EngineCrashed(
        f"{engine.name} gave no result within {timeout:.0f} s of being loaded and run for the parity gate"
        f"{' (stuck in ' + where + ')' if where else ''}; nothing was kept{f' (its report: {log})' if log else ''}. "
        "Try another --backend, or run without an engine (`--engine torch`); CARTOONIZE_GATE_TIMEOUT "
        "gives a slow machine more time",
        f"no result in {timeout:.0f} s", where, log,
    )  # fmt: skip


def _source_checkpoint(spec: BuildSpec):  # -> Checkpoint
    from cartoonize.model import load_checkpoint
    from cartoonize.styles import style_checkpoint

    path = style_checkpoint(spec.source.name) if spec.source.kind == "style" else Path(spec.source.name)
    return load_checkpoint(path)


def _reference(spec: BuildSpec, frames: np.ndarray) -> tuple[np.ndarray, str]:
    """The frames through the true-fp32 reference on the CPU (no TF32 anywhere)."""
    if spec.source.kind == "onnx":
        from cartoonize.runners.onnxruntime import OnnxRuntimeRunner

        with OnnxRuntimeRunner(Path(spec.source.name), "cpu") as ref:
            return ref(frames), "onnxruntime-cpu on the source ONNX"
    from cartoonize.runners.torch import TorchRunner

    with TorchRunner(_source_checkpoint(spec), "cpu", "fp32") as ref:
        return ref(frames), "torch fp32 (cpu)"


def _build_aoti(spec: BuildSpec, output: Path, step: Step, recipe: Any) -> dict[str, Any]:
    from cartoonize.engines.aoti import aoti_from_checkpoint

    if spec.source.kind == "onnx":
        raise CartoonizeError(
            "AOTInductor compiles a PyTorch model: give --style or --model, or --backend tensorrt for an ONNX graph"
        )
    how = "" if recipe.name == "default" else f", recipe {recipe.name}: {recipe.what}"
    step(f"exporting and compiling with AOTInductor for {spec.device} (a minute or two{how})")
    return aoti_from_checkpoint(_source_checkpoint(spec), spec, output, recipe)


def _build_tensorrt(spec: BuildSpec, output: Path, step: Step, recipe: Any = None) -> dict[str, Any]:
    from cartoonize.engines.tensorrt import (
        engine_from_onnx,
        onnx_precision_for,
        onnx_size_multiple,
        timing_cache_name,
    )

    machine = current_machine()
    if machine.tensorrt is None:
        raise CartoonizeError(
            "TensorRT is not installed here: `pip install 'cartoonize[gpu]'`, or use --backend aoti"
        )
    if spec.device != "cuda":
        raise CartoonizeError(
            "TensorRT engines run on CUDA GPUs; use --device cuda (or --backend aoti for the CPU)"
        )
    if spec.source.kind == "onnx":
        onnx_path = Path(spec.source.name)
    else:
        from cartoonize.choose import cached_onnx
        from cartoonize.styles import style_checkpoint

        step("exporting ONNX")
        source = spec.source
        checkpoint = style_checkpoint(source.name) if source.kind == "style" else Path(source.name)
        onnx_path = cached_onnx(checkpoint, onnx_precision_for(spec.precision, machine.tensorrt))
    step(f"building with TensorRT {machine.tensorrt} (minutes at opt level ≥ 4)")
    cache = output.parent / timing_cache_name(machine.gpu, machine.capability, machine.tensorrt)
    options = engine_from_onnx(onnx_path, spec, output, cache)
    return {**options, "size_multiple": onnx_size_multiple(onnx_path)}


BUILDERS: dict[str, Callable[[BuildSpec, Path, Step, Any], dict[str, Any]]] = {
    "aoti": _build_aoti,
    "tensorrt": _build_tensorrt,
}


def _recipes(spec: BuildSpec) -> list[Any]:
    """What to try in turn when the built engine crashes: AOTInductor's recipes; one TensorRT build."""
    if spec.backend == "aoti":
        from cartoonize.engines.aoti import aoti_recipes

        return list(aoti_recipes())
    return [None]


def _build_and_gate(
    spec: BuildSpec, building: Path, name: str, recipe: Any, step: Step, started: float, machine: Any
) -> tuple[Manifest, Parity]:
    """One build of `spec` into `building` (with its manifest), and its parity gate; `name` is the
    engine's final file name, for messages."""
    from cartoonize.styles import sha256_of

    options = BUILDERS[spec.backend](spec, building, step, recipe)
    seconds = time.perf_counter() - started
    style = spec.source.name if spec.source.kind == "style" else ""
    manifest = Manifest(spec, machine.backend_version(spec.backend) or "?", machine.describe_device(spec.device),
                        sha256_of(building), round(seconds, 1), {}, options, style=style)  # fmt: skip
    write_manifest(building, manifest)  # first without parity figures: loading checks it
    step("parity gate: engine against the fp32 reference on a photo")
    frames = parity_frames(spec.profile.opt, spec.batch)
    expected, reference = _reference(spec, frames)
    check = parity(expected, run_isolated(building, frames))
    threshold = PSNR_THRESHOLDS[spec.precision]
    manifest.parity = {"max_abs_diff": check.max_abs_diff, "psnr_db": round(check.psnr_db, 2) if math.isfinite(check.psnr_db) else None,
                       "threshold_db": threshold, "shape": list(check.shape), "reference": reference,
                       "photo": "scikit-image astronaut"}  # fmt: skip
    if not check.passes(spec.precision):
        raise CartoonizeError(
            f"{name} fails the parity gate: "
            f"{check.describe()} against {reference}, needs ≥ {threshold} dB for {spec.precision}; nothing was kept"
        )
    return manifest, check


def check_cpu_memory(shape: tuple[int, int], batch: int, option: str) -> None:
    """Refuse, before any work, frames the network cannot run on in the memory free here on the
    CPU (`pipelines.memory`'s measured 2.2 KB a pixel): `bench --shape 100000000x100000000` ended
    in a traceback, and a size that only just does not fit is killed by the kernel without a word
    (a build after minutes of compiling, in its parity gate)."""
    from cartoonize.pipelines import memory

    available = memory.available_memory()
    need = memory.cpu_need(shape[0], shape[1] * batch)  # activations grow with the frames a call
    if available is None or need <= memory.HEADROOM * available:
        return
    frames = f" × {batch} frames" if batch > 1 else ""
    raise CartoonizeError(
        f"{option} {shape_text(shape)}{frames}: the network needs about {need / 1e9:,.1f} GB on the CPU "
        f"and {available / 1e9:.1f} GB is free; use a smaller {option}{' or --batch' if batch > 1 else ''}"
    )


def check_engine_output(spec: BuildSpec, output: Path) -> None:
    """Refuse, before any work, an engine file name that would not open as the backend's engine."""
    suffixes = ENGINE_SUFFIXES[spec.backend]
    if output.suffix.lower() not in suffixes:
        raise CartoonizeError(
            f"--output {output}: a --backend {spec.backend} engine is a {' or '.join(suffixes)} file "
            f"(the suffix says how it loads); use {output.with_suffix(suffixes[0])}"
        )


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP that come inside wait until the block is done, then act as they
    would have. (Python runs signal handlers in the main thread: elsewhere none can interrupt it.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    # a handler not set from Python (getsignal gives None) could not be put back: left alone
    stops = (getattr(signal, name, None) for name in ("SIGINT", "SIGTERM", "SIGHUP"))
    numbers = [n for n in stops if n is not None and signal.getsignal(n) is not None]
    handlers = {n: signal.signal(n, lambda signum, _frame: came.append(signum)) for n in numbers}
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        if came:
            signal.raise_signal(came[0])


def _move_into_place(building: Path, output: Path) -> None:
    """The finished engine and its manifest onto their names, replacing an older build of them:
    each rename is atomic, and no stop signal lands between the two (a stored engine with another
    build's manifest would not load)."""
    with _stop_signals_held():  # a link under either name is followed, as every output here is
        put_in_place(manifest_path(building), manifest_path(output))
        put_in_place(building, output)


def build_engine(
    spec: BuildSpec, output: Path | None = None, step: Step | None = None, warn: Step | None = None
) -> BuildResult:
    """Build, gate on parity, and write the engine and its manifest. The engine is built and gated
    under a hidden name and moved into place only when it passed, so an error or an interrupt
    leaves `output` (an engine built before, say) as it was, and nothing new beside it.
    An AOTInductor engine that crashes in the gate is rebuilt with the next recipe (said by `warn`;
    `step` reports the stage the build is in)."""
    step = step or (lambda _s: None)
    warn = warn or step
    machine = current_machine()
    output = output or store_dir() / spec.file_name(machine.target(spec.device))
    check_engine_output(spec, output)
    # build and gate under a hidden name: a crash mid-build leaves nothing `--engine auto` would pick
    # (the process's own: two builds of one engine at once each finish, the last one's stored)
    # (beside the file a link under that name points to: the rename stays on one file system; named
    # by machine and process, so that the next build there removes it if this one is killed outright)
    building = temporary_sibling(output)
    started = time.perf_counter()
    recipes = _recipes(spec)
    crashes: list[str] = []
    try:
        for i, recipe in enumerate(recipes):
            try:
                manifest, check = _build_and_gate(spec, building, output.name, recipe, step, started, machine)
                break
            except EngineCrashed as exc:
                label = recipe.name if recipe is not None else spec.backend  # TensorRT has no recipes
                crashes.append(f"{label}: {exc.signal_name}{' in ' + exc.where if exc.where else ''}")
                if i + 1 == len(recipes):
                    if len(recipes) > 1:
                        raise CartoonizeError(
                            f"{output.name}: every AOTInductor recipe crashed when loaded and run "
                            f"({'; '.join(crashes)}); nothing was kept. Run without an engine (`--engine torch`)"
                            f"{f', crash report: {exc.log}' if exc.log else ''}"
                        ) from None
                    raise
                after = recipes[i + 1]
                warn(f"the engine crashed ({exc.signal_name}{' in ' + exc.where if exc.where else ''}); "
                     f"rebuilding with recipe {after.name}: {after.what}")  # fmt: skip
        if crashes:
            manifest.build_options["crashed_recipes"] = crashes
        write_manifest(building, manifest)  # now with the parity figures
        _move_into_place(building, output)
    finally:
        building.unlink(missing_ok=True)
        manifest_path(building).unlink(missing_ok=True)
    return BuildResult(output, manifest, check)


def _check_onnx_build(source: EngineSource, what: str, backend: str, profile: ShapeProfile) -> None:
    """An ONNX source (an imported model, or --onnx) builds with TensorRT only, at sizes that are
    multiples of the model's own size multiple."""
    from cartoonize.engines.tensorrt import onnx_size_multiple

    if backend == "aoti":
        raise CartoonizeError(
            f"AOTInductor compiles a PyTorch model and {what} is an ONNX graph: build it with "
            "--backend tensorrt (a CUDA GPU with TensorRT), or run it as it is with ONNX Runtime "
            "(`--engine onnxruntime`, CPU or CUDA)"
        )
    multiple = onnx_size_multiple(Path(source.name))
    for shape in (profile.min, profile.opt, profile.max):
        if shape[0] % multiple or shape[1] % multiple:
            up = padded(shape, multiple)
            raise CartoonizeError(
                f"{what} needs H and W in multiples of {multiple}; {shape_text(shape)} is not: use {shape_text(up)}"
            )


def spec_from_options(
    style: str | None, model: Path | None, onnx: Path | None, backend: str, precision: str, device: str,
    shape: str | None, min_shape: str | None, opt_shape: str | None, max_shape: str | None,
    batch: int = 1, workspace_gib: float | None = None, opt_level: int | None = None,
    max_autotune: bool = False,
) -> BuildSpec:  # fmt: skip
    """Resolve build-engine's options (auto device, precision and backend included) into a spec."""
    from cartoonize.engines.store import parse_shape, source_from
    from cartoonize.engines.tensorrt import onnx_precision, trt_major

    source = source_from(style, model, onnx)
    machine = current_machine()
    if device == "auto":
        device = "cuda" if machine.capability else "cpu"
    if precision == "auto":
        precision = "fp16" if device == "cuda" else "fp32"
        if source.kind == "onnx" and machine.tensorrt and trt_major(machine.tensorrt) >= 11:
            # strongly typed: an ONNX graph (an imported model) builds in the precision it is in
            precision = onnx_precision(Path(source.name))
    if backend == "auto":
        backend = "tensorrt" if machine.tensorrt and device == "cuda" else "aoti"
    ranged = (min_shape, opt_shape, max_shape)
    if shape is not None and any(ranged):
        raise CartoonizeError("give --shape HxW, or --min-shape, --opt-shape and --max-shape, not both")
    if shape is not None:
        profile = ShapeProfile.static(parse_shape(shape))
    elif all(ranged):
        profile = ShapeProfile(*(parse_shape(s) for s in ranged))  # type: ignore[arg-type]
    else:
        raise CartoonizeError(
            "give --shape HxW (e.g. --shape 720x1280), or all of --min-shape, --opt-shape, --max-shape"
        )
    if source.kind == "onnx":
        _check_onnx_build(source, style or Path(source.name).name, backend, profile)
    if backend == "aoti" and (workspace_gib is not None or opt_level is not None):
        raise CartoonizeError(
            "--workspace and --opt-level are TensorRT options; drop them for --backend aoti"
        )
    if precision == "bf16" and backend != "aoti":
        raise CartoonizeError("--precision bf16 engines are AOTInductor engines; use --backend aoti")
    if backend == "tensorrt" and max_autotune:
        raise CartoonizeError("--max-autotune is an AOTInductor option; drop it for --backend tensorrt")
    if opt_level is not None and not 0 <= opt_level <= 5:
        raise CartoonizeError("--opt-level must be 0 to 5")
    if device == "cpu":  # the parity gate runs the engine at the opt shape: before minutes of compiling
        check_cpu_memory(profile.opt, batch, "--shape" if shape is not None else "--opt-shape")
    return BuildSpec(
        source, backend, precision, device, profile, batch, workspace_gib, opt_level, max_autotune
    )


if __name__ == "__main__":  # the child of run_isolated: ENGINE FRAMES.npy OUT.npy
    import faulthandler

    from cartoonize.choose import runner_from_path

    # a hang ends with every thread's stack on stderr ("Timeout (...)!"), which the parent reads
    faulthandler.dump_traceback_later(gate_timeout(), exit=True)

    try:
        with runner_from_path(Path(sys.argv[1])) as _engine:
            np.save(sys.argv[3], _engine(np.load(sys.argv[2])))
    except CartoonizeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
