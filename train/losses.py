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
    """Up to `size` past fakes; D trains on a mix of new and old ones (Shrivastava et al.; CycleGAN).

    `unit="batch"` (the author's util/image_pool.lua) keeps whole batches: until the pool is full
    each batch goes in and comes back as is; then, with probability 1/2, a random stored batch comes
    back and the new one takes its place. `unit="image"` does the same per image. What comes back is
    always detached: D's loss must never reach back into G's graph (with `size=0` as well).

    Its random choices come from its own seeded generator, and its state is saved with a checkpoint,
    so a resumed run draws the same fakes.
    """

    def __init__(self, size: int, seed: int, unit: str = "batch") -> None:
        if size < 0:
            raise ValueError(f"pool size must be 0 or more, not {size}")
        self.size, self.unit, self.entries, self.rng = size, unit, [], random.Random(seed)

    def _swap(self, entry: torch.Tensor) -> torch.Tensor:
        if len(self.entries) < self.size:
            self.entries.append(entry.clone())
            return entry
        if self.rng.random() < 0.5:  # hand back an old fake, keep the new one in its place
            i = self.rng.randrange(self.size)
            old, self.entries[i] = self.entries[i], entry.clone()
            return old
        return entry

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.detach()
        if self.size == 0:
            return batch
        batch = batch.float()  # fp32 whatever the autocast: one dtype in the pool
        if self.unit == "batch":
            return self._swap(batch)
        return torch.stack([self._swap(image) for image in batch])

    def state_dict(self) -> dict[str, Any]:
        stacked = torch.stack(self.entries).float().cpu() if self.entries else torch.empty(0)
        return {"entries": stacked, "unit": self.unit, "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.entries = [entry.to(device) for entry in state["entries"]]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
