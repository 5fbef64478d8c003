"""What the GIL's switch interval does to `cartoonize video` (pipelines.handoffs), measured on this
machine with the interpreter's own interval (5 ms) as the baseline in the same run.

The engine that shows it is one whose host side runs Python while its device works on its own,
as a compiled engine on a GPU does (Inductor's Python wrapper launches each kernel): `LaunchBound`
spends `--host-ms` in Python on each batch and returns at once; its cartoons are ready
`--device-ms` a frame later, waited for without the GIL, as a CUDA event is. It returns its input,
so what is measured is the pipeline around it: decode, colour conversion, encode, and how long
their threads wait for the GIL. `--engine` adds a real engine (auto, onnxruntime, torch, compile)
with a style, on the same clip.

    python -m cartoonize.measure.handoffs [CLIP] [--frames 120] [--host-ms 10] [--device-ms 11]
        [--engine auto --style hayao|--model CKPT --max-side 320] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.measure import positive_int, run_module
from cartoonize.measure.bench import time_host_path
from cartoonize.media.files import EncoderSettings
from cartoonize.pipelines.handoffs import SWITCH_INTERVAL_S
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.runners.base import Runner
from cartoonize.stages import StageOptions

DEFAULT_CLIP = Path(__file__).resolve().parents[2].parent / "shared" / "media" / "big_buck_bunny_0_30.webm"
INTERVALS: tuple[float | None, ...] = (None, SWITCH_INTERVAL_S)  # None: the interpreter's own, the baseline


def _python_for(seconds: float) -> None:
    """Hold the GIL for `seconds`, running Python as a kernel-launching wrapper does."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class LaunchBound(Runner):
    """An engine with `host_ms` of Python a batch and `device_ms` of asynchronous work a frame,
    one batch after the other on its 'device'; its cartoons are its frames."""

    name = "launch-bound"

    def __init__(self, host_ms: float, device_ms: float) -> None:
        self.host_s, self.device_s = host_ms / 1000, device_ms / 1000
        self.busy_until = 0.0

    def load(self) -> None:
        self.busy_until = 0.0

    def infer(self, frames: np.ndarray) -> np.ndarray:
        return self.start(frames)()

    def start(self, frames: np.ndarray) -> Callable[[], np.ndarray]:
        _python_for(self.host_s)
        self.busy_until = max(time.perf_counter(), self.busy_until) + self.device_s * len(frames)
        ready, out = self.busy_until, frames.copy()

        def result() -> np.ndarray:
            time.sleep(max(0.0, ready - time.perf_counter()))  # as a CUDA event's wait: no GIL
            return out

        return result

    def describe(self) -> str:
        return f"launch-bound engine ({self.host_s * 1000:g} ms Python a batch, {self.device_s * 1000:g} ms a frame)"


def alone_fps(runner: Runner, size: tuple[int, int], frames: int) -> float:
    """Frames a second of the engine by itself, one batch in flight as the pipeline keeps it
    (`bench.time_host_path`, the path `cartoonize video` takes)."""
    with runner:
        times = time_host_path(runner, np.zeros((1, *size, 3), np.uint8), frames, warmup=1)
    return len(times) / sum(times)


def measure(clip: Path, make_runner: Callable[[tuple[int, int]], Runner], frames: int, label: str,
            max_side: int | None = None, preset: str = "veryfast") -> list[dict[str, Any]]:  # fmt: skip
    """One `cartoonize video` run of `frames` frames (no frame stages) per switch interval."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cartoonize-handoffs-") as tmp:
        for interval in INTERVALS:
            job = VideoJob(clip, Path(tmp) / "out.mp4", overwrite=True, max_frames=frames, max_side=max_side,
                           stages=StageOptions(raw=True), encoder=EncoderSettings(preset=preset),
                           switch_interval=interval)  # fmt: skip
            report = cartoonize_video(job, make_runner)
            rows.append({
                "engine": label, "clip": clip.name, "size": f"{report.width}x{report.height}", "frames": report.frames,
                "switch_interval_ms": round((interval or sys.getswitchinterval()) * 1000, 3),
                "baseline": interval is None, "fps": round(report.running_fps, 2),
                "engine_share": round(report.engine_share, 3), "waits_s": report.waits,
            })  # fmt: skip
    base = rows[0]["fps"]
    for row in rows:
        row["vs_baseline"] = round(row["fps"] / base, 3) if base else None
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| engine | clip | size | GIL switch interval | fps (engine loaded) | vs 5 ms | engine alone | waits (s) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        waits = ", ".join(f"{k} {v:.2f}" for k, v in r["waits_s"].items())
        alone = f"{r['alone_fps']:.1f} fps" if r.get("alone_fps") else "–"
        lines.append(f"| {r['engine']} | {r['clip']} | {r['size']} | {r['switch_interval_ms']:g} ms"
                     f"{' (baseline)' if r['baseline'] else ''} | {r['fps']:.1f} | {r['vs_baseline']:.2f}× | {alone} | {waits} |")  # fmt: skip
    return "\n".join(lines)


def command_line() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("clip", type=Path, nargs="?", default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=positive_int, default=120, help="frames a run (default 120)")
    parser.add_argument("--host-ms", type=float, default=10.0, help="the emulated engine's Python a batch")
    parser.add_argument("--device-ms", type=float, default=11.0, help="its asynchronous work a frame")
    parser.add_argument(
        "--preset", default="ultrafast", help="x264 preset (ultrafast: the encoder keeps up here)"
    )
    parser.add_argument(
        "--engine", default=None, help="also a real engine: auto, onnxruntime, torch, compile"
    )
    parser.add_argument("--style", default="hayao", help="the real engine's style")
    parser.add_argument("--model", type=Path, default=None, help="a checkpoint instead of the style")
    parser.add_argument(
        "--max-side", type=int, default=None, help="the real engine's frames at most this side"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = command_line().parse_args(argv)
    if not args.clip.exists():
        print(f"error: {args.clip} does not exist", file=sys.stderr)
        return 2

    emulated = lambda _size: LaunchBound(args.host_ms, args.device_ms)  # noqa: E731
    rows = measure(args.clip, emulated, args.frames, "launch-bound (emulated)", preset=args.preset)
    from cartoonize.pipelines.video import probe

    info = probe(args.clip, None)
    rows[0]["alone_fps"] = round(alone_fps(emulated(None), (info.height, info.width), 40), 2)
    if args.engine:
        from cartoonize.choose import EngineRequest, runner_for

        model = {"model": args.model} if args.model else {"style": args.style}
        request = EngineRequest(engine=args.engine, **model)
        real = measure(args.clip, lambda size: runner_for(request, size), args.frames, args.engine,
                       max_side=args.max_side, preset=args.preset)  # fmt: skip
        rows += real
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    run_module(main)
