"""Media plumbing shared by `video`, `image` and `webcam`: output files written atomically,
encoder choice per container, audio/subtitle stream mapping, frame geometry."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from cartoonize.errors import CartoonizeError

# output suffix -> (container format, default video codec)
CONTAINERS = {
    ".mp4": ("mp4", "h264"),
    ".m4v": ("mp4", "h264"),
    ".mov": ("mov", "h264"),
    ".mkv": ("matroska", "h264"),
    ".webm": ("webm", "vp9"),
    ".avi": ("avi", "mpeg4"),
}
# a codec name -> encoders to try, fastest first (hardware ones are skipped where they fail to open)
ENCODERS = {
    "h264": ["h264_nvenc", "libx264"],
    "hevc": ["hevc_nvenc", "libx265"],
    "vp9": ["libvpx-vp9"],
    "vp8": ["libvpx"],
    "mpeg4": ["mpeg4"],
}
# container -> audio codecs it stores as they are, and the one to re-encode the others into
AUDIO_COPY = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le"},
    "matroska": None,  # takes anything
    "webm": {"vorbis", "opus"},
    "avi": {"mp3", "ac3", "pcm_s16le"},
}
AUDIO_REENCODE = {"mp4": "aac", "mov": "aac", "webm": "libopus", "avi": "libmp3lame"}
SUBTITLE_COPY = {"mp4": {"mov_text"}, "mov": {"mov_text"}, "matroska": None, "webm": {"webvtt"}}
# container -> muxer options. The mov family writes its index (moov) ahead of the media (mdat), so
# a browser or phone streaming the file over HTTP shows the first frame before the rest arrives;
# the muxer pays one extra pass over the file when it closes.
MUXER_OPTIONS = {"mp4": {"movflags": "+faststart"}, "mov": {"movflags": "+faststart"}}


def container_for(path: Path) -> tuple[str, str]:
    try:
        return CONTAINERS[path.suffix.lower()]
    except KeyError:
        raise CartoonizeError(
            f"{path.name}: unsupported output type; use one of {', '.join(CONTAINERS)}"
        ) from None


def muxer_options(container: str) -> dict[str, str]:
    """What to pass as `container_options` when opening an output of this container format."""
    return dict(MUXER_OPTIONS.get(container, {}))


def codec_name(stream) -> str:  # noqa: ANN001 - an av.stream.Stream
    """The codec's family name (`mp3`, not the decoder `mp3float`)."""
    codec = stream.codec_context.codec
    return getattr(codec, "canonical_name", None) or codec.name


def audio_plan(container: str, stream) -> str:  # noqa: ANN001
    """'copy' when the container stores this audio as it is, else the encoder to use."""
    allowed = AUDIO_COPY.get(container)
    return "copy" if allowed is None or codec_name(stream) in allowed else AUDIO_REENCODE[container]


def encodable_rate(encoder: str, rate: int) -> int:
    """`rate` where `encoder` takes it, else the lowest rate above it that it does take (Opus takes
    48 kHz, not the 44.1 kHz of most MP3/AAC/Vorbis tracks); the resampler converts to it."""
    import av

    rates = av.Codec(encoder, "w").audio_rates
    if not rates or rate in rates:
        return rate
    higher = [r for r in rates if r >= rate]
    return min(higher) if higher else max(rates)


def subtitle_copyable(container: str, stream) -> bool:  # noqa: ANN001
    allowed = SUBTITLE_COPY.get(container, set())
    return allowed is None or codec_name(stream) in allowed


@dataclass(frozen=True)
class EncoderSettings:
    codec: str = "auto"  # auto (the container's default) or a codec/encoder name
    crf: int = 20  # visually clean for flat cartoon colours at a sane bitrate
    preset: str = "veryfast"  # x264: fast enough to keep up with a GPU engine on a few cores
    pix_fmt: str = "yuv420p"  # what every player decodes


def open_video_encoder(output, settings: EncoderSettings, default_codec: str, width: int, height: int,
                       rate: Fraction | None, time_base: Fraction):  # fmt: skip
    """Add a video stream to `output` with the first encoder that opens here (NVENC where the GPU
    has one, then the CPU encoder)."""

    family = default_codec if settings.codec == "auto" else settings.codec
    errors = []
    for name in ENCODERS.get(family, [family]):
        problem = encoder_problem(name, width, height)
        if problem:
            errors.append(f"{name}: {problem}")
            continue
        stream = output.add_stream(name, rate=rate) if rate else output.add_stream(name)
        stream.width, stream.height = width, height
        stream.pix_fmt = settings.pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.thread_type = "AUTO"
        stream.options = _encoder_options(name, settings)
        return stream
    raise CartoonizeError(f"no {family} encoder could be opened here ({'; '.join(errors)})")


def encoder_problem(name: str, width: int = 256, height: int = 256) -> str | None:
    """Why `name` cannot encode here (None when it can). Hardware encoders are listed by every
    FFmpeg build but open only on a GPU that has the unit: try one in a throwaway context."""
    import av

    if name not in av.codecs_available:
        return "not in this FFmpeg build"
    try:
        ctx = av.CodecContext.create(name, "w")
        if not isinstance(ctx, av.VideoCodecContext):
            return "not a video encoder"
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = Fraction(1, 25)
        ctx.open()  # freed when it goes out of scope
    except (av.FFmpegError, ValueError) as exc:
        return str(exc)
    return None


def _encoder_options(name: str, s: EncoderSettings) -> dict[str, str]:
    if name in ("libx264", "libx265"):
        return {"crf": str(s.crf), "preset": s.preset}
    if name.endswith("_nvenc"):
        return {"preset": "p4", "rc": "vbr", "cq": str(s.crf)}
    if name in ("libvpx-vp9", "libvpx"):
        return {"crf": str(s.crf + 12), "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
    if name == "mpeg4":
        return {"qscale": "3"}
    return {}


def even_size(width: int, height: int) -> tuple[int, int]:
    """4:2:0 chroma needs even sides."""
    return width + width % 2, height + height % 2


def pad_to_even(frame: np.ndarray) -> np.ndarray:
    """Repeat the last row/column where a side is odd (no scaling, so no distortion)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def fit_within(width: int, height: int, max_side: int | None, even: bool = True) -> tuple[int, int]:
    """Scale (width, height) down so the longer side is at most `max_side`, keeping the aspect
    ratio; with `even`, sides stay even so 4:2:0 encoders take them."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    step = 2 if even else 1
    return max(step, round(width * scale / step) * step), max(step, round(height * scale / step) * step)


def check_output(output: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse, before any work, the outputs that would lose data or cannot be written."""
    for source in inputs:
        if source.resolve() == output.resolve():
            raise CartoonizeError(f"output {output} is the input; choose another output path")
    if output.is_dir():
        raise CartoonizeError(f"output {output} is a folder; give a file name")
    if output.exists() and not overwrite:
        raise CartoonizeError(f"output {output} exists; pass --overwrite to replace it")
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise CartoonizeError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CartoonizeError(f"output folder {folder} is not writable")


def temporary_sibling(output: Path) -> Path:
    """A hidden file beside `output` with the same suffix (so the container is inferred alike)."""
    return output.with_name(f".{output.stem}.cartoonize-{os.getpid()}.partial{output.suffix}")


@contextlib.contextmanager
def atomic_output(output: Path) -> Iterator[Path]:
    """Yield a temporary path; move it onto `output` only if the block completes."""
    tmp = temporary_sibling(output)
    try:
        yield tmp
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
