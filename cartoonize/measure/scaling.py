"""The scaling row of the benchmarks: one long generated clip cut into segments, on 1 and 2 (or
more) workers, as local processes and as Ray tasks on a local cluster, in one run. Each time
covers the whole job as a user waits for it: planning, starting the workers (each loads its
runner), the segments, and the join; a one-pass run in this process is the baseline.

Ray returns each segment's bytes to the driver (as on a cluster without a shared file system);
`driver_seconds` is the time the driver spent writing them and joining, so one can see whether
that becomes the bottleneck.
"""

from __future__ import annotations

import logging
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.choose import EngineRequest
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.video import VideoJob
from cartoonize.pipelines.workers import Executor, InProcess, LocalProcesses, RayTasks


def long_clip(path: Path, height: int, width: int, frames: int, rate: int = 24, gop: int = 24) -> Path:
    """A generated clip with moving content, a keyframe every `gop` frames, and a sine track."""
    import av

    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.gop_size = gop
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for i in range(frames):
            frame = np.stack([(xx * 2 + i * 5) % 256, (yy * 3 + i * 2) % 256, (xx + yy + i * 7) % 256], -1)
            frame[height // 3 : height // 2, (i * 3) % width :] = (240, 200, 40)  # a moving bar
            picture = av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        ctx = audio.codec_context
        size = ctx.frame_size or 1024
        t = np.arange(int(frames / rate * 48000)) / 48000
        wave = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
        for start in range(0, len(wave) - size + 1, size):
            chunk = av.AudioFrame.from_ndarray(wave[None, start : start + size], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 48000, start, Fraction(1, 48000)
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    return path


def _run(clip: Path, folder: Path, name: str, request: EngineRequest, executor: Executor,
         segments: int) -> dict[str, Any]:  # fmt: skip
    out = folder / f"{name}.mp4"
    job = VideoJob(clip, out, overwrite=True)
    split = SplitOptions(segments) if segments > 1 else SplitOptions()
    report = cartoonize_many([(clip, out)], job, request, executor, split)
    if report.of("failed"):
        raise RuntimeError(report.lines()[0])
    print(f"  measured {name}: {report.seconds:.2f} s", flush=True)
    return {
        "run": name, "executor": report.executor, "segments": segments, "frames": report.frames,
        "seconds": round(report.seconds, 2), "fps": round(report.fps, 3),
        "driver_seconds": round(report.driver_seconds, 3), "bytes_to_driver": report.bytes_to_driver,
    }  # fmt: skip


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        print("scaling: Ray is not installed (pip install 'cartoonize[ray]'); no Ray rows")
        return None
    return ray


def scaling(request: EngineRequest, shape: tuple[int, int], frames: int, workers: list[int],
            segments: int, kinds: tuple[str, ...] = ("one", "local", "ray")) -> list[dict[str, Any]]:  # fmt: skip
    """Rows: one pass here, then local processes and Ray for each worker count (each printed as it
    is measured)."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cartoonize-scaling-") as tmp:
        folder = Path(tmp)
        clip = long_clip(folder / "long.mp4", *shape, frames)
        if "one" in kinds:
            rows.append(_run(clip, folder, "one pass", request, InProcess(), 1))
        if "local" in kinds:
            for n in workers:
                rows.append(_run(clip, folder, f"local x{n}", request, LocalProcesses(n), segments))
        ray = _ray() if "ray" in kinds else None
        if ray is not None:
            ray.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)  # fmt: skip
            try:
                for n in workers:
                    rows.append(_run(clip, folder, f"ray x{n}", request, RayTasks(workers=n), segments))
            finally:
                ray.shutdown()
    base: dict[str, float] = {}
    for row in rows:
        kind = row["run"].split(" x")[0]
        base.setdefault(kind, row["seconds"])
        row["speedup_vs_1_worker"] = round(base[kind] / row["seconds"], 2) if row["seconds"] else None
        one = rows[0]["seconds"] if rows[0]["run"] == "one pass" else None
        row["speedup_vs_one_pass"] = round(one / row["seconds"], 2) if one and row["seconds"] else None
    for row in rows:
        row["cpus"] = os.cpu_count()
    return rows
