"""Media plumbing shared by `video`, `image` and `webcam`: output files written atomically,
encoder choice per container, audio/subtitle stream mapping, frame geometry."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import shutil
import socket
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.media.scheduling import kept

# output suffix -> (container format, default video codec)
CONTAINERS = {
    ".mp4": ("mp4", "h264"),
    ".m4v": ("mp4", "h264"),
    ".mov": ("mov", "h264"),
    ".mkv": ("matroska", "h264"),
    ".webm": ("webm", "vp9"),
    ".avi": ("avi", "mpeg4"),
    ".gif": ("gif", "gif"),  # no sound; 256 colours a frame (media/gif.py)
}
# a codec name -> encoders to try, fastest first (hardware ones are skipped where they fail to open)
ENCODERS = {
    "h264": ["h264_nvenc", "libx264"],
    "hevc": ["hevc_nvenc", "libx265"],
    "vp9": ["libvpx-vp9"],
    "vp8": ["libvpx"],
    "mpeg4": ["mpeg4"],
    "gif": ["gif"],
    "prores": ["prores_ks"],  # an editor's intermediate, in .mov or .mkv
}
# a codec family -> the pixel format its encoder takes where it is not 4:2:0 (the GIF encoder
# takes palette frames, made by media/gif.py)
NATIVE_PIX_FMT = {"gif": "pal8", "prores": "yuv422p10le", "prores_ks": "yuv422p10le"}
# container -> audio codecs it stores as they are, and the one to re-encode the others into
AUDIO_COPY = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le"},
    "matroska": None,  # takes nearly anything: what its muxer refuses is re-encoded (AUDIO_REENCODE)
    "webm": {"vorbis", "opus"},
    "avi": {"mp3", "ac3", "pcm_s16le"},
    "gif": set(),  # no audio at all: AUDIO_REENCODE has no entry for it
}
# Matroska: the few its muxer refuses (A-law, µ-law, ADPCM: decoded to 16 bits) are kept losslessly
AUDIO_REENCODE = {"mp4": "aac", "mov": "aac", "webm": "libopus", "avi": "libmp3lame", "matroska": "flac"}
# (eia_608: a QuickTime closed-caption track, c608)
SUBTITLE_COPY = {"mp4": {"mov_text"}, "mov": {"mov_text", "eia_608"}, "matroska": None, "webm": {"webvtt"}}
# container -> the text subtitle format it stores, for text subtitles of another kind (SubRip,
# ASS, WebVTT, mov_text) to be converted into; pictures (PGS, DVD) cannot be
SUBTITLE_TEXT = {"mp4": "mov_text", "mov": "mov_text", "webm": "webvtt", "matroska": "subrip"}
TEXT_SUBTITLES = {"subrip", "ass", "ssa", "webvtt", "mov_text", "text"}
# container -> muxer options. The mov family writes its index (moov) ahead of the media (mdat), so
# a browser or phone streaming the file over HTTP shows the first frame before the rest arrives;
# the muxer pays one extra pass over the file when it closes.
MUXER_OPTIONS = {"mp4": {"movflags": "+faststart"}, "mov": {"movflags": "+faststart"}}


def ffmpeg_path(path: Path) -> str:
    """`path` as FFmpeg opens it as a file whatever its name: absolute, so that a name with a
    colon ("Interview: Part 1.mp4") is not read as a protocol ("Interview:", not found)."""
    return str(Path(path).absolute())


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


# outputs whose muxer does not store a sample aspect ratio, for a codec that does not carry one
# either (VP9; GIF's one-byte ratio is ignored by browsers)
SQUARE_PIXELS = {"webm", "gif"}


def pixel_aspect(stream, rotation: int) -> Fraction | None:  # noqa: ANN001 - an av video stream
    """The source's sample aspect ratio (a pixel's width over its height) once turned upright, or
    None for square or unknown pixels. `--max-side` scales both sides alike, so it keeps it."""
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if not sar or sar == 1:
        return None
    return 1 / Fraction(sar) if rotation in (90, 270) else Fraction(sar)


ATTACHED_PIC = 0x400  # AV_DISPOSITION_ATTACHED_PIC: a cover picture, not a moving video


def main_video(container):  # noqa: ANN001, ANN201 - an input av container and its video stream
    """The video stream to cartoonize: FFmpeg's best (av_find_best_stream, as the ffmpeg tool
    picks: a film over a one-frame still before it), never a cover picture (an audio file's art);
    None where there is none."""
    best = container.streams.best("video")
    if best is None or int(best.disposition) & ATTACHED_PIC:
        return next((s for s in container.streams.video if not int(s.disposition) & ATTACHED_PIC), None)
    return best


# elementary streams without a container (a dashcam's, a Raspberry Pi camera's .h264): their
# demuxer assumes 25 fps where the stream's own timing (H.264 VUI) says otherwise
RAW_STREAMS = frozenset({"h264", "hevc", "vvc", "m4v", "mpegvideo", "cavsvideo"})


def frame_rate(stream) -> Fraction | None:  # noqa: ANN001 - an input av video stream
    """The stream's frame rate: its average (a variable-rate video's true mean), unless that is
    more than twice the rate FFmpeg guesses from the timestamps (`av_guess_frame_rate`, what the
    ffmpeg tool encodes at). FFmpeg 7.1's DV demuxer declares an average of 60000 fps for 29.97 fps
    video: an encoder opened at that rate cannot finish an MP4, and a progress bar counting on it
    expects 2000 times the frames. A raw elementary stream has no timestamps to average: its rate
    is the one its timing information gives (H.264's VUI: the decoder's frame rate; FFmpeg's guess
    made a 12 fps stream 24)."""
    average, guessed = stream.average_rate, stream.guessed_rate
    raw = stream.container is not None and stream.container.format.name in RAW_STREAMS
    own = stream.codec_context.framerate  # the decoder's, from the stream's timing information
    if raw and (own or guessed):  # the average: the raw demuxer's 25 fps default
        return Fraction(own or guessed)
    if average and (not guessed or average <= 2 * guessed):
        return Fraction(average)
    return Fraction(guessed) if guessed else None


def declared_duration(container, stream) -> float | None:  # noqa: ANN001 - an input av container, its video
    """The video's own duration as the file declares it, in seconds from the video's first
    timestamp (`stream_start`): its Matroska DURATION tag (where FFmpeg may have filled the
    stream's duration in from the file's; the tag is where the track ends, so a video that starts
    late has its start taken off), else the stream's, else the file's where the video is its only
    stream (the file's is its longest stream's: a video with a longer sound track is not short of
    frames). None: not said."""
    tag = next((v for k, v in stream.metadata.items() if k.upper() == "DURATION"), None)
    if tag:
        with contextlib.suppress(ValueError):
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds) - float(stream_start(stream))
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if len(container.streams) == 1 and container.duration is not None:
        return container.duration / 1_000_000
    return None


def stream_start(stream) -> Fraction:  # noqa: ANN001 - an input av stream
    """Seconds on the source's clock where the stream's first timestamp is (0 where not said)."""
    if stream.start_time is None or not stream.time_base:
        return Fraction(0)
    return stream.start_time * stream.time_base


def codec_name(stream) -> str:  # noqa: ANN001 - an av.stream.Stream
    """The codec's family name (`mp3`, not the decoder `mp3float`)."""
    codec = stream.codec_context.codec
    return codec.canonical_name  # PyAV 18.1 and 19 name every codec's family


