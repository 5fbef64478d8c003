"""Which change makes the Hayao AOTInductor CUDA package load? A diagnostic for the GPU check.

On an H200 (torch 2.11) the fp16 package of the Hayao network died with SIGSEGV inside
`aoti_load_package`, while the 8-channel test generator's package worked. Each variant here changes
one thing against the failing build (an Inductor recipe, the precision, or one property of the
network) and is built at a small size through the real `cartoonize build-engine`, whose parity gate
loads the engine in a child process and names where a crash happened:

    python -m tests.aoti_matrix --checkpoint .gpu/hayao.pt --out DIR [--device cuda] [--only a,b]

Prints one line per variant (ok, crash and where, parity failure, error) and writes DIR/matrix.json.
`tests/gpu_check.py` runs the same variants as one parallel group and hands the first recipe that
worked to its Hayao builds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tests.procs import wait_for

SHAPE = "64x64"  # the crash did not depend on the frame size; small compiles fastest
RECIPE_VARIANTS = ("default", "weights-beside", "plain-constants", "nchw")  # preferred first


@dataclass(frozen=True)
class Variant:
    name: str
    checkpoint: Path
    precision: str
    recipe: str  # the AOTInductor recipe (tests/.. cartoonize/engines/aoti.py)
    changes: str  # what differs from the failing build


def write_variants(hayao: Path, folder: Path, precision: str = "fp16") -> list[Variant]:
    """The variant checkpoints under `folder`; `hayao` is the failing network's checkpoint."""
    import torch

    from cartoonize.model import Checkpoint, Generator, GeneratorConfig, load_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    base = load_checkpoint(hayao)

    def save(name: str, checkpoint: Checkpoint) -> Path:
        path = folder / f"{name}.pt"
        checkpoint.save(path)
        return path

    def random(config: GeneratorConfig) -> Checkpoint:
        torch.manual_seed(0)
        return Checkpoint(Generator(config).state_dict(), config, base.io)

    same = save("hayao", base)
    variants = [Variant(r, same, precision, r, f"recipe {r}") for r in RECIPE_VARIANTS]
    other = "fp32" if precision == "fp16" else "fp16"
    variants.append(Variant(other, same, other, "default", f"{other} instead of {precision}"))
    rgb = replace(base, io=replace(base.io, channel_order="RGB"))
    variants.append(Variant("rgb", save("rgb", rgb), precision, "default", "no BGR flip in the graph"))
    eps = replace(base, config=replace(base.config, norm_eps=1e-5))
    variants.append(Variant("eps1e-5", save("eps", eps), precision, "default", "norm eps 1e-5, not 1e-9"))
    narrow = random(replace(base.config, base_channels=8))
    variants.append(Variant("width8", save("width8", narrow), precision, "default",
                            "8 base channels (random weights), 8 residual blocks"))  # fmt: skip
    short = random(replace(base.config, residual_blocks=1))
    variants.append(Variant("blocks1", save("blocks1", short), precision, "default",
                            "1 residual block (random weights), 64 base channels"))  # fmt: skip
    return variants


def build_argv(variant: Variant, device: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "cartoonize", "build-engine", "--model", str(variant.checkpoint),
            "--backend", "aoti", "--precision", variant.precision, "--device", device, "--shape", SHAPE,
            "--output", str(out / f"{variant.name}.pt2")]  # fmt: skip


def build_env(variant: Variant, threads: int = 2) -> dict[str, str]:
    # one recipe each; few compile workers each, as the variants compile side by side
    return {"CARTOONIZE_AOTI_RECIPES": variant.recipe, "TORCHINDUCTOR_COMPILE_THREADS": str(threads)}


def outcome(exit_code: int | str, output: str) -> str:
    """ok | crash (SIGNAL in where) | parity (…) | error (last line) | timeout."""
    if exit_code == 0:
        return "ok"
    if exit_code == "timeout":
        return "timeout"
    text = " ".join(output.split())
    crash = re.search(r"crashed \((SIG[A-Z]+)(?: in ([^)]*\)))?\)", text)
    if crash:
        return f"crash ({crash.group(1)}{' in ' + crash.group(2) if crash.group(2) else ''})"
    if "fails the parity gate" in text:
        figures = re.search(r"max \|diff\| \d+/255, PSNR [\d.]+ dB", text)
        return f"parity ({figures.group(0) if figures else 'below the threshold'})"
    lines = [line for line in output.splitlines() if line.strip()]
    return f"error ({lines[-1][:160] if lines else f'exit {exit_code}'})"


def first_working_recipe(results: dict[str, str]) -> str | None:
    """The first recipe variant, in RECIPE_VARIANTS order, whose engine loaded, ran and passed."""
    return next((r for r in RECIPE_VARIANTS if results.get(r) == "ok"), None)


def command_line() -> argparse.ArgumentParser:
    """The command line (the GPU check's steps are checked against it on the CPU)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="the failing network (hayao.pt)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    parser.add_argument("--timeout", type=float, default=300)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = command_line().parse_args(argv)

    variants = write_variants(args.checkpoint, args.out / "checkpoints", args.precision)
    wanted = set(filter(None, args.only.split(",")))
    variants = [v for v in variants if not wanted or v.name in wanted]
    started = time.monotonic()
    threads = max(1, (os.cpu_count() or 2) // len(variants))
    procs = [(v, subprocess.Popen(build_argv(v, args.device, args.out), env={**os.environ, **build_env(v, threads)},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
             for v in variants]  # fmt: skip
    results: dict[str, dict[str, str]] = {}
    recipe = None
    for variant, proc in procs:  # each line as it is known, and the report so far: a kill keeps them
        code, output = wait_for(proc, args.timeout - (time.monotonic() - started))
        results[variant.name] = {"outcome": outcome(code, output), "changes": variant.changes,
                                 "seconds": str(round(time.monotonic() - started, 1))}  # fmt: skip
        (args.out / f"{variant.name}.log").write_text(output)
        print(f"{variant.name:<16} {results[variant.name]['outcome']:<60} {variant.changes}", flush=True)
        recipe = first_working_recipe({k: r["outcome"] for k, r in results.items()})
        report = {"device": args.device, "precision": args.precision, "shape": SHAPE, "variants": results,
                  "first_working_recipe": recipe, "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
        (args.out / "matrix.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"first working recipe: {recipe or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
