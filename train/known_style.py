"""Does the recipe learn a style we know? `python -m train.known_style [--json PATH] [--sheet PNG]`

A style we own: real frames (the clips in ../shared/media that film the real world) and
scikit-image's photos, split in two. One half, cartoonized by the released Hayao generator, are
the cartoons; the other half are the photos, a few of them held back. A tiny generator is trained
from scratch (init phase, then the adversarial phase: the real recipe, CartoonGAN's steps, D before
G, the pool, edge smoothing at the training scale) and, as it trains, G(photo) of the held-back
photos is compared with Hayao(photo): PSNR in dB. The init phase is shared; the adversarial phase
runs once per content weight (the default, the author's effective balance, and the paper's 10).

On a CPU this is a compressed schedule (a few hundred steps at a larger learning rate, 64 px) and
the content loss uses a *random* VGG19 (no ImageNet weights here), whose conv4_4 keeps less of
the photo than ImageNet's: the content term is weaker than in real training, at either weight.
What it shows is what moves, not a trained style.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from cartoonize.model import Generator, GeneratorConfig, ModelIO
from train.config import TrainConfig
from train.discriminator import Discriminator
from train.edges import smooth_edges
from train.frames import FrameSampling, sample_frames
from train.recipe import CartoonGAN, author_init
from train.vgg import load_vgg_content

REAL_CLIPS = ("chaplin.mp4", "street_portrait.mp4", "iphone_rotated.mov", "fire_vfr.mp4")  # filmed, not drawn
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
HAYAO_SIZE = 128  # Hayao runs at this size, its output is then scaled to the training size


def shared_media() -> Path:
    root = Path(os.environ.get("CARTOONIZE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    return root / "media"


def real_images(rate: float, scratch: Path) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) of frames sampled from the real-world clips, and scikit-image's photos."""
    from skimage import data

    out = []
    media = shared_media()
    for clip in REAL_CLIPS:
        if not (media / clip).exists():
            continue
        frames = sample_frames(media / clip, scratch / clip, FrameSampling(rate=rate))
        for path in sorted(frames.folder.glob("frame_*.jpg")):
            out.append((f"{clip}:{path.stem}", cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)))
    for name in PHOTOS:
        out.append((name, getattr(data, name)()))
    return out


