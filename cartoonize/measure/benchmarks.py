"""The speed table: inference alone and end to end (decode → engine → encode) for each runner
and frame size, on this machine. Prints a table and writes JSON.

    python -m cartoonize.measure.benchmarks [--sizes 180x320,360x640] [--engines torch,onnxruntime]
                                    [--styles hayao,light-paprika] [--clip PATH] [--json PATH]
                                    [--scaling-only | --no-scaling]

Several styles (built-in or imported) are measured in one run, each size in turn, and each row
after the first of a size gets its ratio to that first row: the numbers share the machine's state.

The scaling row (`measure.scaling`): a long generated clip in segments on 1 and 2 workers, local
processes and a local Ray cluster, beside one pass in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.engines.store import parse_shape
from cartoonize.export import reference_photo
from cartoonize.measure import positive_int, positive_ints, run_module
from cartoonize.measure.bench import time_runner
from cartoonize.pipelines.video import VideoJob, cartoonize_video

DEFAULT_CLIP = Path(__file__).resolve().parents[2].parent / "shared" / "media" / "chaplin.mp4"  # 640×360


def measure(
    request: EngineRequest, shape: tuple[int, int], clip: Path, iters: int, frames: int
) -> dict[str, Any]:
    """fps of the engine alone on one frame of `shape`, and of `cartoonize video` on `frames`
    frames of `clip` scaled so its longer side is max(shape)."""
    photo = reference_photo(*shape)
    runner = runner_for(request, shape)
    with runner:
        seconds = time_runner(runner, photo, iters, warmup=1)
        described = runner.describe()
    alone = 1 / statistics.median(seconds)
    with tempfile.TemporaryDirectory() as tmp:
        job = VideoJob(clip, Path(tmp) / "out.mp4", max_side=max(shape), max_frames=frames)
        report = cartoonize_video(job, lambda size: runner_for(request, size))
    return {
        "runner": described, "shape": list(shape), "inference_fps": round(alone, 3),
        "end_to_end_fps": round(report.fps, 3),
        "end_to_end_engine_share": round(report.engine_share, 3),
        "end_to_end_frames": report.frames, "video_size": [report.height, report.width],
        "encoder": report.video_codec,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="180x320,360x640", help="HxW list")
    parser.add_argument("--engines", default="torch,onnxruntime", help="runner names or engine paths")
    parser.add_argument(
        "--styles", "--style", default="hayao", help="styles or imported models, the first the baseline"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="a real clip for the end-to-end runs")
    parser.add_argument("--iters", type=positive_int, default=5)
    parser.add_argument("--frames", type=positive_int, default=12, help="frames per end-to-end run")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-scaling", action="store_true", help="leave out the scaling row")
    parser.add_argument("--scaling-only", action="store_true", help="only the scaling row")
    parser.add_argument("--scaling-size", default="96x160", help="HxW of the long generated clip")
    parser.add_argument("--scaling-frames", type=positive_int, default=192, help="frames of the long clip")
    parser.add_argument(
        "--scaling-workers", type=positive_ints, default="1,2", help="worker counts to compare"
    )
    parser.add_argument(
        "--scaling-segments", type=positive_int, default=4, help="segments the clip is cut into"
    )
    parser.add_argument("--scaling-engine", default="torch", help="the runner each worker loads")
    parser.add_argument("--scaling-kinds", default="one,local,ray", help="which of one pass, local, ray")
    args = parser.parse_args(argv)
    kinds = tuple(args.scaling_kinds.split(","))
    if not args.no_scaling and not set(kinds) <= {"one", "local", "ray"}:
        parser.error(f"--scaling-kinds {args.scaling_kinds!r}: a comma-separated list of one, local, ray")

    base = EngineRequest(device=args.device, precision=args.precision)
    rows = []
    for size in [] if args.scaling_only else args.sizes.split(","):
        first: dict[str, Any] | None = None
        for style in args.styles.split(","):
            for engine in args.engines.split(","):
                request = replace(base, engine=engine, style=style)
                row = {
                    "style": style,
                    **measure(request, parse_shape(size), args.clip, args.iters, args.frames),
                }
                ratio = ""
                if first is None:
                    first = row
                else:
                    row["ratio_to_first"] = {
                        k: round(row[k] / first[k], 3) for k in ("inference_fps", "end_to_end_fps")
                    }
                    ratio = f"  = {row['ratio_to_first']['inference_fps']:.2f}× / {row['ratio_to_first']['end_to_end_fps']:.2f}× {first['style']}"
                rows.append(row)
                print(f"{style:<14} {row['runner']:<44} {size:>9}  alone {row['inference_fps']:8.2f} fps   end to end "
                      f"{row['end_to_end_fps']:8.2f} fps  (engine {100 * row['end_to_end_engine_share']:.0f} % of the time){ratio}",
                      flush=True)  # fmt: skip
    result: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "rows": rows}
    if not args.no_scaling:
        from cartoonize.measure.scaling import scaling

        workers = args.scaling_workers
        request = replace(base, engine=args.scaling_engine)
        result["scaling"] = scaling(request, parse_shape(args.scaling_size), args.scaling_frames, workers,
                                    args.scaling_segments, kinds)  # fmt: skip
        print(f"scaling: {args.scaling_frames} frames {args.scaling_size} in {args.scaling_segments} segments, "
              f"{request.engine}, {os.cpu_count()} CPUs", flush=True)  # fmt: skip
        for row in result["scaling"]:
            print(f"  {row['run']:<10} {row['seconds']:8.2f} s {row['fps']:7.2f} fps  x{row['speedup_vs_1_worker']} vs 1 worker, "
                  f"x{row['speedup_vs_one_pass']} vs one pass; driver {row['driver_seconds']:.2f} s, "
                  f"{row['bytes_to_driver'] / 1e6:.2f} MB back to it", flush=True)  # fmt: skip
    try:
        import torch

        if torch.cuda.is_available():
            result["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    run_module(main)