def audio_plan(container: str, stream) -> str:  # noqa: ANN001
    """'copy' when the container stores this audio as it is, else the encoder to use; '' for a
    container that holds no audio (GIF)."""
    allowed = AUDIO_COPY.get(container)
    if allowed is None or codec_name(stream) in allowed:
        return "copy"
    return AUDIO_REENCODE.get(container, "")


def silent_audio(path: Path) -> frozenset[int]:
    """Indexes of the audio streams of the file at `path` that hold no packets: declared in its
    header and never given one (a camera that lost its microphone, a remux that kept only the
    picture). Copied, the declaration alone made an .mkv or .webm with an empty sound track (a
    dead track in players, a duration of its own). Read until each audio stream has given a
    packet: the first few for most files, all of them where one is empty. An MP4's count of its
    samples is enough (`frames`); an unreadable file: none known (its decoding says what is wrong)."""
    import av

    with av.open(ffmpeg_path(path)) as container:
        waiting = {s.index: s for s in container.streams.audio if not s.frames}
        try:
            for packet in container.demux(list(waiting.values())) if waiting else ():
                if packet.size:
                    waiting.pop(packet.stream.index, None)
                    if not waiting:
                        break
        except av.FFmpegError:
            return frozenset()
    return frozenset(waiting)


# a transport stream's packet sizes: plain; a Blu-ray's M2TS (a 4-byte time code before each); with
# 16 bytes of error correction after each
TS_PACKET_SIZES = (188, 192, 204)


def ends_mid_packet(container, path: Path) -> bool:  # noqa: ANN001 - an input av container
    """Whether the transport stream at `path` (`container`, open) stops partway through its last
    packet: a file cut short (a download or copy that stopped), which FFmpeg reads to the last
    whole packet without a word. A transport stream has no declared duration to compare with, but
    its muxer writes whole packets of one size (`TS_PACKET_SIZES`), from the first sync byte on.
    A cut on a packet's boundary is not seen."""
    if container.format.name != "mpegts":
        return False
    with open(path, "rb") as file:
        head = file.read(64 * 1024)
        size = os.fstat(file.fileno()).st_size
    for first in range(min(len(head), 1024)):  # (a recording may start with part of a packet)
        for packet in TS_PACKET_SIZES:
            if all(head[first + k * packet : first + k * packet + 1] == b"\x47" for k in range(8)):
                start = first - 4 if packet == 192 else first  # (M2TS: the time code first)
                return (size - start) % packet != 0
    return False


