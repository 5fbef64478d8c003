"""A training run on disk: check the inputs, build the recipe, train, checkpoint, sample, resume.

runs/NAME/
  config.toml            the options (`cartoonize train --config runs/NAME/config.toml` repeats them)
  last.pt                the generator + the whole training state: `--resume` continues from it
  checkpoints/epoch_NNN.pt  generator snapshots (cartoonize checkpoints: export, video --model)
  samples/epoch_NNN.png  validation photos | generator output (epoch 000: before training)
  metrics.csv, tensorboard/  losses per step
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.utils.data import DataLoader

from cartoonize.errors import CartoonizeError
from cartoonize.model import (
    Checkpoint,
    DamagedCheckpoint,
    Generator,
    GeneratorConfig,
    ModelIO,
    load_checkpoint,
)
from train.config import TrainConfig, names_a_file
from train.data import (
    EpochPlan,
    LoadScale,
    UnpairedImages,
    center_crop,
    read_rgb,
    scale_warnings,
    scan_images,
    to_tensor,
)
from train.discriminator import Discriminator
from train.edges import EdgeSet, prepare_edges
from train.frames import FrameSampling, is_video, sample_frames
from train.loop import MetricLog, Phase, Position, Trainer, TrainingInterrupted
from train.recipe import CartoonGAN, author_init
from train.vgg import RANDOM_WARNING, VGGContent, load_vgg_content

# What a run writes, by name: --overwrite removes these and nothing else, so a user's own files in
# the run folder (another model in checkpoints/, their pictures in samples/) survive it.
RUN_FILES = ("config.toml", "last.pt", "metrics.csv")
HALF_SAVED = re.compile(r"\.last\.pt(\.\d+)?\.tmp")  # beside them: Checkpoint.save's .NAME.PID.tmp
RUN_PATTERNS = {  # subfolder: its files' names (the .tmp ones: Checkpoint.save's half-written)
    "checkpoints": re.compile(r"\.?epoch_\d{3,}\.pt((\.\d+)?\.tmp)?"),
    "samples": re.compile(r"epoch_\d{3,}\.png"),
    "tensorboard": re.compile(r"events\.out\.tfevents\..+"),
}

__all__ = ["RunResult", "TrainingInterrupted", "prepare", "resume_options", "train"]


@dataclass(frozen=True)
class RunResult:
    out: Path
    last: Path
    position: Position


def prepare(
    cartoons: Path,
    cache: Path | None = None,
    console: Console | None = None,
    scale: LoadScale | None = None,
) -> EdgeSet:
    """Edge-smooth every cartoon at the training scale (or reuse the cache), with a progress bar."""
    console = console or Console(stderr=True)
    scale = scale or LoadScale()
    columns = (TextColumn("edge smoothing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("edges", total=None)
        edges = prepare_edges(
            cartoons,
            cache,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            scale=scale,
        )
    reused = len(edges.sources) - edges.computed
    console.print(
        f"cartoons: {len(edges.sources)} ready ({edges.computed} smoothed now, {reused} from the cache"
        + (f", {edges.skipped} unreadable skipped" if edges.skipped else "")
        + f") in {(cache or cartoons / '.cartoonize-edges') / scale.key}",
        markup=False,  # paths as they are
    )
    return edges


def image_folder(source: Path, what: str, rate: float, cache: Path | None, console: Console) -> Path:
    """`source` itself, or where a video's sampled frames are (sampled now, or from the cache)."""
    if not is_video(source):
        return source
    columns = (TextColumn(f"sampling {what} from {source.name}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("frames", total=None)
        frames = sample_frames(
            source,
            cache / source.name if cache else None,
            FrameSampling(rate=rate),
            progress=lambda done, total: bar.update(task, completed=done, total=total or None),
        )
    console.print(
        f"{what}: {frames.kept} frames from {source} at {rate:g}/s ({frames.duplicates} near-duplicates, "
        f"{frames.blends} blends skipped){'' if frames.decoded else ', from the cache'} in {frames.folder}",
        markup=False,  # paths as they are
    )
    return frames.folder


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def sample_grid(photos: torch.Tensor, outputs: torch.Tensor) -> np.ndarray:
    """One row per validation photo: input | output, (N*S, 2*S, 3) uint8 RGB."""
    return np.concatenate(
        [np.concatenate(pair, axis=1) for pair in zip(to_uint8(photos), to_uint8(outputs), strict=True)]
    )


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _device(name: str) -> torch.device:
    """The device a --device names (TrainConfig has checked its form), if this machine has it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CartoonizeError(f"--device {name}: no CUDA GPU is visible to PyTorch; use --device cpu")
        if (device.index or 0) >= torch.cuda.device_count():
            raise CartoonizeError(f"--device {name}: PyTorch sees {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CartoonizeError(f"--device {name}: MPS is not available here; use --device cpu")
    return device


def run_files(out: Path) -> list[Path]:
    """The files in `out` that a run wrote (by RUN_FILES, HALF_SAVED and RUN_PATTERNS), and no others."""
    found = [out / name for name in RUN_FILES if (out / name).is_file()]
    if out.is_dir():
        found += sorted(p for p in out.iterdir() if p.is_file() and HALF_SAVED.fullmatch(p.name))
    for folder, pattern in RUN_PATTERNS.items():
        if (out / folder).is_dir():
            found += sorted(p for p in (out / folder).iterdir() if p.is_file() and pattern.fullmatch(p.name))
    return found


def worker_message(text: str) -> str:
    """The message of an error raised in a DataLoader worker, without the "Caught ... in DataLoader
    worker process N. Original Traceback ..." that PyTorch wraps it in (its last line, unprefixed)."""
    if "Original Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    name, colon, message = last.partition(": ")
    return message if colon and " " not in name else last


def _decodable(
    photos: list[Path], count: int, folder: Path, skip: Callable[[str], None]
) -> Iterator[np.ndarray]:
    """The first `count` photos that decode (the fixed validation set), skipping and reporting others."""
    found = 0
    for path in photos:
        try:
            image = read_rgb(path)
        except CartoonizeError:
            skip(str(path))
            continue
        yield image
        found += 1
        if found == count:
            return
    if not found:
        raise CartoonizeError(f"none of the {len(photos)} photos in {folder} can be decoded")


# what --resume reads from last.pt's "training" entry (each a dict), as train()'s checkpoint() writes it
RESUME_KEYS = ("config", "state", "rng", "position")
RESUME_FIX = "put back the run's own last.pt, or start the run over with --overwrite"
# what a hand-made last.pt (another file, or another run's state) raises as it is read
BAD_STATE = (AttributeError, KeyError, TypeError, ValueError, RuntimeError)


def _what_failed(exc: Exception) -> str:
    """An exception from reading a hand-made last.pt, in a few words on one line."""
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r} entry"
    text = " ".join(str(exc).split())  # load_state_dict's messages run over several lines
    return f"{type(exc).__name__}: {text[:160]}{'...' if len(text) > 160 else ''}"


def load_last(path: Path) -> Checkpoint:
    """A run's last.pt, checked for everything --resume reads from it first: a hand-made one (a
    generator snapshot or a style copied over it, a truncated or foreign file) is a one-line error
    that says what it lacks, not a KeyError deep in the resume."""
    try:
        checkpoint = load_checkpoint(path)
    except DamagedCheckpoint as exc:  # the format's mark, but not its contents
        raise CartoonizeError(
            f"cannot resume from {path}: a damaged checkpoint ({exc.what}); {RESUME_FIX}"
        ) from None
    except CartoonizeError:  # unreadable, or no cartoonize checkpoint at all
        raise CartoonizeError(
            f"cannot resume from {path}: not a readable cartoonize checkpoint (truncated, or another "
            f"kind of file); {RESUME_FIX}"
        ) from None
    except BAD_STATE as exc:  # the format's mark, but not its contents
        raise CartoonizeError(
            f"cannot resume from {path}: a damaged checkpoint ({_what_failed(exc)}); {RESUME_FIX}"
        ) from None
    training = checkpoint.extra.get("training")
    if not isinstance(training, dict) or "state" not in training:
        raise CartoonizeError(
            f"cannot resume from {path}: it holds a generator but no training state, as a snapshot "
            f"from checkpoints/ or a style does; {RESUME_FIX}"
        )
    missing = [f"training.{key}" for key in RESUME_KEYS if not isinstance(training.get(key), dict)]
    if missing:
        raise CartoonizeError(
            f"cannot resume from {path}: a damaged checkpoint (no {', '.join(missing)}); {RESUME_FIX}"
        )
    unknown = sorted(set(training["config"]) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise CartoonizeError(
            f"cannot resume from {path}: trained with option(s) this version does not know "
            f"({', '.join(unknown)}); resume it with the version that made it, or start over with --overwrite"
        )
    return checkpoint


def stored_options(checkpoint: Checkpoint) -> dict[str, Any]:
    """The options a run's last.pt (checked by load_last) was trained with, without --resume and
    --overwrite, which say how a command starts, not what it trains."""
    config = checkpoint.extra["training"]["config"]
    return {k: v for k, v in config.items() if k not in ("resume", "overwrite")}


def resume_options(values: dict[str, Any]) -> dict[str, Any]:
    """--resume: the stored run's options under those given (`values`: flags and a --config file),
    so that `--out runs/NAME --resume` alone continues it. An option given that differs from the
    run's is refused later, by train(), unless it leaves the training as it is."""
    if values.get("out") is None:
        raise CartoonizeError("--resume needs --out RUN_FOLDER (or --config RUN_FOLDER/config.toml)")
    if values.get("overwrite"):
        return values  # TrainConfig refuses the pair
    last = Path(values["out"]) / "last.pt"
    if not last.is_file():
        if all(values.get(k) is not None for k in ("photos", "cartoons")):
            return values  # _check_out says it, after the checks of --out itself
        raise CartoonizeError(
            f"nothing to resume in {values['out']} (no last.pt); drop --resume to start a run"
        )
    return {**stored_options(load_last(last)), **values}


def _check_out(config: TrainConfig) -> Checkpoint | None:
    """Refuse to mix two runs in one folder; return the checkpoint to resume from, if any. Removes
    nothing: an --overwrite clears the old run only once the new one is ready (_clear_old_run)."""
    out, last = config.out, config.out / "last.pt"
    # the nearest existing folder on the way to --out must be a folder: mkdir fails late otherwise
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise CartoonizeError(f"--out must be a folder, but {existing} is a file")
    if config.resume:
        if not last.exists():
            raise CartoonizeError(f"nothing to resume in {out} (no last.pt); drop --resume to start a run")
        return load_last(last)
    if run_files(out) and not config.overwrite and not _never_saved(out):
        raise CartoonizeError(
            f"{out} already holds a run; pass --resume to continue it or --overwrite to start over"
        )
    return None


def _never_saved(out: Path) -> bool:
    """Whether `out` holds only the start of a run that stopped before its first save (its
    config.toml, metrics.csv, first samples; no last.pt, no snapshot): nothing to resume and
    nothing to keep, so a new run starts over there. It was refused both ways: "already holds a
    run" without --resume, "nothing to resume" with it."""
    files = run_files(out)
    return bool(files) and not any(p.name == "last.pt" or p.suffix == ".pt" for p in files)


def _check_resumed_data(
    config: TrainConfig, stored: dict[str, int] | None, now: dict[str, int], console: Console
) -> None:
    """--resume with the photos or cartoons changed (`--photos` may point elsewhere, as moved
    data): an epoch of another length is refused (the resumed epoch's position is in its steps:
    a stop at step 3 of 4 resumed into epochs of 1 step logged "-2 steps"); another count of
    the same length is said, as the shuffles then differ from the run's. (`stored`: None for a
    run saved before this was recorded.)"""
    if not stored:
        return
    if stored["steps_per_epoch"] != now["steps_per_epoch"]:
        raise CartoonizeError(
            f"{config.out} was trained on {stored['photos']} photos, {stored['steps_per_epoch']} steps an "
            f"epoch; these {now['photos']} photos make {now['steps_per_epoch']}: resume with the run's photos"
        )
    changed = [
        f"{now[k]} {k} (the run had {stored[k]})" for k in ("photos", "cartoons") if stored[k] != now[k]
    ]
    if changed:
        console.print(
            f"warning: {' and '.join(changed)}: the resumed epochs shuffle these, not the run's", markup=False
        )


def _clear_old_run(out: Path, console: Console) -> None:
    """--overwrite: remove the old run's files (only those a run writes), then its emptied folders."""
    for path in run_files(out):
        path.unlink()
    kept = []
    for folder in RUN_PATTERNS:
        if (out / folder).is_dir():
            kept += [p for p in (out / folder).rglob("*") if p.is_file()]
            if not any((out / folder).iterdir()):
                (out / folder).rmdir()
    if kept:
        console.print(
            f"--overwrite kept {len(kept)} file(s) that are not the run's, e.g. {kept[0]}", markup=False
        )


def _initial_generator(config: TrainConfig) -> tuple[Generator, ModelIO]:
    if config.init_from is None:
        gen_config = GeneratorConfig(
            base_channels=config.base_channels, residual_blocks=config.residual_blocks
        )
        return Generator(gen_config), ModelIO(style=config.out.name)
    path = Path(config.init_from)
    if not path.exists():
        if names_a_file(config.init_from):
            raise CartoonizeError(f"--init-from: checkpoint not found: {path}")
        from cartoonize.styles import style_checkpoint

        path = style_checkpoint(config.init_from)  # a style name: pulled and cached on first use
    source = load_checkpoint(path)
    # keep the weights' own boundary (a released style takes BGR) and architecture (eps 1e-9)
    io = replace(source.io, style=f"{config.out.name} (fine-tuned from {source.io.style})")
    return source.generator().train(), io


def _say_ignored_architecture(config: TrainConfig, built: GeneratorConfig, console: Console) -> None:
    """--init-from brings its own architecture: a --base-channels or --residual-blocks given
    beside it (other than the defaults) was ignored without a word."""
    defaults = TrainConfig(photos=Path(), cartoons=Path(), out=Path())
    for name in ("base_channels", "residual_blocks"):
        given, used = getattr(config, name), getattr(built, name)
        if given != getattr(defaults, name) and given != used:
            flag = "--" + name.replace("_", "-")
            console.print(
                f"warning: {flag} {given} is ignored: --init-from's network has {used}", markup=False
            )


def _content_network(config: TrainConfig, console: Console) -> VGGContent:
    """The frozen VGG19 of the content loss, as --vgg and --vgg-weights say (a one-line error where
    the weights cannot be had)."""
    if config.vgg == "random" and config.vgg_weights is None:
        console.print(f"[bold red]warning:[/] {RANDOM_WARNING}")
    elif config.vgg == "random":  # the weights win: said, not done without a word
        console.print(
            f"warning: --vgg random is ignored: the content loss uses {config.vgg_weights}",
            markup=False,
            soft_wrap=True,  # one line, however long the path
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said once above, in red
        return load_vgg_content(config.vgg, config.vgg_weights, seed=config.seed)


def _say_scale_costs(paths: list[Path], what: str, config: TrainConfig, console: Console) -> None:
    """Once a run: how many pictures the load scale upscales or squashes (data.scale_warnings)."""
    for line in scale_warnings(paths, config.load_scale, config.image_size, what):
        console.print(f"warning: {line}", markup=False, soft_wrap=True)  # one line, however long the path


def train(config: TrainConfig, *, should_stop=None, console: Console | None = None) -> RunResult:
    """Train (or resume) the run described by `config`; raise TrainingInterrupted after a stop."""
    console = console or Console(stderr=True)
    # every check comes before the first file is written or removed: a typo in --photos or a
    # --device this machine lacks must not cost an --overwrite'd run
    resume_from = _check_out(config)
    device = _device(config.device)
    if resume_from is not None:
        saved_config = TrainConfig.from_dict(stored_options(resume_from))
        changed = config.differences(saved_config)
        if changed:
            listing = ", ".join(f"{k}={getattr(saved_config, k)!r}" for k in changed)
            raise CartoonizeError(
                f"{config.out} was trained with {listing}; resume with the same options, or leave "
                "them out: --resume takes the run's own"
            )
        # what may differ (RESUMABLE_CHANGES: where the files are, workers, device, samples) is this
        # command's; everything else is the run's, equal up to how a path is written
        config = replace(config, resume=True, overwrite=False)
    # before the long work (frames sampled from a video, cartoons edge-smoothed): a missing or
    # unreadable --vgg-weights, or weights that cannot be fetched, is said at once, not minutes in
    vgg = _content_network(config, console)

    photos_dir = image_folder(config.photos, "photos", config.frame_rate, config.frame_cache, console)
    cartoons_dir = image_folder(config.cartoons, "cartoons", config.frame_rate, config.frame_cache, console)
    # --out may lie inside --photos: the samples it writes there are no photos
    photos, skipped = scan_images(photos_dir, "photos", skip=(config.out,))
    console.print(f"photos: {len(photos)}" + (f" ({skipped} unreadable skipped)" if skipped else ""))
    _say_scale_costs(photos, "photos", config, console)
    if len(photos) < config.batch_size:
        raise CartoonizeError(
            f"only {len(photos)} photo(s) in {config.photos}: fewer than one batch of {config.batch_size}; "
            "add photos or lower --batch-size"
        )
    edge_cache = config.edge_cache or cartoons_dir / ".cartoonize-edges"
    edges = prepare(cartoons_dir, edge_cache, console, config.load_scale)
    if len(edges.sources) < config.batch_size:
        raise CartoonizeError(
            f"only {len(edges.sources)} cartoon(s) in {config.cartoons}: fewer than one batch of "
            f"{config.batch_size}; add cartoons or lower --batch-size"
        )
    _say_scale_costs(edges.sources, "cartoons", config, console)

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    _seed_everything(config.seed)
    if resume_from is not None:
        generator, io = Generator(resume_from.config), resume_from.io
    else:
        generator, io = _initial_generator(config)
        _say_ignored_architecture(config, generator.config, console)
    discriminator = Discriminator()
    if config.weight_init == "author" and resume_from is None:  # a resumed run loads its weights
        if config.init_from is None:
            author_init(generator)
        author_init(discriminator)
    recipe = CartoonGAN(config, generator, discriminator, vgg, io, device)
    phases = recipe.phases(skip_init=config.init_from is not None)

    position = Position()
    if resume_from is not None:
        stored = resume_from.extra["training"]
        try:
            recipe.load_state_dict(stored["state"], resume_from.state_dict)
            _set_rng_state(stored["rng"])
            position = Position(**stored["position"])
        except BAD_STATE as exc:  # all there (load_last checked), but not this run's state
            raise CartoonizeError(
                f"cannot resume from {config.out / 'last.pt'}: its training state does not fit the "
                f"run ({_what_failed(exc)}); {RESUME_FIX}"
            ) from None
        console.print(
            f"resuming {config.out} at epoch {position.epoch + 1}, step {position.step}", markup=False
        )
    else:
        if config.overwrite:  # the new run has passed every check: only now does the old one go
            _clear_old_run(config.out, console)
        elif _never_saved(config.out):
            console.print(
                f"{config.out}: the run there stopped before its first save; starting over",
                markup=False,
                soft_wrap=True,
            )
            _clear_old_run(config.out, console)
        config.out.mkdir(parents=True, exist_ok=True)
        (config.out / "config.toml").write_text(config.to_toml())

    steps = config.steps_per_epoch or len(photos) // config.batch_size
    data = {"photos": len(photos), "cartoons": len(edges.sources), "steps_per_epoch": steps}
    if resume_from is not None:
        _check_resumed_data(config, resume_from.extra["training"].get("data"), data, console)
    plan = EpochPlan(len(photos), len(edges.sources), config.batch_size, steps, config.seed)
    loader = DataLoader(
        UnpairedImages(photos, edges.scaled, edges.smoothed, config.image_size, config.load_scale),
        batch_sampler=plan,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
    )

    undecodable: set[str] = set()  # files that passed the scan but failed to decode: warned once each

    def skip(path: str) -> None:
        if path not in undecodable:
            undecodable.add(path)
            console.print(
                f"warning: {path} cannot be decoded: skipped, the next image stands in",
                markup=False,
                soft_wrap=True,  # one line, however long the path
            )

    def batches(epoch: int, first: int) -> Iterator[dict[str, torch.Tensor]]:
        plan.set_epoch(epoch, first)
        try:
            for batch in loader:
                for paths in batch.pop("skipped"):
                    for path in filter(None, paths.split("\n")):
                        skip(path)
                yield batch
        except CartoonizeError as exc:  # from a worker, wrapped with its traceback: one line again
            raise CartoonizeError(worker_message(str(exc))) from None

    validation = torch.stack(
        [
            to_tensor(center_crop(config.load_scale(image), config.image_size))
            for image in _decodable(photos, config.sample_count, config.photos, skip)
        ]
    )
    log = MetricLog(config.out, list(CartoonGAN.METRICS), resume_step=position.step)

    def write_samples(epoch: int, step: int) -> None:
        grid = sample_grid(validation, recipe.generate(validation))
        path = config.out / "samples" / f"epoch_{epoch:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        log.image("samples", grid, step)

    def checkpoint(position: Position, phase: Phase, full: bool) -> Checkpoint:
        training: dict[str, Any] = {
            "config": config.located(),  # absolute paths: `--resume` finds them from any folder
            "position": {"epoch": position.epoch, "batch": position.batch, "step": position.step},
            "phase": phase.name,
            "data": data,  # what the epochs were made of, for --resume to compare
        }
        if full:
            training |= {"state": recipe.state_dict(), "rng": _rng_state()}
        state = {k: v.detach().cpu() for k, v in recipe.generator.state_dict().items()}
        return Checkpoint(state, recipe.generator.config, io, {"training": training})

    total = sum(p.epochs for p in phases)

    def on_epoch_end(position: Position, phase: Phase) -> None:
        checkpoint(position, phase, full=True).save(config.out / "last.pt")
        if position.epoch % config.checkpoint_every == 0 or position.epoch == total:
            checkpoint(position, phase, full=False).save(
                config.out / "checkpoints" / f"epoch_{position.epoch:03d}.pt"
            )
        if position.epoch % config.sample_every == 0 or position.epoch == total:
            write_samples(position.epoch, position.step)

    def on_stop(position: Position, phase: Phase) -> Path:
        last = config.out / "last.pt"
        checkpoint(position, phase, full=True).save(last)
        return last

    if resume_from is None:
        write_samples(0, 0)
    trainer = Trainer(
        phases,
        batches,
        steps,
        log,
        on_epoch_end,
        on_stop,
        should_stop=should_stop or (lambda position: False),
        console=console,
    )
    console.print(
        f"training on {device}: {steps} step{'' if steps == 1 else 's'} of {config.batch_size} per epoch; "
        + ", ".join(f"{p.name} {p.epochs}" for p in phases)
        + " epochs"
    )
    try:
        position = trainer.run(position)
    finally:
        log.close()
    if position.epoch == total and resume_from is None and total == 0:
        on_epoch_end(position, phases[-1])  # nothing to train: still leave a usable last.pt
    return RunResult(config.out, config.out / "last.pt", position)
