"""`cartoonize train ...` (and `python -m train ...`): a thin Typer layer over `train.run`.

Found by the main CLI through the entry point group `cartoonize.commands` (`train = "train.cli:app"`).
Importing this module is light: torch, OpenCV and the training code load inside the commands.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cartoonize.errors import CartoonizeError
from train.config import (
    GAN_LOSSES,
    LOAD_FITS,
    POOL_UNITS,
    VGG_SOURCES,
    WEIGHT_INITS,
    TrainConfig,
    check_frame_rate,
    check_load_size,
    toml_values,
)

app = typer.Typer(
    help="Train a CartoonGAN style from a folder of photos and a folder of cartoon frames.",
    no_args_is_help=False,
    add_completion=False,
)
DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
EXIT_INTERRUPTED = 130  # the shell's code for "stopped by Ctrl-C"


def _choices(name: str, values: tuple[str, ...]) -> type[StrEnum]:
    """A Typer choice type from one of TrainConfig's tuples of allowed values (one source of truth)."""
    return StrEnum(name, [(value.replace("-", "_"), value) for value in values])  # type: ignore[return-value]


GanLoss = _choices("GanLoss", GAN_LOSSES)
LoadFit = _choices("LoadFit", LOAD_FITS)
PoolUnit = _choices("PoolUnit", POOL_UNITS)
WeightInit = _choices("WeightInit", WEIGHT_INITS)
VggSource = _choices("VggSource", VGG_SOURCES)


def _help(text: str, name: str) -> str:
    return f"{text} \\[default: {DEFAULTS[name]}]"