def muxer_refusal(container: str, stream) -> str | None:  # noqa: ANN001 - an input av stream
    """Why FFmpeg's `container` muxer will not write a header holding `stream` copied as it is, or
    None where it will. Some refusals come only then, not when the stream is added: the MP4 muxer
    takes MP3, but not MP3 below 16 kHz (an old phone's, a dictaphone's), and the run stopped at
    its first packet with a traceback. Asked of a scratch muxer writing into memory."""
    import io

    import av
    import av.logging

    scratch = av.open(io.BytesIO(), "w", format=container)
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)  # so that the muxer's reason is in the error (else off)
    try:
        with av.logging.Capture() as logs:
            scratch.add_stream_from_template(stream)
            scratch.start_encoding()
        return None
    except (ValueError, av.FFmpegError) as exc:
        said = [message.strip() for lvl, _, message in logs if lvl <= av.logging.ERROR]
        # (the muxer's own words, less its advice to force it: "..., to mux anyway set strict to -1")
        return said[-1].removeprefix("track 0: ").split(", to ")[0] if said else str(exc)
    finally:
        av.logging.set_level(level)
        with contextlib.suppress(av.FFmpegError, ValueError):
            scratch.close()


def encodable_rate(encoder: str, rate: int) -> int:
    """`rate` where `encoder` takes it, else the lowest rate above it that it does take (Opus takes
    48 kHz, not the 44.1 kHz of most MP3/AAC/Vorbis tracks); the resampler converts to it."""
    import av

    rates = av.Codec(encoder, "w").audio_rates
    if not rates or rate in rates:
        return rate
    higher = [r for r in rates if r >= rate]
    return min(higher) if higher else max(rates)


# FFmpeg's named channel layouts by channel count, its default first (av_channel_layout_default)
STANDARD_LAYOUTS = {
    1: ["mono"],
    2: ["stereo"],
    3: ["2.1", "3.0"],
    4: ["4.0", "quad", "3.1"],
    5: ["5.0", "5.0(side)", "4.1"],
    6: ["5.1", "5.1(side)", "6.0"],
    7: ["6.1", "6.1(back)", "7.0"],
    8: ["7.1", "7.1(wide)", "octagonal"],
}


def encodable_layout(encoder: str, rate: int, layout) -> str:  # noqa: ANN001 - an av AudioLayout
    """The channel layout to encode `layout` with: its own where `encoder` takes it, else a named
    layout of as many channels that it takes (AAC takes 5.1 but not 5.1(back); a camera's PCM or a
    raw multichannel track has channels in no named order), else stereo, which the resampler
    downmixes to."""
    import av

    count = layout.nb_channels if layout is not None else 2
    named = [layout.name] if layout is not None else []
    fmt = av.Codec(encoder, "w").audio_formats
    for candidate in [*named, *STANDARD_LAYOUTS.get(count, []), "stereo"]:
        ctx: Any = av.CodecContext.create(encoder, "w")  # an AudioCodecContext
        try:
            ctx.sample_rate, ctx.layout = rate, candidate
            if fmt:
                ctx.format = fmt[0].name
            ctx.open()
        except (av.error.FFmpegError, ValueError):
            continue
        return candidate
    return "stereo"


def subtitle_copyable(container: str, stream) -> bool:  # noqa: ANN001
    allowed = SUBTITLE_COPY.get(container, set())
    return allowed is None or codec_name(stream) in allowed


@dataclass(frozen=True)
class EncoderSettings:
    codec: str = "auto"  # auto (the container's default) or a codec/encoder name
    crf: int = 20  # visually clean for flat cartoon colours at a sane bitrate
    preset: str = "veryfast"  # x264: fast enough to keep up with a GPU engine on a few cores
    pix_fmt: str = "yuv420p"  # what every player decodes

    def for_codec(self, default_codec: str) -> EncoderSettings:
        """These settings for the output's codec: the pixel format its encoder needs (GIF's
        palette frames), where that is not 4:2:0."""
        family = default_codec if self.codec == "auto" else self.codec
        native = NATIVE_PIX_FMT.get(family)
        return replace(self, pix_fmt=native) if native else self


def open_video_encoder(output, settings: EncoderSettings, default_codec: str, width: int, height: int,
                       rate: Fraction | None, time_base: Fraction):  # fmt: skip
    """Add a video stream to `output` with the first encoder that opens here (NVENC where the GPU
    has one, then the CPU encoder)."""

    family = default_codec if settings.codec == "auto" else settings.codec
    errors = []
    for name in ENCODERS.get(family, [family]):
        problem = encoder_problem(name, width, height, settings.pix_fmt)
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
        if name in ENCODERS["hevc"] and output.format.name in ("mp4", "mov"):
            # Apple's players (QuickTime, Safari, iOS) play HEVC in MP4/MOV only under this tag,
            # with the parameter sets in the sample description; FFmpeg's default, hev1, plays elsewhere only
            stream.codec_tag = "hvc1"
        return stream
    raise CartoonizeError(f"no {family} encoder could be opened here ({'; '.join(errors)})")


def encoder_problem(name: str, width: int = 256, height: int = 256, pix_fmt: str = "yuv420p") -> str | None:
    """Why `name` cannot encode here (None when it can). Hardware encoders are listed by every
    FFmpeg build but open only on a GPU that has the unit: try one in a throwaway context."""
    import av

    if name not in av.codecs_available:
        return "not in this FFmpeg build"
    try:
        ctx = av.CodecContext.create(name, "w")
        if not isinstance(ctx, av.VideoCodecContext):
            return "not a video encoder"
        ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
        ctx.time_base = Fraction(1, 25)
        ctx.options = _encoder_options(name, EncoderSettings())  # x265's: quiet, as the real one is
        with kept():  # (SVT-AV1 as root makes the thread that opens it real-time: media/scheduling)
            ctx.open()  # freed when it goes out of scope
    except (av.FFmpegError, ValueError) as exc:
        return str(exc)
    return None