def stretch(image: np.ndarray, size: int) -> np.ndarray:  # the default --load-fit: the whole frame
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def hayao(images: list[np.ndarray], size: int) -> list[np.ndarray]:
    """The released Hayao style at HAYAO_SIZE, scaled to `size`: RGB uint8."""
    from cartoonize.model import load_checkpoint
    from cartoonize.styles import style_checkpoint

    checkpoint = load_checkpoint(style_checkpoint("hayao"))
    generator = checkpoint.generator().eval()
    bgr = checkpoint.io.channel_order == "BGR"
    out = []
    with torch.no_grad():
        for image in images:
            x = to_tensor([stretch(image, HAYAO_SIZE)])
            y = generator(x.flip(1) if bgr else x)
            y = y.flip(1) if bgr else y
            rgb = ((y[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
            out.append(stretch(rgb, size))
    return out


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of the PSNR (dB) of two (N, 3, H, W) batches in [-1, 1], on the 0-255 scale."""
    a8, b8 = ((a + 1) * 127.5).round().clamp(0, 255), ((b + 1) * 127.5).round().clamp(0, 255)
    mse = ((a8 - b8) ** 2).flatten(1).mean(1)
    return float((10 * torch.log10(255**2 / mse)).mean())


class Batches:
    """Random photos, cartoons (with their edge-smoothed copies) and flips, seeded per step."""

    def __init__(self, photos: list[np.ndarray], cartoons: list[np.ndarray], batch: int, seed: int) -> None:
        self.photos, self.batch, self.seed = to_tensor(photos), batch, seed
        self.cartoons = to_tensor(cartoons)
        self.smoothed = to_tensor([smooth_edges(c) for c in cartoons])  # at the training scale

    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        p = rng.integers(0, len(self.photos), self.batch)
        c = rng.integers(0, len(self.cartoons), self.batch)
        flip = torch.from_numpy(rng.integers(0, 2, self.batch).astype(bool))

        def pick(images: torch.Tensor, index: np.ndarray) -> torch.Tensor:
            chosen = images[torch.from_numpy(index)]
            return torch.where(flip.view(-1, 1, 1, 1), chosen.flip(3), chosen)

        return {
            "photo": pick(self.photos, p),
            "cartoon": pick(self.cartoons, c),
            "smoothed": pick(self.smoothed, c),
        }


def run(
    weights: tuple[float, ...] | None = None,
    size: int = 64,
    batch: int = 4,
    init_steps: int = 100,
    adv_steps: int = 200,
    every: int = 20,
    base_channels: int = 16,
    residual_blocks: int = 2,
    init_lr: float = 1e-3,
    lr: float = 2e-4,
    rate: float = 1.5,
    seed: int = 0,
    sheet: Path | None = None,
) -> dict:
    default = TrainConfig(photos=Path("p"), cartoons=Path("c"), out=Path("o")).content_weight
    weights = weights or (default, 10.0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        named = real_images(rate, Path(scratch))
    cartoon_sources = [im for i, (_, im) in enumerate(named) if i % 2 == 0]
    photo_sources = [im for i, (_, im) in enumerate(named) if i % 2 == 1]
    held = photo_sources[::3]  # every third photo is held back
    train_photos = [im for i, im in enumerate(photo_sources) if i % 3]
    cartoons = hayao(cartoon_sources, size)
    held_photos = to_tensor([stretch(im, size) for im in held])
    held_targets = to_tensor(hayao(held, size))
    batches = Batches([stretch(im, size) for im in train_photos], cartoons, batch, seed)

    config = TrainConfig(
        photos=Path("p"),
        cartoons=Path("c"),
        out=Path("o"),
        image_size=size,
        load_size=size,
        batch_size=batch,
        base_channels=base_channels,
        residual_blocks=residual_blocks,
        init_lr=init_lr,
        lr_g=lr,
        lr_d=lr,
        vgg="random",
        seed=seed,
    )
    torch.manual_seed(seed)
    generator = Generator(GeneratorConfig(base_channels=base_channels, residual_blocks=residual_blocks))
    discriminator = Discriminator()
    author_init(generator)
    author_init(discriminator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vgg = load_vgg_content("random", seed=seed)
    recipe = CartoonGAN(config, generator, discriminator, vgg, ModelIO(), torch.device("cpu"))

    def evaluate() -> float:
        return psnr(recipe.generate(held_photos), held_targets)

    init_curve = [(0, evaluate())]
    recipe._set_init_lr(1.0)
    for step in range(init_steps):
        recipe.init_step(batches(step))
        if (step + 1) % every == 0:
            init_curve.append((step + 1, evaluate()))
    after_init = copy.deepcopy(recipe)
    curves, outputs = {}, {}
    for weight in weights:
        recipe = copy.deepcopy(after_init)
        recipe.content.weight = weight
        recipe._set_lr(1.0)
        curve = [(init_steps, init_curve[-1][1])]
        losses = []
        for step in range(adv_steps):
            metrics = recipe.adversarial_step(batches(init_steps + step))
            losses.append(metrics)
            if (step + 1) % every == 0:
                curve.append((init_steps + step + 1, evaluate()))
        curves[weight] = {
            "curve": curve,
            "last_losses": {k: float(np.mean([m[k] for m in losses[-every:]])) for k in losses[0]},
        }
        outputs[weight] = recipe.generate(held_photos)

    result = {
        "images": {"cartoons": len(cartoons), "train_photos": len(train_photos), "held_back": len(held)},
        "size": size,
        "steps": {"init": init_steps, "adversarial": adv_steps, "batch": batch},
        "generator": {"base_channels": base_channels, "residual_blocks": residual_blocks},
        "lr": {"init": init_lr, "adversarial": lr},
        "vgg": "random (looks-linear)",
        "psnr_identity": psnr(held_photos, held_targets),  # G = identity, for reference
        "init_curve": init_curve,
        "adversarial": {str(w): v for w, v in curves.items()},
        "seconds": time.perf_counter() - started,
        "machine": f"cpu, {torch.get_num_threads()} threads",
    }
    if sheet:
        rows = [held_photos, held_targets, *outputs.values()]
        grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # one row per kind
        image = ((grid.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        cv2.imwrite(
            str(sheet),
            cv2.cvtColor(
                cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST), cv2.COLOR_RGB2BGR
            ),
        )
    return result


def table(result: dict) -> str:
    weights = list(result["adversarial"])
    lines = [
        f"known style (Hayao) from scratch: {result['images']}, {result['size']} px, "
        f"{result['steps']}, random VGG19; PSNR (dB) of G(photo) vs Hayao(photo) on held-back photos",
        f"identity (G = photo): {result['psnr_identity']:.2f} dB",
        f"{'step':>5}  {'phase':<11}" + "".join(f"{'omega=' + w:>14}" for w in weights),
    ]
    for step, value in result["init_curve"]:
        lines.append(f"{step:>5}  {'init':<11}" + f"{value:>14.2f}" * len(weights))
    for i, (step, _) in enumerate(result["adversarial"][weights[0]]["curve"][1:], start=1):
        values = [result["adversarial"][w]["curve"][i][1] for w in weights]
        lines.append(f"{step:>5}  {'adversarial':<11}" + "".join(f"{v:>14.2f}" for v in values))
    for w in weights:
        losses = result["adversarial"][w]["last_losses"]
        lines.append(
            f"omega={w}: last losses " + ", ".join(f"{k} {v:.4g}" for k, v in losses.items() if "lr" not in k)
        )
    lines.append(f"{result['seconds']:.0f} s on {result['machine']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init-steps", type=int, default=100)
    parser.add_argument("--adv-steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=20, help="evaluate every N steps")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--sheet", type=Path, default=None, help="PNG: photo | Hayao | G per weight")
    args = parser.parse_args(argv)
    result = run(size=args.size, init_steps=args.init_steps, adv_steps=args.adv_steps, every=args.every,
                 sheet=args.sheet)  # fmt: skip
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
