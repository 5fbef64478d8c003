"""An independent reference for what the network computes, for the parity tests to compare with.

The product's runners all run `cartoonize.export.FrameModel` around `cartoonize.model.Generator`,
so a test that compares one runner with another measures agreement, not correctness: a wrong
scale, a lost channel swap or the wrong padding would be shared by both sides. This module
recomputes the same thing from the architecture's description (DESIGN.md) with raw tensor ops,
in float64, using none of the product's modules: `F.conv2d` with explicit reflection padding, a
hand-written biased-variance instance norm, the uint8 <-> [-1, 1] scaling and the BGR swap of the
released styles. The weights are addressed by the checkpoint's state-dict names, which are the
checkpoint format, not the code under test.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cartoonize.model import Checkpoint, GeneratorConfig, ModelIO

MULTIPLE = 4  # two stride-2 stages


def reference_generator(
    state: dict[str, torch.Tensor], config: GeneratorConfig, x: torch.Tensor
) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1], H and W multiples of 4 -> (N, 3, H, W) in [-1, 1], in float64."""
    w = {k: v.detach().to(torch.float64) for k, v in state.items()}
    x = x.to(torch.float64)
    eps = config.norm_eps

    def conv(t: torch.Tensor, name: str, stride: int = 1, pad: int = 0, reflect: int = 0) -> torch.Tensor:
        if reflect:
            t = F.pad(t, (reflect,) * 4, mode="reflect")
        return F.conv2d(t, w[f"{name}.weight"], w[f"{name}.bias"], stride=stride, padding=pad)

    def up(t: torch.Tensor, name: str) -> torch.Tensor:  # doubles H and W
        return F.conv_transpose2d(t, w[f"{name}.weight"], w[f"{name}.bias"], stride=2, padding=1,
                                  output_padding=1)  # fmt: skip

    def norm(t: torch.Tensor, name: str) -> torch.Tensor:
        mean = t.mean(dim=(2, 3), keepdim=True)
        var = ((t - mean) ** 2).mean(dim=(2, 3), keepdim=True)  # biased, as InstanceNorm2d
        t = (t - mean) / torch.sqrt(var + eps)
        return t * w[f"{name}.weight"][None, :, None, None] + w[f"{name}.bias"][None, :, None, None]

    y = F.relu(norm(conv(x, "flat.1", reflect=3), "flat.2"))  # 7x7, reflect 3
    y = F.relu(norm(conv(conv(y, "down.0", 2, 1), "down.1", 1, 1), "down.2"))  # H/2
    t = F.relu(norm(conv(conv(y, "down.4", 2, 1), "down.5", 1, 1), "down.6"))  # H/4
    for i in range(config.residual_blocks):
        r = f"residual.{i}.body"
        y = F.relu(norm(conv(t, f"{r}.1", reflect=1), f"{r}.2"))
        t = t + norm(conv(y, f"{r}.5", reflect=1), f"{r}.6")
    y = F.relu(norm(conv(up(t, "up.0"), "up.1", 1, 1), "up.2"))  # H/2
    y = F.relu(norm(conv(up(y, "up.4"), "up.5", 1, 1), "up.6"))  # H
    return torch.tanh(conv(y, "out.1", reflect=3))


def reference_frames(checkpoint: Checkpoint, frames: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) RGB -> uint8 (N, H, W, 3) RGB cartoon: any H and W (reflect-padded to a
    multiple of 4 and cropped back), the weights' channel order and value range honoured."""
    n, h, w, _ = frames.shape
    lo, hi = checkpoint.io.value_range
    x = torch.from_numpy(frames.astype(np.float64)).permute(0, 3, 1, 2)  # (N, 3, H, W) RGB, 0..255
    x = F.pad(x, (0, -w % MULTIPLE, 0, -h % MULTIPLE), mode="reflect")
    bgr = checkpoint.io.channel_order == "BGR"
    if bgr:
        x = x[:, [2, 1, 0]]
    x = lo + (hi - lo) * x / 255.0
    with torch.no_grad():
        y = reference_generator(checkpoint.state_dict, checkpoint.config, x)
    if bgr:
        y = y[:, [2, 1, 0]]
    y = ((y - lo) / (hi - lo) * 255.0).round().clamp(0, 255)[:, :, :h, :w]
    return y.permute(0, 2, 3, 1).numpy().astype(np.uint8)


def seeded_checkpoint(channel_order: str = "RGB", seed: int = 0, norm_eps: float = 1e-5) -> Checkpoint:
    """A tiny generator (8 base channels, 1 residual block) with every parameter drawn from a
    seeded generator, the norms' scale and shift included (not their 1 and 0 defaults)."""
    from cartoonize.model import Generator

    torch.manual_seed(seed)
    config = GeneratorConfig(base_channels=8, residual_blocks=1, norm_eps=norm_eps)
    generator = Generator(config)
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, torch.nn.InstanceNorm2d):
                module.weight.copy_(1 + 0.3 * torch.randn_like(module.weight))
                module.bias.copy_(0.3 * torch.randn_like(module.bias))
    io = ModelIO(channel_order=channel_order, style=f"tiny-{channel_order.lower()}")
    return Checkpoint(generator.state_dict(), config, io)
