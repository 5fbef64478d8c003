"""`cartoonize image`: photos and folders of photos, read and written through PyAV."""

from __future__ import annotations

import contextlib
import math
import mimetypes
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from cartoonize.errors import CartoonizeError, CartoonizeWarning
from cartoonize.media import exif, hdr, icc, opencv_photo, photo_file, tiff
from cartoonize.media.files import (
    ATTACHED_PIC,
    atomic_output,
    check_distinct_outputs,
    check_output_folder,
    ffmpeg_path,
    fit_within,
    made_folders,
    once_each,
    remove_empty,
    source_colour,
    to_rgb,
)
from cartoonize.pipelines import memory
from cartoonize.runners.base import Runner
from cartoonize.stages import StageOptions, build_stages
from cartoonize.stages.upsample import network_frame, network_size

# suffix -> (encoder, the pixel format it takes, the one with alpha where the type holds transparency)
IMAGE_SUFFIXES = {".jpg": ("mjpeg", "yuvj444p", None), ".jpeg": ("mjpeg", "yuvj444p", None),
                  ".png": ("png", "rgb24", "rgba"), ".webp": ("libwebp", "yuv420p", "yuva420p"),
                  ".bmp": ("bmp", "bgr24", None),  # the bmp encoder takes BGR, not RGB
                  ".tif": ("tiff", "rgb24", "rgba"), ".tiff": ("tiff", "rgb24", "rgba")}  # fmt: skip
ENCODER_OPTIONS = {"mjpeg": {"qscale": "2"}}
# decoders that hide damage unless asked: FFmpeg's JPEG decoder fills a cut-short or corrupt photo
# with grey or smeared blocks and says nothing. Not TIFF: its decoder then refuses valid files
# for a tag it does not know (ResolutionUnit, as FFmpeg itself writes)
STRICT_DECODERS = {"mjpeg": {"err_detect": "explode"}}
# read, not written: phones' HEIF (iPhone .heic) and AVIF photos, and other types FFmpeg decodes,
# so that a folder's are found as they are named one by one
READ_ONLY_SUFFIXES = {".heic", ".heif", ".avif",
                      ".jfif", ".jpe",  # JPEG under other names
                      ".gif",  # its first frame, with a warning where it is animated
                      ".tga", ".ico", ".dib", ".qoi", ".jp2", ".j2k", ".ppm", ".pgm", ".pbm", ".pnm"}  # fmt: skip
# the brands of a HEIF file (HEVC or AV1 images): FFmpeg gives a tiled one's tiles as separate
# streams, and the grid that joins them as a stream group, which PyAV does not expose
HEIF_BRANDS = {"mif1", "msf1", "heic", "heix", "heim", "heis", "hevc", "hevx", "avif", "avis"}
# FFmpeg's names for types it opens and cannot decode (SVG, JPEG XL: no decoder in it; PSD: only
# some): what the file is, and how to get a photo this reads
NOT_DECODED = {
    "svg_pipe": ("a vector drawing (SVG)", "export it as PNG first"),
    "jpegxl_pipe": ("a JPEG XL image", "convert it to PNG or JPEG first (`djxl {name} {stem}.png`)"),
    "psd_pipe": ("a Photoshop document (PSD)", "export it as PNG or TIFF first"),
}
# bytes per pixel a photo takes at its full size on the CPU, beside the network's (pipelines.memory):
# the photo, its cartoon, the stages' float planes (stages.upsample, stages.exposure) and the JPEG
# encoder's worst-case packet. Measured here: 9.05 GB peak resident for a 96 MP photo at
# --infer-side 128, where the network's share is small; the stages alone 65 B/px (24 MP), writing
# the JPEG 19 B/px (96 MP). Left out, a 48 MP photo on a 16 GB machine was sized to fill 80% of the
# memory at the network and then killed at full size.
FULL_SIZE_BYTES_PER_PIXEL = 90
UNSPECIFIED = 2  # H.273's code point for primaries and transfer a decoder was not told
# FFmpeg decodes no picture of (width + 128) × (height + 128) pixels or more, reduced or not
# (av_image_check_size): a JPEG larger (a 20000×15000 panorama) goes to OpenCV, which reads it reduced
FFMPEG_MAX_PIXELS = (2**31 - 1) // 8
OPENCV_MAX_PIXELS = 1 << 30  # OpenCV's own (OPENCV_IO_MAX_IMAGE_PIXELS), of the size it decodes to
# a JPEG decodes to 1/8, 1/4 or 1/2 of its size (its DCT scaled), held at that size alone
JPEG_SCALES = (8, 4, 2)


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
    """uint8 (H, W, 3) RGB, upright (EXIF orientation, mirroring included, or the display matrix's turn)."""
    return read_image_and_alpha(path, max_side)[0]


