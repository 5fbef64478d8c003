"""How close low-resolution inference, brought back to full size, comes to full-resolution inference.

For one frame of each clip (at `--output-side`, the output size): the network at that size (the
reference), then at `--infer-side`, upscaled two ways: plain bicubic, and the guided upsampling
stage (`cartoonize.stages.upsample`, guided by the full-resolution source). PSNR and SSIM of each
against the reference, a sweep of the stage's radius and ε, and the speed at the output size
(inference at full size vs inference small + upsampling), all in one run. Prints a table, writes
JSON and a contact sheet (source | full-resolution inference | bicubic | guided, and 2× crops).

    python -m cartoonize.measure.upsampling [--media ../shared/media] [--clips a.mp4,b.mp4]
        [--infer-side 320] [--output-side 854] [--json PATH] [--sheet PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.errors import CartoonizeError
from cartoonize.measure import positive_int, run_module
from cartoonize.media.files import fit_within, source_colour, to_rgb
from cartoonize.stages.upsample import (
    DEFAULT_EPS,
    DEFAULT_RADIUS,
    bicubic_upsample,
    guided_upsample,
    network_frame,
)

DEFAULT_MEDIA = Path(__file__).resolve().parents[2].parent / "shared" / "media"
DEFAULT_CLIPS = "sintel_5s.mp4,street_portrait.mp4,chaplin.mp4,big_buck_bunny_0_30.webm"
SWEEP = [(r, eps) for r in (1, 2, 4, 8) for eps in (1e-4, 1e-3, 1e-2)]


def frame_of(clip: Path, seconds: float, side: int) -> np.ndarray:
    """The first frame at or after `seconds`, scaled so its longer side is at most `side`."""
    import av

    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is None or frame.time >= seconds:
                w, h = fit_within(frame.width, frame.height, side)
                return to_rgb(frame, source_colour(frame), w, h)  # as the pipeline reads it
    raise CartoonizeError(f"{clip} has no frame at {seconds} s")


def scores(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    return {
        "psnr_db": round(float(peak_signal_noise_ratio(reference, candidate, data_range=255)), 2),
        "ssim": round(float(structural_similarity(reference, candidate, channel_axis=2, data_range=255)), 4),
    }


def _timed(fn, *args, calls: int = 2) -> float:  # noqa: ANN001
    fn(*args)
    started = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    return (time.perf_counter() - started) / calls


def measure(clips: list[Path], infer_side: int, output_side: int, request: EngineRequest,
            seconds: float) -> tuple[dict[str, Any], list[list[np.ndarray]]]:  # fmt: skip
    rows: list[dict[str, Any]] = []
    sheet_rows: list[list[np.ndarray]] = []
    sources = [frame_of(clip, seconds, output_side) for clip in clips]
    sizes = sorted({s.shape[:2] for s in sources} | {network_frame(s, infer_side).shape[:2] for s in sources})
    runners = {size: runner_for(request, size) for size in sizes}
    for runner in runners.values():
        runner.__enter__()
    try:
        speed: dict[str, Any] = {}
        for clip, source in zip(clips, sources, strict=True):
            small = network_frame(source, infer_side)
            full = runners[source.shape[:2]](source[None])[0]
            low = runners[small.shape[:2]](small[None])[0]
            bicubic = bicubic_upsample(source, low)
            guided = guided_upsample(source, low)
            sweep = {
                f"r={r} eps={eps:g}": scores(full, guided_upsample(source, low, r, eps)) for r, eps in SWEEP
            }
            rows.append({
                "clip": clip.name, "output": list(source.shape[:2]), "inference": list(small.shape[:2]),
                "bicubic": scores(full, bicubic), "guided": scores(full, guided), "sweep": sweep,
            })  # fmt: skip
            sheet_rows.append([source, full, bicubic, guided])
            if not speed:  # the first frame's size: inference at full size vs small + upsampling
                full_s = _timed(runners[source.shape[:2]], source[None], calls=1)
                small_s = _timed(runners[small.shape[:2]], small[None])
                up_s = _timed(guided_upsample, source, low)
                shrink_s = _timed(network_frame, source, infer_side)
                speed = {"output": list(source.shape[:2]), "inference_small": list(small.shape[:2]),
                         "full_inference_fps": round(1 / full_s, 3),
                         "small_inference_plus_upsampling_fps": round(1 / (small_s + up_s + shrink_s), 3),
                         "upsampling_ms": round(1000 * up_s, 1), "shrink_ms": round(1000 * shrink_s, 1)}  # fmt: skip
    finally:
        for runner in runners.values():
            runner.__exit__(None, None, None)
    engine = next(iter(runners.values())).describe()
    means = {
        method: {
            key: round(float(np.mean([row[method][key] for row in rows])), 4) for key in ("psnr_db", "ssim")
        }
        for method in ("bicubic", "guided")
    }
    sweep_means = {
        name: round(float(np.mean([row["sweep"][name]["psnr_db"] for row in rows])), 2)
        for name in rows[0]["sweep"]
    }
    result = {"engine": engine, "infer_side": infer_side, "output_side": output_side,
              "defaults": {"radius": DEFAULT_RADIUS, "eps": DEFAULT_EPS}, "frames": rows, "mean": means,
              "sweep_mean_psnr_db": sweep_means, "speed": speed}  # fmt: skip
    return result, sheet_rows


def format_table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"infer side {result['infer_side']} -> output side {result['output_side']}; reference: full-resolution "
        f"inference ({result['engine']}); guided r={result['defaults']['radius']} eps={result['defaults']['eps']:g}",
        "| frame | output | inference | bicubic PSNR | guided PSNR | bicubic SSIM | guided SSIM |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in [*result["frames"], {"clip": "mean", "output": "", "inference": "", **result["mean"]}]:
        size = lambda hw: f"{hw[1]}×{hw[0]}" if hw else ""  # noqa: E731
        lines.append(
            f"| {row['clip']} | {size(row['output'])} | {size(row['inference'])} | "
            f"{row['bicubic']['psnr_db']:.2f} dB | {row['guided']['psnr_db']:.2f} dB | "
            f"{row['bicubic']['ssim']:.4f} | {row['guided']['ssim']:.4f} |"
        )
    lines.append(
        "sweep (mean PSNR): " + ", ".join(f"{k} {v}" for k, v in result["sweep_mean_psnr_db"].items())
    )
    s = result["speed"]
    lines.append(
        f"speed at {s['output'][1]}×{s['output'][0]}: full-resolution inference {s['full_inference_fps']} fps; "
        f"{s['inference_small'][1]}×{s['inference_small'][0]} inference + guided upsampling "
        f"{s['small_inference_plus_upsampling_fps']} fps (upsampling {s['upsampling_ms']} ms, shrink {s['shrink_ms']} ms)"
    )
    return lines


def contact_sheet(rows: list[list[np.ndarray]], crop: int = 160) -> np.ndarray:
    """Per frame: source | full | bicubic | guided, then the same four as 2× crops of the centre."""
    height = max(r[0].shape[0] for r in rows)
    out = []
    for images in rows:
        h, w = images[0].shape[:2]
        pad = lambda im: np.pad(im, ((0, height - im.shape[0]), (0, 4), (0, 0)))  # noqa: E731
        out.append(np.concatenate([pad(im) for im in images], axis=1))
        y, x = (h - crop) // 2, (w - crop) // 2
        crops = [im[y : y + crop, x : x + crop].repeat(2, 0).repeat(2, 1) for im in images]
        strip = np.concatenate([np.pad(c, ((0, 4), (0, 4), (0, 0))) for c in crops], axis=1)
        out.append(strip)
    width = max(strip.shape[1] for strip in out)
    out = [np.pad(strip, ((0, 4), (0, width - strip.shape[1]), (0, 0))) for strip in out]
    return np.ascontiguousarray(np.concatenate(out, axis=0))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA)
    parser.add_argument("--clips", default=DEFAULT_CLIPS, help="comma-separated file names in --media")
    parser.add_argument("--infer-side", type=positive_int, default=320)
    parser.add_argument("--output-side", type=positive_int, default=854)
    parser.add_argument("--seconds", type=float, default=2.0, help="where in each clip the frame is taken")
    parser.add_argument("--style", default="hayao")
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--sheet", type=Path, help="write the contact sheet PNG here")
    args = parser.parse_args(argv)
    clips = [args.media / name for name in args.clips.split(",")]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        raise SystemExit(f"missing clips: {', '.join(missing)}")
    request = EngineRequest(engine=args.engine, style=args.style, device="cpu", precision="fp32")
    result, sheet_rows = measure(clips, args.infer_side, args.output_side, request, args.seconds)
    print("\n".join(format_table(result)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.sheet:
        from cartoonize.pipelines.image import write_image

        write_image(args.sheet, contact_sheet(sheet_rows))
    return result


if __name__ == "__main__":
    run_module(main)