def _encoder_options(name: str, s: EncoderSettings) -> dict[str, str]:
    if name == "libx264":
        return {"crf": str(s.crf), "preset": s.preset}
    if name == "libsvtav1":  # SVT-AV1 logs twenty lines of info to stderr; SVT_LOG=1: errors only
        os.environ.setdefault("SVT_LOG", "1")  # (read as it opens; a user's own level stands)
        return {"crf": str(min(63, s.crf + 12))}  # AV1's 0-63 scale, as libvpx's below
    if name == "libx265":  # x265 logs two dozen lines of info to stderr unless told otherwise
        return {"crf": str(s.crf), "preset": s.preset, "x265-params": "log-level=error"}
    if name.endswith("_nvenc"):
        return {"preset": "p4", "rc": "vbr", "cq": str(s.crf)}
    if name in ("libvpx-vp9", "libvpx"):
        return {"crf": str(s.crf + 12), "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
    if name == "mpeg4":
        return {"qscale": "3"}
    if name == "prores_ks":  # ProRes 422 HQ, what editors ask for from a finished shot
        return {"profile": "3"}
    if name == "gif":
        # every frame carries its own palette: by default the first frame's goes in the file's
        # header instead, and a segment joined after it would be shown with those colours
        return {"global_palette": "0"}
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
    step = 2 if even else 1
    scale = (max_side // step * step) / max(width, height)  # the longer side even, not over: 31 -> 30, not 32
    return max(step, round(width * scale / step) * step), max(step, round(height * scale / step) * step)


def check_inputs(inputs: Iterable[Path]) -> None:
    """Refuse, before any work (a style's first download included), inputs that are not there."""
    for source in inputs:
        if not source.exists():
            raise CartoonizeError(missing_input(source))


# `scheme://...` as a Path holds it: `Path("http://host/a.mp4")` is `http:/host/a.mp4`
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):/+(?P<rest>.+)")


def missing_input(source: Path) -> str:
    """Why an input that is not a file here is refused, with what to do: a URL (read as a file
    name, it was said not to exist as `http:/host/a.mp4`), `-` (standard input), a `~` the shell
    left alone in quotes, or a name that is simply not there."""
    text = str(source)
    if text == "-":
        return "input - (standard input) cannot be read: save what you pipe in to a file and give its name"
    if url := _URL.fullmatch(text):
        if url["scheme"].lower() == "file":
            return f"input {url['scheme']}:///{url['rest']} is a URL; give the file's path: /{url['rest']}"
        return (f"input {url['scheme']}://{url['rest']} is a URL; only files are read here (`cartoonize webcam "
                f"--input URL` reads a stream): download it first, e.g. curl -LO {url['scheme']}://{url['rest']}")  # fmt: skip
    if text.startswith("~"):
        return f"input {source} does not exist (a shell expands ~ only outside quotes: write {source.expanduser()})"
    return f"input {source} does not exist"


def check_not_stdout(output: str) -> None:
    """Refuse `-` as an output: it is no file name here (a folder named `-` was made, or a
    `-` file), and an output is written under a hidden name and renamed whole, which a pipe cannot be."""
    if output == "-":
        raise CartoonizeError("output - (standard output) is not supported: outputs are written to a file "
                              "and renamed when complete; give a file name")  # fmt: skip


def check_output(output: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse, before any work, the outputs that would lose data or cannot be written."""
    for source in inputs:
        if source.resolve() == output.resolve():
            raise CartoonizeError(f"output {output} is the input; choose another output path")
    if output.is_dir():
        raise CartoonizeError(f"output {output} is a folder; give a file name")
    size = len(os.fsencode(output.name))  # the bytes on disk: a name need not be UTF-8
    if size > NAME_MAX:
        raise CartoonizeError(
            f"output name {output.name[:40]}… is {size} bytes; a file name may have {NAME_MAX}"
        )
    if output.exists() and not overwrite:
        raise CartoonizeError(f"output {output} exists; pass --overwrite to replace it")
    folder = output.parent  # Path("out.mp4").parent is Path(".")
    if folder.exists() and not folder.is_dir():
        raise CartoonizeError(f"output folder {folder} is a file, not a folder")
    if not folder.is_dir():
        raise CartoonizeError(f"output folder {folder} does not exist")
    check_output_folder(folder)  # writable: tried, as os.access says yes to root and on /proc


def made_folders(folder: Path) -> list[Path]:
    """`mkdir -p folder`, giving the folders it made, deepest first."""
    made = []
    missing = folder
    while not missing.exists() and missing != missing.parent:
        made.append(missing)
        missing = missing.parent
    folder.mkdir(parents=True, exist_ok=True)
    return made


def remove_empty(folders: list[Path]) -> None:
    """Remove those of `folders` that are empty (deepest first, so a tree of empty folders goes
    too): a job that failed or was stopped leaves no empty output folder behind it."""
    for folder in sorted(set(folders), key=lambda f: len(f.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty (an output landed there), or gone already
            folder.rmdir()


def once_each(pairs: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """(input, output) `pairs` less the repeats of one input file for one output (`a.jpg ./a.jpg`,
    or a file named and in a folder given), each said once in a warning, as `cp` does: refused as
    two inputs that "would both be written" to one output, the advice was to rename one."""
    import warnings

    from cartoonize.errors import CartoonizeWarning

    seen: set[tuple[Path, Path]] = set()
    kept: list[tuple[Path, Path]] = []
    repeated: list[Path] = []
    for source, target in pairs:
        key = (source.resolve(), target)
        if key in seen:
            repeated += [] if source in repeated else [source]
            continue
        seen.add(key)
        kept.append((source, target))
    for source in repeated:
        warnings.warn(
            f"{source} is given more than once; it is cartoonized once", CartoonizeWarning, stacklevel=3
        )
    return kept


MAX_NAMED = 10  # clashing outputs named in one error; the rest are counted


def check_distinct_outputs(
    pairs: Iterable[tuple[Path, Path]], each: str = "outputs are each of more than one input"
) -> None:
    """Refuse, before any work, inputs that would be written to the same output (`a.jpg` and
    `a.png` -> a.png; a phone's IMG_1.HEIC and IMG_1.JPG), naming every such output, so that one
    run says all that must be renamed; `each` words a count of them ("3 outputs are each ...")."""
    by_target: dict[Path, list[Path]] = {}
    for source, target in pairs:
        by_target.setdefault(target, []).append(source)
    clashes = [(target, sources) for target, sources in by_target.items() if len(sources) > 1]
    if not clashes:
        return
    shown = "; ".join(f"{_and(sources)} would {'both' if len(sources) == 2 else 'all'} be written to {target}"
                      for target, sources in clashes[:MAX_NAMED])  # fmt: skip
    more = f"; and {len(clashes) - MAX_NAMED} more" if len(clashes) > MAX_NAMED else ""
    what = "" if len(clashes) == 1 else f"{len(clashes)} {each}: "
    one = len(clashes) == 1 and len(clashes[0][1]) == 2
    raise CartoonizeError(f"{what}{shown}{more}; give them in separate runs or rename "
                          f"{'one' if one else 'all but one of each'}")  # fmt: skip


def _and(paths: list[Path]) -> str:
    return f"{', '.join(map(str, paths[:-1]))} and {paths[-1]}"


def check_output_folder(folder: Path) -> None:
    """Refuse, before any work, a folder that outputs cannot go into once the missing part of it is
    made: a file on its path, or a folder no file can be created in. The test is creating one
    (an unnamed temporary file): `os.access` answers yes for root, and on /proc, where nothing
    can be created."""
    import tempfile

    there = folder
    while not there.exists() and there != there.parent:  # False also for a path below a file
        there = there.parent
    if not there.is_dir():
        raise CartoonizeError(f"output folder {there} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=there):
            pass
    except OSError as exc:
        raise CartoonizeError(f"output folder {there} is not writable ({exc.strerror})") from None


def check_codec(output: Path, codec: str) -> None:
    """Refuse, before any work, a `--codec` the output's container cannot hold (libx264 in .webm,
    anything but gif in .gif): FFmpeg's muxer answers, as it does when the stream is added."""
    import av

    container_name, _ = container_for(output)
    if codec == "auto":
        return
    names = [n for n in ENCODERS.get(codec, [codec]) if n in av.codecs_available]
    if not names:
        raise CartoonizeError(
            f"--codec {codec}: this FFmpeg build has no such encoder (try {', '.join(ENCODERS)})"
        )
    if _holds(container_name, names[-1]):
        return
    fits = [suffix for suffix, (c, _) in CONTAINERS.items() if _holds(c, names[-1])]
    raise CartoonizeError(
        f"--codec {codec} cannot go in a {output.suffix} file (FFmpeg's {container_name} muxer refuses it); "
        + (f"write {', '.join(fits)} instead" if fits else "choose another codec")
    )


def _holds(container_name: str, encoder: str) -> bool:
    """Whether FFmpeg's `container_name` muxer takes a stream of `encoder`'s codec."""
    import io

    import av

    try:
        with av.open(io.BytesIO(), "w", format=container_name) as probe:
            probe.add_stream(encoder)
    except ValueError:
        return False
    return True


NAME_MAX = 255  # bytes in a file's name on the usual file systems (ext4, APFS, NTFS in UTF-16 units)


def hidden_sibling(output: Path, tail: str) -> Path:
    """A hidden name beside `output`: its stem, then `tail`, the stem shortened where the whole
    would be longer than a file name may be (a 240-byte name is legal; the temporary one was not)."""
    room = NAME_MAX - 1 - len(os.fsencode(tail))
    whole = os.fsencode(output.stem)  # the bytes on disk: a name need not be UTF-8 (`\xff.mp4`)
    cut = whole[:room]
    while cut and len(cut) < len(whole) and whole[len(cut)] & 0xC0 == 0x80:
        cut = cut[:-1]  # whole characters only: not a UTF-8 sequence's first bytes
    return output.with_name(f".{os.fsdecode(cut)}{tail}")


def replaced_file(output: Path) -> Path:
    """The file that writing `output` makes or replaces: where `output` is a symbolic link, the
    file it points to (the link stays a link, as `cp` and `ffmpeg -y` leave it)."""
    try:
        link = output.is_symlink()
    except OSError:  # a name too long to exist (Python 3.11 raises ENAMETOOLONG): no link either
        link = False
    return Path(os.path.realpath(output)) if link else output


def temporary_sibling(output: Path) -> Path:
    """A hidden file beside the file `output` names (`replaced_file`), with `output`'s suffix (the
    container is inferred from it), for `put_in_place` to move onto it. Named by this machine and
    process (`process_tag`), so that a later run can tell one left by a run that was killed
    (`sweep_leftovers`) from one still being written."""
    target = replaced_file(output)
    sweep_leftovers(target.parent)
    return hidden_sibling(target, f".cartoonize-{process_tag()}.partial{output.suffix}")


def process_tag(pid: int | None = None) -> str:
    """'HOST-PID' of this process (or of process `pid` on this machine): what names its hidden
    temporary files and folders, in a folder that other machines may share."""
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())
    return f"{host}-{os.getpid() if pid is None else pid}"


def process_running(pid: int) -> bool:
    """Whether process `pid` of this machine is running (another user's counts)."""
    if os.name == "nt":  # os.kill would end it there: taken for running, its files never removed
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


# a hidden temporary file or folder of a run (`temporary_sibling`, `segments.parts_folder`)
_LEFTOVER = re.compile(r"\..*\.cartoonize-(?P<host>[A-Za-z0-9._-]+)-(?P<pid>\d+)\.(partial\b.*|segments)")


@functools.cache
def sweep_leftovers(folder: Path) -> None:
    """Remove from `folder` (once a process) the hidden temporary files and segment folders that
    runs on this machine left when they were killed (SIGKILL, the OOM killer, a power cut: no
    clean-up runs) and that no process of theirs is writing: each was a whole video's worth of
    disk, kept forever under a name no later run uses. Another machine's (a shared folder), or a
    running process's, are left alone."""
    host = process_tag(0).rsplit("-", 1)[0]
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet, or none to read: nothing to sweep
        return
    for entry in entries:
        found = _LEFTOVER.fullmatch(entry.name)
        if found is None or found["host"] != host or int(found["pid"]) == os.getpid():
            continue
        if not process_running(int(found["pid"])):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)


