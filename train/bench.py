"""Training throughput: `python -m train.bench [--steps N] [--json PATH]`.

Images per second of the adversarial step (G forward/backward through D and VGG19, then D on real,
edge-smoothed and pooled fake batches) and of the init step, at 256x256, batch 8, bf16 autocast,
full-size networks, on CUDA. Synthetic batches: this measures the networks, not the disk. On a CPU it
runs a tiny configuration (and says so), only to check that the script works.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

from cartoonize.model import Generator, GeneratorConfig, ModelIO, count_parameters
from train.config import TrainConfig
from train.discriminator import Discriminator
from train.recipe import CartoonGAN
from train.vgg import load_vgg_content


def _time_step(step, batch: dict[str, torch.Tensor], warmup: int, steps: int, cuda: bool) -> float:
    for _ in range(warmup):
        step(batch)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(batch)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench(steps: int = 20, warmup: int = 5) -> dict:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    size, batch_size, gen = (256, 8, GeneratorConfig()) if cuda else (64, 2, GeneratorConfig(8, 1))
    if cuda:
        torch.backends.cudnn.benchmark = True
    config = TrainConfig(
        photos=Path("."), cartoons=Path("."), out=Path("."), image_size=size, batch_size=batch_size
    )
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random VGG weights time the same as ImageNet ones
        vgg = load_vgg_content("random")
    recipe = CartoonGAN(config, Generator(gen), Discriminator(), vgg, ModelIO(), device)
    batch = {
        k: torch.rand(batch_size, 3, size, size, device=device) * 2 - 1
        for k in ("photo", "cartoon", "smoothed")
    }
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    adv_s = _time_step(recipe.adversarial_step, batch, warmup, steps, cuda)
    init_s = _time_step(recipe.init_step, batch, warmup, steps, cuda)
    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu (tiny configuration, not a real figure)",
        "full_size": cuda,
        "image_size": size,
        "batch_size": batch_size,
        "precision": "bf16 autocast" if cuda else "fp32",
        "generator_parameters": count_parameters(recipe.generator),
        "steps": steps,
        "adversarial_images_per_s": round(steps * batch_size / adv_s, 2),
        "init_images_per_s": round(steps * batch_size / init_s, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each kind (after 5 warm-up)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    result = bench(args.steps)
    r = result
    print(
        f"training throughput on {r['device']}: {r['adversarial_images_per_s']} images/s adversarial, "
        f"{r['init_images_per_s']} images/s init ({r['image_size']}x{r['image_size']}, "
        f"batch {r['batch_size']}, {r['precision']})"
    )
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
