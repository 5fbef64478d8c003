"""The webcam on this machine: frames shown per second, frames dropped, capture-to-display latency,
for several inference sizes and runners against the same source, in one run (the first
configuration is the baseline the others are compared with). A file or lavfi source is paced at
its own rate, as a camera would be. Prints a table and writes JSON.

    python -m cartoonize.measure.webcam [--input ../shared/media/chaplin.mp4] [--frames 60]
        [--configs "max160,192,256,torch-bf16@192"] [--json PATH]

A configuration is `max<N>` (today's advice: the whole picture scaled to N, no upsampling),
`<N>` (640x360 shown, the network at longer side N, guided upsampling), or `<engine>[-<precision>]@<N>`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.media.capture import CaptureSpec
from cartoonize.pipelines.webcam import WebcamJob, run_webcam
from cartoonize.stages import StageOptions

DEFAULT_INPUT = Path(__file__).resolve().parents[2].parent / "shared" / "media" / "chaplin.mp4"  # 640×360


def parse_config(text: str) -> dict[str, Any]:
    engine, precision, side = "auto", "auto", text
    if "@" in text:
        runtime, side = text.split("@", 1)
        engine, _, precision = runtime.partition("-")
        precision = precision or "auto"
    if side.startswith("max"):
        return {
            "name": text,
            "engine": engine,
            "precision": precision,
            "max_side": int(side[3:]),
            "infer_side": None,
        }
    return {"name": text, "engine": engine, "precision": precision, "max_side": None, "infer_side": int(side)}


def measure(
    config: dict[str, Any], source: str, input_format: str | None, frames: int, style: str
) -> dict[str, Any]:
    request = EngineRequest(engine=config["engine"], style=style, device="cpu", precision=config["precision"])
    spec = CaptureSpec(source, input_format, max_side=config["max_side"])
    job = WebcamJob(spec, preview=False, frames=frames, stages=StageOptions(infer_side=config["infer_side"]))
    report = run_webcam(job, lambda size: runner_for(request, size))
    total = report.shown + report.dropped
    return {
        **config, "size": [report.width, report.height], "engine_described": report.engine, "shown": report.shown,
        "dropped": report.dropped, "dropped_share": round(report.dropped / total, 3) if total else 0.0,
        "fps": round(report.fps, 2), "latency_median_ms": round(report.latency_ms(50), 1),
        "latency_p95_ms": round(report.latency_ms(95), 1), "stopped": report.stopped,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", default=str(DEFAULT_INPUT), help="a video file or a lavfi graph")
    parser.add_argument("--input-format", default=None, help="lavfi for a graph")
    parser.add_argument("--frames", type=int, default=60, help="frames shown per configuration")
    parser.add_argument("--configs", default="max160,160,192,256")
    parser.add_argument("--style", default="hayao")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = []
    for text in args.configs.split(","):
        results.append(measure(parse_config(text), args.input, args.input_format, args.frames, args.style))
        r = results[-1]
        print(f"{r['name']:>16}: {r['size'][0]}x{r['size'][1]} {r['fps']:5.2f} fps ({r['fps'] / max(results[0]['fps'], 1e-9):.2f}x "
              f"baseline), dropped {r['dropped']} of {r['shown'] + r['dropped']} ({100 * r['dropped_share']:.0f} %), "
              f"latency median {r['latency_median_ms']:.0f} ms, p95 {r['latency_p95_ms']:.0f} ms; {r['engine_described']}",
              flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