def put_in_place(tmp: Path, output: Path, replace: bool = True) -> None:
    """Move the finished `tmp` onto `output` at once (a rename): onto the file a link points to,
    with the permissions and owner of a file it replaces (`keep_ownership`). Without `replace`
    (no --overwrite), a file that another job put under `output` while this one ran is kept, and
    this one is an error: `output` is made as a new name for `tmp` (a hard link), which fails
    where the name exists; the check before the work could not see a job that finishes first."""
    target = replaced_file(output)
    if replace:
        keep_ownership(target, tmp)
        tmp.replace(target)
        return
    taken = CartoonizeError(f"output {output} was written by another job while this one ran; it is kept "
                            "and this job's result is not: pass --overwrite to replace it")  # fmt: skip
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise taken from None
    except OSError as exc:  # a file system without hard links (FAT, exFAT, some network shares)
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if target.exists():
            raise taken from None
        tmp.replace(target)
        return
    tmp.unlink()


# errors of a write that failed for want of room or of a writable disk: a user's to fix, not a bug
_NO_ROOM = {errno.ENOSPC: "; free some space or write elsewhere", errno.EDQUOT: "; over the disk quota",
            errno.EFBIG: "", errno.EROFS: ""}  # fmt: skip
WRITE_ERRNOS = frozenset({*_NO_ROOM, errno.EIO})  # the errors write_failure names the output for


