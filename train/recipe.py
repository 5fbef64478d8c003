"""The CartoonGAN recipe: its networks, optimizers and the two kinds of training step.

Phases "init" and "init_decay": G learns to reconstruct photos (content loss only). Phase
"adversarial" (and its "decay" tail), D updated before G on each batch: D learns real cartoon -> 1, edge-smoothed cartoon -> 0, G(photo) -> 0 (through a pool
of past fakes); G learns to fool D while keeping the photo's VGG content.

Images come from the data in RGB; a generator with BGR weights (the released styles) gets and gives
BGR, so batches are put in the generator's channel order once, at the top of each step.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cartoonize.model import Generator, ModelIO
from train.config import TrainConfig
from train.discriminator import Discriminator
from train.loop import Phase
from train.losses import AdversarialLoss, ContentLoss, FakePool
from train.vgg import VGGContent

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


@torch.no_grad()
def author_init(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """The author's weights_init: convs N(0, 0.02) with zero bias; instance-norm scale uniform(0, 1)
    and zero shift (texture_nets' InstanceNormalization, which the author's code uses)."""
    for m in module.modules():
        if isinstance(m, CONVS):
            m.weight.normal_(0.0, 0.02, generator=generator)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.InstanceNorm2d) and m.affine:
            m.weight.uniform_(0.0, 1.0, generator=generator)
            m.bias.zero_()


@torch.no_grad()
def zero_biases(*modules: nn.Module) -> None:
    """The author's util.BiasZero: every conv's bias back to 0."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, CONVS) and m.bias is not None:
                m.bias.zero_()


