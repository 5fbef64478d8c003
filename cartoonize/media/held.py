"""Each video frame's own display time, written on its packet.

Encoders with a look-ahead (libx264, libx265, libvpx, SVT-AV1) give their packets no duration,
so a muxer takes the last frame's from the frame period: a screen recording whose last frame is
held 1.5 s, or a slideshow's last picture, came out that much shorter and ended before its sound
(players showed the shorter video, or held a frame the file did not say to hold). The pipeline
knows each frame's end: the next frame's start, or for the last one where the source's last frame
ends. Each packet gets its frame's duration (Matroska and WebM take the video's length from the
packet that ends last); in MP4 and MOV the length is the last packet in decoding order's
timestamp plus its duration, so that packet's duration is what makes the stream's whole length
(with B-frames it is not the frame shown last).

Where the output's clock is coarser than the source's (AVI stores one frame a tick of its frame
rate), a frame that falls on the tick of the frame before it is left out, as the ffmpeg tool's
constant-rate output drops it; `left_out` counts them (the encoder refused two frames on one tick).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

from cartoonize.media.scheduling import open_encoder

__all__ = ["DECODE_ORDER_LENGTH", "HeldFrames"]

# muxers whose stream length is the last packet in decoding order's dts plus its duration (movenc)
DECODE_ORDER_LENGTH = {"mp4", "mov", "ipod", "3gp", "3g2", "psp", "ismv", "f4v"}


class HeldFrames:
    """Hold back the newest frame until the next one's time (or the end) says how long it is
    shown, then encode it and put that duration on its packet when the encoder gives it out.

    `put(frame, start)` takes an encoder-ready frame (its `pts` and `time_base` set, in the
    output's timeline) and its start in the source's ticks; `end(at)` encodes the last frame to
    `at` (the source's ticks) and flushes the encoder. `mux` receives each packet."""

    def __init__(self, encoder: Any, mux: Callable[[Any], None], frame_time_base: Fraction,  # noqa: ANN401 - an av VideoStream
                 muxer: str = "") -> None:  # fmt: skip
        self._encoder, self._mux = encoder, mux
        # the encoder's packets carry the codec's time base (the output's; one frame period in AVI)
        self._scale = Fraction(frame_time_base) / Fraction(encoder.codec_context.time_base)
        # the frame held back, its start (source ticks) and its pts (codec ticks)
        self._pending: tuple[Any, int, int | None] | None = None
        self._durations: dict[int, int] = {}  # a packet's pts (codec ticks) -> its frame's duration
        self._first: int | None = None  # the first frame's pts (codec ticks)
        self._length: int | None = None  # the first frame's start to the last frame's end (codec ticks)
        self._decode_order = muxer in DECODE_ORDER_LENGTH
        self._last_packet: Any = None  # MP4/MOV: held back until it is known to be the last
        self._first_dts: int | None = None
        self.left_out = 0

    def put(self, frame: Any, start: int) -> None:  # noqa: ANN401 - an av.VideoFrame
        at = _ticks(frame.pts * self._scale) if frame.pts is not None else None
        before = self._pending[2] if self._pending is not None else None
        if at is not None and before is not None and at <= before:
            self.left_out += 1  # on the tick of the frame before: the encoder takes one a tick
            return
        if self._first is None:
            self._first = at
        if self._pending is not None:
            self._encode(start)
        self._pending = (frame, start, at)

    def end(self, at: int | None) -> None:
        """Encode the frame held back, shown until `at` (None, or not after its start: its
        duration is left to the muxer, as before), then flush the encoder."""
        if self._pending is not None:
            self._encode(at if at is not None and at > self._pending[1] else None)
        self._send(None)
        last, self._last_packet = self._last_packet, None
        if last is not None:
            if self._length is not None and self._first_dts is not None and last.dts is not None:
                duration = self._length - (last.dts - self._first_dts)
                if duration > 0:
                    last.duration = duration
            self._mux(last)

    def _encode(self, until: int | None) -> None:
        assert self._pending is not None
        frame, start, at = self._pending
        self._pending = None
        if until is not None and at is not None:
            duration = _ticks((until - start) * self._scale)
            if duration > 0:
                self._durations[at] = duration
                if self._first is not None:
                    self._length = at + duration - self._first
        self._send(frame)

    def _send(self, frame: Any) -> None:  # noqa: ANN401 - an av.VideoFrame or None (flush)
        open_encoder(self._encoder)  # (SVT-AV1 as root made every thread real-time: media/scheduling)
        for packet in self._encoder.encode(frame):
            duration = self._durations.pop(packet.pts, None) if packet.pts is not None else None
            if duration and not packet.duration:
                packet.duration = duration
            if not self._decode_order:
                self._mux(packet)
                continue
            if self._first_dts is None:
                self._first_dts = packet.dts
            if self._last_packet is not None:
                self._mux(self._last_packet)
            self._last_packet = packet


def _ticks(value: Fraction) -> int:
    """Round to the nearest tick, halves away from zero, as FFmpeg rescales a frame's pts to
    the encoder's time base (`av_rescale_q`), so that the keys meet the packets' pts."""
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))
