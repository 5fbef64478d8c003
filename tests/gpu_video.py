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
    args = parser.parse_args(argv)

    from cartoonize.choose import EngineRequest, runner_for
    from cartoonize.pipelines.video import VideoJob, cartoonize_video
    from cartoonize.stages import StageOptions

    request = EngineRequest(engine=args.engine, style="hayao", device="cuda")
    job = VideoJob(args.clip, args.output, overwrite=True, yuv_frames=args.yuv_frames,
                   stages=StageOptions(raw=args.raw))  # fmt: skip
    report = cartoonize_video(job, lambda size: runner_for(request, size))
    result = {"frames": report.frames, "size": f"{report.width}x{report.height}", "seconds": round(report.seconds, 2),
              "fps": round(report.fps, 2), "load_s": round(report.load_seconds, 2),
              "fps_running": round(report.running_fps, 2), "engine_share": round(report.engine_share, 3), "engine": report.engine,
              "codec": report.video_codec, "colour": report.colour, "streams": report.streams,
              "frame_path": report.frame_path, "stages": report.stages, "waits_s": report.waits}  # fmt: skip
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
