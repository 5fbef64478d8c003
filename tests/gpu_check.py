"""The GPU check: one prepared run on a borrowed GPU machine (H100/H200) that runs the `gpu` tests
and the benchmarks, writes everything under OUT and prints a short table last.

    python -m tests.gpu_check --out DIR [--budget SECONDS] [--data .gpu]

`--data` holds what ../shared would give (a GPU machine has no ../shared): `hayao.pt` (the Hayao
checkpoint; `python -m tests.gpu_check --prepare .gpu` writes it, stored in fp16 to travel light,
and copies the clips). Steps run in priority order; a step that would not fit in the remaining
budget is skipped and reported, so the table always comes back.

First come the AOTInductor steps: `aoti-matrix` (tests/aoti_matrix.py: which change lets the Hayao
fp16 package load), then the 720p/1080p builds, which use the first recipe the matrix found working,
and their benchmarks against eager fp16. A device call is limited to 600 s, so a whole check takes
two calls, e.g. `--only env,aoti-matrix,build-aoti-1080x1920,build-aoti-720x1280,bench-aoti-1080x1920,bench-aoti-720x1280,bench-eager-1080x1920`
and then the rest (the engines stay in the machine's /tmp while it is warm).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.procs import wait_for

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ("big_buck_bunny_0_30.webm", "chaplin.mp4")


@dataclass
class Step:
    name: str
    argv: list[str]
    timeout: int  # seconds this step may take
    json_out: Path | None = None  # a JSON report the step writes
    group: str = ""  # steps of one group run at the same time (the CPU-bound engine compiles)
    env: dict[str, str] = field(default_factory=dict)  # added to the environment of this step
    result: dict[str, Any] = field(default_factory=dict)


def prepare(data: Path) -> None:
    """Here, beside ../shared: write the carried data folder."""

    from cartoonize.model import load_checkpoint
    from cartoonize.styles import style_checkpoint

    data.mkdir(parents=True, exist_ok=True)
    checkpoint = load_checkpoint(style_checkpoint("hayao"))
    checkpoint.state_dict = {
        k: v.half() if v.is_floating_point() else v for k, v in checkpoint.state_dict.items()
    }
    checkpoint.extra["note"] = "weights stored in fp16 for transport; they load into fp32 modules"
    checkpoint.save(data / "hayao.pt")
    for clip in CLIPS:
        shutil.copy(ROOT.parent / "shared" / "media" / clip, data / clip)
    print(f"wrote {data}: {sorted(p.name for p in data.iterdir())}")


def run_steps(steps: list[Step], log, env: dict[str, str]) -> None:  # noqa: ANN001
    """Run steps at the same time (one alone runs alone); record exit, seconds, report, output tail."""
    procs = []
    for step in steps:
        log.write(f"\n===== {step.name}: {' '.join(step.argv)}\n")
        try:
            proc = subprocess.Popen(
                step.argv,
                cwd=ROOT,
                env={**env, **step.env},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        except OSError as exc:  # the program is not installed there
            step.result.update(exit=f"cannot start: {exc.strerror}", seconds=0)
            continue
        procs.append((step, proc, time.monotonic()))
    for step, proc, start in procs:
        code, output = wait_for(proc, step.timeout - (time.monotonic() - start))
        lines = [line for line in output.splitlines() if line.strip()]
        step.result.update(exit=code, seconds=round(time.monotonic() - start, 1), tail=lines[-3:])
        if step.json_out and step.json_out.exists():
            step.result["report"] = json.loads(step.json_out.read_text())
        log.write(
            f"----- {step.name} output\n{output}\n===== {step.name}: exit {code} after {step.result['seconds']} s\n"
        )
        log.flush()
        print(
            f"[{time.strftime('%H:%M:%S')}] {step.name}: exit {code} ({step.result['seconds']} s)", flush=True
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check-out")))
    parser.add_argument("--data", type=Path, default=ROOT / ".gpu")
    parser.add_argument("--budget", type=float, default=540, help="seconds for all steps together")
    parser.add_argument("--only", default="", help="comma-separated step names to run (default: all)")
    parser.add_argument("--prepare", type=Path, default=None, help="write the data folder and exit")
    args = parser.parse_args(argv)
    if args.prepare:
        prepare(args.prepare)
        return 0

    deadline = time.monotonic() + args.budget
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.gettempdir()) / "cartoonize-gpu-check"  # kept between calls on one machine
    cache = work / "cache"
    (cache / "styles").mkdir(parents=True, exist_ok=True)
    shutil.copy(args.data / "hayao.pt", cache / "styles" / "hayao.pt")
    env = {**os.environ, "CARTOONIZE_CACHE": str(cache), "CARTOONIZE_ENGINES": str(work / "engines"),
           "CARTOONIZE_TEST_HAYAO": str(args.data / "hayao.pt"), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))}  # fmt: skip
    py = [sys.executable]
    cz = [*py, "-m", "cartoonize"]
    clip = args.data / CLIPS[0]  # 1280×720, 24 fps, VP8 + Vorbis
    engine = {s: work / "engines" / f"hayao.aoti.fp16.{s}.sm90.pt2" for s in ("720x1280", "1080x1920")}

    def build(shape: str) -> list[str]:
        return [*cz, "build-engine", "--style", "hayao", "--backend", "aoti", "--precision", "fp16",
                "--device", "cuda", "--shape", shape, "--output", str(engine[shape])]  # fmt: skip

    def bench(shape: str, graphs: bool = False) -> Step:
        tag = "-graphs" if graphs else ""
        report = work / f"bench-{shape}{tag}.json"
        argv = [
            *cz,
            "bench",
            "--engine",
            str(engine[shape]),
            "--shape",
            shape,
            "--iters",
            "50",
            "--json",
            str(report),
        ]
        return Step(
            f"bench-aoti-{shape}{tag}", argv, 120, report, env={"CARTOONIZE_CUDA_GRAPHS": str(int(graphs))}
        )

    e2e = work / "e2e.json"
    train = work / "train.json"
    matrix = work / "matrix"
    webcam = [*cz, "webcam", "--input-format", "lavfi", "--no-preview", "--device", "cuda", "--input"]
    sizes = "180x320,360x640,720x1280"
    # fmt: off
    steps = [
        Step("env", ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"], 20),
        Step("aoti-matrix", [*py, "-m", "tests.aoti_matrix", "--checkpoint", str(args.data / "hayao.pt"),
                             "--out", str(matrix), "--timeout", "280"], 300, matrix / "matrix.json"),
        Step("build-aoti-1080x1920", build("1080x1920"), 300, group="builds"),
        Step("build-aoti-720x1280", build("720x1280"), 300, group="builds"),
        bench("1080x1920"),
        bench("720x1280"),
        Step("bench-eager-1080x1920", [*cz, "bench", "--engine", "torch", "--device", "cuda", "--precision", "fp16",
                                       "--shape", "1080x1920", "--iters", "30", "--json", str(work / "eager-1080.json")],
             90, work / "eager-1080.json"),  # the baseline even where no engine could be built
        Step("pytest-gpu", [*py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "--timeout", "300"], 240),
        Step("webcam-720p30", [*webcam, "testsrc2=size=1280x720:rate=30", "--frames", "300", "--engine", "torch"], 60),
        Step("video-720p", [*cz, "video", str(clip), str(work / "bunny.mp4"), "--device", "cuda", "--engine", "torch",
                            "-y"], 90),
        Step("e2e-aoti", [*py, "-m", "cartoonize.measure.benchmarks", "--sizes", "720x1280", "--engines", "auto", "--device",
                          "cuda", "--clip", str(clip), "--iters", "30", "--frames", "240", "--json", str(e2e)], 60, e2e),
        bench("720x1280", graphs=True),  # last: capture once ended in an illegal memory access
        Step("train-bench", [*py, "-m", "train.bench", "--steps", "20", "--json", str(train)], 150, train),
        Step("e2e", [*py, "-m", "cartoonize.measure.benchmarks", "--sizes", sizes, "--engines", "torch,auto", "--device",
                     "cuda", "--clip", str(clip), "--iters", "30", "--frames", "240", "--json", str(e2e)], 240, e2e),
        Step("webcam-720p60", [*webcam, "testsrc2=size=1280x720:rate=60", "--frames", "600"], 90),
    ]
    # fmt: on
    wanted = set(filter(None, args.only.split(",")))
    chosen = [s for s in steps if not wanted or s.name in wanted]
    with (out / "gpu_check.log").open("w") as log:
        while chosen:
            batch = [s for s in chosen if s.group and s.group == chosen[0].group] or chosen[:1]
            chosen = [s for s in chosen if s not in batch]
            left = deadline - time.monotonic()
            if left < 20:
                for step in batch:
                    step.result = {"exit": "skipped: out of time"}
                    print(f"{step.name}: skipped, {left:.0f} s left", flush=True)
                continue
            for step in batch:
                step.timeout = int(min(step.timeout, left))
            run_steps(batch, log, env)
            hand_over_recipe(batch, chosen)
        if (work / "bunny.mp4").exists():
            shutil.copy(work / "bunny.mp4", out / "bunny_cartoon_gpu.mp4")
    results = {s.name: s.result for s in steps if s.result}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    return 0 if all(r.get("exit") == 0 for r in results.values()) else 1


def hand_over_recipe(done: list[Step], waiting: list[Step]) -> None:
    """After the matrix: the AOTInductor builds use the first recipe it saw working."""
    from tests.aoti_matrix import first_working_recipe

    for step in done:
        if step.name == "aoti-matrix" and "report" in step.result:
            variants = step.result["report"]["variants"]
            recipe = first_working_recipe({name: v["outcome"] for name, v in variants.items()})
            for build in (s for s in waiting if s.name.startswith("build-aoti") and recipe):
                build.env["CARTOONIZE_AOTI_RECIPES"] = str(recipe)


def print_table(results: dict[str, Any]) -> None:
    print("\n==== GPU check summary")
    for name, r in results.items():
        line = f"{name:<22} exit {r.get('exit')!s:<22} {r.get('seconds', '-')!s:>6} s"
        report = r.get("report")
        if report and "engine" in report:
            e, t = report["engine"], report["torch_eager"]
            line += (f"  {e['fps']:.1f} fps vs eager {t['fps']:.1f} fps = {report['speedup_vs_eager']:.2f}×,"
                     f" {100 * e.get('fraction_of_peak', 0):.0f} % of peak; {report.get('gpu')}")  # fmt: skip
        print(line)
        if report and "variants" in report:
            for variant, v in report["variants"].items():
                print(f"    {variant:<16} {v['outcome'][:70]:<70} {v['changes']}")
            print(f"    first working recipe: {report.get('first_working_recipe')}")
        elif report and "rows" in report:
            for row in report["rows"]:
                print(f"    {row['runner']:<32} {row['shape'][0]}x{row['shape'][1]}: alone {row['inference_fps']:.1f} fps,"
                      f" end to end {row['end_to_end_fps']:.1f} fps")  # fmt: skip
        elif report:
            print(f"    {json.dumps(report)[:300]}")
        elif r.get("tail") and name not in ("env",):
            print(f"    {r['tail'][-1][:160]}")


if __name__ == "__main__":
    sys.exit(main())