def write_failure(output: Path, tmp: Path, exc: OSError) -> CartoonizeError | None:
    """The one-line error for an OSError raised while `output` was being written through `tmp`
    (a full disk, a quota, a file-size limit, a read-only disk, an I/O error on that file), or
    None where the error is not about writing it."""
    named = exc.filename is not None and Path(os.fsdecode(exc.filename)).name in (tmp.name, output.name)
    if exc.errno in _NO_ROOM and (exc.filename is None or named):
        return CartoonizeError(f"cannot write {output} ({exc.strerror}){_NO_ROOM[exc.errno]}")
    if exc.errno == errno.EIO and named:
        return CartoonizeError(f"cannot write {output} ({exc.strerror})")
    return None


def write_atomic(path: Path, data: bytes) -> None:
    """Write beside `path` and rename: a reader never sees half a file, and processes writing the
    same file at once (a cache's record, a manifest) each write their own temporary one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def keep_ownership(old: Path, new: Path) -> None:
    """Give `new` the permission bits, owner and group of `old`, the file it is about to replace
    (nothing where `old` is not there: a new file follows the umask). Owner and group are set
    where the process may (root, or a group of its own), else left as made."""
    try:
        st = old.stat()
    except FileNotFoundError:
        return
    with contextlib.suppress(PermissionError):
        os.chown(new, st.st_uid, st.st_gid)  # first: a change of owner clears the set-ID bits
    os.chmod(new, stat.S_IMODE(st.st_mode))


@contextlib.contextmanager
def atomic_output(output: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path; move it onto `output` only if the block completes. A write that
    fails for want of room (a full disk, a quota, a size limit) becomes a one-line error naming
    `output`, not the hidden temporary file.

    An output that is replaced (`--overwrite`) is replaced as `cp` and `ffmpeg -y` replace it:
    a symbolic link is followed (the file it points to is replaced, the link stays), and the new
    file keeps the old one's permissions and, where this process may set them, its owner and group
    (a file made private stays private)."""
    tmp = temporary_sibling(output)
    try:
        yield tmp
        put_in_place(tmp, output, replace)
    except OSError as exc:  # PyAV's errors with an errno are OSErrors too
        failure = write_failure(output, tmp, exc)
        if failure is None:
            raise
        raise failure from None
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# colour: which matrix and range a video's YUV uses, read once from the source, used to decode
# it to RGB and to encode the cartoons back, and written into the output's tags.
# The codes are FFmpeg's (AVCOL_*: what frames and codec contexts carry); swscale, behind
# `VideoFrame.reformat`, names matrices by its own SWS_CS_* codes, mapped here. PyAV 18.1 and
# 19.0 both take `src/dst_colorspace`, `src/dst_color_range` and the frame's and codec context's
# `colorspace`, `color_range`, `color_primaries`, `color_trc`; this block is the one place that
# knows those names.

