"""The `cartoonize` command line. Each command parses options, builds a frozen job and calls one
library function; heavy imports (torch, av, onnxruntime) happen inside the commands so `--help`
answers at once."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cartoonize import __version__
from cartoonize.errors import CartoonizeError

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


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"


class ExportPrecision(StrEnum):
    fp32 = "fp32"
    fp16 = "fp16"


class Backend(StrEnum):
    auto = "auto"
    tensorrt = "tensorrt"
    aoti = "aoti"


StyleOpt = Annotated[
    str | None,
    typer.Option("--style", "-s", help="Pretrained style: hayao, hosoda, paprika, shinkai [default: hayao]."),
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
PrecisionOpt = Annotated[Precision, typer.Option(help="auto: fp16 on CUDA, fp32 on the CPU.")]
MaxSideOpt = Annotated[
    int | None,
    typer.Option(
        min=16, help="Downscale so the longer side is at most N before inference [default: keep size]."
    ),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", "-y", help="Replace an existing output.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]


def _request(engine: str, style: str | None, model: Path | None, device: Device, precision: Precision,
             quiet: bool = False):  # fmt: skip
    """An engine request; a style used for the first time is downloaded here, with a progress bar."""
    from cartoonize.choose import RUNNERS_BY_SUFFIX, EngineRequest
    from cartoonize.progress import pull_with_progress
    from cartoonize.styles import DEFAULT_STYLE

    if style is not None and model is not None:
        raise CartoonizeError("give either --style or --model, not both")
    if model is None and not engine.lower().endswith(tuple(RUNNERS_BY_SUFFIX)):
        pull_with_progress(style or DEFAULT_STYLE, quiet=quiet)
    return EngineRequest(engine, style, model, device.value, precision.value)


def _console():
    from rich.console import Console

    return Console(stderr=True)


@app.command()
def video(
    input: Annotated[Path, typer.Argument(help="Any video FFmpeg reads (mp4, mov, mkv, webm, ...).")],
    output: Annotated[
        Path, typer.Argument(help="Output video; the type follows the suffix (.mp4, .mkv, .webm, .mov).")
    ],
    style: StyleOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = "auto",
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = Precision.auto,
    max_side: MaxSideOpt = None,
    batch: Annotated[int, typer.Option(min=1, help="Frames per engine call.")] = 1,
    frames: Annotated[int | None, typer.Option(min=1, help="Stop after N frames (a quick preview).")] = None,
    codec: Annotated[
        str,
        typer.Option(
            help="auto (h264 for mp4/mov/mkv, vp9 for webm; NVENC when the GPU has it), or an encoder."
        ),
    ] = "auto",
    crf: Annotated[int, typer.Option(min=0, max=51, help="Quality: lower is better and bigger.")] = 20,
    preset: Annotated[str, typer.Option(help="x264 speed preset.")] = "veryfast",
    yuv_frames: Annotated[
        bool,
        typer.Option(
            "--yuv-frames/--rgb-frames",
            help="yuv: hand the decoder's YUV planes to the engine, which converts them on its device (GPU "
            "runners; not with --max-side); rgb: FFmpeg converts to RGB on the CPU.",
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Cartoonize a video: every frame with its timestamp, audio and subtitles kept."""
    from cartoonize.choose import runner_for
    from cartoonize.media.files import EncoderSettings
    from cartoonize.pipelines.video import VideoJob, cartoonize_video
    from cartoonize.progress import frame_progress

    request = _request(engine, style, model, device, precision, quiet)
    job = VideoJob(input, output, max_side, batch, EncoderSettings(codec, crf, preset), overwrite, frames,
                   yuv_frames=yuv_frames)  # fmt: skip
    with frame_progress(f"cartoonizing {input.name}", quiet) as on_progress:
        report = cartoonize_video(job, lambda size: runner_for(request, size), on_progress)
    if not quiet:
        _console().print(
            f"[green]wrote {output}[/]: {report.frames} frames {report.width}×{report.height} "
            f"in {report.seconds:.1f} s ({report.fps:.1f} fps end to end, waiting on the engine "
            f"{100 * report.engine_share:.0f} % of the time; {report.engine}; {report.video_codec})"
        )
        for note in report.streams:
            _console().print(f"  {note}")


