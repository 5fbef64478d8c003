"""bf16 on this CPU, measured: PyTorch fp32, PyTorch bf16 and ONNX Runtime fp32 on the same photo
at each network size, in one run, with bf16's parity against fp32 and its speed-up; then what
`--engine auto --precision auto` runs here (`choose.cpu_choice`, measured once per model and
remembered in the cache). Prints a table and writes JSON.

    python -m cartoonize.measure.cpu_precision [--style hayao] [--sizes 72x128,180x320,480x852]
        [--iters 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path
from typing import Any

from cartoonize.choose import EngineRequest, cached_onnx, checkpoint_path, cpu_choice
from cartoonize.engines.store import parse_shape
from cartoonize.measure import positive_int, run_module
from cartoonize.measure.bench import time_runner


def measure_size(checkpoint: Path, shape: tuple[int, int], iters: int, warmup: int = 1) -> dict[str, Any]:
    """One network size: the three runners timed on one photo, bf16 compared with fp32."""
    from cartoonize.export import reference_photo
    from cartoonize.model import load_checkpoint
    from cartoonize.parity import parity
    from cartoonize.runners.onnxruntime import OnnxRuntimeRunner
    from cartoonize.runners.torch import TorchRunner

    photo = reference_photo(*shape)
    model = load_checkpoint(checkpoint)
    row: dict[str, Any] = {"shape": list(shape)}
    outputs = {}
    with TorchRunner(model, "cpu", "fp32") as fp32:
        outputs["fp32"] = fp32(photo)
        row["torch_fp32_fps"] = 1 / statistics.median(time_runner(fp32, photo, iters, warmup))
    with TorchRunner(model, "cpu", "bf16") as bf16:
        outputs["bf16"] = bf16(photo)
        row["torch_bf16_fps"] = 1 / statistics.median(time_runner(bf16, photo, iters, warmup))
    with OnnxRuntimeRunner(cached_onnx(checkpoint, "fp32"), "cpu") as ort:
        row["onnxruntime_fp32_fps"] = 1 / statistics.median(time_runner(ort, photo, iters, warmup))
    row["bf16_psnr_db"] = parity(outputs["fp32"], outputs["bf16"]).psnr_db
    row["bf16_vs_torch_fp32"] = row["torch_bf16_fps"] / row["torch_fp32_fps"]
    row["bf16_vs_onnxruntime"] = row["torch_bf16_fps"] / row["onnxruntime_fp32_fps"]
    return {key: float(f"{value:.4g}") if isinstance(value, float) else value for key, value in row.items()}


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| network size | PyTorch fp32 | PyTorch bf16 | bf16 ÷ fp32 | ONNX Runtime fp32 | bf16 ÷ ORT | bf16 parity |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        h, w = r["shape"]
        lines.append(
            f"| {w}×{h} | {r['torch_fp32_fps']:.2f} fps | {r['torch_bf16_fps']:.2f} fps | "
            f"{r['bf16_vs_torch_fp32']:.2f}× | {r['onnxruntime_fp32_fps']:.2f} fps | "
            f"{r['bf16_vs_onnxruntime']:.2f}× | {r['bf16_psnr_db']:.1f} dB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--style", default=None, help="a built-in or imported style (default hayao)")
    parser.add_argument("--model", type=Path, default=None, help="a checkpoint (.pt) instead of a style")
    parser.add_argument(
        "--sizes", default="72x128,180x320,480x852", help="network sizes, HxW, comma-separated"
    )
    parser.add_argument("--iters", type=positive_int, default=5, help="timed calls per runner and size")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from cartoonize.engines.cpu import cpu_capabilities, describe_bf16

    request = EngineRequest(engine="auto", style=args.style, model=args.model, device="cpu")
    checkpoint = checkpoint_path(request)
    caps = cpu_capabilities()
    rows = []
    for text in args.sizes.split(","):
        rows.append(measure_size(checkpoint, parse_shape(text), args.iters))
        print(f"measured {text}", flush=True)
    choice = cpu_choice(request)
    report = {
        "cpu": platform.processor() or caps.get("cpu_name", "cpu"),
        "cpu_capabilities": describe_bf16(caps),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": checkpoint.name,
        "sizes": rows,
        "auto": {
            "precision": choice.precision,
            "reason": choice.reason,
            "psnr_db": choice.psnr_db,
            "bf16_fps": choice.bf16_fps,
            "onnxruntime_fps": choice.onnxruntime_fps,
        },  # fmt: skip
    }
    print(
        f"{report['cpu_capabilities']}, {report['threads']} threads, torch {report['torch']}, {checkpoint.name}"
    )
    print(table(rows))
    runs = "PyTorch bf16" if choice.precision == "bf16" else "ONNX Runtime fp32"
    print(f"--precision auto here: {runs} ({choice.reason})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    run_module(main)
