"""The CartoonGAN discriminator: a small patch classifier (is this patch a cartoon with clear edges?).

3x3 convs 32 -> 64 -> 128 -> 128 -> 256 -> 256 -> 1, two stride-2 stages, leaky ReLU 0.2 and
instance norm, as in the first author's code. An (N, 3, H, W) image gives an (N, 1, H/4, W/4) map
of logits, one per receptive-field patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DiscriminatorConfig:
    base_channels: int = 32  # the paper's width
    slope: float = 0.2  # leaky ReLU slope


class Discriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DiscriminatorConfig()
        c, act = cfg.base_channels, (lambda: nn.LeakyReLU(cfg.slope, inplace=True))

        def down(c_in: int, c_out: int) -> list[nn.Module]:  # stride-2 conv, then conv + norm
            return [
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
                act(),
                nn.Conv2d(c_out, 2 * c_out, 3, padding=1),
                nn.InstanceNorm2d(2 * c_out, affine=True),
                act(),
            ]

        self.body = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1),  # (N, C, H, W)
            act(),
            *down(c, 2 * c),  # (N, 4C, H/2, W/2)
            *down(4 * c, 4 * c),  # (N, 8C, H/4, W/4)
            nn.Conv2d(8 * c, 8 * c, 3, padding=1),
            nn.InstanceNorm2d(8 * c, affine=True),
            act(),
        )
        self.head = nn.Conv2d(8 * c, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)  # (N, 8C, H/4, W/4)
        return self.head(x)  # (N, 1, H/4, W/4) logits