def read_image_and_alpha(path: Path, max_side: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 (H, W, 3) RGB and its (H, W) alpha plane, None where the photo has no transparency
    (or an alpha plane that is opaque everywhere); both upright and scaled alike. FFmpeg decodes
    it, or OpenCV where FFmpeg cannot (media.opencv_photo)."""
    misread = opencv_photo.misread_by_ffmpeg(path)  # a JPEG-compressed TIFF: black from FFmpeg
    layout = opencv_photo.jpeg_layout(path)  # a JPEG's stored size and colour sampling, else None
    stored = None if layout is None else (layout[0], layout[1])
    scale = 1 if layout is None else _jpeg_scale(layout, exif.orientation(path) or 1, max_side)
    reduced = None if stored is None or scale == 1 else (stored, scale)
    if stored is not None and (misread or _beyond_ffmpeg(*stored)):
        picture = opencv_photo.reduced_rgb(path, scale)
        if picture is None:
            raise CartoonizeError(_not_decoded_jpeg(path, stored, misread, scale))
        rgb, alpha, turn = _from_opencv(path, picture, max_side, reduced)
    elif misread:
        picture = opencv_photo.rgba_from_file(path)
        if picture is None:
            raise CartoonizeError(f"{path} is {misread}, which cannot be decoded here: convert it "
                                  f"to PNG or (baseline) JPEG first")  # fmt: skip
        rgb, alpha, turn = _from_opencv(path, picture, max_side)
    else:
        try:
            frame = _first_frame(path, scale.bit_length() - 1)  # FFmpeg's lowres: 1/2 to 1/8
            rgb, alpha, turn = _from_ffmpeg(path, frame, max_side, reduced)
        except _NotDecoded as exc:  # a JPEG XL, a TIFF compression FFmpeg lacks: OpenCV may read it
            picture = opencv_photo.rgba_from_file(path)
            if picture is None:
                raise CartoonizeError(_too_large(path) or str(exc)) from None
            rgb, alpha, turn = _from_opencv(path, picture, max_side)
    if tiff.pages(path) > 1:  # FFmpeg and OpenCV both read the first
        warnings.warn(f"{path} has more than one page; the cartoon is of the first",
                      CartoonizeWarning, stacklevel=3)  # fmt: skip
    if turn != 1:  # the alpha turns with the picture
        rgb = exif.upright(rgb, turn)
        alpha = None if alpha is None else exif.upright(alpha, turn)
    return rgb, alpha


class _NotDecoded(CartoonizeError):
    """FFmpeg could not decode the photo, which is not a JPEG (whose damage FFmpeg's strict decoder
    refuses, where OpenCV would read it smeared): the message, unless OpenCV can."""


def _first_frame(path: Path, lowres: int = 0):  # noqa: ANN202 - an av.VideoFrame
    """The photo's picture as FFmpeg decodes it (the largest of an icon's; a JPEG's at 1/2**`lowres`
    of its size); a one-line error where it cannot, a `_NotDecoded` one where OpenCV may still."""
    import av

    demuxer = None  # FFmpeg's name for the type, once it has opened the file ("svg_pipe", "psd_pipe")
    try:
        with av.open(ffmpeg_path(path)) as container:
            demuxer = container.format.name
            _refuse_tiles(path, container)
            stream = _picture_stream(container)
            if stream.codec_context is None:  # a type FFmpeg knows and has no decoder for
                raise _NotDecoded(_not_readable(path, demuxer, "FFmpeg has no decoder for it"))
            options = dict(STRICT_DECODERS.get(stream.codec_context.name, {}))
            if lowres and stream.codec_context.name == "mjpeg":
                options["lowres"] = str(lowres)
            stream.codec_context.options = options
            frames = container.decode(stream)
            frame = next(frames)
            if next(frames, None) is not None:  # a GIF or APNG animation, or a video
                warnings.warn(f"{path} has more than one frame; the cartoon is of the first "
                              f"(`cartoonize video` does every frame)", CartoonizeWarning, stacklevel=4)  # fmt: skip
            return frame
    except av.FFmpegError as exc:  # a file cut short or corrupt too: FFmpeg cannot tell which
        if _animated_webp(path):
            raise CartoonizeError(
                f"{path} is an animated WebP, which FFmpeg cannot decode: save its frames as GIF or PNG "
                f"first (`magick {path.name} {path.stem}.gif`)"
            ) from None
        message = _not_readable(path, demuxer, exc.strerror or type(exc).__name__)
        if opencv_photo.is_jpeg(path):  # cut short or damaged: OpenCV would read it, grey or smeared
            raise CartoonizeError(message) from None
        raise _NotDecoded(message) from None
    except (StopIteration, IndexError):
        raise CartoonizeError(f"{path} is not a readable image (no picture in it)") from None


def _picture_stream(container):  # noqa: ANN001, ANN202 - an input av container, its av.VideoStream
    """The stream to cartoonize: the first, or an icon's largest (an ICO holds one picture per
    size, often the smallest first)."""
    streams = container.streams.video
    if container.format.name == "ico" and len(streams) > 1:
        return max(streams, key=lambda s: s.codec_context.width * s.codec_context.height if s.codec_context else 0)  # fmt: skip
    return streams[0]


def _not_readable(path: Path, demuxer: str | None, reason: str) -> str:
    """The error for a photo this cannot decode: what it is and how to convert it, where FFmpeg
    named a type this knows the way out of; else FFmpeg's reason."""
    if demuxer in NOT_DECODED:
        what, how = NOT_DECODED[demuxer]
        return f"{path} is {what}, which cannot be decoded here: {how.format(name=path.name, stem=path.stem)}"
    return f"{path} is not a readable image ({reason})"