def _fail(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


PANEL_SCHEDULE, PANEL_RUN, PANEL_MODEL = "Schedule", "Run", "Model and losses"


@app.callback(invoke_without_command=True)
def train(
    ctx: typer.Context,
    photos: Annotated[
        Path | None, typer.Option(help="Folder of real photos (recursive), or a video file.")
    ] = None,
    cartoons: Annotated[
        Path | None, typer.Option(help="Folder of cartoon images of one style (recursive), or a video file.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder, e.g. runs/NAME.")] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            help="A TOML file of options (a run's config.toml); flags win. Relative paths in the file "
            "are read from the file's folder; those given as flags, from the current folder."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in --out exactly, with its own options (those given must match, "
            "but for --workers, --device, --sample-every and the like).",
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run in --out.")] = False,
    init_from: Annotated[
        str | None,
        typer.Option(
            help="Fine-tune a style (hayao, paprika, ...) or a checkpoint; skips the init phase.",
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    image_size: Annotated[int | None, typer.Option(help=_help("Crop size.", "image_size"))] = None,
    load_size: Annotated[
        int | None,
        typer.Option(help=_help("Scale every image to this before the crop; 0: own size.", "load_size")),
    ] = None,
    load_fit: Annotated[
        LoadFit | None,
        typer.Option(help=_help("stretch: whole image to a square; short-side: keep aspect.", "load_fit")),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help=_help("Batch size.", "batch_size"))] = None,
    steps_per_epoch: Annotated[
        int | None,
        typer.Option(help=_help("Steps per epoch; 0: one pass over the photos.", "steps_per_epoch")),
    ] = None,
    workers: Annotated[int | None, typer.Option(help=_help("Data-loading processes.", "workers"))] = None,
    seed: Annotated[int | None, typer.Option(help=_help("Seed of everything random.", "seed"))] = None,
    edge_cache: Annotated[
        Path | None,
        typer.Option(help="Edge-smoothed cartoons cache. \\[default: CARTOONS/.cartoonize-edges]"),
    ] = None,
    frame_rate: Annotated[
        float | None,
        typer.Option(help=_help("From a video: frames per second sampled.", "frame_rate")),
    ] = None,
    frame_cache: Annotated[
        Path | None,
        typer.Option(
            help="Where a video's sampled frames go. \\[default: beside it, .cartoonize-frames/NAME]"
        ),
    ] = None,
    init_epochs: Annotated[
        int | None,
        typer.Option(help=_help("Content-only epochs.", "init_epochs"), rich_help_panel=PANEL_SCHEDULE),
    ] = None,
    init_decay_epochs: Annotated[
        int | None,
        typer.Option(
            help=_help("Then init epochs of linear decay to 0.", "init_decay_epochs"),
            rich_help_panel=PANEL_SCHEDULE,
        ),
    ] = None,
    shared_adam: Annotated[
        bool | None,
        typer.Option(
            "--shared-adam/--separate-adam",
            help=_help("G's Adam state carries from init into the GAN phase.", "shared_adam"),
            rich_help_panel=PANEL_SCHEDULE,
        ),
    ] = None,
    d_first: Annotated[
        bool | None,
        typer.Option(
            "--d-first/--g-first",
            help=_help("Update D before G on each batch.", "d_first"),
            rich_help_panel=PANEL_SCHEDULE,
        ),
    ] = None,
    init_lr: Annotated[
        float | None,
        typer.Option(help=_help("Init-phase learning rate.", "init_lr"), rich_help_panel=PANEL_SCHEDULE),
    ] = None,
    adv_epochs: Annotated[
        int | None,
        typer.Option(
            help=_help("Adversarial epochs at full rate.", "adv_epochs"), rich_help_panel=PANEL_SCHEDULE
        ),
    ] = None,
    decay_epochs: Annotated[
        int | None,
        typer.Option(
            help=_help("Then epochs of linear decay.", "decay_epochs"), rich_help_panel=PANEL_SCHEDULE
        ),
    ] = None,
    lr_g: Annotated[
        float | None,
        typer.Option(help=_help("Generator learning rate.", "lr_g"), rich_help_panel=PANEL_SCHEDULE),
    ] = None,
    lr_d: Annotated[
        float | None,
        typer.Option(help=_help("Discriminator learning rate.", "lr_d"), rich_help_panel=PANEL_SCHEDULE),
    ] = None,
    beta1: Annotated[
        float | None, typer.Option(help=_help("Adam beta1.", "beta1"), rich_help_panel=PANEL_SCHEDULE)
    ] = None,
    beta2: Annotated[
        float | None, typer.Option(help=_help("Adam beta2.", "beta2"), rich_help_panel=PANEL_SCHEDULE)
    ] = None,
    base_channels: Annotated[
        int | None, typer.Option(help=_help("Generator width.", "base_channels"), rich_help_panel=PANEL_MODEL)
    ] = None,
    residual_blocks: Annotated[
        int | None,
        typer.Option(help=_help("Generator depth.", "residual_blocks"), rich_help_panel=PANEL_MODEL),
    ] = None,
    content_weight: Annotated[
        float | None,
        typer.Option(
            help=_help(
                "Content loss weight (omega): the default is the author's effective balance; "
                "10 is the paper's nominal omega with an exact gradient.",
                "content_weight",
            ),
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    gan_loss: Annotated[
        GanLoss | None, typer.Option(help=_help("Adversarial loss.", "gan_loss"), rich_help_panel=PANEL_MODEL)
    ] = None,
    pool_size: Annotated[
        int | None,
        typer.Option(help=_help("Past fakes shown to D.", "pool_size"), rich_help_panel=PANEL_MODEL),
    ] = None,
    pool_unit: Annotated[
        PoolUnit | None,
        typer.Option(
            help=_help("The pool holds batches or images.", "pool_unit"), rich_help_panel=PANEL_MODEL
        ),
    ] = None,
    weight_init: Annotated[
        WeightInit | None,
        typer.Option(
            help=_help("author: convs N(0, 0.02), norm scale U(0, 1).", "weight_init"),
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    zero_bias: Annotated[
        bool | None,
        typer.Option(
            "--zero-bias/--keep-bias",
            help=_help("Keep conv biases at 0 (the author's BiasZero).", "zero_bias"),
            rich_help_panel=PANEL_MODEL,
        ),
    ] = None,
    vgg: Annotated[
        VggSource | None,
        typer.Option(
            help=_help("VGG19 weights; random is for smoke tests only.", "vgg"), rich_help_panel=PANEL_MODEL
        ),
    ] = None,
    vgg_weights: Annotated[
        Path | None,
        typer.Option(
            help="A torchvision vgg19 state_dict (.pth), for offline machines.", rich_help_panel=PANEL_MODEL
        ),
    ] = None,
    sample_every: Annotated[
        int | None,
        typer.Option(help=_help("Sample grid every K epochs.", "sample_every"), rich_help_panel=PANEL_RUN),
    ] = None,
    sample_count: Annotated[
        int | None,
        typer.Option(help=_help("Validation photos in the grid.", "sample_count"), rich_help_panel=PANEL_RUN),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(
            help=_help("Generator snapshot every K epochs.", "checkpoint_every"), rich_help_panel=PANEL_RUN
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help=_help("auto, cpu, cuda, cuda:1, ...", "device"), rich_help_panel=PANEL_RUN),
    ] = None,
    bf16: Annotated[
        bool | None,
        typer.Option(
            "--bf16/--no-bf16", help=_help("bf16 autocast on CUDA.", "bf16"), rich_help_panel=PANEL_RUN
        ),
    ] = None,
) -> None:
    """Train a style: `--photos DIR --cartoons DIR --out runs/NAME`; or `prepare CARTOONS_DIR`."""
    if ctx.invoked_subcommand is not None:
        return
    options = {k: v for k, v in locals().items() if k not in ("ctx", "config")}
    options = {k: v.value if isinstance(v, Enum) else v for k, v in options.items()}
    options["resume"] = resume or None
    options["overwrite"] = overwrite or None
    try:
        values = toml_values(config, **options)
        if values.get("resume"):  # what is not given comes from the run itself (its last.pt)
            from train.run import resume_options

            values = resume_options(values)
        cfg = TrainConfig.from_dict(values)
        from train.run import TrainingInterrupted
        from train.run import train as run_training

        try:
            result = run_training(cfg)
        except TrainingInterrupted as stop:
            typer.echo(
                f"stopped: saved {stop.checkpoint}; continue with the same command and --resume", err=True
            )
            # the shell's code for the signal that stopped it: 130 for Ctrl-C, 143 SIGTERM, 129 SIGHUP
            raise typer.Exit(128 + stop.by if stop.by else EXIT_INTERRUPTED) from None
    except CartoonizeError as exc:
        _fail(str(exc))
    typer.echo(f"done: {result.last} (export it with `cartoonize export --model {result.last}`)")


@app.command()
def prepare(
    cartoons: Annotated[Path, typer.Argument(help="Folder of cartoon images (recursive), or a video file.")],
    edge_cache: Annotated[
        Path | None, typer.Option(help="Where to cache. \\[default: CARTOONS/.cartoonize-edges]")
    ] = None,
    load_size: Annotated[
        int, typer.Option(help="The training scale, as `train --load-size`; 0: own size.")
    ] = DEFAULTS["load_size"],
    load_fit: Annotated[
        LoadFit | None, typer.Option(help="As `train --load-fit`. \\[default: stretch]")
    ] = None,
    frame_rate: Annotated[float, typer.Option(help="From a video: as `train --frame-rate`.")] = DEFAULTS[
        "frame_rate"
    ],
    frame_cache: Annotated[Path | None, typer.Option(help="As `train --frame-cache`.")] = None,
) -> None:
    """Edge-smooth every cartoon once, at the training scale (cached beside a manifest; training reuses it)."""
    try:
        # TrainConfig's own checks of these two options: prepare builds no TrainConfig
        check_load_size(load_size)
        check_frame_rate(frame_rate)
        from rich.console import Console

        from train.data import LoadScale
        from train.run import image_folder
        from train.run import prepare as prepare_cartoons

        console = Console(stderr=True)
        folder = image_folder(cartoons, "cartoons", frame_rate, frame_cache, console)
        prepare_cartoons(
            folder,
            edge_cache,
            console,
            LoadScale(load_size, load_fit.value if load_fit else DEFAULTS["load_fit"]),
        )
    except CartoonizeError as exc:
        _fail(str(exc))
