"""Everything a training run needs to know, in one frozen dataclass (no globals, no argparse soup).

Defaults are the first author's recipe (FlyingGoblin/CartoonGAN; see ../shared/DESIGN.md,
"Training recipe"). A `TrainConfig` can come from Typer options, from a TOML file, or both (options
win). It imports nothing heavy: the CLI builds one at `--help` speed.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from cartoonize.errors import CartoonizeError

GAN_LOSSES = ("lsgan", "bce")
VGG_SOURCES = ("imagenet", "random")
POOL_UNITS = ("batch", "image")
WEIGHT_INITS = ("author", "pytorch")
LOAD_FITS = ("stretch", "short-side")
# Options that may differ between a run and its `--resume` without changing what is computed.
RESUMABLE_CHANGES = frozenset(
    {
        "photos",
        "cartoons",
        "out",
        "resume",
        "overwrite",
        "workers",
        "device",
        "edge_cache",
        "frame_cache",
        "vgg_weights",
        "sample_every",  # the sample grids and snapshots are read from the model, never fed back
        "sample_count",
        "checkpoint_every",
    }
)


# the options that are paths: relative in a config file, they are read from the file's own folder
PATH_OPTIONS = ("photos", "cartoons", "out", "edge_cache", "frame_cache", "vgg_weights")


def names_a_file(init_from: str) -> bool:
    """Whether an --init-from names a checkpoint file (a suffix, or a folder in it), not a style."""
    return bool(Path(init_from).suffix) or "/" in init_from


# "auto", "cpu", "cuda", "cuda:N" or "mps": what torch.device takes and the run can check up front
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def check_load_size(load_size: int) -> None:
    """Shared by `train` and `train prepare`, which takes the same scale."""
    if load_size < 0:
        raise CartoonizeError(f"--load-size cannot be negative, not {load_size}")


def check_frame_rate(frame_rate: float) -> None:
    """Shared by `train` and `train prepare`: the sampler steps through a video by 1 / rate seconds,
    so 0 divides by zero and a negative or infinite rate never moves forward."""
    if not (frame_rate > 0 and math.isfinite(frame_rate)):
        raise CartoonizeError(f"--frame-rate must be a number of frames per second above 0, not {frame_rate}")


def _expected(hint: Any) -> tuple[tuple[type, ...], str]:
    """The TOML value types a field of this annotation takes, and their name for an error."""
    kinds = {t for t in getattr(hint, "__args__", (hint,)) if t is not type(None)}  # X | None: X
    if kinds == {bool}:
        return (bool,), "true or false"
    if kinds == {int}:
        return (int,), "an integer"
    if kinds == {float}:
        return (int, float), "a number"
    return (str,), "a string"  # str and Path


_TOML_KINDS: dict[type, str] = {list: "list", dict: "table"}


def _check_types(values: dict[str, Any], source: Path) -> dict[str, Any]:
    """Each value of a config file has its field's type, else one error naming the key and the file.
    Checked here, not left to the dataclass: "16" would fail later as a traceback, and a string
    "false" is truthy, so `zero_bias = "false"` would silently mean true."""
    hints = get_type_hints(TrainConfig)
    checked = dict(values)
    for key, value in values.items():
        if key not in hints:
            continue  # from_dict names the unknown keys
        allowed, name = _expected(hints[key])
        # bool is an int subclass in Python, but `batch_size = true` is no number
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            if isinstance(value, bool):
                shown = "true" if value else "false"  # as the file wrote it
            elif isinstance(value, str | int | float):
                shown = repr(value)
            else:
                shown = f"a {_TOML_KINDS.get(type(value), 'date or time')}"
            raise CartoonizeError(f"{source}: {key} must be {name}, not {shown}")
        if float in allowed:
            checked[key] = float(values[key])  # 2 means 2.0: TOML writes no ".0" for you
    return checked


def _is_path(key: str, value: Any) -> bool:
    """Whether an option's value names a file or folder: a path option, or a checkpoint --init-from."""
    return isinstance(value, str) and (key in PATH_OPTIONS or (key == "init_from" and names_a_file(value)))