Decoded = tuple[np.ndarray, np.ndarray | None, int]  # RGB, alpha (None: opaque), EXIF orientation to apply


def _coded_size(width: int, height: int, turn: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) to scale a stored (width, height) picture to, so that upright it fits
    `max_side` (a sideways one's width is its upright height)."""
    if exif.sideways(turn):
        upright_width, upright_height = fit_within(height, width, max_side, even=False)
        return upright_height, upright_width
    return fit_within(width, height, max_side, even=False)


def _jpeg_scale(layout: tuple[int, int, int, int], turn: int, max_side: int | None) -> int:
    """The most (of 8, 4, 2; else 1) a JPEG can be decoded reduced by and still have every plane
    no smaller than the size it is scaled to: a photo far larger than --max-side is never held at
    full size, and the scaling after it keeps its quality. `layout`: its stored (width, height) and
    its colour's sampling step across and down (2, 2 for 4:2:0), whose planes count too: read
    smaller than the output, the colour of every edge smears (a mean error of 1.7 levels against
    0.3 at 1/8 for 1/14, measured on a 4:2:0 test pattern)."""
    stored_width, stored_height, across, down = layout
    width, height = _coded_size(stored_width, stored_height, turn, max_side)
    for scale in JPEG_SCALES:  # each side rounded up, by FFmpeg's lowres and by libjpeg
        if -(-stored_width // (scale * across)) >= width and -(-stored_height // (scale * down)) >= height:
            return scale
    return 1


def _within_picture(picture: np.ndarray, stored: tuple[int, int], scale: int) -> np.ndarray:
    """A picture decoded at 1/`scale`, less its last column or row where most of that pixel lies
    past the stored picture's edge: each side is rounded up (a 1283-wide JPEG at 1/8 is 161
    wide, of which 160.4 are the picture), and scaled whole the picture would stretch by up to a
    pixel of the output at its far edges; cut to the nearest whole pixel, by at most half of one."""
    width, height = (max(1, round(side / scale)) for side in stored)
    return np.ascontiguousarray(picture[:height, :width])


def _beyond_ffmpeg(width: int, height: int) -> bool:
    return (width + 128) * (height + 128) >= FFMPEG_MAX_PIXELS


def _too_large(path: Path) -> str | None:
    """The error for a PNG, WebP or TIFF that neither FFmpeg nor OpenCV decoded, where its size
    alone says why (FFmpeg's "Invalid data found" said it was not a valid image); else None."""
    size = photo_file.picture_size(path) or tiff.size(path)
    if size is None or not _beyond_ffmpeg(*size):
        return None
    width, height = size
    return (f"{path} is {width}×{height} ({width * height / 1e6:.0f} MP), more than can be decoded "
            f"here (FFmpeg: {FFMPEG_MAX_PIXELS / 1e6:.0f} MP, OpenCV: {OPENCV_MAX_PIXELS / 1e6:.0f} MP); "
            f"only a JPEG is read reduced for --max-side: make it smaller first "
            f"(`vipsthumbnail {path.name} --size 8192 -o {path.stem}_small.jpg`)")  # fmt: skip


def _not_decoded_jpeg(path: Path, stored: tuple[int, int], misread: str | None, scale: int) -> str:
    """Why OpenCV could not decode a JPEG FFmpeg does not, and the way out."""
    width, height = stored
    if misread and not _beyond_ffmpeg(width, height):
        return (
            f"{path} is {misread}, which cannot be decoded here: convert it to PNG or (baseline) JPEG first"
        )
    if scale < JPEG_SCALES[0]:  # too large to hold at this size; at 1/8 it may be held
        side = max(16, max(width, height) // JPEG_SCALES[0])
        return (f"{path} is {width}×{height} ({width * height / 1e6:.0f} MP), too large to decode at "
                f"{'full size' if scale == 1 else f'1/{scale} of its size'}: --max-side {side} reads it "
                f"at 1/{JPEG_SCALES[0]}")  # fmt: skip
    return f"{path} is not a readable image (a {width}×{height} JPEG that OpenCV could not decode)"


Reduced = tuple[tuple[int, int], int]  # a JPEG decoded reduced: its stored (width, height), and by how much


def _from_ffmpeg(path: Path, frame, max_side: int | None, reduced: Reduced | None = None) -> Decoded:  # noqa: ANN001 - an av.VideoFrame
    """The frame's RGB in sRGB and its alpha (None where opaque), scaled and not yet turned, and
    the EXIF orientation that turns them upright. `reduced`: where the frame is a JPEG decoded
    reduced (the size to scale to follows its stored size, not the reduced frame's)."""
    import av

    # the file's own EXIF orientation where it has one: FFmpeg's turn loses its mirroring (media/exif)
    turn = exif.orientation(path) or exif.from_rotation(frame.rotation)
    width, height = reduced[0] if reduced else (frame.width, frame.height)
    coded = _coded_size(width, height, turn, max_side)
    rgb: np.ndarray
    if reduced is not None:  # a JPEG's (no HDR, no alpha): its last blocks cut to the picture, then scaled
        whole = _within_picture(frame.to_ndarray(format="rgb24"), *reduced)
        plane = av.VideoFrame.from_ndarray(whole, format="rgb24")
        rgb = plane.to_ndarray(format="rgb24", width=coded[0], height=coded[1], interpolation="AREA")
    elif int(frame.color_trc) in hdr.TRANSFER_NAMES:  # an HDR (PQ, HLG) AVIF or HEIC: to SDR, as video is
        rgb = hdr.ToneMap(int(frame.color_trc), *coded)(frame)
    elif path.suffix.lower() not in IMAGE_SUFFIXES and path.suffix.lower() not in READ_ONLY_SUFFIXES:
        # a video's first frame: read as `cartoonize video` reads it (an untagged HD video as
        # BT.709; swscale's default, kept for photos, whose decoders tag what they hold, is BT.601)
        rgb = to_rgb(frame, source_colour(frame), *coded)
    else:
        rgb = frame.to_ndarray(format="rgb24", width=coded[0], height=coded[1], interpolation="AREA")
    rgb = _in_srgb(path, rgb, int(frame.color_primaries), int(frame.color_trc))
    alpha = _alpha_plane(frame)
    if alpha is not None and alpha.min() < 255:  # scaled with the same filter as the picture
        plane = av.VideoFrame.from_ndarray(np.ascontiguousarray(alpha), format="gray")
        alpha = plane.to_ndarray(format="gray", width=coded[0], height=coded[1], interpolation="AREA")
    else:
        alpha = None  # none, or opaque everywhere
    return rgb, alpha, turn


def _from_opencv(
    path: Path, picture: np.ndarray, max_side: int | None, reduced: Reduced | None = None
) -> Decoded:
    """As `_from_ffmpeg`, for a (H, W, 3 or 4) picture OpenCV decoded."""
    import cv2

    turn = exif.orientation(path) or 1
    if reduced is not None:
        picture = _within_picture(picture, *reduced)
    width, height = reduced[0] if reduced else (picture.shape[1], picture.shape[0])
    coded = _coded_size(width, height, turn, max_side)
    if coded != (picture.shape[1], picture.shape[0]):  # alpha and colour with one filter, as FFmpeg's
        picture = cv2.resize(picture, coded, interpolation=cv2.INTER_AREA)
    rgb = _in_srgb(path, np.ascontiguousarray(picture[..., :3]), UNSPECIFIED, UNSPECIFIED)
    alpha = picture[..., 3].copy() if picture.shape[2] == 4 and picture[..., 3].min() < 255 else None
    return rgb, alpha, turn


def _in_srgb(path: Path, rgb: np.ndarray, primaries: int, transfer: int) -> np.ndarray:
    """The photo in sRGB, where its embedded ICC profile says it is in another space (Display P3,
    Adobe RGB: media.icc), or, without a profile, where the decoder's code points do (a HEIF/AVIF
    `nclx`, a PNG `cICP`: Display P3, BT.2020); as it is where it has neither, or an sRGB or grey
    profile."""
    data = photo_file.icc_profile(path)
    if data is None:
        coded = icc.from_code_points(primaries, transfer)
        return rgb if coded is None else icc.to_srgb(rgb, coded)
    try:
        profile = icc.parse(data)
    except icc.Unsupported as exc:
        warnings.warn(f"{path} has an ICC colour profile this cannot apply ({exc}); its colours are read as sRGB",
                      CartoonizeWarning, stacklevel=5)  # fmt: skip
        return rgb
    except (ValueError, struct.error):
        warnings.warn(f"{path} has a damaged ICC colour profile; its colours are read as sRGB",
                      CartoonizeWarning, stacklevel=5)  # fmt: skip
        return rgb
    return rgb if profile is None or profile.is_srgb() else icc.to_srgb(rgb, profile)


def _animated_webp(path: Path) -> bool:
    """Whether the file is a WebP with the animation flag of its extended header (VP8X) set."""
    with contextlib.suppress(OSError), open(path, "rb") as file:
        head = file.read(21)
        return head[:4] == b"RIFF" and head[8:16] == b"WEBPVP8X" and len(head) == 21 and bool(head[20] & 0x02)
    return False


def _refuse_beyond_memory(path: Path, height: int, width: int, available: int) -> None:
    """Refuse a photo whose (height, width) picture cannot have what it needs at its full size."""
    full_size = FULL_SIZE_BYTES_PER_PIXEL * height * width
    if full_size + memory.CPU_BASE_BYTES > memory.HEADROOM * available:
        pixels = max(0.0, memory.HEADROOM * available - memory.CPU_BASE_BYTES) / FULL_SIZE_BYTES_PER_PIXEL
        longest = int(math.sqrt(pixels * max(height, width) / min(height, width))) // 8 * 8
        raise CartoonizeError(
            f"{path} is {height * width / 1e6:.0f} MP: at full size it needs about {full_size / 1e9:.1f} GB "
            f"and {available / 1e9:.1f} GB is free; --max-side {max(16, longest)} makes it fit"
        )


def _refuse_before_decoding(path: Path, max_side: int | None) -> None:
    """The memory check of `_side_that_fits` on the size its header says (JPEG, PNG, WebP, TIFF)
    at --max-side, before it is decoded: a 300 MP JPEG took 43 s and 2.2 GB to be refused."""
    layout = opencv_photo.jpeg_layout(path)
    stored = (layout[0], layout[1]) if layout else photo_file.picture_size(path) or tiff.size(path)
    available = memory.available_memory()
    if stored is not None and available is not None:
        width, height = fit_within(*stored, max_side, even=False)  # turned or not: the same pixels
        _refuse_beyond_memory(path, height, width, available)


def _side_that_fits(path: Path, height: int, width: int, infer_side: int | None = None) -> int | None:
    """The network side at which a photo fits in this machine's memory on the CPU (said in a
    warning), or None where it fits at full size (pipelines.memory). What the photo needs at its
    full size whatever the network's is held back first; a photo that cannot have even that is
    refused, with the way out, where the kernel would end the process without a word. With
    `infer_side` (the user's --infer-side) the network's share is of the size it runs at, and one
    that does not fit is refused with the side that does: the user's choice is not changed."""
    available = memory.available_memory()
    if available is None:
        return None
    _refuse_beyond_memory(path, height, width, available)
    full_size = FULL_SIZE_BYTES_PER_PIXEL * height * width
    net_height, net_width = network_size(height, width, infer_side)
    side = memory.fitting_side(net_height, net_width, available - full_size)
    if side is not None and infer_side is not None:
        need = memory.cpu_need(net_height, net_width) + full_size
        raise CartoonizeError(
            f"{path}: the network at --infer-side {infer_side} ({net_width}×{net_height}) needs about "
            f"{need / 1e9:.2f} GB and {available / 1e9:.2f} GB is free (at most {memory.HEADROOM:.0%} of it "
            f"is used); --infer-side {side} fits"
        )
    if side is not None:
        warnings.warn(
            memory.shrink_note(path, height, width, side, available), CartoonizeWarning, stacklevel=3
        )
    return side


def _alpha_plane(frame) -> np.ndarray | None:  # noqa: ANN001 - a decoded av.VideoFrame
    """The frame's transparency, (H, W) uint8 at its decoded size; None where it has none. A
    planar one (WebP's yuva420p, gbrap) is read as it is: FFmpeg 8.1's swscale converts YUV with
    alpha to RGBA differently from run to run (a few pixels, in about 1 of 100 runs here), where its
    conversions to rgb24 and between RGB formats give the same result every time."""
    fmt = frame.format
    alpha = next((c for c in fmt.components if c.is_alpha), None)
    if alpha is None and not fmt.has_palette:
        return None
    if alpha is None or not fmt.is_planar:
        # packed RGBA, gray with alpha, or a palette (a PNG's tRNS: FFmpeg's entries are ARGB)
        return frame.to_ndarray(format="rgba")[..., 3]
    plane = frame.planes[alpha.plane]
    dtype = np.dtype(np.uint8) if alpha.bits <= 8 else np.dtype(">u2" if fmt.is_big_endian else "<u2")
    rows = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
    values = rows[: frame.height, : frame.width]
    if alpha.bits <= 8:
        return values.copy()
    top = (1 << alpha.bits) - 1
    return ((values.astype(np.uint32) * 255 + top // 2) // top).astype(np.uint8)


def image_type(path: Path) -> tuple[str, str, str | None]:
    """(encoder, pixel format, pixel format with alpha or None) for an output path, by its suffix."""
    try:
        return IMAGE_SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise CartoonizeError(
            f"{path.name}: unsupported image type; use one of {', '.join(IMAGE_SUFFIXES)}"
        ) from None


def on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The picture laid on white, as a page or a browser shows a transparent one: what lies
    under its transparent parts (often black, or the colours of an earlier edit) is not shown."""
    weight = alpha[..., None].astype(np.float32) / 255.0
    return np.round(rgb * weight + 255.0 * (1.0 - weight)).astype(np.uint8)


def holds_alpha(path: Path) -> bool:
    return image_type(path)[2] is not None


def write_image(path: Path, picture: np.ndarray, replace: bool = True) -> None:
    """Encode one (H, W, 3) RGB or (H, W, 4) RGBA frame to `path` (the type from its suffix),
    atomically. A type without transparency (JPEG, BMP) gets the RGB alone."""
    import av

    codec, pix_fmt, alpha_pix_fmt = image_type(path)
    with_alpha = picture.shape[-1] == 4 and alpha_pix_fmt is not None
    if picture.shape[-1] == 4 and not with_alpha:
        picture = picture[..., :3]
    frame = av.VideoFrame.from_ndarray(
        np.ascontiguousarray(picture), format="rgba" if with_alpha else "rgb24"
    )
    with atomic_output(path, replace) as tmp, av.open(ffmpeg_path(tmp), "w", format="image2") as out:
        stream = out.add_stream(codec, rate=1)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = frame.width, frame.height
        stream.pix_fmt = alpha_pix_fmt if with_alpha and alpha_pix_fmt else pix_fmt
        # square pixels, said: left unset (0/1), FFmpeg writes a PNG pHYs of 0 pixels per unit across,
        # and a JPEG with no JFIF header
        stream.codec_context.sample_aspect_ratio = Fraction(1, 1)
        stream.options = dict(ENCODER_OPTIONS.get(codec, {}))
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def collect_images(inputs: list[Path], leave_out: Path | None = None) -> tuple[list[tuple[Path, Path]], int]:
    """(photo, its place in an output folder, less the suffix) for the photos given and those in
    the folders given (recursively), and how many other files those folders hold (not photos of a
    type this reads: the summary counts them, so that none is left out in silence). A photo given
    by name goes at the top; one found in a folder keeps the subfolders below that folder
    (`in/2024/IMG_0001.jpg` -> `2024/IMG_0001`), so photos of one name in different subfolders (a
    camera counts from IMG_0001 again) do not meet. Hidden files and folders below a folder given
    are not photos (macOS leaves a `._IMG_0001.JPG` beside each photo it copies to a USB stick),
    and files under `leave_out` (the output folder, where it lies inside an input folder) are
    earlier cartoons; neither is counted. A photo given twice for the same place (named twice, or
    named and in a folder given: `photos/ photos/best.jpg`) is cartoonized once, with a warning,
    as `cp` does."""
    readable = set(IMAGE_SUFFIXES) | READ_ONLY_SUFFIXES
    outputs = leave_out.resolve() if leave_out is not None else None
    found: list[tuple[Path, Path]] = []
    others = 0
    for item in inputs:
        if item.is_dir():
            for path in sorted(item.rglob("*")):
                below = path.relative_to(item)
                if (not path.is_file() or any(part.startswith(".") for part in below.parts)
                        or (outputs and path.resolve().is_relative_to(outputs))):  # fmt: skip
                    continue
                if path.suffix.lower() in readable:
                    found.append((path, below.parent / below.stem))
                else:
                    others += 1
        elif item.is_file():
            found.append((item, Path(item.stem)))
        else:
            raise CartoonizeError(f"input {item} does not exist")
    found = once_each(found)
    if not found:
        what = f" ({_files(others)} there, none of a photo type this reads)" if others else ""
        raise CartoonizeError(f"no images found in {', '.join(map(str, inputs))}{what}")
    return found, others


def _files(count: int) -> str:
    return f"{count} file{'' if count == 1 else 's'}"


def names_a_file_type(path: Path) -> bool:
    """Whether `path` is named like a picture or video file (x.gif, x.avif, x.mp4) rather than a
    folder (cartoons, photos.2024)."""
    if path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() in READ_ONLY_SUFFIXES:
        return True
    kind, _ = mimetypes.guess_type(path.name, strict=False)
    return kind is not None and kind.startswith(("image/", "video/"))


@dataclass(frozen=True)
class ImageJob:
    inputs: tuple[Path, ...]
    output: Path  # a file for one input image, else a folder
    max_side: int | None = None
    overwrite: bool = False  # in a folder, without it an existing output is skipped (one photo: refused)
    stages: StageOptions = field(default_factory=StageOptions)  # temporal stages never run on photos


@dataclass(frozen=True)
class OutputPlan:
    pairs: list[tuple[Path, Path]]  # (photo, cartoon) to make
    skipped: list[tuple[Path, Path]]  # (photo, cartoon) whose cartoon exists, in a folder without --overwrite
    left_out: int = 0  # files in the input folders that are not photos of a type this reads


def plan_outputs(job: ImageJob) -> OutputPlan:
    """Every (photo, output) pair, checked before any work: one photo is written to the file named
    (its type from the suffix), several into a folder as PNG, in the subfolders they came from (an
    existing one is skipped unless `overwrite`, as `video` does)."""
    output = job.output
    if not output.is_dir() and output.suffix.lower() not in IMAGE_SUFFIXES and names_a_file_type(output):
        image_type(output)  # x.gif, x.avif: a file this cannot write, not a folder to make
    for item in job.inputs:
        if item.is_dir() and item.resolve() == output.resolve():
            raise CartoonizeError(
                f"--output {output} is the input folder; give another folder for the cartoons"
            )
    sources, others = collect_images(list(job.inputs), leave_out=output)
    single = len(sources) == 1 and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir()
    if single:
        pairs = [(sources[0][0], output)]
        check_output_folder(output.parent)
    else:
        if output.exists() and not output.is_dir():
            raise CartoonizeError(f"--output {output} must be a folder for {len(sources)} images")
        if not output.is_dir() and output.suffix.lower() in IMAGE_SUFFIXES:
            raise CartoonizeError(f"{len(sources)} images go into a folder, and --output {output} is named "
                                  f"like an image; give a folder ({output.with_suffix('')}/)")  # fmt: skip
        check_output_folder(output)
        pairs = [(src, output / place.parent / f"{place.name}.png") for src, place in sources]
        check_distinct_outputs(pairs, "cartoons are each of more than one photo")
        for folder in sorted({dst.parent for _, dst in pairs} - {output}):
            check_output_folder(folder)  # a file where a subfolder goes
    for src, dst in pairs:
        if src.resolve() == dst.resolve():
            raise CartoonizeError(f"output {dst} is the input; choose another output path")
        if dst.is_dir():
            raise CartoonizeError(f"output {dst} is a folder; give another name")
        if single and dst.exists() and not job.overwrite:
            raise CartoonizeError(f"output {dst} exists; pass --overwrite to replace it")
    plan = OutputPlan([], [], others)
    for src, dst in pairs:
        (plan.pairs if job.overwrite or not dst.exists() else plan.skipped).append((src, dst))
    return plan


@dataclass(frozen=True)
class ImageReport:
    written: list[Path]
    skipped: list[Path]  # outputs that existed (a folder without --overwrite)
    left_out: int = 0  # files in the input folders that are not photos of a type this reads

    def summary(self, output: Path) -> str:
        why = (
            f"; {len(self.skipped)} skipped (output exists; --overwrite replaces it)" if self.skipped else ""
        )
        return f"wrote {len(self.written)} image(s) to {output}{why}{_left_out(self.left_out)}"


def _left_out(count: int) -> str:
    return f"; {_files(count)} in the folder left out (not photos this reads)" if count else ""


def cartoonize_images(job: ImageJob, make_runner: Callable[[], Runner] | None,
                      on_progress: Callable[[int, int], None] | None = None,
                      sized_runner: Callable[[tuple[int, int]], Runner | None] | None = None) -> ImageReport:  # fmt: skip
    """Cartoonize every photo with one runner from `make_runner()`; or, given `sized_runner` (an
    engine built for one frame size: --engine aoti|tensorrt, or auto's stored engines), with one
    per network size (H, W) the photos need, each opened when the first photo of that size comes.
    Where `sized_runner` gives None for a size (auto: no engine stored for it), or is not given,
    `make_runner`'s runner runs those photos; without `make_runner` every size needs its own."""
    plan = plan_outputs(job)
    pairs, skipped = plan.pairs, [dst for _, dst in plan.skipped]
    total = len(pairs) + len(skipped)  # the photos asked for (1: a single photo, whose errors are the job's)
    written: list[Path] = []
    if not pairs:  # every output is there already
        return ImageReport(written, skipped, plan.left_out)
    chain = build_stages(replace(job.stages, temporal=False))
    unreadable: list[str] = []  # one line each: a bad photo in a folder does not stop the others
    made: list[Path] = []  # output folders this job made: removed at its end where still empty
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: remove_empty(made))  # a full disk's failed photo left an empty folder tree
        shared = stack.enter_context(make_runner()) if make_runner is not None else None
        by_size: dict[tuple[int, int], Runner | CartoonizeError | None] = {}

        def runner_of(src: Path, size: tuple[int, int]) -> Runner:
            if sized_runner is None:
                assert shared is not None
                return shared
            if size not in by_size:
                try:
                    sized = sized_runner(size)
                    by_size[size] = stack.enter_context(sized) if sized is not None else None
                except CartoonizeError as exc:  # said once per size, for each photo of it
                    by_size[size] = exc
            found = by_size[size]
            if isinstance(found, CartoonizeError):
                raise CartoonizeError(f"{src}: {found}")
            if found is None:
                assert shared is not None
                return shared
            return found

        for i, (src, dst) in enumerate(pairs):
            if not job.overwrite and total > 1 and dst.exists():
                skipped.append(dst)  # made by another job since the plan (the folder in two terminals)
                if on_progress:
                    on_progress(i + 1, len(pairs))
                continue
            on_cpu = shared is not None and getattr(shared, "device", "cpu") == "cpu"
            try:
                if on_cpu:
                    _refuse_before_decoding(src, job.max_side)
                photo, alpha = read_image_and_alpha(src, job.max_side)
                if alpha is not None and not holds_alpha(dst):  # cartoonized as it is shown: on white
                    photo = on_white(photo, alpha)
                side, photo_chain = job.stages.infer_side, chain
                if on_cpu:  # not killed for memory
                    fitting = _side_that_fits(src, photo.shape[0], photo.shape[1], side)
                    if fitting is not None:  # only where --infer-side is not given (else refused)
                        side = fitting
                        photo_chain = build_stages(replace(job.stages, temporal=False, infer_side=side))
                small = network_frame(photo, side)
                runner = runner_of(src, (small.shape[0], small.shape[1]))
            except CartoonizeError as exc:
                if total == 1:
                    raise
                unreadable.append(str(exc))
            else:
                cartoon = photo_chain(photo, runner(small[None])[0])
                if alpha is not None and holds_alpha(dst):
                    cartoon = np.dstack([cartoon, alpha])  # the photo's transparency, where it was
                elif alpha is not None:
                    warnings.warn(f"{src} has transparency, which a {dst.suffix} file cannot hold: "
                                  f"{dst.name} is opaque, its transparent parts white (write .png, .webp "
                                  "or .tif to keep it)", CartoonizeWarning, stacklevel=2)  # fmt: skip
                made.extend(made_folders(dst.parent))  # only once there is a picture to put there
                try:
                    write_image(dst, cartoon, replace=job.overwrite)
                except CartoonizeError:
                    if job.overwrite or total == 1 or not dst.exists():
                        raise
                    skipped.append(dst)  # written by another job meanwhile: as if it had been first
                else:
                    written.append(dst)
            if on_progress:
                on_progress(i + 1, len(pairs))
    if unreadable:
        more = f"; and {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
        also = (f"; {len(skipped)} skipped (output exists)" if skipped else "") + _left_out(plan.left_out)
        raise CartoonizeError(
            f"{len(unreadable)} of {total} images failed ({unreadable[0]}{more})"
            f"{_the_others(len(written), job.output)}{also}"
        )
    return ImageReport(written, skipped, plan.left_out)


def _the_others(written: int, output: Path) -> str:
    """Where the photos that did not fail went: '; the other 3 are in out', '; the other one is
    in out' (it said 'the other 1 are'), nothing where none was written."""
    if written == 0:
        return ""
    return f"; the other {'one is' if written == 1 else f'{written} are'} in {output}"
