"""Which torch.compile mode and layout for the `compile` runner? Measured on the GPU, one line each.

    python -m tests.compile_modes --checkpoint .gpu/hayao.pt --sizes 1080x1920,720x1280 --out DIR
                                  [--modes default,max-autotune-no-cudagraphs,reduce-overhead]
                                  [--budget SECONDS]

For each size, mode and layout (NCHW, channels_last): the compile time of a first call and the
inference fps (CUDA events, fp16, batch 1), with the parity against eager fp32 that the runner
checks, and cuDNN timing its algorithms as in a video job (runners.cudnn). Cells that would not fit in the budget are reported as skipped. Writes DIR/modes.json;
the `compile` runner's default mode and layout follow the fastest cell (cartoonize/runners/compile.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def measure(
    checkpoint: Path, shape: tuple[int, int], mode: str, channels_last: bool, iters: int
) -> dict[str, Any]:
    import numpy as np

    from cartoonize.measure.bench import time_runner
    from cartoonize.model import load_checkpoint
    from cartoonize.runners.compile import ChecksFile, CompileRunner

    runner = CompileRunner(load_checkpoint(checkpoint), "cuda", "fp16", frame_size=shape, mode=mode,
                           channels_last=channels_last, model_key="modes", notify=lambda _line: None)  # fmt: skip
    started = time.perf_counter()
    with runner:
        load_s = time.perf_counter() - started
        frames = np.zeros((1, *shape, 3), np.uint8)
        seconds = time_runner(runner, frames, iters, warmup=5)
        key = runner.key((1, *shape))
        compiled = runner.shapes.get((1, *shape), False)
    record = ChecksFile().read().get(key, {})
    fps = 1 / sorted(seconds)[len(seconds) // 2]
    return {"shape": list(shape), "mode": mode, "channels_last": channels_last, "compiled": compiled,
            "load_s": round(load_s, 1), "compile_s": record.get("compile_s"), "psnr_db": record.get("psnr_db"),
            "fps": round(fps, 1)}  # fmt: skip


def command_line() -> argparse.ArgumentParser:
    """The command line (the GPU check's steps are checked against it on the CPU)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--sizes", default="1080x1920,720x1280")
    parser.add_argument("--modes", default="default,max-autotune-no-cudagraphs,reduce-overhead")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--budget", type=float, default=240, help="seconds for all cells")
    parser.add_argument("--out", type=Path, default=Path("compile-modes"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = command_line().parse_args(argv)
    from cartoonize.engines.store import parse_shape
    from cartoonize.runners.cudnn import time_algorithms

    time_algorithms()  # as a video job of one size gets it (choose.runner_for); CARTOONIZE_CUDNN_BENCHMARK=0: not

    deadline = time.monotonic() + args.budget
    cells: list[dict[str, Any]] = []
    # cheapest first: the default mode in both layouts at every size, then the longer modes
    modes = args.modes.split(",")
    plan = [(size, mode, cl) for mode in modes for size in args.sizes.split(",") for cl in (False, True)]
    for size, mode, channels_last in plan:
        guess = 100 if "autotune" in mode else 30
        if deadline - time.monotonic() < guess:
            cells.append({"shape": list(parse_shape(size)), "mode": mode, "channels_last": channels_last,
                          "skipped": "out of time"})  # fmt: skip
            continue
        try:
            cell = measure(args.checkpoint, parse_shape(size), mode, channels_last, args.iters)
        except Exception as exc:  # noqa: BLE001 - a mode that fails is a result too
            cell = {"shape": list(parse_shape(size)), "mode": mode, "channels_last": channels_last,
                    "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"}  # fmt: skip
        cells.append(cell)
        print(json.dumps(cell), flush=True)
        write(args.out, cells)  # after every cell: a run cut short keeps what it measured
    write(args.out, cells)
    return 0


def write(out: Path, cells: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".modes.json.tmp"
    tmp.write_text(json.dumps({"cells": cells}, indent=2) + "\n")
    tmp.replace(out / "modes.json")


if __name__ == "__main__":
    raise SystemExit(main())
