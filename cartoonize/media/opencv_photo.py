"""Photos decoded with OpenCV (its libtiff and libjpeg-turbo) where FFmpeg decodes them wrong or
not at all: a TIFF with JPEG compression (FFmpeg's TIFF decoder gives a black picture, and no
error) and an arithmetic-coded JPEG (valid, and refused by FFmpeg as invalid data) go to OpenCV
first; a file FFmpeg refuses or has no decoder for is tried with it before the error is said.

The picture comes as stored: EXIF orientation and ICC profile are the caller's to apply, as for
a picture FFmpeg decodes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cartoonize.media import tiff

JPEG_START = b"\xff\xd8"
# start-of-frame markers of the arithmetic-coded JPEG processes (ITU T.81 B.1.1.3)
ARITHMETIC_FRAMES = {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
NOT_FRAMES = {0xC4, 0xC8, 0xCC}  # DHT, JPG (reserved), DAC share SOF's range
MAX_SCAN = 1 << 20  # a JPEG's frame header lies near its start, after the APP segments: no further


def misread_by_ffmpeg(path: Path) -> str | None:
    """What the file is, where FFmpeg decodes its kind wrong or refuses it and OpenCV does not:
    "a TIFF with JPEG compression", "an arithmetic-coded JPEG"; None for any other file."""
    if tiff.compression(path) in tiff.JPEG_COMPRESSIONS:
        return "a TIFF with JPEG compression"
    if _jpeg_frame(path) in ARITHMETIC_FRAMES:
        return "an arithmetic-coded JPEG"
    return None


def is_jpeg(path: Path) -> bool:
    with contextlib.suppress(OSError), open(path, "rb") as file:
        return file.read(2) == JPEG_START
    return False


def rgba_from_file(path: Path) -> np.ndarray | None:
    """uint8 (H, W, 3) RGB, or (H, W, 4) RGBA where the file holds transparency, as stored (not
    turned by its EXIF orientation); None where OpenCV cannot decode the file."""
    import cv2

    try:
        data = path.read_bytes()  # imdecode, not imread: any file name on any system
    except OSError:
        return None
    if not data:  # imdecode asserts on an empty buffer
        return None
    stored = np.frombuffer(tiff.as_stored(data), np.uint8)  # OpenCV turns a TIFF by its orientation
    try:
        with _quiet(cv2):
            picture = cv2.imdecode(stored, cv2.IMREAD_UNCHANGED)  # alpha kept, a JPEG's EXIF turn not applied
    except cv2.error:  # a decoder's assertion on a damaged file
        return None
    if picture is None or picture.size == 0:
        return None
    picture = _to_8_bits(picture)
    if picture is None:
        return None
    if picture.ndim == 2:
        picture = picture[..., None]
    channels = picture.shape[2]
    if channels <= 2:  # grey, grey with alpha
        grey = picture[..., :1]
        picture = np.concatenate([grey, grey, grey, picture[..., 1:]], axis=2)
    elif channels == 3:
        picture = picture[..., ::-1]  # BGR
    else:
        picture = picture[..., [2, 1, 0, 3]]  # BGRA
    return np.ascontiguousarray(picture)


def _to_8_bits(picture: np.ndarray) -> np.ndarray | None:
    if picture.dtype == np.uint8:
        return picture
    if picture.dtype == np.uint16:
        return ((picture.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if picture.dtype in (np.float32, np.float64):  # 0 to 1, as a floating-point TIFF stores it
        return np.round(np.clip(np.nan_to_num(picture), 0.0, 1.0) * 255).astype(np.uint8)
    return None  # signed integers: no photo is stored so


@contextlib.contextmanager
def _quiet(cv2) -> Iterator[None]:  # noqa: ANN001 - the cv2 module
    """OpenCV's decoders log what they refuse to stderr ("TIFFReadDirectory: Failed to read
    directory"); the caller says it in one line instead."""
    before = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(before)


def jpeg_layout(path: Path) -> tuple[int, int, int, int] | None:
    """A JPEG's (width, height) as its frame header gives them, read before any of its picture is,
    and the pixels across and down that one sample of its least sampled component covers (2, 2
    for the usual 4:2:0 colour; 1, 1 for 4:4:4 or grey); None for a file that is not a JPEG or
    has no frame header before its first scan."""
    header = _jpeg_header(path)
    if header is None or 0 in header[1:3]:  # a height of 0: said after the picture (a DNL segment)
        return None
    return header[1:]


def reduced_rgb(path: Path, scale: int) -> np.ndarray | None:
    """A JPEG's uint8 (H, W, 3) RGB as stored (not turned), decoded at 1/`scale` of its size (1, 2,
    4 or 8: libjpeg's scaled inverse DCT, each side rounded up), so that a picture too large to hold
    whole is never held whole; None where OpenCV cannot decode it."""
    import cv2

    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}[scale]  # fmt: skip
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return None
    try:
        with _quiet(cv2):
            picture = cv2.imdecode(data, flags | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        return None
    if picture is None or picture.size == 0:
        return None
    return np.ascontiguousarray(picture[..., ::-1])  # BGR


def _jpeg_frame(path: Path) -> int | None:
    """The JPEG's start-of-frame marker (0xC0 baseline, 0xC2 progressive, 0xC9 arithmetic, ...);
    None for a file that is not a JPEG or has none before its first scan."""
    header = _jpeg_header(path)
    return None if header is None else header[0]


def _jpeg_header(path: Path) -> tuple[int, int, int, int, int] | None:
    """The JPEG's start-of-frame marker, its (width, height), and the sampling step of its least
    sampled component across and down."""
    try:
        with open(path, "rb") as file:
            if file.read(2) != JPEG_START:
                return None
            while file.tell() < MAX_SCAN:
                head = file.read(4)
                if len(head) < 4 or head[0] != 0xFF:
                    return None
                if head[1] == 0xFF:  # fill bytes before a marker
                    file.seek(-3, 1)
                    continue
                if head[1] in (0xD9, 0xDA):  # end of image, start of scan
                    return None
                if 0xC0 <= head[1] <= 0xCF and head[1] not in NOT_FRAMES:
                    return _frame_header(head[1], file.read(int.from_bytes(head[2:], "big") - 2))
                file.seek(int.from_bytes(head[2:], "big") - 2, 1)  # the segment's length counts itself
    except OSError:
        return None
    return None


def _frame_header(marker: int, frame: bytes) -> tuple[int, int, int, int, int] | None:
    """Precision, height, width, the component count, then (id, sampling HV, table) for each."""
    if len(frame) < 6:
        return None
    height, width, count = int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big"), frame[5]
    sampling = [frame[6 + 3 * k + 1] for k in range(count) if len(frame) >= 6 + 3 * (k + 1)]
    across = [value >> 4 for value in sampling if value >> 4] or [1]
    down = [value & 15 for value in sampling if value & 15] or [1]
    return marker, width, height, max(across) // min(across), max(down) // min(down)
