"""`cartoonize image`: photos and folders of photos, read and written through PyAV."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.media.files import ATTACHED_PIC, atomic_output, fit_within
from cartoonize.runners.base import Runner
from cartoonize.stages import StageOptions, build_stages
from cartoonize.stages.upsample import network_frame

IMAGE_SUFFIXES = {".jpg": "mjpeg", ".jpeg": "mjpeg", ".png": "png", ".webp": "libwebp", ".bmp": "bmp",
                  ".tif": "tiff", ".tiff": "tiff"}  # fmt: skip
# read, not written: phones' HEIF (iPhone .heic) and AVIF photos, which FFmpeg decodes
READ_ONLY_SUFFIXES = {".heic", ".heif", ".avif"}
# the brands of a HEIF file (HEVC or AV1 images): FFmpeg gives a tiled one's tiles as separate
# streams, and the grid that joins them as a stream group, which PyAV does not expose
HEIF_BRANDS = {"mif1", "msf1", "heic", "heix", "heim", "heis", "hevc", "hevx", "avif", "avis"}


def _refuse_tiles(path: Path, container) -> None:  # noqa: ANN001 - an input av container
    """A tiled HEIF/AVIF photo (a phone's 12 MP photo is 48 tiles of 512×512) would be read as its
    first tile: say so instead, and how to get a photo this can read."""
    if container.metadata.get("major_brand") not in HEIF_BRANDS:
        return
    tiles = [s for s in container.streams.video if not int(s.disposition) & ATTACHED_PIC]
    if len(tiles) > 1:
        first = tiles[0].codec_context
        raise CartoonizeError(
            f"{path} is a tiled image ({len(tiles)} tiles of {first.width}×{first.height}, as phones save "
            f"HEIF photos), and PyAV cannot join the tiles: convert it first "
            f"(`heif-convert {path.name} {path.stem}.jpg`, or export it as JPEG)"
        )


def read_image(path: Path, max_side: int | None = None) -> np.ndarray:
    """uint8 (H, W, 3) RGB, upright (EXIF / display-matrix rotation applied)."""
    import av

    try:
        with av.open(str(path)) as container:
            _refuse_tiles(path, container)
            frame = next(container.decode(video=0))
    except av.FFmpegError as exc:
        raise CartoonizeError(
            f"{path} is not a readable image ({exc.strerror or type(exc).__name__})"
        ) from None
    except (StopIteration, IndexError):
        raise CartoonizeError(f"{path} is not a readable image (no picture in it)") from None
    k = int(round(frame.rotation / 90.0)) % 4
    w, h = (frame.height, frame.width) if k % 2 else (frame.width, frame.height)
    w, h = fit_within(w, h, max_side, even=False)
    coded = (h, w) if k % 2 else (w, h)
    rgb = frame.to_ndarray(format="rgb24", width=coded[0], height=coded[1], interpolation="AREA")
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Encode one frame to `path` (format from the suffix), atomically."""
    import av

    codec = IMAGE_SUFFIXES.get(path.suffix.lower())
    if codec is None:
        raise CartoonizeError(f"{path.name}: unsupported image type; use one of {', '.join(IMAGE_SUFFIXES)}")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    with atomic_output(path) as tmp, av.open(str(tmp), "w", format="image2") as out:
        stream = out.add_stream(codec, rate=1)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = frame.width, frame.height
        if codec == "mjpeg":
            stream.pix_fmt, stream.options = "yuvj444p", {"qscale": "2"}
        elif codec in ("png", "bmp", "tiff"):
            stream.pix_fmt = "rgb24"
        else:
            stream.pix_fmt = "yuv420p"
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def collect_images(inputs: list[Path]) -> list[Path]:
    readable = set(IMAGE_SUFFIXES) | READ_ONLY_SUFFIXES
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.suffix.lower() in readable and p.is_file())
        elif item.is_file():
            found.append(item)
        else:
            raise CartoonizeError(f"input {item} does not exist")
    if not found:
        raise CartoonizeError(f"no images found in {', '.join(map(str, inputs))}")
    return found


@dataclass(frozen=True)
class ImageJob:
    inputs: tuple[Path, ...]
    output: Path  # a file for one input image, else a folder
    max_side: int | None = None
    overwrite: bool = False
    stages: StageOptions = field(default_factory=StageOptions)  # temporal stages never run on photos


def plan_outputs(job: ImageJob) -> list[tuple[Path, Path]]:
    sources = collect_images(list(job.inputs))
    single = len(sources) == 1 and job.output.suffix.lower() in IMAGE_SUFFIXES and not job.output.is_dir()
    if single:
        pairs = [(sources[0], job.output)]
    else:
        if job.output.exists() and not job.output.is_dir():
            raise CartoonizeError(f"--output {job.output} must be a folder for {len(sources)} images")
        if not job.output.is_dir() and job.output.suffix.lower() in IMAGE_SUFFIXES:
            raise CartoonizeError(f"{len(sources)} images go into a folder, and --output {job.output} is named "
                                  f"like an image; give a folder ({job.output.with_suffix('')}/)")  # fmt: skip
        pairs = [(src, job.output / f"{src.stem}.png") for src in sources]
        names = [dst for _, dst in pairs]
        if len(set(names)) != len(names):
            raise CartoonizeError("two inputs share a file name; cartoonize them into separate folders")
    for src, dst in pairs:
        if src.resolve() == dst.resolve():
            raise CartoonizeError(f"output {dst} is the input; choose another output path")
        if dst.exists() and not job.overwrite:
            raise CartoonizeError(f"output {dst} exists; pass --overwrite to replace it")
    return pairs


def cartoonize_images(job: ImageJob, make_runner: Callable[[], Runner],
                      on_progress: Callable[[int, int], None] | None = None) -> list[Path]:  # fmt: skip
    pairs = plan_outputs(job)
    written = []
    chain = build_stages(replace(job.stages, temporal=False))
    unreadable: list[str] = []  # one line each: a bad photo in a folder does not stop the others
    with make_runner() as runner:
        for i, (src, dst) in enumerate(pairs):
            try:
                photo = read_image(src, job.max_side)
            except CartoonizeError as exc:
                if len(pairs) == 1:
                    raise
                unreadable.append(str(exc))
            else:
                small = network_frame(photo, job.stages.infer_side)
                cartoon = chain(photo, runner(small[None])[0])
                dst.parent.mkdir(parents=True, exist_ok=True)  # only once there is a picture to put there
                write_image(dst, cartoon)
                written.append(dst)
            if on_progress:
                on_progress(i + 1, len(pairs))
    if unreadable:
        more = f"; and {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
        raise CartoonizeError(
            f"{len(unreadable)} of {len(pairs)} images failed ({unreadable[0]}{more}); "
            f"the other {len(written)} are in {job.output}"
        )
    return written
