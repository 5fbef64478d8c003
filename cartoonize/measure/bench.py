"""`cartoonize bench`: inference alone, timed, beside the torch eager runner and the compute floor.

Frames are made once and stay where the runner reads them: on the GPU, device tensors through
`infer_tensor` timed with CUDA events (no host copies in the timing); on the CPU, `perf_counter`.
Every run also times the torch eager runner on the same device and precision, so the ratio is
measured, not remembered. `--engine eager,compile,aoti` times several runners side by side in
one run (each beside the same eager baseline). The baseline is the same network: an imported ONNX
model has no PyTorch module, so it gets none (and no ratio) rather than another network's.
PyTorch runs no fp16 on the CPU, so there an fp16 runner (ONNX Runtime) is timed beside eager fp32.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.choose import EngineRequest, check_engine, checkpoint_path, imported_for, runner_for
from cartoonize.errors import CartoonizeError
from cartoonize.runners.base import Runner

H200_FP16_DENSE_TFLOPS = 752.0  # measured fp16 matrix-product ceiling (DESIGN.md)


@dataclass(frozen=True)
class BenchJob:
    request: EngineRequest  # engine: auto | eager | compile | aoti | onnxruntime | a path, or a comma list
    shape: tuple[int, int]
    batch: int = 1
    iters: int = 50
    warmup: int = 10
    peak_tflops: float | None = None  # None: the H200 fp16 figure on CUDA fp16, else no floor
    json_path: Path | None = None


@dataclass
class Timing:
    runner: str
    seconds_per_call: list[float] = field(repr=False)
    host_seconds: list[float] | None = field(default=None, repr=False)  # the numpy path, on a GPU

    def stats(self, batch: int, flop_per_frame: float, peak_tflops: float | None) -> dict[str, Any]:
        ms = sorted(1e3 * s for s in self.seconds_per_call)
        median = statistics.median(ms)
        p10, p90 = (float(np.percentile(ms, q)) for q in (10, 90))
        fps = batch / (median / 1e3)
        tflops = fps * flop_per_frame / 1e12
        out = {"runner": self.runner, "median_ms": round(median, 3), "p10_ms": round(p10, 3),
               "p90_ms": round(p90, 3), "fps": round(fps, 2), "tflops": round(tflops, 3) if flop_per_frame else None}  # fmt: skip
        if peak_tflops and flop_per_frame:
            out["fraction_of_peak"] = round(tflops / peak_tflops, 4)
        if self.host_seconds:
            out["host_path_fps"] = round(batch / statistics.median(self.host_seconds), 2)
        return out


def generator_flop_per_frame(request: EngineRequest, shape: tuple[int, int]) -> float:
    """FLOP of one frame through the generator (2 × multiply-adds of every convolution, transposed
    ones counted at their output size: 1.88 GFLOP per 1000 pixels for the paper's network),
    counted from the model's config on the meta device."""
    import torch

    from cartoonize.model import Generator, GeneratorConfig, load_checkpoint

    config = GeneratorConfig()
    if request.model is not None or request.style is not None:
        config = load_checkpoint(checkpoint_path(request)).config
    with torch.device("meta"):
        generator = Generator(config)
    total = 0

    def count(module: Any, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.weight.shape[2] * module.weight.shape[3]
        c_in = module.in_channels // module.groups
        total += 2 * output.shape[1] * output.shape[2] * output.shape[3] * c_in * kernel

    hooks = [m.register_forward_hook(count) for m in generator.modules()
             if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]  # fmt: skip
    generator(torch.empty((1, 3, *shape), device="meta"))
    for hook in hooks:
        hook.remove()
    return float(total)


def time_runner(runner: Runner, frames: np.ndarray, iters: int, warmup: int) -> list[float]:
    """Seconds per call: CUDA events around `infer_tensor` on the GPU, perf_counter on the CPU."""
    import torch

    tensor_fn: Callable[[Any], Any] | None = getattr(runner, "infer_tensor", None)
    if runner.device == "cuda" and tensor_fn is not None:
        x = torch.from_numpy(frames).cuda()
        for _ in range(warmup):
            tensor_fn(x)
        torch.cuda.synchronize()
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)
        ]
        for start, end in events:
            start.record()
            tensor_fn(x)
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) / 1e3 for start, end in events]
    call: Callable[[Any], Any] = runner
    arg: Any = frames
    if tensor_fn is not None and runner.device == "cpu":
        call, arg = tensor_fn, torch.from_numpy(frames)
    for _ in range(warmup):
        call(arg)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        call(arg)
        times.append(time.perf_counter() - t)
    return times