BT709, UNSPECIFIED, BT470BG, SMPTE170M, BT2020_NCL, BT2020_CL = 1, 2, 5, 6, 9, 10  # AVColorSpace
LIMITED, FULL = 1, 2  # AVColorRange: MPEG (16-235), JPEG (0-255)
_SWS_MATRIX = {BT709: "ITU709", 4: "FCC", BT470BG: "ITU601", SMPTE170M: "SMPTE170M", 7: "SMPTE240M",
               BT2020_NCL: "BT2020", BT2020_CL: "BT2020"}  # fmt: skip
_MATRIX_NAMES = {BT709: "BT.709", BT470BG: "BT.601 (625)", SMPTE170M: "BT.601 (525)", 4: "FCC",
                 7: "SMPTE 240M", BT2020_NCL: "BT.2020", BT2020_CL: "BT.2020 CL"}  # fmt: skip
# accurate rounding and full chroma interpolation: swscale's fast YUV->RGB path is off by up to
# 3 levels on saturated colours (measured on 75 % bars), this by at most 1
_ACCURATE = ("ACCURATE_RND", "FULL_CHR_H_INT")


@dataclass(frozen=True)
class Colour:
    """The YUV <-> RGB convention of a video: AVCOL_* codes of its matrix, range, primaries and
    transfer; `tagged` False where the source said nothing and the size-based default stands."""

    matrix: int
    range: int
    primaries: int
    trc: int
    tagged: bool = True

    def describe(self) -> str:
        name = _MATRIX_NAMES.get(self.matrix, f"matrix {self.matrix}")
        rng = "full" if self.range == FULL else "limited"
        return f"{name} {rng} range{'' if self.tagged else ' (untagged source: the size-based default)'}"


def default_colour(width: int, height: int) -> Colour:
    """What players assume for untagged video: BT.709 for HD (wider than 1024 or taller than 576),
    BT.601 below (625-line primaries at 576 lines, else 525-line), limited range."""
    if width > 1024 or height > 576:
        return Colour(BT709, LIMITED, 1, 1, tagged=False)
    if height in (576, 288):
        return Colour(BT470BG, LIMITED, 5, 6, tagged=False)
    return Colour(SMPTE170M, LIMITED, 6, 6, tagged=False)


# where an output says its colour: its container's colour box or element, or its codec's bitstream
# (H.264/HEVC's VUI, MPEG-2's sequence display extension, VP9's and AV1's headers, ProRes's frame
# header); MPEG-4 Part 2 and FFV1 in AVI say nothing, and Motion JPEG says JPEG's BT.601 full range
COLOUR_CONTAINERS = {"mp4", "mov", "matroska", "webm", "gif"}  # (GIF: RGB palettes, no YUV)
COLOUR_BITSTREAMS = {"h264", "hevc", "mpeg2video", "vp9", "av1", "prores"}
JPEG_COLOUR = Colour(BT470BG, FULL, UNSPECIFIED, UNSPECIFIED, tagged=False)


def stored_colour(colour: Colour, container: str, codec: str, width: int, height: int) -> Colour:
    """The colour to encode a `width`×`height` output with: `colour`, where the output can say
    it; else what a player will read it as, so that it shows as the source does: a BT.601 source
    written as MPEG-4 Part 2 into .avi (AVI's default) is HD untagged, which a player reads as
    BT.709 (Big Buck Bunny's 720p came out with its colours off). `codec`: an encoder or codec."""
    import av

    if container in COLOUR_CONTAINERS:
        return colour
    family = av.Codec(codec, "w").canonical_name  # (asked once, and only outside those containers)
    if family in COLOUR_BITSTREAMS:
        return colour
    return JPEG_COLOUR if family == "mjpeg" else default_colour(width, height)


