"""The webcam on this machine: frames shown per second, frames dropped, capture-to-display latency,
for several inference sizes and runners against the same source, in one run (the first
configuration is the baseline the others are compared with). A file or lavfi source is paced at
its own rate, as a camera would be. Prints a table and writes JSON.

    python -m cartoonize.measure.webcam [--input ../shared/media/chaplin.mp4] [--frames 60]
        [--configs "max160,192,256,torch-bf16@192"] [--json PATH]

A configuration is `max<N>` (today's advice: the whole picture scaled to N, no upsampling),
`<N>` (640x360 shown, the network at longer side N, guided upsampling), or `<engine>[-<precision>]@<N>`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.errors import CartoonizeError
from cartoonize.measure import positive_ints, run_module
from cartoonize.media.capture import CaptureSpec
from cartoonize.pipelines.webcam import WebcamJob, run_webcam
from cartoonize.stages import StageOptions

DEFAULT_INPUT = Path(__file__).resolve().parents[2].parent / "shared" / "media" / "chaplin.mp4"  # 640×360


def parse_config(text: str) -> dict[str, Any]:
    """`max<N>`, `<N>` or `<engine>[-<precision>]@<N>` (see the module docstring)."""
    engine, precision, side = "auto", "auto", text
    if "@" in text:
        runtime, side = text.split("@", 1)
        engine, _, precision = runtime.partition("-")
        precision = precision or "auto"
    number = side.removeprefix("max")
    if not number.isdigit() or int(number) < 1:
        raise CartoonizeError(
            f"config {text!r}: write max<N>, <N> or <engine>[-<precision>]@<N>, e.g. max160,192,torch-bf16@192"
        )
    if side.startswith("max"):
        return {
            "name": text,
            "engine": engine,
            "precision": precision,
            "max_side": int(side[3:]),
            "infer_side": None,
        }
    return {"name": text, "engine": engine, "precision": precision, "max_side": None, "infer_side": int(side)}


def measure(
    config: dict[str, Any], source: str, input_format: str | None, frames: int, style: str
) -> dict[str, Any]:
    request = EngineRequest(engine=config["engine"], style=style, device="cpu", precision=config["precision"])
    spec = CaptureSpec(source, input_format, max_side=config["max_side"])
    job = WebcamJob(spec, preview=False, frames=frames, stages=StageOptions(infer_side=config["infer_side"]))
    report = run_webcam(job, lambda size: runner_for(request, size))
    total = report.shown + report.dropped
    return {
        **config, "size": [report.width, report.height], "engine_described": report.engine, "shown": report.shown,
        "dropped": report.dropped, "dropped_share": round(report.dropped / total, 3) if total else 0.0,
        "fps": round(report.fps, 2), "latency_median_ms": round(report.latency_ms(50), 1),
        "latency_p95_ms": round(report.latency_ms(95), 1), "stopped": report.stopped,
    }  # fmt: skip


def cpu_cost(sides: list[int], style: str, shape: tuple[int, int] = (360, 640)) -> dict[str, float]:
    """CPU milliseconds per shown frame, one thread each (ONNX Runtime at each side, guided
    upsampling back to `shape`, the shrink): CPU time, unlike wall time, hardly depends on what
    else the machine runs."""
    import time

    import torch

    from cartoonize.choose import cached_onnx, checkpoint_path
    from cartoonize.export import reference_photo
    from cartoonize.runners.onnxruntime import OnnxRuntimeRunner
    from cartoonize.stages.upsample import guided_upsample, network_frame

    def cpu_ms(fn, calls: int = 3) -> float:  # noqa: ANN001
        fn()
        started = time.process_time()
        for _ in range(calls):
            fn()
        return 1000 * (time.process_time() - started) / calls

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    source = reference_photo(*shape)[0]
    onnx = cached_onnx(checkpoint_path(EngineRequest(style=style)), "fp32")
    costs: dict[str, float] = {}
    try:
        with OnnxRuntimeRunner(onnx, "cpu", threads=1) as ort:
            for side in sides:
                small = network_frame(source, side)
                costs[f"{side}"] = round(
                    cpu_ms(lambda small=small: ort(small[None]))
                    + cpu_ms(lambda small=small: guided_upsample(source, small))
                    + cpu_ms(lambda side=side: network_frame(source, side)), 1
                )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return costs


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", default=str(DEFAULT_INPUT), help="a video file or a lavfi graph")
    parser.add_argument("--input-format", default=None, help="lavfi for a graph")
    parser.add_argument("--frames", type=int, default=60, help="frames shown per configuration")
    parser.add_argument("--configs", default="max160,160,192,256")
    parser.add_argument("--style", default="hayao")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cpu-cost", type=positive_ints, default=None, metavar="SIDES",
                        help="instead: CPU ms per 640x360 frame at these inference sides, e.g. 128,160,192")  # fmt: skip
    args = parser.parse_args(argv)
    if args.cpu_cost:
        costs = cpu_cost(args.cpu_cost, args.style)
        print("CPU ms per 640x360 frame (inference + guided upsampling + shrink, one thread):", costs)
        return [costs]
    configs = [parse_config(text) for text in args.configs.split(",")]  # all checked before any is run
    results = []
    for config in configs:
        results.append(measure(config, args.input, args.input_format, args.frames, args.style))
        r = results[-1]
        print(f"{r['name']:>16}: {r['size'][0]}x{r['size'][1]} {r['fps']:5.2f} fps ({r['fps'] / max(results[0]['fps'], 1e-9):.2f}x "
              f"baseline), dropped {r['dropped']} of {r['shown'] + r['dropped']} ({100 * r['dropped_share']:.0f} %), "
              f"latency median {r['latency_median_ms']:.0f} ms, p95 {r['latency_p95_ms']:.0f} ms; {r['engine_described']}",
              flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    run_module(main)
