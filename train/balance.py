"""How much the content loss weighs against the adversarial loss, in the author's code and in ours.

`python -m train.balance [--size 256] [--seeds 3] [--json PATH]`

The first author's content loss (FlyingGoblin/CartoonGAN, util/content_loss.lua and
util/VGG_preprocess.lua) feeds G's BGR output, resized to 224x224 (bilinear), through
`VGG_postprocess`: forward `(x + 1) * 127.5 - Caffe's BGR mean`, then Caffe's VGG19 up to conv4_4
(before its ReLU), L1 (mean) times omega = 10. Its `updateGradInput` returns `gradOutput / 127.5`
where the chain rule says `* 127.5`: the content gradient that trained the released styles is 127.5^2
times smaller than its own forward implies. Ours feeds RGB at full size through torchvision's
normalisation, `((x + 1) / 2 - mean) / std`, whose derivative is 1 / (2 std) ~ 2.2.

This measures, at G's output, |d content / d G(photo)| against |d adversarial / d G(photo)| (LSGAN,
G's target "real", through the same discriminator), in both formulations with the *same* VGG19
weights (random ones: no ImageNet or Caffe weights can be had here; for a ratio of two chains
through one network that is enough). Their quotient R says how much heavier our content term is at
equal omega; omega = 10 / R gives our recipe the author's balance. That is `TrainConfig.content_weight`.

What it cannot see: the real Caffe and torchvision VGG19 weights are two different trainings, and if
one network's conv4_4 reacted more strongly to its input than the other's, R would move by that factor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from train.discriminator import Discriminator
from train.losses import AdversarialLoss, ContentLoss
from train.recipe import author_init
from train.vgg import VGGContent, load_vgg_content

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # VGG_preprocess.lua's mean_pixel
CAFFE_SIZE = 224  # nn.SpatialUpSamplingBilinear({oheight=224, owidth=224})
PAPER_OMEGA = 10.0  # lambda_A in the author's options.lua, omega in the paper


class _AuthorScale(torch.autograd.Function):
    """Forward x -> (x + 1) * 127.5 - mean; backward: gradient / 127.5 (the author's) or * 127.5."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, mean: torch.Tensor, exact: bool) -> torch.Tensor:
        ctx.exact = exact
        return (x + 1) * 127.5 - mean

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return (grad * 127.5 if ctx.exact else grad / 127.5), None, None


class AuthorContent(nn.Module):
    """The author's content term on BGR images in [-1, 1]: omega * L1(VGG(photo), VGG(G(photo))).

    `features` are VGG19 convs in torchvision's layout (RGB first layer); their first layer's input
    channels are reversed here so that the network computes the same function of the BGR image.
    `exact=True` gives the chain rule's gradient instead of the author's."""

    def __init__(self, vgg: VGGContent, weight: float = PAPER_OMEGA, exact: bool = False) -> None:
        super().__init__()
        features = list(vgg.features)
        first = nn.Conv2d(3, features[0].out_channels, 3, padding=1)
        with torch.no_grad():
            first.weight.copy_(features[0].weight.flip(1))
            first.bias.copy_(features[0].bias)
        self.features = nn.Sequential(first, *features[1:]).requires_grad_(False)
        self.register_buffer("mean", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.weight, self.exact = weight, exact

    def _vgg(self, bgr: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(bgr, size=(CAFFE_SIZE, CAFFE_SIZE), mode="bilinear", align_corners=True)
        return self.features(_AuthorScale.apply(x, self.mean, self.exact))

    def forward(self, photo_bgr: torch.Tensor, generated_bgr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self._vgg(photo_bgr)
        return self.weight * F.l1_loss(self._vgg(generated_bgr), target)


def _gradient(loss_of, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    loss_of(x).backward()
    return x.grad


def measure(photos: torch.Tensor, fakes: torch.Tensor, vgg_seed: int, d_seed: int) -> dict[str, float]:
    """Gradient norms at G's output for one random VGG19 and one author-initialised D.

    photos, fakes: (N, 3, S, S) RGB in [-1, 1]; fakes stand for G(photos)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vgg = load_vgg_content("random", seed=vgg_seed)
    ours = ContentLoss(vgg, PAPER_OMEGA, "RGB")
    author = AuthorContent(vgg, PAPER_OMEGA)
    author_exact = AuthorContent(vgg, PAPER_OMEGA, exact=True)
    torch.manual_seed(d_seed)
    D = Discriminator()
    author_init(D)
    D.requires_grad_(False)
    adversarial = AdversarialLoss("lsgan")
    adv = _gradient(lambda x: adversarial(D(x), real=True), fakes).norm().item()
    bgr_photos = photos.flip(1)
    c_ours = _gradient(lambda x: ours(photos, x), fakes).norm().item()
    c_author = _gradient(lambda x: author(bgr_photos, x), fakes.flip(1)).norm().item()
    c_exact = _gradient(lambda x: author_exact(bgr_photos, x), fakes.flip(1)).norm().item()
    return {
        "vgg_seed": vgg_seed,
        "d_seed": d_seed,
        "adversarial": adv,
        "content_ours": c_ours,
        "content_author": c_author,
        "content_author_chain_rule": c_exact,
        "ratio_ours": c_ours / adv,
        "ratio_author": c_author / adv,
        "R": c_ours / c_author,
    }


def skimage_photos(size: int) -> torch.Tensor:
    """scikit-image's bundled photos, centre-cropped square and resized: (N, 3, S, S) RGB in [-1, 1]."""
    import numpy as np
    from skimage import data, transform

    out = []
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        image = getattr(data, name)()
        h, w = image.shape[:2]
        side = min(h, w)
        crop = image[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
        resized = transform.resize(crop, (size, size), anti_aliasing=True)  # float in [0, 1]
        out.append(torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))).float() * 2 - 1)
    return torch.stack(out)


def stand_in_fakes(photos: torch.Tensor) -> tuple[torch.Tensor, str]:
    """What G(photo) looks like during GAN training: the Hayao style's output where its weights can be
    had (CARTOONIZE_WEIGHTS_URL), else the photo with noise."""
    try:
        from cartoonize.model import load_checkpoint
        from cartoonize.styles import style_checkpoint

        checkpoint = load_checkpoint(style_checkpoint("hayao"))
        generator = checkpoint.generator().eval()
        with torch.no_grad():
            bgr = checkpoint.io.channel_order == "BGR"
            x = photos.flip(1) if bgr else photos
            y = torch.cat([generator(p[None]) for p in x])
        return (y.flip(1) if bgr else y), "hayao(photo)"
    except Exception:
        noise = torch.randn(photos.shape, generator=torch.Generator().manual_seed(0)) * 0.1
        return (photos + noise).clamp(-1, 1), "photo + N(0, 0.1) noise"


def run(size: int = 256, seeds: int = 3, photos: torch.Tensor | None = None) -> dict[str, Any]:
    photos = skimage_photos(size) if photos is None else photos
    fakes, fakes_are = stand_in_fakes(photos)
    started = time.perf_counter()
    rows = [measure(photos, fakes, vgg_seed=s, d_seed=100 + s) for s in range(seeds)]
    R = statistics.median(r["R"] for r in rows)
    return {
        "size": photos.shape[-1],
        "images": photos.shape[0],
        "fakes": fakes_are,
        "vgg": "random (looks-linear, zero biases), the same weights in both formulations",
        "rows": rows,
        "R_median": R,
        "author_bug_factor": statistics.median(
            r["content_author_chain_rule"] / r["content_author"] for r in rows
        ),
        "content_weight_for_the_authors_balance": PAPER_OMEGA / R,
        "seconds": time.perf_counter() - started,
        "machine": "cuda" if torch.cuda.is_available() else "cpu",
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="training crop the photos are resized to")
    parser.add_argument("--seeds", type=int, default=3, help="random VGG19 / D pairs to measure")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run(args.size, args.seeds)
    print(f"gradient norms at G's output, omega = {PAPER_OMEGA:g} in both, {result['images']} photos at "
          f"{result['size']} px, fakes = {result['fakes']}")  # fmt: skip
    print(f"{'seed':>4} {'|adv|':>10} {'|content| ours':>15} {'|content| author':>17} "
          f"{'ours/adv':>9} {'author/adv':>11} {'R':>7}")  # fmt: skip
    for r in result["rows"]:
        print(f"{r['vgg_seed']:>4} {r['adversarial']:>10.3e} {r['content_ours']:>15.3e} "
              f"{r['content_author']:>17.3e} {r['ratio_ours']:>9.3g} {r['ratio_author']:>11.3g} {r['R']:>7.1f}")  # fmt: skip
    print(
        f"R (median) = {result['R_median']:.1f}: at equal omega our content gradient is {result['R_median']:.0f}x "
        f"the author's; omega = 10 / R = {result['content_weight_for_the_authors_balance']:.4f} matches it. "
        f"(The author's /127.5 backward alone: {result['author_bug_factor']:.0f}x.)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
