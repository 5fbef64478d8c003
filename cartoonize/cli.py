"""The `cartoonize` command line. Each command parses options, builds a frozen job and calls one
library function; heavy imports (torch, av, onnxruntime) happen inside the commands so `--help`
answers at once."""

from __future__ import annotations

import contextlib
import errno
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cartoonize import __version__
from cartoonize.errors import CartoonizeError, Terminated

LISTING_WIDTH = 1000  # columns a listing may take outside a terminal: its cells are never cut

app = typer.Typer(
    name="cartoonize",
    help="Turn photos, videos and a live webcam into cartoons (CartoonGAN), on an NVIDIA GPU or the CPU.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
styles_app = typer.Typer(help="List and download the pretrained CartoonGAN styles.", no_args_is_help=True)
app.add_typer(styles_app, name="styles")
engines_app = typer.Typer(
    help="The engine store: compiled engines and what they were built for.", no_args_is_help=True
)
app.add_typer(engines_app, name="engines")
models_app = typer.Typer(
    help="Third-party ONNX cartoonizers, wrapped to run wherever a style does (`--style NAME`).",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class ExportPrecision(StrEnum):
    fp32 = "fp32"
    fp16 = "fp16"


class Layout(StrEnum):
    nhwc = "nhwc"
    nchw = "nchw"


class ValueRange(StrEnum):
    minus_one_one = "-1,1"
    zero_one = "0,1"
    zero_255 = "0,255"


class Channels(StrEnum):
    rgb = "rgb"
    bgr = "bgr"


class Preset(StrEnum):  # x264's and x265's speed presets, fastest first
    ultrafast = "ultrafast"
    superfast = "superfast"
    veryfast = "veryfast"
    faster = "faster"
    fast = "fast"
    medium = "medium"
    slow = "slow"
    slower = "slower"
    veryslow = "veryslow"
    placebo = "placebo"


class Backend(StrEnum):
    auto = "auto"
    tensorrt = "tensorrt"
    aoti = "aoti"


StyleOpt = Annotated[
    str | None,
    typer.Option(
        "--style",
        "-s",
        help="Pretrained style (hayao, hosoda, paprika, shinkai) or an imported model's name \\[default: hayao].",
    ),
]
ModelOpt = Annotated[
    Path | None,
    typer.Option("--model", "-m", help="A generator checkpoint (.pt) instead of a style.", dir_okay=False),
]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        "-e",
        help="auto (a stored engine for this model and frame size; else on a GPU torch.compile, on the "
        "CPU onnxruntime), torch or eager, compile (torch.compile), onnxruntime, aoti or tensorrt (the "
        "stored engine), or a path to an engine file (.plan, .pt2, .onnx, .pt). bench takes several, "
        "comma-separated.",
    ),
]
ShapeOpt = Annotated[
    str | None, typer.Option(help="One fixed frame size HxW (multiples of 4): the fastest engine.")
]
DeviceOpt = Annotated[Device, typer.Option(help="Where to run: auto picks CUDA when PyTorch sees a GPU.")]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        help="auto: fp16 on CUDA; on the CPU bf16 where it is native (AVX-512 BF16, AMX), passes a "
        "parity check and measures faster than ONNX Runtime fp32, else fp32. bf16: torch and AOTInductor (CPU or CUDA)."
    ),
]
MaxSideOpt = Annotated[
    int | None,
    typer.Option(
        min=16,
        help="Shrink the frames, and so the output, to a longer side of at most N pixels before inference "
        "\\[default: keep the size].",
    ),
]
InferSideOpt = Annotated[
    int | None,
    typer.Option(
        min=16,
        help="Run the network on frames whose longer side is N pixels, then bring the cartoon back to the "
        "output size with guided upsampling (edges from the full-resolution source): much faster on a CPU "
        "\\[default: the network at the output size].",
    ),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", "-y", help="Replace an existing output.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
RawOpt = Annotated[
    bool,
    typer.Option("--raw", help="Every frame stage off: the network's per-frame output as it is (no exposure match, no stabilization)."),
]  # fmt: skip
NoStabilizeOpt = Annotated[
    bool, typer.Option("--no-stabilize", help="No temporal stabilization (the exposure match stays on).")
]


def _stages(raw: bool, no_stabilize: bool = False, infer_side: int | None = None):  # -> StageOptions
    from cartoonize.stages import StageOptions

    return StageOptions(raw=raw, stabilize=not no_stabilize, infer_side=infer_side)


def _request(engine: str, style: str | None, model: Path | None, device: Device, precision: Precision,
             quiet: bool = False):  # fmt: skip
    """An engine request; a style used for the first time is downloaded here, with a progress bar."""
    from cartoonize.choose import RUNNERS_BY_SUFFIX, EngineRequest

    _style_or_model(style, model)
    if model is None and not engine.lower().endswith(tuple(RUNNERS_BY_SUFFIX)):
        _pull_style(style, quiet)
    return EngineRequest(engine, style, model, device.value, precision.value)


def _style_or_model(style: str | None, model: Path | None) -> None:
    if style is not None and model is not None:
        raise CartoonizeError("give either --style or --model, not both")


def _pull_style(style: str | None, quiet: bool = False) -> None:
    """A built-in style is downloaded on first use; an imported model is already here."""
    from cartoonize.imported.store import find_model, unknown_style
    from cartoonize.progress import pull_with_progress
    from cartoonize.styles import DEFAULT_STYLE, STYLES

    if find_model(style) is not None:
        return
    if style is not None and style.lower() not in STYLES:
        raise unknown_style(style)
    pull_with_progress(style or DEFAULT_STYLE, quiet=quiet)


def _console():
    """The console messages go to: stderr. In a log or a pipe, a line stays one line, however
    long (wrapped at rich's 80 columns, a path broke in two and a grep for it found nothing)."""
    from rich.console import Console

    console = Console(stderr=True)
    console.soft_wrap = not console.is_terminal
    return console


def _listing():
    """The console a listing is printed on (`styles list`, `engines list`, `models list`): stdout,
    so that `| grep`, `| less` and `> file` get it; messages and errors stay on stderr. Outside a
    terminal a table is as wide as its cells: at rich's 80 columns an engine's file name, the one
    thing a script wants from the listing, came out as `tiny-…`."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console.width = LISTING_WIDTH
    return console


def _fps(rate: float) -> str:
    """'12.3 fps', or two significant figures below 1 (a full-size network on a CPU: '0.022 fps',
    where one decimal printed '0.0 fps')."""
    return f"{rate:.1f} fps" if rate >= 1 or rate == 0 else f"{rate:.2g} fps"


def _frames(count: int) -> str:
    from cartoonize.pipelines.batch import frames_count

    return frames_count(count)


def _say(line: str) -> None:
    """One line of plain text (file names, devices, addresses as they are) on stderr."""
    _console().print(line, markup=False, highlight=False)


def _e(value: object) -> str:
    """`value` as Rich prints it literally in a markup string: a file name such as
    `Sintel [eRsGyueVLvQ].mp4` (yt-dlp's default) holds no markup tag to drop."""
    from rich.markup import escape

    return escape(str(value))


@app.command()
def video(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Any video FFmpeg reads (mp4, mov, mkv, webm, ...); several, or folders (searched recursively).", show_default=False),
    ],
    output_arg: Annotated[
        str,  # not a Path: its trailing slash (OUT/, a folder) is part of what the user said
        typer.Argument(metavar="OUTPUT", help="Output video (the type follows the suffix: .mp4, .m4v, .mov, .mkv, .webm, .avi, .gif), or a folder (OUT/) for several inputs: it mirrors the input tree.", show_default=False),
    ],
    style: StyleOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = "auto",
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = Precision.auto,
    max_side: MaxSideOpt = None,
    infer_side: InferSideOpt = None,
    batch: Annotated[int, typer.Option(min=1, help="Frames per engine call.")] = 1,
    frames: Annotated[int | None, typer.Option(min=1, help="Stop after N frames (a quick preview).")] = None,
    codec: Annotated[
        str,
        typer.Option(
            help="auto (h264 for mp4/mov/mkv, vp9 for webm; NVENC when the GPU has it), or an encoder (ffv1: lossless)."
        ),
    ] = "auto",
    crf: Annotated[int, typer.Option(min=0, max=51, help="Quality on x264's scale, lower is better and bigger (H.264, HEVC; VP9 and AV1 get it plus 12 on their 0-63 scale). .avi (MPEG-4 at a fixed quality), .gif, ffv1 and prores do not use it.")] = 20,
    preset: Annotated[Preset, typer.Option(help="x264/x265 speed preset: slower ones make smaller files at the same --crf.")] = Preset.veryfast,
    segments: Annotated[int | None, typer.Option(min=1, help="Split each video into N segments at keyframes, cartoonized in parallel and joined without re-encoding.")] = None,
    segment_length: Annotated[float | None, typer.Option(min=0.1, metavar="SECONDS", help="Or: segments of about this many seconds.")] = None,
    preroll: Annotated[int | None, typer.Option(min=0, help="Frames each segment runs first and drops, to warm temporal stages \\[default: 95 with temporal stages (the exposure average is then as in one pass), else 0].")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes, each with its own runner (one GPU each where there are several).")] = 1,
    ray: Annotated[str | None, typer.Option("--ray", metavar="[ADDRESS]", help="Run the pieces as Ray tasks: on the cluster at ADDRESS (auto, HOST:PORT, ray://HOST:PORT), or on a local one started for the run when no address follows. Needs cartoonize\\[ray].")] = None,
    raw: RawOpt = False,
    no_stabilize: NoStabilizeOpt = False,
    yuv_frames: Annotated[
        bool,
        typer.Option(
            "--yuv-frames/--rgb-frames",
            help="yuv: hand the decoder's YUV planes to the engine, which converts them on its device, "
            "and the frame stages there give the encoder's planes; --max-side scales there too (GPU runners; "
            "not with --infer-side); rgb: FFmpeg converts to RGB and back on the CPU.",
        ),
    ] = False,
    deinterlace: Annotated[
        bool,
        typer.Option(
            "--deinterlace/--no-deinterlace",
            help="Deinterlace the frames the decoder flags as interlaced (1080i broadcast, DV, AVCHD) with "
            "FFmpeg's bwdif before the network sees them: one frame for each, the rate and timestamps kept. "
            "Progressive video is not touched either way.",
        ),
    ] = True,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:  # fmt: skip
    """Cartoonize a video: every frame with its timestamp, audio and subtitles kept; exposure
    follows the source and frames are stabilized along the source's motion (see --raw). Several
    videos or folders go into an output folder; long videos can be split into segments that run
    on several workers or a Ray cluster."""
    from cartoonize.media.files import (
        CONTAINERS,
        EncoderSettings,
        check_codec,
        check_inputs,
        check_not_stdout,
        check_output,
        check_output_folder,
        made_folders,
        remove_empty,
    )
    from cartoonize.pipelines.video import VideoJob

    _style_or_model(style, model)
    if segments not in (None, 1) and segment_length is not None:
        raise CartoonizeError("give --segments or --segment-length, not both (one would be left unused)")
    if ray is not None:
        from cartoonize.pipelines.workers import import_ray

        import_ray()  # says how to install it, before any work
    check_inputs(inputs)  # a typo is refused at once, not after the style's first download
    check_not_stdout(output_arg)
    output = Path(output_arg)
    many = len(inputs) > 1 or inputs[0].is_dir() or output.is_dir() or output_arg.endswith(("/", "\\"))
    if many and not output.is_dir() and output.suffix.lower() in CONTAINERS:
        raise CartoonizeError(
            f"{'several videos' if len(inputs) > 1 else f'the videos in {inputs[0]}'} go into a folder, "
            f"and {output} is named like a video file; "
            f"give a folder ({output.with_suffix('')}/), or one input"
        )
    made: list[Path] = []  # folders of a single output's path that were missing: made, as `image` does
    if not many:
        check_output_folder(output.parent)
        made = made_folders(output.parent)
    try:
        if not many:
            check_output(output, overwrite, (inputs[0],))
            check_codec(output, codec)
        request = _request(engine, style, model, device, precision, quiet)
        job = VideoJob(inputs[0], output, max_side, batch, EncoderSettings(codec, crf, preset.value), overwrite, frames,
                       stages=_stages(raw, no_stabilize, infer_side), yuv_frames=yuv_frames, deinterlace=deinterlace)  # fmt: skip
        if not many and segments in (None, 1) and segment_length is None and workers == 1 and ray is None:
            return _one_video(job, request, quiet)
        from cartoonize.pipelines.batch import SplitOptions, cartoonize_many, find_videos
        from cartoonize.progress import frame_progress

        if many:
            pairs = find_videos(inputs, output)
            if not pairs:
                raise CartoonizeError(f"no video files in {', '.join(map(str, inputs))}")
        else:
            pairs = [(inputs[0], output)]
        executor = _executor(request, workers, ray)
        split = SplitOptions(segments, segment_length, preroll)
        label = f"cartoonizing {len(pairs)} videos" if many else f"cartoonizing {inputs[0].name}"
        done = _Done()
        left = (
            (lambda: f"the videos finished are kept in {output}, the rest not written")
            if many
            else (lambda: _left(output))
        )
        with _said_when_stopped(done, "frame", left):
            with frame_progress(f"{label} ({executor.name})", quiet) as on_progress:
                on_progress = done.counting(_hint_when_slow(on_progress, job, quiet))
                report = cartoonize_many(pairs, job, request, executor, split, on_progress)
        failed = report.of("failed")
        if not many:
            if failed:
                raise CartoonizeError(f"{inputs[0]}: {failed[0].message}")
            result = report.results[0]
            if not quiet:
                _console().print(f"[green]wrote {_e(output)}[/]: {_frames(result.frames)} {report.width}×{report.height} in "
                                 f"{report.seconds:.1f} s ({_fps(report.fps)} over {_e(report.executor)}{_e(result.message)})",
                                 soft_wrap=True)  # fmt: skip
                for note in report.retries:
                    _console().print(f"  retried {note}", markup=False, highlight=False)
            return
        for line in report.lines():
            if quiet and not line.startswith("failed"):
                continue
            _console().print(line, markup=False, highlight=False, soft_wrap=True)
        if failed:
            raise CartoonizeError(f"{len(failed)} of {len(pairs)} videos failed (listed above)")
    finally:
        remove_empty(made)  # a job that failed or was stopped leaves no empty folder behind


def _one_video(job, request, quiet: bool) -> None:  # noqa: ANN001
    """One input, one output, one pass in this process: `cartoonize video in.mp4 out.mp4`."""
    from cartoonize.choose import runner_for
    from cartoonize.pipelines.video import cartoonize_video, damage_note, interlace_note
    from cartoonize.progress import frame_progress

    done = _Done()
    with _said_when_stopped(done, "frame", lambda: _left(job.output)):
        with frame_progress(f"cartoonizing {job.input.name}", quiet) as on_progress:
            on_progress = done.counting(_hint_when_slow(on_progress, job, quiet))
            report = cartoonize_video(job, lambda size: runner_for(request, size), on_progress)
    if not quiet:
        _console().print(
            f"[green]wrote {_e(job.output)}[/]: {_frames(report.frames)} {report.width}×{report.height} "
            f"in {report.seconds:.1f} s ({_fps(report.fps)} end to end, waiting on the engine "
            f"{100 * report.engine_share:.0f} % of the time; {_e(report.engine)}; {report.video_codec}; "
            f"stages: {_e(report.stages)})"
        )
        if report.not_planes:
            _console().print(
                f"  --yuv-frames not used: {report.not_planes}; FFmpeg converted the frames on the CPU",
                markup=False,
            )
        if report.interlaced:
            _console().print(f"  {interlace_note(report.interlaced, report.deinterlaced)}", markup=False)
        if report.hdr:
            _console().print(f"  {report.hdr}", markup=False)
        if report.captions:
            from cartoonize.media.captions import NOTE

            _console().print(f"  [yellow]{_e(NOTE)}[/]")
        if report.damaged:
            _console().print(f"  [yellow]{damage_note(report.damaged)}[/]")
        for note in report.streams:
            _console().print(f"  {note}", markup=False)


class _Done:
    """How far a job got, from its progress callback: what it says when it is stopped."""

    def __init__(self) -> None:
        self.done: int = 0
        self.total: int | None = None

    def counting(self, on_progress):  # noqa: ANN001, ANN202 - an on_progress callback or None
        def update(done: int, total: int | None) -> None:
            self.done, self.total = done, total
            if on_progress is not None:
                on_progress(done, total)

        return update

    def said(self, unit: str) -> str:
        """'after 93 of 600 frames'."""
        if not self.done:
            return f"before the first {unit}"
        of = f" of {self.total}" if self.total else ""
        return f"after {self.done}{of} {unit}{'' if self.done == 1 and not of else 's'}"


def _left(output: Path) -> str:
    """What a stopped job left under `output`: an output is written whole or not at all."""
    return f"{output} left as it was" if output.exists() else f"{output} not written"


@contextlib.contextmanager
def _said_when_stopped(done: _Done, unit: str, left: Callable[[], str]) -> Iterator[None]:
    """One line when Ctrl-C, a `kill` (SIGTERM) or a closed terminal (SIGHUP) stops the job: how
    far it got and what is left of the output. Without it the progress bar vanished (it is drawn
    to be cleared) and the job ended without a word, in a terminal and in a log alike."""
    try:
        yield
    except KeyboardInterrupt as stop:
        how = stop.name if isinstance(stop, Terminated) else "Ctrl-C"
        with contextlib.suppress(Exception):  # the stop itself is what must go on
            _say(f"stopped ({how}) {done.said(unit)}: {left()}")
        raise


def _hint_when_slow(on_progress, job, quiet: bool):  # noqa: ANN001, ANN202
    """Where the network runs at the frame's full size and the job will take long, one line on
    the options that shrink it (the usual case: a 1080p video on a laptop's CPU)."""
    from cartoonize.progress import with_slow_hint

    if quiet or job.stages.infer_side is not None:
        return on_progress
    hint = (
        "`--infer-side 320` runs the network at 320 px and brings the cartoon back to full size "
        "(guided by the frame); `--max-side N` makes the output smaller"
    )
    return with_slow_hint(on_progress, _say, hint)


def _executor(request, workers: int, ray: str | None):  # noqa: ANN001, ANN202
    """Where the pieces run: Ray tasks, local processes (one GPU each where there are several), or here."""
    from cartoonize.pipelines.workers import InProcess, LocalProcesses, RayTasks, import_ray

    if ray is not None:
        import_ray()  # says how to install it, before any work
        return RayTasks(ray, workers if workers > 1 else None)
    if workers == 1:
        return InProcess()
    gpus: list[str] = []
    if request.resolved_device() == "cuda":
        import torch

        gpus = [str(i) for i in range(torch.cuda.device_count())]
    return LocalProcesses(workers, gpus=gpus)


@app.command()
def image(
    inputs: Annotated[list[Path], typer.Argument(help="Photos or folders of photos.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file for one photo, its type from the suffix (.png, .jpg, .webp, .bmp, .tif), or a folder, which gets PNGs in the subfolders the photos came from.")],
    style: StyleOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = "auto",
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = Precision.auto,
    max_side: MaxSideOpt = None,
    infer_side: InferSideOpt = None,
    raw: RawOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", "-y", help="Replace existing outputs (in a folder, they are skipped without it).")] = False,
    quiet: QuietOpt = False,
) -> None:  # fmt: skip
    """Cartoonize photos (jpg, png, webp, a phone's heic or avif, ...): one into the file named,
    many into a folder.

    One photo's output type follows its suffix (PNG, JPEG, WebP, BMP or TIFF; transparency is kept
    in PNG, WebP and TIFF). Folders are searched recursively, and their photos become PNGs in the
    output folder, where an existing cartoon is skipped unless --overwrite."""
    from cartoonize.choose import SIZED_ENGINES, runner_for, stored_runner_for
    from cartoonize.imported.store import models_held
    from cartoonize.media.files import check_inputs, check_not_stdout
    from cartoonize.pipelines.image import ImageJob, cartoonize_images, plan_outputs
    from cartoonize.progress import frame_progress

    _style_or_model(style, model)
    check_inputs(inputs)  # before the style's first download
    check_not_stdout(str(output))
    job = ImageJob(tuple(inputs), output, max_side, overwrite, _stages(raw, infer_side=infer_side))
    plan_outputs(job)  # every output refused before the style's first download, not after inference
    request = _request(engine, style, model, device, precision, quiet)
    done = _Done()
    left = (
        (lambda: _left(output))
        if len(inputs) == 1 and inputs[0].is_file()
        else (lambda: f"the photos finished are kept in {output}, the rest not written")
    )
    with (
        _said_when_stopped(done, "photo", left),
        models_held([style] if model is None else []),  # its runners load it per photo size
        frame_progress("cartoonizing photos", quiet) as on_progress,
    ):
        on_progress = done.counting(on_progress)

        # an engine built for one frame size: the stored one for each photo's network size; auto
        # runs a size with an engine stored for it on that engine, the others on its usual runner
        def sized(size: tuple[int, int]):  # -> Runner | None
            return runner_for(request, size) if engine in SIZED_ENGINES else stored_runner_for(request, size)

        make = None if engine in SIZED_ENGINES else (lambda: runner_for(request))
        report = cartoonize_images(
            job, make, on_progress, sized if engine in (*SIZED_ENGINES, "auto") else None
        )
    if not quiet:
        _say(report.summary(output))


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the .onnx file.")],
    style: StyleOpt = None,
    model: ModelOpt = None,
    precision: Annotated[
        ExportPrecision, typer.Option(help="fp16 writes a genuinely fp16 graph (norms kept in fp32).")
    ] = ExportPrecision.fp32,
    opset: Annotated[int, typer.Option(help="ONNX opset, 18 to 25 (what the exporter writes).")] = 18,
    overwrite: OverwriteOpt = False,
) -> None:
    """Export a style or checkpoint to ONNX (uint8 NHWC RGB frames in and out, dynamic N, H, W),
    then check it against PyTorch on a real photo."""
    from cartoonize.choose import EngineRequest, checkpoint_path
    from cartoonize.export import check_onnx_output, check_opset
    from cartoonize.media.files import (
        atomic_output,
        check_output,
        check_output_folder,
        made_folders,
        remove_empty,
    )
    from cartoonize.parity import export_with_parity

    check_opset(opset)
    check_output_folder(output.parent)  # what is missing of it is made, as `image` and `video` do
    made = made_folders(output.parent)
    try:
        check_output(output, overwrite, (model,) if model is not None else ())  # not onto its own checkpoint
        check_onnx_output(output)
        if style is not None and model is None:
            _pull_style(style)
        source = checkpoint_path(EngineRequest(style=style, model=model))
        # stopped in the parity check: no unchecked file
        with atomic_output(output, replace=overwrite) as partial:
            parity = export_with_parity(source, partial, precision.value, opset)
    finally:
        remove_empty(made)  # an export that failed or was stopped leaves no empty folder behind
    _console().print(
        f"[green]wrote {_e(output)}[/] ({precision.value}, opset {opset}); parity vs PyTorch fp32: {parity.describe()}"
    )


@app.command("build-engine")
def build_engine_command(
    style: StyleOpt = None,
    model: ModelOpt = None,
    onnx: Annotated[
        Path | None, typer.Option(help="Build TensorRT from this ONNX file.", dir_okay=False)
    ] = None,
    backend: Annotated[
        Backend, typer.Option(help="auto: TensorRT where installed with a GPU, else AOTInductor.")
    ] = Backend.auto,
    precision: Annotated[
        Precision,
        typer.Option(
            help="auto: fp16 on CUDA, fp32 on the CPU (build a bf16 engine by asking for it); an ONNX "
            "graph with TensorRT 11: the precision the graph is in. bf16: AOTInductor only."
        ),
    ] = Precision.auto,
    device: DeviceOpt = Device.auto,
    shape: ShapeOpt = None,
    min_shape: Annotated[str | None, typer.Option(help="Smallest frame HxW of a range.")] = None,
    opt_shape: Annotated[str | None, typer.Option(help="The frame HxW a range is tuned for.")] = None,
    max_shape: Annotated[str | None, typer.Option(help="Largest frame HxW of a range.")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Frames per call the engine is built for.")] = 1,
    workspace: Annotated[
        float | None, typer.Option(min=0.25, help="TensorRT workspace limit in GiB \\[default: 4].")
    ] = None,
    opt_level: Annotated[
        int | None, typer.Option(min=0, max=5, help="TensorRT builder optimization level \\[default: 3].")
    ] = None,
    max_autotune: Annotated[
        bool, typer.Option(help="AOTInductor: benchmark kernel choices (much longer build).")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Engine file (.pt2 for aoti, .plan for tensorrt) \\[default: the store, named by its key]."),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", "-y", help="Replace an existing --output file (a rebuild into the store always replaces its engine)."),
    ] = False,
) -> None:  # fmt: skip
    """Build a TensorRT or AOTInductor engine for this machine, check it against the fp32
    reference on a photo (the parity gate), and store it with its manifest.

    An AOTInductor engine that crashes when loaded is rebuilt with the next recipe.
    CARTOONIZE_AOTI_RECIPES=name,... chooses the recipes (engines/README.md lists them)."""
    from cartoonize.engines.store import store_dir
    from cartoonize.media.files import check_output, check_output_folder
    from cartoonize.pipelines.build import build_engine, check_engine_output, spec_from_options

    spec = spec_from_options(style, model, onnx, backend.value, precision.value, device.value, shape,
                             min_shape, opt_shape, max_shape, batch, workspace, opt_level, max_autotune)  # fmt: skip
    if output is not None:  # kept unless --overwrite; the store's own engine is rebuilt in place
        check_output(output, overwrite, tuple(p for p in (model, onnx) if p is not None))
        check_engine_output(spec, output)
    else:  # the store: a folder that can be made and written, said before the export, not after
        check_output_folder(store_dir())
    if style is not None or (model is None and onnx is None):
        _pull_style(style)
    console = _console()
    with console.status(f"building {spec.backend} {spec.precision} {spec.profile.describe()}") as status:
        result = build_engine(
            spec,
            output,
            lambda step: status.update(_e(step)),
            lambda note: console.print(f"[yellow]{_e(note)}[/]"),
        )
    p, recipe = result.manifest.parity, result.manifest.build_options.get("recipe", "default")
    how = "" if recipe == "default" else f" (AOTInductor recipe {recipe})"
    console.print(f"[green]built {_e(result.engine)}[/]{how} in {result.manifest.build_seconds:.0f} s; parity vs "
                  f"{p['reference']}: {result.parity.describe()} (needs ≥ {p['threshold_db']:g} dB)")  # fmt: skip


@engines_app.command("list")
def engines_list(
    folder: Annotated[Path | None, typer.Option(help="Engine folder \\[default: the store].")] = None,
) -> None:
    """Every stored engine, its key, and whether it can run here (and why not)."""
    from rich.table import Table

    from cartoonize.engines.store import store_dir, store_entries

    if folder is not None and not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise CartoonizeError(f"engine folder {folder} {what}")
    entries = store_entries(folder)
    if not entries:
        _listing().print(f"no engines in {folder or store_dir()}; `cartoonize build-engine --help` makes one",
                         markup=False, highlight=False)  # fmt: skip
        return
    table = Table(
        "engine", "source", "backend", "precision", "shapes", "batch", "device", "parity", "runs here"
    )
    for e in entries:
        s, m = (e.manifest.spec, e.manifest) if e.manifest else (None, None)
        key = [s.source.key(), s.backend, s.precision, s.profile.describe(), str(s.batch),
               str(m.device.get("capability") or "cpu"), _parity_cell(m.parity)] if s and m else ["?"] * 7  # fmt: skip
        table.add_row(
            _e(e.path.name),
            *map(_e, key),
            "[green]yes[/]" if e.usable else f"[red]no[/]: {_e('; '.join(e.problems))}",
        )
    _listing().print(f"engines in {_e(folder or store_dir())}", table)


@engines_app.command("remove")
def engines_remove(
    names: Annotated[
        list[str] | None, typer.Argument(help="Engine file names, as `engines list` shows them.")
    ] = None,
    unusable: Annotated[
        bool,
        typer.Option("--unusable", help="Also every engine that cannot run here (another PyTorch, TensorRT or GPU; damaged; no manifest)."),
    ] = False,
    folder: Annotated[Path | None, typer.Option(help="Engine folder \\[default: the store].")] = None,
) -> None:  # fmt: skip
    """Delete stored engines with their manifests (`engines list` says which can run here)."""
    from cartoonize.engines.store import remove_engine, store_dir, store_entries, stored_engine_named

    if not names and not unusable:
        raise CartoonizeError("name the engines to remove (`cartoonize engines list`), or pass --unusable")
    if folder is not None and not folder.is_dir():
        raise CartoonizeError(f"engine folder {folder} does not exist")
    chosen = list(dict.fromkeys(names or []))
    if unusable:
        chosen += [e.path.name for e in store_entries(folder) if not e.usable and e.path.name not in chosen]
    for name in chosen:  # each one checked before any is removed
        stored_engine_named(name, folder)
    removed = [remove_engine(name, folder) for name in chosen]
    where = folder or store_dir()
    _listing().print(f"removed {len(removed)} engine(s) from {where}" + "".join(f"\n  {p.name}" for p in removed),
                     markup=False, highlight=False)  # fmt: skip


def _parity_cell(parity: dict) -> str:
    """A stored engine's parity: its PSNR, or "identical" where it matched the reference bit for
    bit (an infinite PSNR, stored as null: JSON has no infinity); it printed "None dB"."""
    psnr = parity.get("psnr_db")
    if psnr is not None:
        return f"{psnr} dB"
    return "identical" if parity.get("max_abs_diff") == 0 else "not recorded"


@app.command("bench")
def bench_command(
    shape: Annotated[str, typer.Option(help="Frame size HxW (multiples of 4).")],
    engine: EngineOpt = "auto",
    style: StyleOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = Precision.auto,
    batch: Annotated[int, typer.Option(min=1, help="Frames per call.")] = 1,
    iters: Annotated[int, typer.Option(min=1, help="Timed calls.")] = 50,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls first.")] = 10,
    peak_tflops: Annotated[
        float | None,
        typer.Option(
            help="The card's peak for the compute floor \\[default: 752, H200 fp16 dense, on CUDA fp16]."
        ),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here.")
    ] = None,
) -> None:
    """Time inference alone (no decode or encode) beside the torch eager runner on the same
    device and precision: fps, median and p10/p90, effective TFLOP/s and the compute floor."""
    from cartoonize.choose import EngineRequest
    from cartoonize.engines.store import parse_shape
    from cartoonize.measure.bench import (
        BenchJob,
        bench,
        check_report_path,
        check_shape,
        engine_names,
        format_report,
    )
    from cartoonize.media.files import check_output_folder

    engine_names(engine)  # an unknown name is refused before a download or a benchmark
    size = parse_shape(shape)  # and so is a shape it cannot run, or that does not fit in memory
    check_shape(size, batch, EngineRequest(device=device.value))
    if json_path is not None:  # refused now, not after the benchmark
        if json_path.is_dir():
            raise CartoonizeError(
                f"--json {json_path} is a folder; give a file name ({json_path / 'bench.json'})"
            )
        check_output_folder(json_path.parent)
        check_report_path(json_path, engine, model)
    request = _request(engine, style, model, device, precision)
    job = BenchJob(request, size, batch, iters, warmup, peak_tflops, json_path)
    with _console().status("benchmarking") as status:
        report = bench(job, lambda step: status.update(_e(step)))
    print("\n".join(format_report(report)))


@app.command()
def webcam(
    input: Annotated[str | None, typer.Option("--input", "-i", help="A camera device, video file, URL (rtsp://...) or lavfi graph (default: the first camera).")] = None,
    input_format: Annotated[str | None, typer.Option("--input-format", "-f", help="FFmpeg input format: v4l2, avfoundation, dshow, lavfi, ... (default: guessed).")] = None,
    size: Annotated[str | None, typer.Option(help="Camera picture size, WIDTHxHEIGHT.")] = None,
    fps: Annotated[float | None, typer.Option(min=1, help="Camera frame rate.")] = None,
    mjpeg: Annotated[bool, typer.Option("--mjpeg", help="Ask the camera for MJPEG (most USB cameras give large sizes at full rate only so).")] = False,
    list_cameras: Annotated[bool, typer.Option("--list", help="List the cameras here and exit.")] = False,
    style: StyleOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = "auto",
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = Precision.auto,
    max_side: MaxSideOpt = None,
    infer_side: Annotated[int | None, typer.Option(min=16, help="Run the network at this longer side and upsample back to the output size (guided by the camera frame) \\[default: 128 on the CPU unless --max-side is at most 256; the full size on a GPU].")] = None,
    no_preview: Annotated[bool, typer.Option("--no-preview", help="No preview window.")] = False,
    serve: Annotated[str | None, typer.Option(metavar="[HOST:]PORT", help="Show the preview in a browser instead (MJPEG over HTTP; host 127.0.0.1 unless given).")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Record the cartoon stream: a file (.mp4, .mkv, .gif, ...) or a URL (rtmp://, rtmps://, udp://, tcp://, rtp://; srt:// only where PyAV's FFmpeg has it, which its wheels do not).")] = None,
    virtual_cam: Annotated[bool, typer.Option("--virtual-cam", help="Publish as a virtual camera (v4l2loopback, or pyvirtualcam where installed).")] = False,
    virtual_cam_device: Annotated[str | None, typer.Option(help="The v4l2loopback device (default: the first found); implies --virtual-cam.")] = None,
    side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Show original | cartoon.")] = False,
    frames: Annotated[int | None, typer.Option(min=1, help="Stop after N frames shown.")] = None,
    snapshots: Annotated[Path, typer.Option(file_okay=False, help="Folder for snapshots (key s).")] = Path("."),
    raw: RawOpt = False,
    no_stabilize: NoStabilizeOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:  # fmt: skip
    """A live cartoon camera: preview window (q quit, space original/cartoon, s snapshot, f overlay),
    browser preview, recording and a virtual camera; frames are dropped, never queued, to keep the delay low."""
    from cartoonize.choose import runner_for
    from cartoonize.media.capture import CaptureSpec
    from cartoonize.media.mjpeg import parse_address
    from cartoonize.pipelines.webcam import WebcamJob, auto_infer_side, parse_size, print_cameras, run_webcam

    if list_cameras:
        return print_cameras(_say)
    spec = CaptureSpec(input, input_format, parse_size(size) if size else None, fps, mjpeg, max_side)

    def make_runner(frame_size: tuple[int, int]):  # once the camera works: a first-time style downloads here
        return runner_for(_request(engine, style, model, device, precision), frame_size)

    job = WebcamJob(spec, not no_preview, parse_address(serve) if serve is not None else None, output, overwrite,
                    virtual_cam or virtual_cam_device is not None, virtual_cam_device, side_by_side, frames, snapshots,
                    stages=_stages(raw, no_stabilize, infer_side or auto_infer_side(device.value, max_side)))  # fmt: skip
    try:
        report = run_webcam(job, make_runner, _say)
    except KeyboardInterrupt:  # while the camera or the model was still opening
        raise typer.Exit(130) from None
    for line in [report.summary(), *report.notes]:
        _say(line)
    if report.failed:
        raise CartoonizeError(report.stopped)
    if report.interrupted:
        raise typer.Exit(130)


@styles_app.command("list")
def styles_list() -> None:
    """The pretrained styles (and which are downloaded) and the imported models, together."""
    from rich.table import Table

    from cartoonize.imported.store import imported_models
    from cartoonize.styles import LICENCE_NOTE, STYLES, style_cached, style_checkpoint_path

    table = Table("style", "kind", "look / I/O", "here")
    for name, style in STYLES.items():
        here = (
            "downloaded"
            if style_cached(name)
            else "damaged: downloads again on first use"
            if style_checkpoint_path(name).exists()
            else "downloads on first use"
        )
        table.add_row(name, "built-in", style.description, here)
    for imported in imported_models():
        table.add_row(
            _e(imported.name), "imported", _e(imported.manifest.spec.describe()), _e(imported.folder)
        )
    console = _listing()
    console.print(table)
    console.print(LICENCE_NOTE)


@models_app.command("add")
def models_add(
    path: Annotated[Path, typer.Argument(help="The ONNX file of an image-to-image cartoonizer.", dir_okay=False)],
    name: Annotated[str, typer.Option(help="The name to use it by (`--style NAME`).")],
    layout: Annotated[Layout | None, typer.Option(help="nhwc or nchw \\[default: from the axis with 3 channels].")] = None,
    value_range: Annotated[ValueRange | None, typer.Option("--range", help="The network's value range \\[default: from a Tanh/Sigmoid output, else -1,1].")] = None,
    channels: Annotated[Channels | None, typer.Option(help="The channel order it was trained on \\[default: rgb].")] = None,
    multiple: Annotated[int | None, typer.Option(min=1, help="H and W multiple it needs \\[default: probed].")] = None,
    licence: Annotated[str, typer.Option(help="The model's licence, kept in its manifest.")] = "",
    force: Annotated[bool, typer.Option(help="Replace an imported model of that name.")] = False,
) -> None:  # fmt: skip
    """Import an ONNX cartoonizer: detect its I/O, wrap it into uint8 RGB frames in and out,
    check it on a photo, and store it; then `--style NAME` runs it everywhere."""
    from cartoonize.imported.add import AddJob, add_model
    from cartoonize.imported.detect import Options

    options = Options(
        layout and layout.value, value_range and value_range.value, channels and channels.value, multiple
    )
    console = _console()
    with console.status("importing") as status:
        result = add_model(AddJob(path, name, options, licence, force), lambda step: status.update(_e(step)))
    for note in result.notes:
        console.print(f"  {note}", markup=False, highlight=False)
    name = _e(result.model.name)
    console.print(f"[green]imported {name}[/] into {_e(result.model.folder)}; run it with `--style {name}`")


@models_app.command("list")
def models_list() -> None:
    """The imported models, their I/O and where they came from."""
    from rich.table import Table

    from cartoonize.imported.store import imported_models, models_dir

    models = list(imported_models())
    if not models:
        _listing().print(f"no imported models in {models_dir()}; `cartoonize models add --help` imports one",
                         markup=False, highlight=False)  # fmt: skip
        return
    table = Table("name", "I/O of the network", "assumed", "source", "licence")
    for m in models:
        if m.problem is not None:  # its manifest cannot be read: the row says so and how to mend it
            table.add_row(_e(m.name), f"[red]{_e(m.manifest.spec.describe())}[/]", "-", "-", "-")
            continue
        table.add_row(*map(_e, (m.name, m.manifest.spec.describe(), ", ".join(m.manifest.assumed) or "-",
                                f"{Path(m.manifest.source).name} (sha256 {m.manifest.source_sha256[:12]}…)",
                                m.manifest.licence)))  # fmt: skip
    _listing().print(f"imported models in {_e(models_dir())}", table)


@models_app.command("remove")
def models_remove(name: Annotated[str, typer.Argument(help="An imported model's name.")]) -> None:
    """Delete an imported model (the file it was imported from is not touched)."""
    from cartoonize.imported.store import remove_model

    _console().print(f"removed {name} ({remove_model(name)})", markup=False)


@styles_app.command("pull")
def styles_pull(
    names: Annotated[list[str], typer.Argument(help="Style names, or 'all'.")],
    force: Annotated[bool, typer.Option(help="Download again even if cached.")] = False,
) -> None:
    """Download a style's weights, verify every sha256 and convert them into one checkpoint."""
    from cartoonize.progress import pull_with_progress
    from cartoonize.styles import STYLES

    wanted = list(STYLES) if names == ["all"] else names
    failed = []
    for name in wanted:  # each style is tried; one that fails does not stop the rest
        try:
            path = pull_with_progress(name, force=force)
        except CartoonizeError as exc:
            _say(f"error: {name}: {exc}")
            failed.append(name)
            continue
        _console().print(f"[green]{_e(name)}[/]: {_e(path)}")
    if failed:
        raise CartoonizeError(f"{len(failed)} of {len(wanted)} styles failed: {', '.join(failed)}")


def _load_plugins() -> None:
    """Commands that live outside this package (e.g. `train`) register through entry points."""
    from importlib.metadata import entry_points

    present = {info.name for info in app.registered_groups}
    for ep in entry_points(group="cartoonize.commands"):
        if ep.name in present:  # once per process: main() may run many times in one (tests, notebooks)
            continue
        try:
            app.add_typer(ep.load(), name=ep.name)
        except ImportError:  # the plugin's package is not installed in this environment
            continue


def _summaries_on_one_line(group: typer.Typer) -> None:
    """A command's line in its group's list is its docstring's first paragraph. In Rich markup the
    list keeps the docstring's own line breaks, which then fall mid-line in the wrapped column;
    hand Typer that paragraph as one line (a `short_help` set by hand is kept)."""
    for info in group.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if info.short_help is None and doc:
            info.short_help = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _summaries_on_one_line(sub.typer_instance)


def version_callback(value: bool) -> None:
    if value:
        print(f"cartoonize {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:  # fmt: skip
    pass


def _text_that_any_terminal_takes() -> None:
    """A character the output's encoding lacks is written as an escape, not a crash: an `ascii`
    or `latin-1` terminal (PYTHONIOENCODING, an old locale) and rich's `…` in a cut help cell, or
    a file name that is not UTF-8. Python does this for stderr already; stdout raised."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="backslashreplace")


def _in_a_folder_that_exists() -> None:
    """One line, where the current folder was deleted under the shell: importing torch there
    ends the process with oneMKL's "FATAL ERROR: Cannot load libtorch_cpu.so", which reads as a
    broken install, and a relative path cannot be resolved."""
    try:
        os.getcwd()
    except FileNotFoundError:
        sys.stderr.write("error: the current folder no longer exists (deleted after this shell entered it); "
                         "cd to a folder that exists and run again\n")  # fmt: skip
        sys.exit(1)


def _show_warnings_as_lines() -> None:
    """A CartoonizeWarning (a poor but valid choice, e.g. bf16 on a CPU without it) is one yellow
    line; other warnings keep Python's format."""
    import warnings

    from cartoonize.errors import CartoonizeWarning

    shown = warnings.showwarning
    if getattr(shown, "cartoonize", False):  # already in place (main() ran before in this process)
        return

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, CartoonizeWarning):
            _console().print(f"[yellow]warning:[/] {_e(message)}", highlight=False, soft_wrap=True)
        else:
            shown(message, category, filename, lineno, file, line)

    show.cartoonize = True  # type: ignore[attr-defined]
    warnings.showwarning = show


# options whose value may be left out: what they mean then (`--ray` alone: a local cluster)
OPTIONAL_VALUES = {"--ray": "local"}


def _fill_optional_values(args: list[str]) -> list[str]:
    """`--ray` takes an address only as `--ray=ADDRESS` or when the next word looks like one
    (HOST:PORT, ray://..., auto, local); otherwise it stands alone and the next word is a path."""
    filled = []
    for i, arg in enumerate(args):
        if arg in OPTIONAL_VALUES:
            following = args[i + 1] if i + 1 < len(args) else ""
            if not (":" in following or following in ("auto", "local")):
                arg = f"{arg}={OPTIONAL_VALUES[arg]}"
        filled.append(arg)
    return filled


STOP_SIGNALS = ("SIGTERM", "SIGHUP")  # a `kill`, a scheduler or a container; a closed terminal


@contextlib.contextmanager
def _stop_signals_as_interrupt() -> Iterator[list[int]]:
    """Inside, SIGTERM and SIGHUP raise `Terminated` (a KeyboardInterrupt) in the main thread, so
    a `kill` or a closed terminal cleans up as Ctrl-C does instead of leaving a hidden partial file
    beside the output. Only the first one: more during the clean-up are ignored (a supervisor's
    SIGKILL still ends it). Ctrl-C alike: a user pressing it again while the job stops broke the
    clean-up or the interpreter's shutdown with a traceback (a third press in torch's atexit hook);
    the ones after the first are ignored until the process ends (Ctrl-\\ still quits at once). A
    signal not at its default is left alone (`nohup` ignores SIGHUP; a parent chose), and so is
    everything off the main thread (the CLI called from a thread); all are restored on the way out
    (the CLI called in-process; SIGINT only where no Ctrl-C came). The list gets the signal that came."""
    import signal
    import threading

    came: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield came
        return
    ours = [
        number
        for name in STOP_SIGNALS
        if (number := getattr(signal, name, None)) is not None and signal.getsignal(number) is signal.SIG_DFL
    ]

    def stopped(signum: int, frame: object) -> None:
        for number in ours:
            signal.signal(number, signal.SIG_IGN)
        came.append(signum)
        raise Terminated(signum)

    interrupted: list[int] = []

    def ctrl_c(signum: int, frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # more Ctrl-C must not break the clean-up
        interrupted.append(signum)
        raise KeyboardInterrupt

    for number in ours:
        signal.signal(number, stopped)
    own_ctrl_c = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if own_ctrl_c:
        signal.signal(signal.SIGINT, ctrl_c)
    try:
        yield came
    finally:
        for number in ours:
            signal.signal(number, signal.SIG_DFL)
        if own_ctrl_c and not interrupted:  # after a Ctrl-C, ignored until the process has ended
            signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: a CartoonizeError becomes one red line and exit 1; Typer turns Ctrl-C into
    exit 130 and usage errors into exit 2; SIGTERM and SIGHUP clean up as Ctrl-C does and exit
    128 + the signal's number (143, 129), as a process they end would."""
    from rich.markup import escape

    _text_that_any_terminal_takes()
    _in_a_folder_that_exists()
    _load_plugins()
    _summaries_on_one_line(app)
    _show_warnings_as_lines()
    with _stop_signals_as_interrupt() as came:
        try:
            app(args=_fill_optional_values(sys.argv[1:] if argv is None else argv))
        except CartoonizeError as exc:
            _console().print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(128 + came[0] if came else 1)
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:  # a name the file system cannot hold: the user's to fix
                raise
            name = Path(os.fsdecode(exc.filename or "")).name
            _console().print(f"[red]error:[/] {escape(name[:60])}…: file name too long ({len(name.encode())} bytes; "
                             f"a file name may have 255)", highlight=False, soft_wrap=True)  # fmt: skip
            sys.exit(1)
        except SystemExit:
            if came:
                sys.exit(128 + came[0])
            raise