@app.command()
def image(
    inputs: Annotated[list[Path], typer.Argument(help="Photos or folders of photos.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (one photo) or folder.")],
    style: StyleOpt = None,
    model: ModelOpt = None,
    engine: EngineOpt = "auto",
    device: DeviceOpt = Device.auto,
    precision: PrecisionOpt = Precision.auto,
    max_side: MaxSideOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Cartoonize photos (jpg, png, webp, ...); a folder is searched recursively, outputs are PNG."""
    from cartoonize.choose import runner_for
    from cartoonize.pipelines.image import ImageJob, cartoonize_images
    from cartoonize.progress import frame_progress

    request = _request(engine, style, model, device, precision, quiet)
    job = ImageJob(tuple(inputs), output, max_side, overwrite)
    with frame_progress("cartoonizing photos", quiet) as on_progress:
        written = cartoonize_images(job, lambda: runner_for(request), on_progress)
    if not quiet:
        _console().print(f"[green]wrote {len(written)} image(s)[/] to {output}")


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the .onnx file.")],
    style: StyleOpt = None,
    model: ModelOpt = None,
    precision: Annotated[
        ExportPrecision, typer.Option(help="fp16 writes a genuinely fp16 graph (norms kept in fp32).")
    ] = ExportPrecision.fp32,
    opset: Annotated[int, typer.Option(min=17, help="ONNX opset.")] = 18,
    overwrite: OverwriteOpt = False,
) -> None:
    """Export a style or checkpoint to ONNX (uint8 NHWC RGB frames in and out, dynamic N, H, W),
    then check it against PyTorch on a real photo."""
    from cartoonize.choose import EngineRequest, checkpoint_path
    from cartoonize.media.files import check_output
    from cartoonize.parity import export_with_parity
    from cartoonize.progress import pull_with_progress

    check_output(output, overwrite)
    if style is not None and model is None:
        pull_with_progress(style)
    source = checkpoint_path(EngineRequest(style=style, model=model))
    parity = export_with_parity(source, output, precision.value, opset)
    _console().print(
        f"[green]wrote {output}[/] ({precision.value}, opset {opset}); parity vs PyTorch fp32: {parity.describe()}"
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
    precision: PrecisionOpt = Precision.auto,
    device: DeviceOpt = Device.auto,
    shape: ShapeOpt = None,
    min_shape: Annotated[str | None, typer.Option(help="Smallest frame HxW of a range.")] = None,
    opt_shape: Annotated[str | None, typer.Option(help="The frame HxW a range is tuned for.")] = None,
    max_shape: Annotated[str | None, typer.Option(help="Largest frame HxW of a range.")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Frames per call the engine is built for.")] = 1,
    workspace: Annotated[
        float | None, typer.Option(min=0.25, help="TensorRT workspace limit in GiB [default: 4].")
    ] = None,
    opt_level: Annotated[
        int | None, typer.Option(min=0, max=5, help="TensorRT builder optimization level [default: 3].")
    ] = None,
    max_autotune: Annotated[
        bool, typer.Option(help="AOTInductor: benchmark kernel choices (much longer build).")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Engine file [default: the store, named by its key]."),
    ] = None,
) -> None:
    """Build a TensorRT or AOTInductor engine for this machine, check it against the fp32
    reference on a photo (the parity gate), and store it with its manifest.

    An AOTInductor engine that crashes when loaded is rebuilt with the next recipe.
    CARTOONIZE_AOTI_RECIPES=name,... chooses the recipes (engines/README.md lists them)."""
    from cartoonize.pipelines.build import build_engine, spec_from_options
    from cartoonize.progress import pull_with_progress

    if style is not None or (model is None and onnx is None):
        pull_with_progress(style or "hayao")
    spec = spec_from_options(style, model, onnx, backend.value, precision.value, device.value, shape,
                             min_shape, opt_shape, max_shape, batch, workspace, opt_level, max_autotune)  # fmt: skip
    console = _console()
    with console.status(f"building {spec.backend} {spec.precision} {spec.profile.describe()}") as status:
        result = build_engine(spec, output, status.update, lambda note: console.print(f"[yellow]{note}[/]"))
    p, recipe = result.manifest.parity, result.manifest.build_options.get("recipe", "default")
    how = "" if recipe == "default" else f" (AOTInductor recipe {recipe})"
    console.print(f"[green]built {result.engine}[/]{how} in {result.manifest.build_seconds:.0f} s; parity vs "
                  f"{p['reference']}: {result.parity.describe()} (needs ≥ {p['threshold_db']:g} dB)")  # fmt: skip


@engines_app.command("list")
def engines_list(
    folder: Annotated[Path | None, typer.Option(help="Engine folder [default: the store].")] = None,
) -> None:
    """Every stored engine, its key, and whether it can run here (and why not)."""
    from rich.table import Table

    from cartoonize.engines.store import store_dir, store_entries

    table = Table(
        "engine", "source", "backend", "precision", "shapes", "batch", "device", "parity", "runs here"
    )
    for e in store_entries(folder):
        s, m = (e.manifest.spec, e.manifest) if e.manifest else (None, None)
        key = [s.source.key(), s.backend, s.precision, s.profile.describe(), str(s.batch),
               str(m.device.get("capability") or "cpu"), f"{m.parity.get('psnr_db')} dB"] if s and m else ["?"] * 7  # fmt: skip
        table.add_row(
            e.path.name, *key, "[green]yes[/]" if e.usable else f"[red]no[/]: {'; '.join(e.problems)}"
        )
    _console().print(f"engines in {folder or store_dir()}", table)


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
            help="The card's peak for the compute floor [default: 752, H200 fp16 dense, on CUDA fp16]."
        ),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here.")
    ] = None,
) -> None:
    """Time inference alone (no decode or encode) beside the torch eager runner on the same
    device and precision: fps, median and p10/p90, effective TFLOP/s and the compute floor."""
    from cartoonize.engines.store import parse_shape
    from cartoonize.measure.bench import BenchJob, bench, format_report

    request = _request(engine, style, model, device, precision)
    job = BenchJob(request, parse_shape(shape), batch, iters, warmup, peak_tflops, json_path)
    with _console().status("benchmarking") as status:
        report = bench(job, lambda step: status.update(step))
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
    no_preview: Annotated[bool, typer.Option("--no-preview", help="No preview window.")] = False,
    serve: Annotated[str | None, typer.Option(metavar="[HOST:]PORT", help="Show the preview in a browser instead (MJPEG over HTTP; host 127.0.0.1 unless given).")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="Record the cartoon stream: a file (.mp4, .mkv, ...) or a URL (rtmp://, udp://, srt://).")] = None,
    virtual_cam: Annotated[bool, typer.Option("--virtual-cam", help="Publish as a virtual camera (v4l2loopback, or pyvirtualcam where installed).")] = False,
    virtual_cam_device: Annotated[str | None, typer.Option(help="The v4l2loopback device (default: the first found).")] = None,
    side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Show original | cartoon.")] = False,
    frames: Annotated[int | None, typer.Option(min=1, help="Stop after N frames shown.")] = None,
    snapshots: Annotated[Path, typer.Option(file_okay=False, help="Folder for snapshots (key s).")] = Path("."),
    overwrite: OverwriteOpt = False,
) -> None:  # fmt: skip
    """A live cartoon camera: preview window (q quit, space original/cartoon, s snapshot, f overlay),
    browser preview, recording and a virtual camera; frames are dropped, never queued, to keep the delay low."""
    from cartoonize.choose import runner_for
    from cartoonize.media.capture import CaptureSpec
    from cartoonize.media.mjpeg import parse_address
    from cartoonize.pipelines.webcam import WebcamJob, parse_size, print_cameras, run_webcam

    if list_cameras:
        return print_cameras(_console().print)
    spec = CaptureSpec(input, input_format, parse_size(size) if size else None, fps, mjpeg, max_side)

    def make_runner(frame_size: tuple[int, int]):  # once the camera works: a first-time style downloads here
        return runner_for(_request(engine, style, model, device, precision), frame_size)

    job = WebcamJob(spec, not no_preview, parse_address(serve) if serve else None, output, overwrite,
                    virtual_cam, virtual_cam_device, side_by_side, frames, snapshots)  # fmt: skip
    try:
        report = run_webcam(job, make_runner, _console().print)
    except KeyboardInterrupt:  # while the camera or the model was still opening
        raise typer.Exit(130) from None
    for line in [report.summary(), *report.notes]:
        _console().print(line, highlight=False)
    if report.failed:
        raise CartoonizeError(report.stopped)
    if report.interrupted:
        raise typer.Exit(130)


@styles_app.command("list")
def styles_list() -> None:
    """The pretrained styles, and which are downloaded."""
    from rich.table import Table

    from cartoonize.styles import LICENCE_NOTE, STYLES, style_checkpoint_path

    table = Table("style", "look", "downloaded")
    for name, style in STYLES.items():
        table.add_row(name, style.description, "yes" if style_checkpoint_path(name).exists() else "no")
    console = _console()
    console.print(table)
    console.print(LICENCE_NOTE)


@styles_app.command("pull")
def styles_pull(
    names: Annotated[list[str], typer.Argument(help="Style names, or 'all'.")],
    force: Annotated[bool, typer.Option(help="Download again even if cached.")] = False,
) -> None:
    """Download a style's weights, verify every sha256 and convert them into one checkpoint."""
    from cartoonize.progress import pull_with_progress
    from cartoonize.styles import STYLES

    wanted = list(STYLES) if names == ["all"] else names
    for name in wanted:
        path = pull_with_progress(name, force=force)
        _console().print(f"[green]{name}[/]: {path}")


def _load_plugins() -> None:
    """Commands that live outside this package (e.g. `train`) register through entry points."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="cartoonize.commands"):
        try:
            app.add_typer(ep.load(), name=ep.name)
        except ImportError:  # the plugin's package is not installed in this environment
            continue


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


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: a CartoonizeError becomes one red line and exit 1; Typer turns Ctrl-C into
    exit 130 and usage errors into exit 2."""
    _load_plugins()
    try:
        app(args=argv)
    except CartoonizeError as exc:
        _console().print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