@dataclass
class CartoonGAN:
    config: TrainConfig
    generator: Generator
    discriminator: Discriminator
    vgg: VGGContent
    io: ModelIO
    device: torch.device

    def __post_init__(self) -> None:
        cfg, betas = self.config, (self.config.beta1, self.config.beta2)
        self.generator.to(self.device).train()
        self.discriminator.to(self.device).train()
        self.vgg.to(self.device)
        self.content = ContentLoss(self.vgg, cfg.content_weight, self.io.channel_order)
        self.adversarial = AdversarialLoss(cfg.gan_loss)
        self.pool = FakePool(cfg.pool_size, cfg.seed, cfg.pool_unit)
        self.opt_init = torch.optim.Adam(self.generator.parameters(), lr=cfg.init_lr, betas=betas)
        if cfg.shared_adam:  # the author's one optimStateG: init's moments carry into the GAN phase
            self.opt_g = self.opt_init
        else:
            self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr_d, betas=betas)
        use_bf16 = cfg.bf16 and self.device.type == "cuda"
        self.autocast = (lambda: torch.autocast("cuda", torch.bfloat16)) if use_bf16 else nullcontext

    def phases(self, skip_init: bool) -> list[Phase]:
        cfg = self.config
        init, init_decay = (0, 0) if skip_init else (cfg.init_epochs, cfg.init_decay_epochs)
        # the decays change only the rate: their losses continue the curves of the phase they decay
        return [
            Phase("init", init, self.init_step, lambda k: self._set_init_lr(1.0)),
            Phase("init_decay", init_decay, self.init_step, self._init_decay, section="init"),
            Phase("adversarial", cfg.adv_epochs, self.adversarial_step, lambda k: self._set_lr(1.0)),
            Phase("decay", cfg.decay_epochs, self.adversarial_step, self._decay, section="adversarial"),
        ]

    # Linear decay as the author's UpdateLearningRate: decay epoch k of N (from 0) runs at
    # (1 - k/N) of the rate, so 1 at the first decay epoch, 1/N at the last, 0 after it.
    def _set_init_lr(self, factor: float) -> None:
        for group in self.opt_init.param_groups:
            group["lr"] = self.config.init_lr * factor

    def _init_decay(self, k: int) -> None:
        self._set_init_lr(1.0 - k / self.config.init_decay_epochs)

    def _set_lr(self, factor: float) -> None:
        for group in self.opt_g.param_groups:
            group["lr"] = self.config.lr_g * factor
        for group in self.opt_d.param_groups:
            group["lr"] = self.config.lr_d * factor

    def _decay(self, k: int) -> None:
        self._set_lr(1.0 - k / self.config.decay_epochs)

    def _zero_biases(self, net: nn.Module) -> None:  # right after each step: no forward sees a bias
        if self.config.zero_bias:
            zero_biases(net)

    def _to_model(self, image: torch.Tensor) -> torch.Tensor:
        image = image.to(self.device, non_blocking=True)
        return image.flip(1) if self.io.channel_order == "BGR" else image

    def init_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        photo = self._to_model(batch["photo"])  # (N, 3, S, S)
        with self.autocast():
            loss = self.content(photo, self.generator(photo))
        self.opt_init.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_init.step()
        self._zero_biases(self.generator)
        return {"content": loss.item(), "lr_g": self.opt_init.param_groups[0]["lr"]}

    def adversarial_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        photo, cartoon, smoothed = (self._to_model(batch[k]) for k in ("photo", "cartoon", "smoothed"))
        with self.autocast():
            fake = self.generator(photo)  # (N, 3, S, S)
        if self.config.d_first:  # the author's order: D learns on this batch, then G fools the new D
            d_metrics = self._d_step(cartoon, smoothed, fake)
            g_metrics = self._g_step(photo, fake)
        else:
            g_metrics = self._g_step(photo, fake)
            d_metrics = self._d_step(cartoon, smoothed, fake)
        return {
            **g_metrics,
            **d_metrics,
            "lr_g": self.opt_g.param_groups[0]["lr"],
            "lr_d": self.opt_d.param_groups[0]["lr"],
        }

    def _g_step(self, photo: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """G: fool D (its fakes labelled real), keep the photo's content."""
        D = self.discriminator
        D.requires_grad_(False)
        with self.autocast():
            g_adv = self.adversarial(D(fake), real=True)
            content = self.content(photo, fake)
        self.opt_g.zero_grad(set_to_none=True)
        (g_adv + content).backward()
        self.opt_g.step()
        self._zero_biases(self.generator)
        D.requires_grad_(True)
        return {"content": content.item(), "g_adv": g_adv.item()}

    def _d_step(self, cartoon: torch.Tensor, smoothed: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """D: real cartoons -> 1; edge-smoothed cartoons and fakes (new and pooled) -> 0."""
        D, adv = self.discriminator, self.adversarial
        with self.autocast():
            d_real = adv(D(cartoon), real=True)
            d_edge = adv(D(smoothed), real=False)
            d_fake = adv(D(self.pool.query(fake)), real=False)  # the pool hands back detached fakes
        self.opt_d.zero_grad(set_to_none=True)
        (d_real + d_edge + d_fake).backward()
        self.opt_d.step()
        self._zero_biases(self.discriminator)
        return {"d_real": d_real.item(), "d_edge": d_edge.item(), "d_fake": d_fake.item()}

    METRICS = ("content", "g_adv", "d_real", "d_edge", "d_fake", "lr_g", "lr_d")

    @torch.no_grad()
    def generate(self, photos_rgb: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [-1, 1] -> G's output, RGB, one image at a time in eval mode, fp32."""
        self.generator.eval()
        try:
            out = [self.generator(self._to_model(p[None])) for p in photos_rgb]
        finally:
            self.generator.train()
        out = torch.cat(out).float().cpu()
        return out.flip(1) if self.io.channel_order == "BGR" else out

    def state_dict(self) -> dict[str, Any]:
        return {
            "discriminator": self.discriminator.state_dict(),
            "opt_init": self.opt_init.state_dict(),
            "opt_g": None if self.opt_g is self.opt_init else self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "pool": self.pool.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], generator_state: dict[str, torch.Tensor]) -> None:
        self.generator.load_state_dict(generator_state)
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_init.load_state_dict(state["opt_init"])
        if self.opt_g is not self.opt_init:
            self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.pool.load_state_dict(state["pool"], self.device)
