"""`just quality`: every clip of a folder cartoonized as today (`--raw`), with the default frame
stages, and with the defaults less stabilization (`--no-stabilize`), all measured by
`cartoonize.measure.quality`, in one before/after table (and JSON).

    python -m cartoonize.measure.quality_clips FOLDER [--style hayao] [--max-side 320] [--frames 120]
        [--out DIR [--reuse]] [--json PATH] [--time-clip NAME[,NAME...]|all] [--time-rounds 2]
        [--time-frames 48]

Each clip goes through `cartoonize_video` three times, with the same engine: with every stage off,
with the defaults, and without stabilization. The network runs once per frame: the first pass
records its output and the others are served the recorded frames (the network is deterministic, so
this is the output another real run would give, at a third of the cost), so the outputs differ
only by the stages. The defaults are compared (PSNR on well-exposed frames) with both: against
`--raw`, what all the stages change; against `--no-stabilize`, what the temporal blend alone
changes, frame by frame, in a cartoon that already has the source's exposure; with --out the
recording is kept, and --reuse serves it again to a later run (after changing a stage). Speed is measured
apart, by real runs of both kinds alternated on the clips named by `--time-clip` (`all`: every
clip, a column of the table), reported as end-to-end fps and a ratio of times taken in the same
session, the only comparison that holds on a shared CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.errors import CartoonizeError
from cartoonize.measure import positive_int, run_module
from cartoonize.measure.quality import Quality, measure
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.runners.base import Runner
from cartoonize.stages import StageOptions

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


class _Recorded(Runner):
    """A real runner whose outputs are kept, then served again in the same order to a second pass
    over the same frames (checked: a different frame is an error, not a silent mismatch)."""

    def __init__(self, inner: Runner) -> None:
        self.inner = inner
        self.name, self.device, self.precision = inner.name, inner.device, inner.precision
        self.kept: list[tuple[int, np.ndarray]] = []  # (hash of the input, output)
        self.replaying, self.position = False, 0
        self.checked = True  # whether replayed inputs are compared with the recorded ones

    def load(self) -> None:
        if not self.replaying:
            self.inner.load()

    def infer(self, frames: np.ndarray) -> np.ndarray:
        key = zlib.crc32(frames.tobytes())  # stable across processes (unlike hash())
        if not self.replaying:
            out = self.inner.infer(frames)
            self.kept.append((key, out))
            return out
        kept_key, out = self.kept[self.position]
        if out.shape != frames.shape or (self.checked and kept_key != key):
            raise RuntimeError("the second pass saw different frames from the first")
        self.position += 1
        return out

    def close(self) -> None:
        if not self.replaying:
            self.inner.close()

    def replay(self) -> None:
        self.replaying, self.position = True, 0

    def save(self, path: Path) -> None:
        keys = np.array([k for k, _ in self.kept], np.int64)
        outputs = {f"arr_{i}": out for i, (_, out) in enumerate(self.kept)}
        np.savez(path, keys=keys, crc32=np.array(True), describe=np.array(self.inner.describe()), **outputs)  # type: ignore[arg-type]  # numpy types **kwds as its allow_pickle flag

    @classmethod
    def load_from(cls, path: Path) -> _Recorded:
        with np.load(path) as data:
            keys = data["keys"].tolist()
            outputs = [data[f"arr_{i}"] for i in range(len(keys))]
            described = str(data["describe"])
            checked = "crc32" in data.files  # earlier recordings kept no stable key: shapes only
        recorded = cls(_Described(described))
        recorded.checked = checked
        recorded.kept = list(zip(keys, outputs, strict=True))
        recorded.replay()
        return recorded


class _Described(Runner):
    """Stands for the runner whose outputs a recording holds; never asked to infer."""

    def __init__(self, described: str) -> None:
        self._described = described

    def describe(self) -> str:
        return self._described

    def load(self) -> None:
        raise RuntimeError("a recording replays; it does not load a model")

    def infer(self, frames: np.ndarray) -> np.ndarray:
        raise RuntimeError("a recording replays; it does not infer")


@dataclass
class ClipResult:
    clip: str
    raw: Quality
    staged: Quality  # with `against` = the raw output
    stages: str
    steadied: Quality | None = None  # the defaults with `against` = the --no-stabilize output


def measure_clip(clip: Path, out_dir: Path, request: EngineRequest, max_side: int, frames: int | None,
                 reuse: bool = False) -> ClipResult:  # fmt: skip
    raw_out, new_out = out_dir / f"{clip.stem}.raw.mp4", out_dir / f"{clip.stem}.mp4"
    unsteady_out = out_dir / f"{clip.stem}.no-stabilize.mp4"
    kept = out_dir / f"{clip.stem}.network-{request.style}-{max_side}-{frames}.npz"
    recorded: list[_Recorded] = [_Recorded.load_from(kept)] if reuse and kept.exists() else []

    def make_runner(size: tuple[int, int]) -> Runner:
        if not recorded:
            recorded.append(_Recorded(runner_for(request, size)))
        else:
            recorded[0].replay()
        return recorded[0]

    common: dict[str, Any] = {"max_side": max_side, "max_frames": frames, "overwrite": True}
    cartoonize_video(VideoJob(clip, raw_out, stages=StageOptions(raw=True), **common), make_runner)
    if not kept.exists():
        recorded[0].save(kept)
    report = cartoonize_video(VideoJob(clip, new_out, **common), make_runner)
    cartoonize_video(
        VideoJob(clip, unsteady_out, stages=StageOptions(stabilize=False), **common), make_runner
    )
    return ClipResult(
        clip.name, measure(clip, raw_out), measure(clip, new_out, raw_out), report.stages,
        measure(clip, new_out, unsteady_out),
    )  # fmt: skip


def time_clip(
    clip: Path, out_dir: Path, request: EngineRequest, max_side: int, frames: int, rounds: int
) -> dict:
    """End-to-end seconds of real runs, raw and default alternated `rounds` times: wall time, and
    the CPU time the process used (all threads), which a shared CPU disturbs much less."""
    times: dict[str, list[float]] = {"raw": [], "default": []}
    cpu: dict[str, list[float]] = {"raw": [], "default": []}
    done = 0  # frames per run: fewer than `frames` in a short clip
    for _ in range(rounds):
        for kind, stages in (("raw", StageOptions(raw=True)), ("default", StageOptions())):
            job = VideoJob(clip, out_dir / f"timing.{kind}.mp4", max_side=max_side, max_frames=frames,
                           overwrite=True, stages=stages)  # fmt: skip
            t0 = time.process_time()
            report = cartoonize_video(job, lambda size: runner_for(request, size))
            cpu[kind].append(time.process_time() - t0)
            times[kind].append(report.seconds)
            done = report.frames
    raw, default = sum(times["raw"]), sum(times["default"])
    return {
        "clip": clip.name, "frames": done, "rounds": rounds, "seconds": times, "cpu_seconds": cpu,
        "fps_raw": rounds * done / raw, "fps_default": rounds * done / default, "time_ratio": default / raw,
        "cpu_ratio": sum(cpu["default"]) / sum(cpu["raw"]),
    }  # fmt: skip


def _f(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def table(results: list[ClipResult], timings: dict[str, dict] | None = None) -> list[str]:
    """The before/after table; with `timings` (time_clip's results by clip name), a last column of
    end-to-end fps, raw → default, for the clips that were timed."""
    head = (
        "| clip | frames | dark frames | dark lift mean / worst (raw → new) | luma corr (raw → new) | "
        "luma std src / raw / new | warp ratio (raw → new) | PSNR new vs raw, well-exposed | "
        "PSNR new vs --no-stabilize, well-exposed |"
    )
    columns = 9
    if timings:
        head += " end-to-end fps raw → new (time ratio) |"
        columns += 1
    rows = [head, "|" + " --- |" * columns]
    for r in results:
        a, b = r.raw, r.staged
        rows.append(
            f"| {r.clip} | {a.frames} | {a.dark_frames} | "
            f"{_f(a.dark_lift_mean, '+.1f')} / {_f(a.dark_lift_worst, '+.1f')} → "
            f"{_f(b.dark_lift_mean, '+.1f')} / {_f(b.dark_lift_worst, '+.1f')} | "
            f"{_f(a.luma_correlation, '.3f')} → {_f(b.luma_correlation, '.3f')} | "
            f"{a.source_luma_std:.1f} / {a.output_luma_std:.1f} / {b.output_luma_std:.1f} | "
            f"{_f(a.warp_error_ratio, '.2f')} → {_f(b.warp_error_ratio, '.2f')} | "
            f"{_f(b.psnr_well_exposed, '.1f')} dB ({b.well_exposed_frames} fr) | "
            f"{_f(r.steadied.psnr_well_exposed if r.steadied else None, '.1f')} dB |"
        )
        if timings:
            t = timings.get(r.clip)
            rows[-1] += (
                f" {t['fps_raw']:.2f} → {t['fps_default']:.2f} ({t['time_ratio']:.2f}) |"
                if t
                else " not timed |"
            )
    return rows


def main(argv: list[str] | None = None, say: Callable[[str], None] = print) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="clips to cartoonize (e.g. ../shared/media)")
    parser.add_argument("--style", default="hayao")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--max-side", type=positive_int, default=320)
    parser.add_argument("--frames", type=int, default=120, help="frames per clip (0: all)")
    parser.add_argument("--only", help="comma-separated clip names (stems) to measure")
    parser.add_argument("--out", type=Path, help="keep the cartoons here [default: a temporary folder]")
    parser.add_argument("--json", type=Path, dest="json_path")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="serve the network outputs an earlier run kept in --out (same style, size, frames)",
    )
    parser.add_argument(
        "--time-clip",
        default=None,
        help="clip stems (comma-separated) for the speed ratio, 'all' for every clip ('' skips)"
        " [default: sintel_5s where the folder has it]",
    )
    parser.add_argument("--time-rounds", type=positive_int, default=2)
    parser.add_argument("--time-frames", type=positive_int, default=48)
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        raise CartoonizeError(f"{args.folder} is not a folder of clips")
    if args.frames < 0:
        parser.error(f"argument --frames: {args.frames}: 0 (all) or more")
    everything = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    stems = {c.stem for c in everything}
    if args.time_clip is None:
        args.time_clip = "sintel_5s" if "sintel_5s" in stems else ""
    for option, names in (("--only", args.only), ("--time-clip", args.time_clip)):
        unknown = sorted(set(names.split(",")) - stems - {"all"}) if names else []
        if unknown:
            raise CartoonizeError(
                f"{option}: no clip {', '.join(unknown)} in {args.folder} (there: {', '.join(sorted(stems))})"
            )
    clips = everything
    if args.only:
        wanted = set(args.only.split(","))
        clips = [c for c in clips if c.stem in wanted]
    request = EngineRequest(args.engine, args.style)
    frames = args.frames or None
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        results = []
        for clip in clips:
            results.append(measure_clip(clip, out_dir, request, args.max_side, frames, args.reuse))
            say(f"{clip.name}: raw {'; '.join(results[-1].raw.lines()[1:])}")
            say(f"{clip.name}: {results[-1].stages} {'; '.join(results[-1].staged.lines()[1:])}")
        stems = set(args.time_clip.split(",")) if args.time_clip else set()
        timed = [c for c in everything if "all" in stems or c.stem in stems]
        timings = {
            c.name: time_clip(c, out_dir, request, args.max_side, args.time_frames, args.time_rounds)
            for c in timed
        }
    say("\n".join(table(results, timings)))
    for timing in timings.values():
        say(f"end to end on {timing['clip']} ({timing['frames']} frames, {timing['rounds']} rounds alternated): "
            f"raw {timing['fps_raw']:.2f} fps, default {timing['fps_default']:.2f} fps, "
            f"time ratio {timing['time_ratio']:.3f}, CPU time ratio {timing['cpu_ratio']:.3f}")  # fmt: skip
    data = {"clips": [asdict(r) for r in results], "timing": list(timings.values())}
    if args.json_path:
        args.json_path.write_text(json.dumps(data, indent=1) + "\n")
    return data


if __name__ == "__main__":
    run_module(main)
