"""What web-ready output costs: `movflags=+faststart` rewrites an mp4 once when it closes, moving
the index (moov) ahead of the media. Measured two ways on real clips, each against a baseline in
the same run:

- muxing alone: the clip's packets copied into an mp4 without and with faststart (median of
  --repeats), the worst case, since nothing else is done;
- a `cartoonize video` job: the job's time beside the same job less the rewrite's extra time.

    python -m cartoonize.measure.faststart [CLIP ...] [--repeats 15] [--frames 48] [--json PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.measure import positive_int, run_module
from cartoonize.media.files import muxer_options
from cartoonize.pipelines.video import VideoJob, cartoonize_video

DEFAULT_CLIPS = [Path(__file__).resolve().parents[2].parent / "shared" / "media" / "sintel_5s.mp4"]


def remux_seconds(source: Path, target: Path, faststart: bool) -> tuple[float, float]:
    """Seconds to copy every audio and video packet of `source` into the mp4 `target`, and of
    those the seconds closing it took (where faststart's rewrite happens)."""
    import av

    started = time.perf_counter()
    with av.open(str(source)) as src:
        options = muxer_options("mp4") if faststart else {}
        out = av.open(str(target), "w", format="mp4", container_options=options)
        wanted = [s for s in src.streams if s.type in ("video", "audio")]
        streams = {s: out.add_stream_from_template(s) for s in wanted}
        for packet in src.demux(wanted):
            if packet.dts is not None:
                packet.stream = streams[packet.stream]
                out.mux(packet)
        closing = time.perf_counter()
        out.close()
        ended = time.perf_counter()
    return ended - started, ended - closing


def mp4_refuses(path: Path) -> str | None:
    """Why the audio and video packets of `path` cannot be copied into an mp4 as they are (a webm's
    VP8 and Vorbis), or None where they can."""
    import av

    with av.open(str(path)) as src, av.open(io.BytesIO(), "w", format="mp4") as out:
        for stream in src.streams:
            if stream.type in ("video", "audio"):
                try:
                    out.add_stream_from_template(stream)
                except ValueError as exc:
                    return str(exc)
    return None


def measure(clip: Path, repeats: int, frames: int | None, request: EngineRequest) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        job_out = Path(tmp) / "cartoon.mp4"
        job = VideoJob(clip, job_out, max_frames=frames, max_side=360)
        # first: a clip that cannot be read is the job's one line
        report = cartoonize_video(job, lambda size: runner_for(request, size))
        refused = mp4_refuses(clip)
        if refused is not None:  # the cartoon, an mp4 the job wrote, is still remuxed
            print(
                f"{clip.name}: its packets cannot go into an mp4 as they are ({refused}); only the cartoon is remuxed"
            )
        rows: dict[str, dict[str, float]] = {}
        for name, media in (("source", clip), ("cartoon", job_out)):
            if name == "source" and refused is not None:
                continue
            runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for _ in range(repeats):  # interleaved, so a busy moment hits both alike
                for fast in (False, True):
                    runs[fast].append(remux_seconds(media, Path(tmp) / f"{fast}.mp4", faststart=fast))
            row: dict[str, float] = {"bytes": media.stat().st_size}
            for fast, key in ((False, "plain"), (True, "faststart")):
                row[f"{key}_s"] = statistics.median(t for t, _ in runs[fast])
                row[f"{key}_close_s"] = statistics.median(c for _, c in runs[fast])
            row["mux_ratio"] = row["faststart_s"] / row["plain_s"]
            row["close_extra_s"] = row["faststart_close_s"] - row["plain_close_s"]
            rows[name] = row
        extra = max(0.0, rows["cartoon"]["close_extra_s"])
    return {
        "clip": clip.name, "frames": report.frames, "size": [report.height, report.width],
        "engine": report.engine, "job_s": round(report.seconds, 4), "rewrite_s": round(extra, 5),
        "job_ratio": round(report.seconds / (report.seconds - extra), 5),
        "remux": {k: {m: round(x, 5) if isinstance(x, float) else x for m, x in v.items()} for k, v in rows.items()},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("clips", nargs="*", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--repeats", type=positive_int, default=15)
    parser.add_argument("--frames", type=int, default=48, help="frames of each clip for the job (0: all)")
    parser.add_argument("--style", default="hayao")
    parser.add_argument("--model", type=Path, default=None, help="a checkpoint instead of --style")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    request = EngineRequest(engine=args.engine, style=None if args.model else args.style, model=args.model)
    results = [measure(clip, args.repeats, args.frames or None, request) for clip in args.clips]
    print(f"{'clip':<30} {'MB':>5} {'mux plain s':>11} {'faststart s':>11} {'ratio':>6} "
          f"{'close +ms':>9} {'job s':>8} {'job ratio':>9}")  # fmt: skip
    for r in results:
        for name, row in r["remux"].items():
            job = f"{r['job_s']:8.2f} {r['job_ratio']:9.5f}" if name == "cartoon" else ""
            print(f"{r['clip'] + ' (' + name + ')':<30} {row['bytes'] / 1e6:5.2f} {row['plain_s']:11.4f} "
                  f"{row['faststart_s']:11.4f} {row['mux_ratio']:6.3f} {row['close_extra_s'] * 1e3:9.2f} {job}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    run_module(main)
