"""`cartoonize video` end to end with the compile runner, as the GPU check runs it: the library
call the CLI makes, with its report written as JSON.

    python -m tests.gpu_video CLIP OUTPUT REPORT.json [--engine compile] [--yuv-frames] [--raw] [--round-trip] [--batch N]
        [--profile DIR] [--sync-debug]

`--profile DIR` traces frames 40-99 with torch.profiler (tests/gpu_profile.py) and adds the
summary to the report; `--sync-debug` counts the synchronising CUDA calls by thread and place.

`--also TAG:FLAGS` (repeatable) runs the clip again in this process after the first run, with the
engine already loaded (a compiled engine takes 10-12 s to load from a warm cache on the H200, the
better part of a 1080p step): FLAGS are this run's own `--raw`, `--yuv-frames`, `--round-trip`
and `--switch-interval S`; its output and report are OUTPUT and REPORT with `-TAG` before the
suffix. Not with `--profile` or `--sync-debug`, which watch the whole process.
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
    parser.add_argument("--also", action="append", default=[], metavar="TAG:FLAGS",
                        help="another run with the loaded engine (repeatable; see above)")  # fmt: skip
    return parser


def run_options() -> argparse.ArgumentParser:
    """The options an `--also` run may set for itself (the engine is the first run's)."""
    parser = argparse.ArgumentParser(prog="--also TAG:", add_help=False)
    parser.add_argument("--yuv-frames", action="store_true")
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--round-trip", action="store_true")
    parser.add_argument("--switch-interval", type=float, default=None)
    return parser


def runs(args: argparse.Namespace) -> list[tuple[str, Path, Path, argparse.Namespace]]:
    """(tag, output, report, options) of each run: the first, then each `--also` in order."""
    out = [("", args.output, args.report, args)]
    for also in args.also:
        tag, _, flags = also.partition(":")
        if not tag or "/" in tag:
            raise SystemExit(f"--also {also!r}: give TAG:FLAGS, e.g. raw:--raw")
        options = run_options().parse_args(flags.split())
        out.append((tag, args.output.with_name(f"{args.output.stem}-{tag}{args.output.suffix}"),
                    args.report.with_name(f"{args.report.stem}-{tag}{args.report.suffix}"), options))  # fmt: skip
    return out


@contextlib.contextmanager
def kept_loaded(make_runner, loads: list[float]):  # noqa: ANN001, ANN201
    """`make_runner`, whose runners are loaded once (the seconds each took go to `loads`) and
    shared by every job of this process that asks for the same size."""
    import time

    made: dict = {}

    def make(size):  # noqa: ANN001, ANN202
        if size not in made:
            runner = make_runner(size)
            started = time.perf_counter()
            runner.load()
            loads.append(time.perf_counter() - started)
            # each job's `with runner:` calls load and close: on this instance they now do nothing
            runner.load = runner.close = lambda: None
            made[size] = runner
        return made[size]

    try:
        yield make
    finally:
        for runner in made.values():
            type(runner).close(runner)


def main(argv: list[str] | None = None) -> int:
    args = command_line().parse_args(argv)
    plan = runs(args)
    if len(plan) > 1 and (args.profile or args.sync_debug):
        raise SystemExit("--also: not with --profile or --sync-debug (they watch the whole process)")
    for setting in args.inductor:  # e.g. cpp_wrapper=1: a C++ wrapper launches the kernels, not Python
        key, _, value = setting.partition("=")
        from torch._inductor import config

        config.__setattr__(key, type(getattr(config, key))(int(value) if value.isdigit() else value))
    from cartoonize.choose import EngineRequest, runner_for

    model = {"model": args.model} if args.model else {"style": "hayao"}
    request = EngineRequest(engine=args.engine, device=args.device, **model)
    make_runner = lambda size: runner_for(request, size)  # noqa: E731
    if args.compile_mode:
        from cartoonize.model import load_checkpoint
        from cartoonize.runners.compile import CompileRunner
        from cartoonize.styles import style_checkpoint

        checkpoint = load_checkpoint(args.model or style_checkpoint("hayao"))
        precision = "fp16" if args.device == "cuda" else "fp32"

        def make_runner(size: tuple[int, int]) -> CompileRunner:
            return CompileRunner(checkpoint, args.device, precision, size, mode=args.compile_mode)

    if len(plan) == 1:
        return run_one(args, args.output, args.report, args, make_runner)
    loads: list[float] = []
    with kept_loaded(make_runner, loads) as shared:
        for _tag, output, report, options in plan:
            run_one(args, output, report, options, shared, loads)
    return 0


def run_one(args: argparse.Namespace, output: Path, report_path: Path, options: argparse.Namespace,
            make_runner, loads: list[float] | None = None) -> int:  # noqa: ANN001 # fmt: skip
    """One `cartoonize video` run of the clip with this run's `options`; its report to `report_path`."""
    from cartoonize.pipelines.video import VideoJob, cartoonize_video
    from cartoonize.stages import StageOptions

    job = VideoJob(args.clip, output, batch=args.batch, overwrite=True, yuv_frames=options.yuv_frames,
                   keep_on_device=not options.round_trip, stages=StageOptions(raw=options.raw))  # fmt: skip
    if options.switch_interval is not None:
        job = replace(job, switch_interval=options.switch_interval or None)
    extra: dict = {}
    if loads is not None:  # the engine was loaded once for all runs: its time is the first's
        extra["shared_engine"] = True
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
    load_s = report.load_seconds
    if loads is not None:  # loaded before the job, once: the first run counts it, as a lone run would
        load_s = loads.pop() if loads else 0.0
    seconds = report.seconds - report.load_seconds + load_s
    result = {"frames": report.frames, "size": f"{report.width}x{report.height}", "seconds": round(seconds, 2),
              "fps": round(report.frames / seconds, 2) if seconds else 0.0, "load_s": round(load_s, 2),
              "fps_running": round(report.running_fps, 2), "engine_share": round(report.engine_share, 3), "engine": report.engine,
              "codec": report.video_codec, "colour": report.colour, "streams": report.streams,
              "frame_path": report.frame_path, "not_planes": report.not_planes, "stages": report.stages, "waits_s": report.waits,
              "engine_s": round(report.engine_seconds, 2), "switch_interval": job.switch_interval or sys.getswitchinterval(),
              "inductor": args.inductor, **extra}  # fmt: skip
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