def time_host_path(runner: Runner, frames: np.ndarray, iters: int, warmup: int) -> list[float]:
    """Seconds per batch through the path `cartoonize video` takes on a GPU: numpy frames in
    (`submit`: pinned copy up, the engine, a copy back) with one batch in flight, collected as
    numpy. Against `time_runner`'s device-tensor figure, the difference is what the host costs."""
    for _ in range(warmup):
        runner.submit(frames)()
    times = []
    pending = runner.submit(frames)
    since = time.perf_counter()
    for _ in range(iters):
        following = runner.submit(frames)
        pending()
        now = time.perf_counter()
        times.append(now - since)
        since, pending = now, following
    pending()
    return times


def engine_names(engine: str) -> list[str]:
    """`--engine` split at commas, each checked (a known name or an engine file) before any work."""
    names = [n.strip() for n in engine.split(",") if n.strip()] or ["auto"]
    for name in names:
        check_engine(name)
    return names


def check_report_path(report: Path, engine: str, model: Path | None) -> None:
    """Refuse a `--json` path that is one of the benchmark's own files: the checkpoint, an engine
    file or its manifest. (`--json model.pt` replaced the checkpoint it had just timed with the
    report; `--json x.pt2` an engine.)"""
    from cartoonize.engines.store import manifest_path

    files = [p for p in (model, *(Path(n) for n in engine_names(engine))) if p is not None and p.is_file()]
    for source in (*files, *map(manifest_path, files)):
        if source.resolve() == report.resolve():
            raise CartoonizeError(
                f"--json {report} is {source.name}, a file the benchmark reads; give the report another name"
            )


def check_shape(shape: tuple[int, int], batch: int, request: EngineRequest) -> None:
    """Refuse, before a style's first download or any timing, frames the network cannot run: a
    side that is not a multiple of 4 or under 8 (4x4 said "use multiples of 4"), or, on the CPU,
    more than the memory free holds (a huge --shape ended in a MemoryError's traceback)."""
    from cartoonize.architecture import MIN_SIDE, SIZE_MULTIPLE
    from cartoonize.engines.store import padded, shape_text
    from cartoonize.pipelines.build import check_cpu_memory

    if padded(shape) != shape:
        raise CartoonizeError(
            f"--shape {shape_text(shape)}: height and width must be multiples of {SIZE_MULTIPLE} and at "
            f"least {MIN_SIDE}; use {shape_text(padded(shape))}"
        )
    if request.resolved_device() == "cpu":
        check_cpu_memory(shape, batch, "--shape")


