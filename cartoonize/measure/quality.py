"""How a cartoon video looks next to its source: exposure, flicker, and closeness to another cartoon.

    python -m cartoonize.measure.quality SOURCE OUTPUT [--against OTHER] [--json PATH]

SOURCE is decoded at OUTPUT's size (upright, as `cartoonize video` sees it) and paired with OUTPUT
frame by frame; a source longer than the output (a `--frames` preview) is cut to its length.

- Exposure over time: each frame's mean luma (BT.601, 0-255) for source and output; the Pearson
  correlation of the two curves and each curve's standard deviation.
- Dark frames (source mean luma < 40): the output's lift over the source, mean and worst.
- Flicker: the warping error of Lai et al. (ECCV 2018). Optical flow (DIS) on the source frames
  brings frame t-1 onto frame t; the error is the mean squared RGB difference over the pixels the
  flow sees in both (forward-backward consistent, inside the frame). The same flows and masks give
  the source's own error; the ratio output / source is about 1 for a cartoon as steady as its
  source. Frame pairs across a scene cut are left out (both errors would be meaningless there),
  by the stabilize stage's rule: unrelated pictures, or a jump between two flat frames.
- With --against OTHER: PSNR of OUTPUT against OTHER (another cartoon of the same source, e.g.
  `--raw`) over all frames and over the well-exposed ones (source mean luma >= 60).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.measure import run_module
from cartoonize.media.files import converter, source_colour, to_rgb
from cartoonize.stages.flow import FlowEstimator, gray, warp
from cartoonize.stages.stabilize import CUT_RESIDUAL, flat_residual, flat_statistics, is_scene_cut

DARK_LUMA = 40.0  # a frame whose source mean luma is below this is a dark frame
WELL_EXPOSED_LUMA = 60.0


def read_frames(
    path: Path, size: tuple[int, int] | None = None, limit: int | None = None
) -> Iterator[np.ndarray]:
    """Upright uint8 RGB frames of `path` (turned by the display matrix as `cartoonize video`
    turns them), scaled to `size` (upright width, height) when given."""
    import av

    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise CartoonizeError(f"{path} is not a readable video ({exc})") from None
    with container:
        if not container.streams.video:
            raise CartoonizeError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count, reader = 0, converter()
        try:
            for frame in container.decode(stream):
                if limit is not None and count >= limit:
                    return
                k = int(round(frame.rotation / 90.0)) % 4
                w, h = (None, None) if size is None else (size[1], size[0]) if k % 2 else size
                rgb = to_rgb(frame, source_colour(frame), w, h, using=reader)  # as the pipeline reads it
                yield np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb
                count += 1
        except av.FFmpegError as exc:
            raise CartoonizeError(f"{path} is corrupt or truncated ({exc})") from None


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma, float32, 0-255."""
    return rgb[..., 0] * np.float32(0.299) + rgb[..., 1] * np.float32(0.587) + rgb[..., 2] * np.float32(0.114)


@dataclass
class Quality:
    frames: int
    width: int
    height: int
    source_luma_std: float
    output_luma_std: float
    luma_correlation: float | None  # None where either curve is constant
    dark_frames: int
    dark_lift_mean: float | None  # output minus source mean luma on dark frames
    dark_lift_worst: float | None
    warp_error_source: float  # mean squared RGB difference (0-1 scale) after warping, per frame pair
    warp_error_output: float
    warp_error_ratio: float | None
    pairs: int  # frame pairs in the warping error
    cuts: int  # frame pairs left out as scene cuts
    against: str | None = None
    psnr_all: float | None = None  # dB, from the mean squared error over the frames
    psnr_well_exposed: float | None = None
    well_exposed_frames: int = 0
    source_luma: list[float] = field(default_factory=list, repr=False)
    output_luma: list[float] = field(default_factory=list, repr=False)

    def lines(self) -> list[str]:
        def f(v: float | None, fmt: str = ".2f") -> str:
            return "n/a" if v is None else format(v, fmt)

        out = [
            f"{self.frames} frames {self.width}x{self.height}",
            f"mean luma: correlation {f(self.luma_correlation, '.3f')}, std source {self.source_luma_std:.2f}"
            f" output {self.output_luma_std:.2f}",
            f"dark frames (source < {DARK_LUMA:g}): {self.dark_frames}, lift mean {f(self.dark_lift_mean, '+.1f')}"
            f" worst {f(self.dark_lift_worst, '+.1f')}",
            f"warping error: output {self.warp_error_output:.2e} / source {self.warp_error_source:.2e} = "
            f"{f(self.warp_error_ratio)} ({self.pairs} frame pairs, {self.cuts} cuts left out)",
        ]
        if self.against is not None:
            out.append(
                f"PSNR against {self.against}: all {f(self.psnr_all, '.2f')} dB, well-exposed (source >= "
                f"{WELL_EXPOSED_LUMA:g}, {self.well_exposed_frames} frames) {f(self.psnr_well_exposed, '.2f')} dB"
            )
        return out


