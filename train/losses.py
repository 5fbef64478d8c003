"""CartoonGAN's losses: VGG19 content loss, edge-promoting adversarial loss, and the pool of fakes."""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from train.vgg import VGGContent


class ContentLoss(nn.Module):
    """omega * L1(VGG19 conv4_4(photo), VGG19 conv4_4(G(photo))): keep the photo's content.

    Images arrive in the generator's channel order; VGG wants RGB, so a BGR generator's images are
    flipped here and nowhere else.
    """

    def __init__(self, vgg: VGGContent, weight: float, channel_order: str = "RGB") -> None:
        super().__init__()
        self.vgg, self.weight, self.bgr = vgg, weight, channel_order == "BGR"

    def forward(self, photo: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            photo, generated = photo.flip(1), generated.flip(1)
        with torch.no_grad():
            target = self.vgg(photo)  # (N, 512, H/8, W/8)
        return self.weight * F.l1_loss(self.vgg(generated).float(), target.float())


class AdversarialLoss(nn.Module):
    """Least squares (the author's code, default) or log-loss (the paper) on D's patch logits."""

    def __init__(self, kind: str = "lsgan") -> None:
        super().__init__()
        self.kind = kind

    def forward(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        logits = logits.float()
        target = torch.full_like(logits, 1.0 if real else 0.0)
        if self.kind == "lsgan":
            return F.mse_loss(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target)


class FakePool:
    """Up to `size` past generated images; D trains on a mix of new and old ones (CycleGAN's pool).

    Its random choices come from its own seeded generator, and its state is saved with a checkpoint,
    so a resumed run draws the same fakes.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.images, self.rng = size, [], random.Random(seed)

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for image in batch.detach().float():  # fp32 whatever the autocast: one dtype in the pool
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() < 0.5:  # hand back an old fake, keep the new one in its place
                i = self.rng.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        stacked = torch.stack(self.images).float().cpu() if self.images else torch.empty(0)
        return {"images": stacked, "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.images = [image.to(device) for image in state["images"]]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
