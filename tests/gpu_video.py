"""`cartoonize video` end to end with the compile runner, as the GPU check runs it: the library
call the CLI makes, with its report written as JSON.

    python -m tests.gpu_video CLIP OUTPUT REPORT.json [--engine compile] [--yuv-frames] [--raw] [--round-trip] [--batch N]
        [--profile DIR] [--sync-debug]

`--profile DIR` traces frames 40-99 with torch.profiler (tests/gpu_profile.py) and adds the
summary to the report; `--sync-debug` counts the synchronising CUDA calls by thread and place.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import replace
from pathlib import Path


def command_line() -> argparse.ArgumentParser:
    """The command line (the GPU check's steps are checked against it on the CPU)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("clip", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("report", type=Path)
    parser.add_argument("--engine", default="compile")
    parser.add_argument("--yuv-frames", action="store_true", help="the GPU frame path (planes to the runner)")
    parser.add_argument("--raw", action="store_true", help="no frame stages (the network's output as is)")
    parser.add_argument("--batch", type=int, default=1, help="frames per engine call")
    parser.add_argument("--round-trip", action="store_true",
                        help="the engine's frames go back to the host before the GPU stages (not kept on the device)")  # fmt: skip
    # what the next GPU run compares: the engine thread spent ~20 ms a 1080p frame in engine calls
    # for 11.4 ms of GPU work (2026-12-04); Inductor's default mode launches each kernel from
    # Python, which the decode and mux threads may hold up (the GIL switches every 5 ms)
    parser.add_argument("--compile-mode", default=None, help="a torch.compile mode for the compile runner")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="the GIL's switch interval during the job, s (default: the pipeline's, "
                             "pipelines.handoffs; 0: the interpreter's own 5 ms, as before 2026-12-06)")  # fmt: skip
    parser.add_argument(
        "--profile", type=Path, default=None, help="trace a window of frames into this folder"
    )
    parser.add_argument("--profile-frames", default="40,60", help="frames to skip, then to trace")
    parser.add_argument("--sync-debug", action="store_true", help="count synchronising CUDA calls")
    parser.add_argument("--inductor", action="append", default=[], help="an Inductor config KEY=VALUE")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", type=Path, default=None, help="a checkpoint instead of the Hayao style")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = command_line().parse_args(argv)
    for setting in args.inductor:  # e.g. cpp_wrapper=1: a C++ wrapper launches the kernels, not Python
        key, _, value = setting.partition("=")
        from torch._inductor import config

        config.__setattr__(key, type(getattr(config, key))(int(value) if value.isdigit() else value))
    from cartoonize.choose import EngineRequest, runner_for
    from cartoonize.pipelines.video import VideoJob, cartoonize_video
    from cartoonize.stages import StageOptions

    model = {"model": args.model} if args.model else {"style": "hayao"}
    request = EngineRequest(engine=args.engine, device=args.device, **model)
    job = VideoJob(args.clip, args.output, batch=args.batch, overwrite=True, yuv_frames=args.yuv_frames,
                   keep_on_device=not args.round_trip, stages=StageOptions(raw=args.raw))  # fmt: skip
    if args.switch_interval is not None:
        job = replace(job, switch_interval=args.switch_interval or None)
    make_runner = lambda size: runner_for(request, size)  # noqa: E731
    if args.compile_mode:
        from cartoonize.model import load_checkpoint
        from cartoonize.runners.compile import CompileRunner
        from cartoonize.styles import style_checkpoint

        checkpoint = load_checkpoint(args.model or style_checkpoint("hayao"))
        precision = "fp16" if args.device == "cuda" else "fp32"

        def make_runner(size: tuple[int, int]) -> CompileRunner:
            return CompileRunner(checkpoint, args.device, precision, size, mode=args.compile_mode)

    extra: dict = {}
    with contextlib.ExitStack() as stack:
        on_progress = None
        if args.profile:
            from tests.gpu_profile import Window, ranges

            skip, active = (int(n) for n in args.profile_frames.split(","))
            window = stack.enter_context(Window(args.profile, args.device, skip, active))
            plain = make_runner
            make_runner = lambda size: ranges(plain(size))  # noqa: E731

            def on_progress(done: int, _total: int | None) -> None:
                while window.frames_seen < done:
                    window.step()

        if args.sync_debug:
            from tests.gpu_profile import SyncCounter

            syncs = stack.enter_context(SyncCounter().watching())
        report = cartoonize_video(job, make_runner, on_progress)
    if args.sync_debug:
        extra["syncs"] = syncs.report(report.frames)
    if args.profile:
        from tests.gpu_profile import print_summary, summarize

        traced = min(active, max(0, report.frames - skip))
        extra["profile"] = (
            summarize(window.trace, traced, window.thread_names)
            if window.trace.exists()
            else {"error": "no trace written"}
        )
        print_summary(extra["profile"])
    result = {"frames": report.frames, "size": f"{report.width}x{report.height}", "seconds": round(report.seconds, 2),
              "fps": round(report.fps, 2), "load_s": round(report.load_seconds, 2),
              "fps_running": round(report.running_fps, 2), "engine_share": round(report.engine_share, 3), "engine": report.engine,
              "codec": report.video_codec, "colour": report.colour, "streams": report.streams,
              "frame_path": report.frame_path, "stages": report.stages, "waits_s": report.waits,
              "engine_s": round(report.engine_seconds, 2), "switch_interval": job.switch_interval or sys.getswitchinterval(),
              "inductor": args.inductor, **extra}  # fmt: skip
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