def source_colour(frame) -> Colour:  # noqa: ANN001 - a decoded av.VideoFrame
    """The frame's own tags, each missing one filled from the size-based default; a `yuvj*`
    format (JPEG) means full range whatever the tag says."""
    fallback = default_colour(frame.width, frame.height)
    matrix = int(frame.colorspace)  # 0 (RGB), 2 (unspecified) and reserved codes: not a YUV matrix
    rng = FULL if frame.format.name.startswith("yuvj") else int(frame.color_range)
    primaries, trc = int(frame.color_primaries), int(frame.color_trc)
    tagged = matrix in _SWS_MATRIX
    return Colour(
        matrix if tagged else fallback.matrix,
        rng if rng in (LIMITED, FULL) else LIMITED,
        primaries if primaries not in (0, UNSPECIFIED) else fallback.primaries,
        trc if trc not in (0, UNSPECIFIED) else fallback.trc,
        tagged,
    )


def _swscale(colour: Colour) -> tuple:
    from av.video.reformatter import ColorRange, Colorspace

    # PyAV 18.1 and 19 name all of _SWS_MATRIX's matrices; an unmapped code decodes as BT.601
    matrix = Colorspace[_SWS_MATRIX.get(colour.matrix, "ITU601")]
    return matrix, ColorRange.JPEG if colour.range == FULL else ColorRange.MPEG


def _flags(interpolation: str, accurate: bool = True):  # noqa: ANN202
    from av.video.reformatter import Interpolation

    flags = Interpolation[interpolation]
    for name in _ACCURATE if accurate else ():
        flags |= Interpolation[name]
    return flags


def converter():  # noqa: ANN201 - an av.video.reformatter.VideoReformatter
    """A swscale context for one thread's stream of frames, given to `to_rgb` and `to_yuv` as
    `using`: without one each frame gets its own (PyAV keeps it on the frame), which sets up
    swscale's tables and its pool of slice threads, one per core, every frame (about 1 ms of a
    1080p frame's 7-8 on two cores; the same pixels). The context follows a change of size or
    format; it is not for two threads at once."""
    from av.video.reformatter import VideoReformatter

    return VideoReformatter()


def to_rgb(frame, colour: Colour, width: int | None = None, height: int | None = None,
           interpolation: str = "AREA", using=None, accurate: bool = True) -> np.ndarray:  # fmt: skip  # noqa: ANN001
    """A decoded frame as RGB (H, W, 3) uint8, converted with `colour`'s matrix and range, by
    `using` (a `converter()`) where given; `accurate` False: swscale's fast rounding (live
    pictures, where each millisecond is latency)."""
    matrix, rng = _swscale(colour)
    options = {"format": "rgb24", "width": width, "height": height, "interpolation": _flags(interpolation, accurate),
               "src_colorspace": matrix, "src_color_range": rng}  # fmt: skip
    if using is None:
        return frame.to_ndarray(**options)
    return using.reformat(frame, **options).to_ndarray()


@functools.cache  # asked once a frame by the encode thread
def _threads_into(pix_fmt: str) -> int:
    """swscale's slice threads for RGB into `pix_fmt`: one for formats of more than 8 bits.
    FFmpeg 8.1's swscale (PyAV 18.1's) writes the first 8 pixels of the rows where a slice
    starts wrongly, by up to 448 of 1023 levels, when it converts rgb24 into 10- to 16-bit YUV
    with more than one thread, at widths such as 854, 1080 or 1366 (not 1280 or 1920): ProRes
    (yuv422p10le) had a dash at the left edge of each slice's first row, one slice a core.
    0 (one a core) for the rest, which come out the same with any number."""
    import av

    return 1 if max(c.bits for c in av.VideoFormat(pix_fmt).components) > 8 else 0


def to_yuv(rgb: np.ndarray, colour: Colour, pix_fmt: str = "yuv420p", using=None):  # noqa: ANN001, ANN201
    """RGB (H, W, 3) uint8 into a `pix_fmt` av.VideoFrame with `colour`'s matrix and range, by
    `using` (a `converter()`) where given, tagged with all four of its codes (the encoder and the
    muxer write them from the stream's context, set by `tag_encoder`)."""
    import av

    matrix, rng = _swscale(colour)
    if rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.strides[1:] == (3, 1):
        # the array's own memory, rows at its stride (a cropped view too): no copy of the picture
        # (4 ms a 1080p frame here); it is read only by the reformat below, the encoder gets `out`
        frame = av.VideoFrame.from_numpy_buffer(rgb, format="rgb24")
    else:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    options = {
        "format": pix_fmt,
        "dst_colorspace": matrix,
        "dst_color_range": rng,
        "threads": _threads_into(pix_fmt),
    }
    out = frame.reformat(**options) if using is None else using.reformat(frame, **options)
    for name, value in colour_tags(colour).items():
        setattr(out, name, value)
    return out


def colour_tags(colour: Colour) -> dict[str, int]:
    return {"colorspace": colour.matrix, "color_range": colour.range,
            "color_primaries": colour.primaries, "color_trc": colour.trc}  # fmt: skip


def tag_encoder(stream, colour: Colour) -> None:  # noqa: ANN001 - an output av.VideoStream
    """Write `colour` into the encoder's context before it opens: H.264/VP9 put it in the
    bitstream's VUI, the mp4/mkv muxers in their colour boxes."""
    for name, value in colour_tags(colour).items():
        setattr(stream.codec_context, name, value)
