"""The CartoonGAN generator (Chen et al., CVPR 2018) and its self-describing checkpoint format.

The whole network is in this file. Shapes are written for an input of (N, 3, H, W) with H and W
multiples of 4 (the two stride-2 stages halve them twice; the transposed convolutions restore them).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cartoonize.errors import CartoonizeError

CHECKPOINT_FORMAT = "cartoonize-checkpoint/1"


@dataclass(frozen=True)
class GeneratorConfig:
    base_channels: int = 64  # the paper's width; tests use 8 for a tiny generator
    residual_blocks: int = 8  # the paper's depth at 1/4 resolution
    norm_eps: float = 1e-5  # PyTorch's default; the released styles were trained with 1e-9


@dataclass(frozen=True)
class ModelIO:
    """What a set of weights expects at its boundary; travels with the weights everywhere."""

    channel_order: str = "RGB"  # "BGR" for the released CartoonGAN styles
    value_range: tuple[float, float] = (-1.0, 1.0)  # input and output range of the raw network
    style: str = "custom"
    licence: str = ""

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, not {self.channel_order!r}")


def _conv_norm_relu(conv: nn.Module, channels: int, eps: float) -> list[nn.Module]:
    return [conv, nn.InstanceNorm2d(channels, affine=True, eps=eps), nn.ReLU(inplace=True)]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True, eps=eps),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True, eps=eps),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """Photo in [-1, 1] (N, 3, H, W) -> cartoon in [-1, 1] (N, 3, H, W)."""

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or GeneratorConfig()
        c, eps = cfg.base_channels, cfg.norm_eps
        self.flat = nn.Sequential(nn.ReflectionPad2d(3), *_conv_norm_relu(nn.Conv2d(3, c, 7), c, eps))
        self.down = nn.Sequential(
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
            *_conv_norm_relu(nn.Conv2d(2 * c, 2 * c, 3, padding=1), 2 * c, eps),
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1),
            *_conv_norm_relu(nn.Conv2d(4 * c, 4 * c, 3, padding=1), 4 * c, eps),
        )
        self.residual = nn.Sequential(*(ResidualBlock(4 * c, eps) for _ in range(cfg.residual_blocks)))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4 * c, 2 * c, 3, stride=2, padding=1, output_padding=1),
            *_conv_norm_relu(nn.Conv2d(2 * c, 2 * c, 3, padding=1), 2 * c, eps),
            nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1),
            *_conv_norm_relu(nn.Conv2d(c, c, 3, padding=1), c, eps),
        )
        self.out = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(c, 3, 7), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flat(x)  # (N, C, H, W)
        x = self.down(x)  # (N, 4C, H/4, W/4)
        x = self.residual(x)  # (N, 4C, H/4, W/4)
        x = self.up(x)  # (N, C, H, W)
        return self.out(x)  # (N, 3, H, W) in [-1, 1]


@dataclass
class Checkpoint:
    """A generator with everything needed to rebuild and use it."""

    state_dict: dict[str, torch.Tensor]
    config: GeneratorConfig = field(default_factory=GeneratorConfig)
    io: ModelIO = field(default_factory=ModelIO)
    extra: dict[str, Any] = field(default_factory=dict)  # training state, history, ...

    def generator(self) -> Generator:
        model = Generator(self.config)
        model.load_state_dict(self.state_dict)
        return model.eval()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.state_dict,
            "config": asdict(self.config),
            "io": asdict(self.io),
            **self.extra,
        }

    def save(self, path: Path) -> None:
        """Write atomically: a crash never leaves a half-written checkpoint under `path`, and
        processes saving the same one at once (jobs that first use a style together) each write
        their own temporary file: the last rename wins, each with a whole checkpoint."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(self.to_dict(), tmp)
        tmp.replace(path)


class DamagedCheckpoint(CartoonizeError):
    """A file with the checkpoint format's mark whose contents are not what the format says
    (`what`: the first thing wrong, in a few words)."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(
            f"{path} is a damaged cartoonize checkpoint ({what}); use the file `cartoonize train` wrote, "
            "or pull a style again with `cartoonize styles pull`"
        )
        self.what = what


def load_checkpoint(path: Path) -> Checkpoint:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CartoonizeError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # torch raises many kinds for a bad file
        raise CartoonizeError(f"{path} is not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise CartoonizeError(
            f"{path} is not a cartoonize checkpoint (expected format {CHECKPOINT_FORMAT}); "
            "train one with `cartoonize train` or pull a style with `cartoonize styles pull`"
        )
    state, config, io = _checked_parts(path, raw)
    extra = {k: v for k, v in raw.items() if k not in ("format", "model", "config", "io")}
    return Checkpoint(state, config, io, extra)


def _checked_parts(
    path: Path, raw: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], GeneratorConfig, ModelIO]:
    """The weights, generator config and I/O of a checkpoint with the format's mark, each checked:
    one edited or put together by hand (an entry missing, an option this version does not know,
    weights of another size than its config says) is a one-line error here, not a KeyError or a
    load_state_dict traceback where the weights are first used."""

    def damaged(what: str) -> DamagedCheckpoint:
        return DamagedCheckpoint(path, what)

    for key in ("model", "config", "io"):
        if not isinstance(raw.get(key), dict):
            raise damaged(f"no {key!r} entry" if key not in raw else f"its {key!r} entry is not a mapping")
    try:
        config = GeneratorConfig(**raw["config"])
        io = ModelIO(**{**raw["io"], "value_range": tuple(raw["io"].get("value_range", (-1.0, 1.0)))})
    except (TypeError, ValueError) as exc:  # an unknown or missing field, a value out of its choices
        raise damaged(" ".join(str(exc).split())) from None
    if len(io.value_range) != 2:
        raise damaged(f"value_range {io.value_range} is not (low, high)")
    state = raw["model"]
    with torch.device("meta"):  # the shapes the config gives, without allocating the weights
        expected = {k: tuple(v.shape) for k, v in Generator(config).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if got != expected:
        missing, unexpected = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
        reshaped = sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])
        parts = [f"{len(names)} {what} (first: {names[0]})" for names, what in
                 ((missing, "weights missing"), (unexpected, "unknown weights"), (reshaped, "of another shape"))
                 if names]  # fmt: skip
        raise damaged(f"its weights do not fit its config {asdict(config)}: {'; '.join(parts)}")
    return state, config, io


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