def bench(job: BenchJob, on_step: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Time each runner of `job.request.engine` (one name or path, or several, comma-separated)
    and the torch eager baseline of the same network. The report's `engine` is the first runner;
    `runners` all of them, each with its speed-up; `speedup_vs_eager` the fastest other than the
    baseline, named by `fastest` (None, with `no_baseline` saying why, where there is no baseline)."""
    from cartoonize.export import reference_photo

    step = on_step or (lambda _s: None)
    names = engine_names(job.request.engine)
    check_shape(job.shape, job.batch, job.request)
    frames = np.ascontiguousarray(np.repeat(reference_photo(*job.shape), job.batch, axis=0))
    timings: list[Timing] = []
    eager_timing: Timing | None = None
    device: str | None = None
    precision = "auto"
    model_request = job.request
    no_network: str | None = None  # why the engine's own network cannot be timed as the baseline
    failed: list[dict[str, Any]] = []
    first_runner: Runner | None = None
    for name in names:
        try:
            runner = runner_for(replace(job.request, engine=name), job.shape)
        except CartoonizeError as exc:
            if len(names) == 1:
                raise
            failed.append({"runner": name, "error": str(exc)})  # side by side: the others still run
            continue
        with runner:
            step(f"timing {runner.describe()}")
            timing = Timing(runner.describe(), time_runner(runner, frames, job.iters, job.warmup))
            if runner.device == "cuda":  # also what the video pipeline gets from it (host copies)
                timing.host_seconds = time_host_path(runner, frames, job.iters, job.warmup)
            timings.append(timing)
            if device is None:
                device, precision, first_runner = runner.device, runner.precision, runner
                model_request, no_network = _model_of(runner, replace(job.request, engine=name))
            if runner.name == "torch" and (runner.device, runner.precision) == (device, precision):
                eager_timing = timing
    if device is None:
        raise CartoonizeError("; ".join(f"--engine {f['runner']}: {f['error']}" for f in failed))
    imported = imported_name(model_request, first_runner)
    no_baseline = no_network
    if imported is not None:  # another network's eager run would give a meaningless ratio
        no_baseline = f"{imported} is an imported ONNX model: it has no PyTorch module to time as eager"
    elif eager_timing is None and no_network is None:
        # PyTorch has no fp16 on the CPU (the runners use ONNX Runtime for it): eager fp32 instead
        eager_precision = "fp32" if (device, precision) == ("cpu", "fp16") else precision
        eager_request = replace(model_request, engine="torch", device=str(device), precision=eager_precision)
        with runner_for(eager_request) as eager:
            step(f"timing the baseline {eager.describe()}")
            label = eager.describe()
            if eager_precision != precision:  # "torch (cpu, fp32; PyTorch runs no fp16 on the CPU)"
                label = f"{label.removesuffix(')')}; PyTorch runs no fp16 on the CPU)"
            eager_timing = Timing(label, time_runner(eager, frames, job.iters, job.warmup))

    # FLOP counts are the generator's; an imported network's are not known, so none are given
    flop = 0.0 if imported is not None or no_network else generator_flop_per_frame(model_request, job.shape)
    peak = job.peak_tflops
    if peak is None and device == "cuda" and precision == "fp16":
        peak = H200_FP16_DENSE_TFLOPS
    baseline = eager_timing.stats(job.batch, flop, peak) if eager_timing is not None else None
    runners = []
    for timing in timings:
        stats = timing.stats(job.batch, flop, peak)
        if baseline is not None:
            stats["speedup_vs_eager"] = round(stats["fps"] / baseline["fps"], 3)
        runners.append(stats)
    others = [
        r for r, t in zip(runners, timings, strict=True) if t is not eager_timing and "speedup_vs_eager" in r
    ]
    fastest = max(others, key=lambda r: r["fps"], default=None)
    report = {
        "shape": list(job.shape), "batch": job.batch, "iters": job.iters, "warmup": job.warmup,
        "device": device, "precision": precision, "gpu": _gpu_name(str(device)),
        "gflop_per_frame": round(flop / 1e9, 3) if flop else None, "peak_tflops": peak if flop else None,
        "floor_fps": round(peak * 1e12 / flop, 1) if peak and flop else None,
        "engine": runners[0], "torch_eager": baseline, "runners": [*runners, *failed],
        "speedup_vs_eager": fastest["speedup_vs_eager"] if fastest else None,
        "fastest": fastest["runner"] if fastest else None, "no_baseline": no_baseline,
        "timing": "CUDA events on device tensors" if device == "cuda" else "perf_counter",
        "cudnn_benchmark": _cudnn_benchmark() if device == "cuda" else None,
    }  # fmt: skip
    if job.json_path is not None:
        job.json_path.parent.mkdir(parents=True, exist_ok=True)
        job.json_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _model_of(runner: Runner, request: EngineRequest) -> tuple[EngineRequest, str | None]:
    """The request with the model an engine file was built from (its manifest says), so the eager
    baseline runs the same network, or why it cannot: a checkpoint that is no longer where it was,
    or has changed since (another architecture would be other work). An engine built from an ONNX
    file is compared with the default style's network (same architecture, other weights: the same
    work)."""
    from cartoonize.styles import sha256_of

    manifest = getattr(runner, "manifest", None)
    if manifest is None:
        return request, None
    source = manifest.spec.source
    if source.kind == "style":
        return replace(request, style=source.name, model=None), None
    if source.kind == "model":
        checkpoint = Path(source.name)
        if not checkpoint.is_file() or sha256_of(checkpoint) != source.sha256:
            return request, f"the checkpoint it was built from, {source.name}, is not there or has changed"
        return replace(request, style=None, model=checkpoint), None
    return replace(request, style=None, model=None), None


def imported_name(request: EngineRequest, runner: Runner | None) -> str | None:
    """The imported model benchmarked (by --style, an engine file wrapped from one, or an engine
    built from one), or None for a CartoonGAN network."""
    if (imported := imported_for(request)) is not None:
        return imported.name
    if style := getattr(runner, "style", None):  # an ONNX file `cartoonize models add` wrote
        return str(style)
    manifest = getattr(runner, "manifest", None)
    if manifest is not None and manifest.spec.source.kind == "onnx":
        from cartoonize.imported.store import imported_models

        built_from = manifest.spec.source.sha256
        return next((m.name for m in imported_models() if m.manifest.wrapped_sha256 == built_from), None)
    return None


def _cudnn_benchmark() -> bool:
    """Whether cuDNN timed its algorithms for these runners (runners.cudnn), or used its heuristics."""
    import torch

    return bool(torch.backends.cudnn.benchmark)


def _gpu_name(device: str) -> str | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.get_device_name()


def format_report(report: dict[str, Any]) -> list[str]:
    gflop = f"{report['gflop_per_frame']} GFLOP/frame" if report["gflop_per_frame"] else "FLOP not known"
    lines = [f"{report['shape'][0]}x{report['shape'][1]} batch {report['batch']}, {report['device']} "
             f"{report['precision']}, {gflop} ({report['timing']})"]  # fmt: skip
    rows = report.get("runners", [report["engine"]])
    eager = report["torch_eager"]
    listed = eager is None or any(r["runner"] == eager["runner"] for r in rows)
    for r in [*rows, *([] if listed else [eager])]:
        if "error" in r:
            lines.append(f"  {r['runner']}: not run ({r['error']})")
            continue
        line = (f"  {r['runner']}: {r['fps']:.1f} fps, median {r['median_ms']:.2f} ms "
                f"(p10 {r['p10_ms']:.2f}, p90 {r['p90_ms']:.2f})")  # fmt: skip
        if r["tflops"] is not None:
            line += f", {_flop_rate(r['fps'] * report['gflop_per_frame'])}"
        if "fraction_of_peak" in r:
            line += f" = {100 * r['fraction_of_peak']:.1f} % of {report['peak_tflops']:g}"
        if eager is not None and r["runner"] != eager["runner"] and "speedup_vs_eager" in r:
            line += f", {r['speedup_vs_eager']:.2f}× eager"
        if "host_path_fps" in r:
            line += f"; {r['host_path_fps']:.1f} fps from numpy frames (the video pipeline's path)"
        lines.append(line)
    floor = f"; compute floor {report['floor_fps']} fps" if report["floor_fps"] else ""
    lines.append(f"  speed-up over torch eager: {_speedups(report)}{floor}")
    return lines


def _flop_rate(gflop_per_s: float) -> str:
    """Effective compute in the unit that shows it: a small model on a CPU printed "0.00 TFLOP/s"."""
    return f"{gflop_per_s / 1e3:.2f} TFLOP/s" if gflop_per_s >= 1e3 else f"{gflop_per_s:.1f} GFLOP/s"


def _speedups(report: dict[str, Any]) -> str:
    """Each runner's own ratio to the eager baseline, the fastest named; or why there is none."""
    if report["torch_eager"] is None:
        return f"none ({report['no_baseline']})"
    eager = report["torch_eager"]["runner"]
    others = [r for r in report["runners"] if "speedup_vs_eager" in r and r["runner"] != eager]
    if not others:
        return "none (only the eager baseline was timed)"
    ratios = ", ".join(f"{r['runner']} {r['speedup_vs_eager']:.2f}×" for r in others)
    return ratios if len(others) == 1 else f"{ratios}; fastest: {report['fastest']}"