@dataclass(frozen=True)
class TrainConfig:
    photos: Path  # a folder of real photos, searched recursively, or a video file
    cartoons: Path  # a folder of cartoon images (frames of one style), searched recursively, or a video
    out: Path  # the run folder: checkpoints, samples, metrics

    # data
    image_size: int = 256  # the paper's crop; H and W must divide by 4
    # every image is scaled to this before the random crop: the author's loadSize = 256 with a
    # 256 crop, so each crop is the whole frame (a 256 crop of a 1080p frame is 3 % of it); 0: crop
    # the images at their own resolution
    load_size: int = 256
    # "stretch": the whole image to load_size x load_size, as the author's image.scale (aspect
    # distorted); "short-side": the short side to load_size, aspect kept, a random window across
    load_fit: str = "stretch"
    batch_size: int = 8  # the author's batch
    steps_per_epoch: int = 0  # 0: one pass over the photos per epoch
    workers: int = 2  # data-loading processes; 0 loads in the training process
    seed: int = 0  # data order, crops, flips, initial weights and the fake pool all follow it
    edge_cache: Path | None = None  # None: <cartoons>/.cartoonize-edges
    # from a video: frames per second of video kept (before near-duplicates and blends are dropped)
    frame_rate: float = 2.0
    # where a video's sampled frames go; None: <video folder>/.cartoonize-frames/<video name>
    # (for --photos and --cartoons both: each video gets its own subfolder, named after it)
    frame_cache: Path | None = None

    # generator
    base_channels: int = 64  # the paper's width; 8 makes a tiny generator for tests
    residual_blocks: int = 8  # the paper's depth
    init_from: str | None = None  # a style name or a checkpoint: fine-tune it, skip the init phase

    # schedule
    init_epochs: int = 10  # content loss only: G learns to reconstruct photos first
    # then this many init epochs with the rate going linearly to 0 (the author's init_niter_decay:
    # 10 + 10, each decay epoch k of N at init_lr * (1 - k/N), as train.lua's UpdateLearningRate)
    init_decay_epochs: int = 10
    init_lr: float = 2e-4  # the author's initialization learning rate
    # one Adam for G through both phases, its moments carried from init into the GAN phase (the
    # author's single optimStateG); False: a fresh Adam for the GAN phase
    shared_adam: bool = True
    adv_epochs: int = 100  # adversarial epochs at full learning rate
    decay_epochs: int = 100  # then this many with the learning rate going linearly towards 0
    lr_g: float = 1e-5  # the author's adversarial learning rates: small, the GAN is fragile
    lr_d: float = 1e-5
    beta1: float = 0.5  # Adam betas of the GAN literature since DCGAN
    beta2: float = 0.999

    # losses
    # omega, set to the author's *effective* balance, not the 10 written in the paper and their code:
    # their content gradient passes VGG_postprocess, whose backward divides by 127.5 where its forward
    # multiplied (1/16256 of the chain rule). `python -m train.balance` measures, at G's output, the
    # content gradient against the adversarial one in their formulation and in ours, with the same
    # VGG19 weights: at 256 px ours is R = 349x theirs at equal omega (346-352 over three random
    # VGG/D pairs), so omega = 10 / 349 = 0.029 keeps their balance. `--content-weight 10` is the
    # paper's nominal setting with an exact gradient (ports that do it report no cartoon style).
    content_weight: float = 0.029
    gan_loss: str = "lsgan"  # the author's code uses least squares; "bce" is the paper's log-loss
    pool_size: int = 50  # D also sees up to 50 past fakes (Shrivastava et al.), steadier training
    # what the pool holds: whole batches, as the author's util/image_pool.lua (Query swaps the batch
    # tensor whole); "image": one entry per image, as CycleGAN's PyTorch port
    pool_unit: str = "batch"
    # update D before G on each batch, as the author's OptimizeParameters (optim.adam on fDx, then fGx)
    d_first: bool = True
    # "author": convs N(0, 0.02), instance-norm scale uniform(0, 1) and shift 0 (the author's
    # weights_init and texture_nets' InstanceNormalization); "pytorch": PyTorch's default init
    weight_init: str = "author"
    # keep every conv bias at 0, as the author's util.BiasZero before each step (the released
    # styles' biases are all below 3e-7: one Adam step's worth); before instance norm a bias does
    # nothing, and it is the only bias left on G's output conv and D's head
    zero_bias: bool = True
    vgg: str = "imagenet"  # "random" only for smoke tests: its content loss means nothing
    vgg_weights: Path | None = None  # a torchvision vgg19 state_dict (.pth), for offline machines

    # run
    sample_every: int = 1  # write a sample grid every K epochs (and once before training)
    sample_count: int = 4  # validation photos in the grid: the first ones by file name
    checkpoint_every: int = 1  # keep a generator snapshot every K epochs (last.pt is always written)
    device: str = "auto"  # "auto": CUDA when available, else CPU
    bf16: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    resume: bool = False  # continue the run in `out` exactly where it stopped
    overwrite: bool = False  # replace the run in `out`

    def __post_init__(self) -> None:
        for name in PATH_OPTIONS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.image_size % 4 or self.image_size < 16:
            raise CartoonizeError(
                f"--image-size must be a multiple of 4 and at least 16, not {self.image_size}"
            )
        if self.load_size and self.load_size < self.image_size:
            raise CartoonizeError(
                f"--load-size {self.load_size} is smaller than the {self.image_size} crop: "
                "use at least --image-size, or 0 for the images' own size"
            )
        check_load_size(self.load_size)
        if self.load_fit not in LOAD_FITS:
            raise CartoonizeError(f"--load-fit must be one of {', '.join(LOAD_FITS)}, not {self.load_fit!r}")
        if self.batch_size < 1:
            raise CartoonizeError(f"--batch-size must be at least 1, not {self.batch_size}")
        counts = (
            self.init_epochs,
            self.init_decay_epochs,
            self.adv_epochs,
            self.decay_epochs,
            self.steps_per_epoch,
        )
        if min(counts) < 0:
            raise CartoonizeError("epoch and step counts cannot be negative")
        if self.gan_loss not in GAN_LOSSES:
            raise CartoonizeError(f"--gan-loss must be one of {', '.join(GAN_LOSSES)}, not {self.gan_loss!r}")
        if self.vgg not in VGG_SOURCES:
            raise CartoonizeError(f"--vgg must be one of {', '.join(VGG_SOURCES)}, not {self.vgg!r}")
        check_frame_rate(self.frame_rate)
        if self.workers < 0:
            raise CartoonizeError(
                f"--workers must be 0 (load in the training process) or more, not {self.workers}"
            )
        for name in ("beta1", "beta2"):  # Adam's own bounds, checked before any file is touched
            if not 0 <= getattr(self, name) < 1:
                raise CartoonizeError(f"--{name} must be at least 0 and below 1, not {getattr(self, name)}")
        for name in ("init_lr", "lr_g", "lr_d"):
            if not getattr(self, name) >= 0:
                raise CartoonizeError(
                    f"--{name.replace('_', '-')} cannot be negative, not {getattr(self, name)}"
                )
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise CartoonizeError(f"--device must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}")
        if self.pool_size < 0:
            raise CartoonizeError(f"--pool-size must be 0 (no pool) or more, not {self.pool_size}")
        for name, allowed in (("pool_unit", POOL_UNITS), ("weight_init", WEIGHT_INITS)):
            if getattr(self, name) not in allowed:
                raise CartoonizeError(
                    f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}"
                )
        if self.resume and self.overwrite:
            raise CartoonizeError("--resume and --overwrite contradict each other: pick one")
        if min(self.sample_every, self.checkpoint_every, self.sample_count) < 1:
            raise CartoonizeError("--sample-every, --sample-count and --checkpoint-every must be at least 1")

    @property
    def load_scale(self):  # -> train.data.LoadScale (imported here: this module stays light)
        from train.data import LoadScale

        return LoadScale(self.load_size, self.load_fit)

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (paths as strings): fits TOML, JSON and a weights-only checkpoint."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CartoonizeError(f"unknown training option(s): {', '.join(unknown)}")
        missing = [f.name for f in fields(cls) if f.default is MISSING and values.get(f.name) is None]
        if missing:
            raise CartoonizeError(f"missing training option(s): {', '.join('--' + m for m in missing)}")
        return cls(**values)

    @classmethod
    def from_toml(cls, path: Path | None, **overrides: Any) -> TrainConfig:
        """Values from a TOML file (flat keys, as in a run's config.toml), then `overrides` on top.
        A relative path in the file is read from the file's folder, wherever the command runs;
        one in `overrides` (a flag) stays relative to the current folder."""
        return cls.from_dict(toml_values(path, **overrides))

    def located(self) -> dict[str, Any]:
        """`to_dict()` with every path absolute (a checkpoint --init-from too): the same files read
        from any folder, as a config file beside the run must name them."""
        values = self.to_dict()
        for key, value in values.items():
            if _is_path(key, value):
                values[key] = str(Path(value).absolute())
        return values

    def to_toml(self) -> str:
        lines = [
            "# cartoonize training config: `cartoonize train --config THIS_FILE` repeats the run",
            "# (a relative path in a config file is read from the file's folder)",
        ]
        for key, value in self.located().items():
            if value is None or key in ("resume", "overwrite"):
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, int | float):
                text = repr(value)
            else:
                text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            lines.append(f"{key} = {text}")
        return "\n".join(lines) + "\n"

    def differences(self, other: TrainConfig) -> list[str]:
        """Options that change the computation and differ from `other` (for --resume). A checkpoint
        --init-from is compared as a location: the run's config.toml names it absolute."""
        mine, theirs = self.located(), other.located()
        return [k for k in mine if k not in RESUMABLE_CHANGES and mine[k] != theirs[k]]

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)


def toml_values(path: Path | None, **overrides: Any) -> dict[str, Any]:
    """TrainConfig.from_toml's values before they make a config: the file's (its relative paths
    read from its folder), then the `overrides` that are not None."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(Path(path).read_bytes().decode())
        except FileNotFoundError:
            raise CartoonizeError(f"config file not found: {path}") from None
        except IsADirectoryError:
            raise CartoonizeError(f"--config must be a TOML file, not a folder: {path}") from None
        except OSError as exc:
            raise CartoonizeError(f"cannot read config file {path} ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise CartoonizeError(f"{path} is not a TOML file (not UTF-8 text)") from None
        except tomllib.TOMLDecodeError as exc:
            raise CartoonizeError(f"{path} is not valid TOML ({exc})") from None
        values = _check_types(values, Path(path))
        folder = Path(path).parent
        for key, value in values.items():
            if _is_path(key, value):
                values[key] = str(folder / value)  # an absolute value stays as it is
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values
