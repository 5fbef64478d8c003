"""`cartoonize video` end to end with the compile runner, as the GPU check runs it: the library
call the CLI makes, with its report written as JSON.

    python -m tests.gpu_video CLIP OUTPUT REPORT.json [--engine compile] [--yuv-frames] [--raw]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("clip", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("report", type=Path)
    parser.add_argument("--engine", default="compile")
    parser.add_argument("--yuv-frames", action="store_true", help="the GPU frame path (planes to the runner)")
    parser.add_argument("--raw", action="store_true", help="no frame stages (the network's output as is)")
    # what the next GPU run compares: the engine thread spent ~20 ms a 1080p frame in engine calls
    # for 11.4 ms of GPU work (2026-12-04); Inductor's default mode launches each kernel from
    # Python, which the decode and mux threads may hold up (the GIL switches every 5 ms)
    parser.add_argument("--compile-mode", default=None, help="a torch.compile mode for the compile runner")
    parser.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval (s)")
    args = parser.parse_args(argv)
    if args.switch_interval:
        import sys

        sys.setswitchinterval(args.switch_interval)

    from cartoonize.choose import EngineRequest, runner_for
    from cartoonize.pipelines.video import VideoJob, cartoonize_video
    from cartoonize.stages import StageOptions

    request = EngineRequest(engine=args.engine, style="hayao", device="cuda")
    job = VideoJob(args.clip, args.output, overwrite=True, yuv_frames=args.yuv_frames,
                   stages=StageOptions(raw=args.raw))  # fmt: skip
    make_runner = lambda size: runner_for(request, size)  # noqa: E731
    if args.compile_mode:
        from cartoonize.model import load_checkpoint
        from cartoonize.runners.compile import CompileRunner
        from cartoonize.styles import style_checkpoint

        checkpoint = load_checkpoint(style_checkpoint("hayao"))
        make_runner = lambda size: CompileRunner(checkpoint, "cuda", "fp16", size, mode=args.compile_mode)  # noqa: E731
    report = cartoonize_video(job, make_runner)
    result = {"frames": report.frames, "size": f"{report.width}x{report.height}", "seconds": round(report.seconds, 2),
              "fps": round(report.fps, 2), "load_s": round(report.load_seconds, 2),
              "fps_running": round(report.running_fps, 2), "engine_share": round(report.engine_share, 3), "engine": report.engine,
              "codec": report.video_codec, "colour": report.colour, "streams": report.streams,
              "frame_path": report.frame_path, "stages": report.stages, "waits_s": report.waits,
              "engine_s": round(report.engine_seconds, 2), "switch_interval": args.switch_interval}  # fmt: skip
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