def _psnr(mse_sum: float, n: int) -> float | None:
    if n == 0:
        return None
    mse = mse_sum / n
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def measure(source: Path, output: Path, against: Path | None = None) -> Quality:
    """The figures above for OUTPUT (a cartoon of SOURCE), optionally against OTHER."""
    outputs = read_frames(output)
    first = next(outputs, None)
    if first is None:
        raise CartoonizeError(f"{output} has no video frame")
    h, w = first.shape[:2]
    others = read_frames(against, (w, h)) if against is not None else None
    q = measure_frames(read_frames(source, (w, h)), _chain_first(first, outputs), others)
    q.against = str(against) if against is not None else None
    return q


def measure_frames(
    sources: Iterable[np.ndarray], outputs: Iterable[np.ndarray], others: Iterable[np.ndarray] | None = None
) -> Quality:
    """The figures for frames in memory: uint8 (H, W, 3) RGB, paired in order (the shorter of
    `sources` and `outputs` sets the length; `others` must be as long as `outputs`)."""
    flows = FlowEstimator("medium")
    src_l, out_l = [], []
    warp_src, warp_out, pairs, cuts = 0.0, 0.0, 0, 0
    mse_all, mse_lit, n_all, n_lit = 0.0, 0.0, 0, 0
    prev: tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, float]] | None = None
    other_frames = iter(others) if others is not None else None
    h = w = 0
    for src, out in zip(sources, outputs, strict=False):
        h, w = out.shape[:2]
        if src.shape != out.shape:
            raise CartoonizeError(f"source frames are {src.shape[1]}x{src.shape[0]}, output frames {w}x{h}")
        s_l = float(luma(src).mean())
        src_l.append(s_l)
        out_l.append(float(luma(out).mean()))
        g = gray(src)
        stats = flat_statistics(src, g)
        if prev is not None:
            p_src, p_out, p_g, p_stats = prev
            pair = flows.pair(p_g, g)
            cut = flat_residual(p_stats, stats) > CUT_RESIDUAL or is_scene_cut(
                p_g, g, pair
            )  # the stage's rule
            if cut:
                cuts += 1
            elif pair.trusted.any():
                m = pair.trusted
                warp_src += _masked_mse(src, warp(p_src, pair.backward), m)
                warp_out += _masked_mse(out, warp(p_out, pair.backward), m)
                pairs += 1
        prev = (src, out, g, stats)
        if other_frames is not None:
            other = next(other_frames, None)
            if other is None:
                raise CartoonizeError("the other cartoon has fewer frames than the output")
            mse = float(((out.astype(np.float32) - other.astype(np.float32)) ** 2).mean())
            mse_all, n_all = mse_all + mse, n_all + 1
            if s_l >= WELL_EXPOSED_LUMA:
                mse_lit, n_lit = mse_lit + mse, n_lit + 1
    if not src_l:
        raise CartoonizeError("no frames to measure")
    src_c, out_c = np.array(src_l), np.array(out_l)
    dark = src_c < DARK_LUMA
    lift = out_c[dark] - src_c[dark]
    corr = None
    if len(src_c) > 1 and src_c.std() > 1e-6 and out_c.std() > 1e-6:
        corr = float(np.corrcoef(src_c, out_c)[0, 1])
    ws, wo = (warp_src / pairs, warp_out / pairs) if pairs else (0.0, 0.0)
    return Quality(
        frames=len(src_c), width=w, height=h,
        source_luma_std=float(src_c.std()), output_luma_std=float(out_c.std()), luma_correlation=corr,
        dark_frames=int(dark.sum()),
        dark_lift_mean=float(lift.mean()) if lift.size else None,
        dark_lift_worst=float(lift.max()) if lift.size else None,
        warp_error_source=ws, warp_error_output=wo, warp_error_ratio=wo / ws if ws > 0 else None,
        pairs=pairs, cuts=cuts, against="other" if other_frames is not None else None,
        psnr_all=_psnr(mse_all, n_all), psnr_well_exposed=_psnr(mse_lit, n_lit), well_exposed_frames=n_lit,
        source_luma=[round(v, 2) for v in src_l], output_luma=[round(v, 2) for v in out_l],
    )  # fmt: skip


def _chain_first(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _masked_mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    d = (a.astype(np.float32) - b.astype(np.float32)) / 255.0
    return float((d[mask] ** 2).sum(-1).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cartoonize.measure.quality", description=__doc__.split("\n")[0]
    )
    parser.add_argument("source", type=Path)
    parser.add_argument("output", type=Path, help="a cartoon of SOURCE")
    parser.add_argument("--against", type=Path, help="another cartoon of SOURCE to compute PSNR against")
    parser.add_argument("--json", type=Path, dest="json_path", help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        for path in (args.source, args.output, args.against):
            if path is not None and not path.is_file():
                raise CartoonizeError(f"{path} does not exist")
        q = measure(args.source, args.output, args.against)
    except CartoonizeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.output} (cartoon of {args.source})")
    print("\n".join(f"  {line}" for line in q.lines()))
    if args.json_path is not None:
        args.json_path.write_text(json.dumps(asdict(q), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_module(main)
