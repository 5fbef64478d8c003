"""GIF output: RGB frames into the 256-colour indexed frames a GIF stores, by FFmpeg's own
palette filters run through PyAV's filter graph.

Each frame gets its own palette (`palettegen` in `single` mode, `paletteuse` with `new=1`), which
the GIF encoder writes as the frame's local colour table. A cartoon's flat colours fit 256 entries
well; one palette for the whole clip would need every frame before the first is written.

Dithering is ordered (Bayer, the coarsest pattern), not error diffusion. Measured on Hayao
cartoons of the shared clips (24 frames at 480 px; size, PSNR against the cartoon before it is
indexed, and the mean change from one frame to the next, in levels):
- street_portrait: no dither 2.11 MB, 33.3 dB, change 3.66 (the cartoon's 2.75); Bayer 5: 2.14 MB,
  33.2 dB, 3.66; Sierra (FFmpeg's default): 2.48 MB, 31.1 dB, 5.59.
- Big Buck Bunny: 1.91 MB, 35.4 dB, 8.39 (7.20); Bayer 5: 1.97 MB, 35.3 dB, 8.37; Sierra: 2.20 MB,
  33.7 dB, 9.34.
No dither bands a smooth sky into flat steps. Diffusion scatters stray dots of other colours over
it, different in each frame (the shimmer is the extra change above), and the file grows because
changing pixels cost bytes. A Bayer pattern is fixed in place, so a still area stays still, and
it costs about as little as no dither.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

# one palette per frame, all 256 entries for colours: an entry held back for transparency made
# files no smaller on the shared clips (measured: the same bytes to 0.01 MB) and leaves 255 colours
PALETTEGEN = "stats_mode=single:max_colors=256:reserve_transparent=0"
PALETTEUSE = "new=1:dither=bayer:bayer_scale=5"


# A GIF stores each frame's delay in hundredths of a second, and browsers play a delay of 0 or
# 1 as 10 (a 60 fps clip would crawl at 10 fps): no frame is kept closer than this to the last.
MIN_DELAY = Fraction(2, 100)


class Palettizer:
    """RGB (H, W, 3) uint8 frames in, `pal8` av.VideoFrames out, timestamps kept.

    Above 50 fps (`rate`), one frame in every n is kept, n the fewest frames that last `MIN_DELAY`
    (60 fps keeps every 2nd, 120 fps every 3rd), counted from the frame number of the timestamp
    itself (time × rate), not from the first frame seen. So a segment of the video, started
    anywhere, keeps the frames the whole pass keeps, and the segments join into the same GIF. A
    frame less than `MIN_DELAY` after the last one kept is left out in any case (variable frame
    rate, capture times). Frames left out are counted in `left_out`."""

    def __init__(self, width: int, height: int, time_base: Fraction, rate: Fraction | None = None) -> None:
        import av

        self.time_base = time_base
        self.left_out = 0
        self._rate = rate
        self._every = math.ceil(MIN_DELAY * rate) if rate else 1  # keep one frame in this many
        self._last: Fraction | None = None  # when the last frame kept is shown, in seconds
        self.first_kept: int | None = None  # the timestamp of the first frame kept
        self._graph = graph = av.filter.Graph()
        source = graph.add_buffer(
            width=width, height=height, format=av.VideoFormat("rgb24"), time_base=time_base
        )
        split = graph.add("split")
        palette = graph.add("palettegen", PALETTEGEN)
        use = graph.add("paletteuse", PALETTEUSE)
        sink = graph.add("buffersink")
        source.link_to(split)
        split.link_to(use, 0, 0)  # the frame
        split.link_to(palette, 1, 0)
        palette.link_to(use, 0, 1)  # and its palette
        use.link_to(sink)
        graph.configure()

    def __call__(self, rgb: np.ndarray, pts: int) -> list[Any]:
        """The indexed frames ready now: this one, or none where it is left out (the palette is the
        frame's own, so nothing waits in the graph)."""
        import av

        at = pts * self.time_base
        if not self._keeps(at):
            self.left_out += 1
            return []
        if self._last is None:
            self.first_kept = pts
        self._last = at
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = pts, self.time_base
        self._graph.push(frame)
        return self._ready()

    def _keeps(self, at: Fraction) -> bool:
        if self._rate and round(at * self._rate) % self._every:  # (every is 1 without a rate)
            return False
        return self._last is None or at - self._last >= MIN_DELAY

    def flush(self) -> list[Any]:
        self._graph.push(None)
        return self._ready()

    def _ready(self) -> list[Any]:
        import av

        out = []
        while True:
            try:
                out.append(self._graph.pull())
            except (av.BlockingIOError, av.EOFError):
                return out


def frame_blocks(data: bytes, header: bool = False) -> bytes:
    """One frame of a GIF file as a frame in the middle of one is stored: without the trailer
    after it, nor (unless `header`: the first frame of the file being written, which FFmpeg's
    muxer takes it from) the file's header (signature, screen descriptor, global colour table)
    and application extensions (the NETSCAPE loop) before it. FFmpeg's GIF demuxer hands those
    over with a file's first and last frames; a GIF made in pieces (segments) joined them with its
    frames, and a decoder that keeps to the format (Pillow, a browser) stopped at the first
    trailer."""
    at = 0
    if data.startswith((b"GIF87a", b"GIF89a")) and len(data) >= 13:
        packed = data[10]
        at = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
        while data[at : at + 2] == b"\x21\xff":  # an application extension
            at = _sub_blocks(data, at + 2)
    start = 0 if header else at
    while at < len(data) and data[at] != 0x3B:  # walk the frame's blocks up to a trailer
        if data[at] == 0x21:  # an extension (the frame's delay): label, then sub-blocks
            at = _sub_blocks(data, at + 2)
        elif data[at] == 0x2C:  # the image: descriptor, local colour table, LZW size, sub-blocks
            packed = data[at + 9] if at + 9 < len(data) else 0
            at += 10 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
            at = _sub_blocks(data, at + 1)
        else:
            return data[start:]  # not a structure known here: leave the rest as it is
    return data[start:at]


# bytes of a GIF read for its loop block: the header, colour table and extensions before the first
# frame, where encoders put it (a large XMP packet included)
LOOP_SCAN = 1 << 20


def loop_option(path: Path) -> str | None:
    """FFmpeg's GIF muxer `loop` for an output that plays as often as the GIF at `path`: the count
    of its NETSCAPE2.0 block as stored (0: for ever, N: N more times), or -1 (no block, played
    once) where it has none; None where `path` is not a GIF. FFmpeg's demuxer reads the block but
    does not report it, and its muxer's default (0) made a GIF that played three times one that
    never stops."""
    try:
        with open(path, "rb") as f:
            data = f.read(LOOP_SCAN)
    except OSError:
        return None
    if not data.startswith((b"GIF87a", b"GIF89a")) or len(data) < 13:
        return None
    packed = data[10]
    at = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    while data[at : at + 1] == b"\x21":  # extensions up to the first frame's image descriptor
        # NETSCAPE2.0 (or ANIMEXTS1.0): an 11-byte name, then the sub-block 3, 1, count (16 bits LE)
        if data[at + 1 : at + 2] == b"\xff" and data[at + 3 : at + 14] in (b"NETSCAPE2.0", b"ANIMEXTS1.0"):
            if data[at + 14 : at + 16] == b"\x03\x01" and len(data) >= at + 18:
                return str(int.from_bytes(data[at + 16 : at + 18], "little"))
        at = _sub_blocks(data, at + 2)
    return "-1"


def _sub_blocks(data: bytes, at: int) -> int:
    """Where the sub-blocks starting at `at` end (after their 0 terminator)."""
    while at < len(data) and data[at]:
        at += data[at] + 1
    return at + 1
