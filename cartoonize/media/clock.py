"""The source's clock: where its timeline starts, and where a preview's sound stops. Media I/O:
packets in, packets out, on the times FFmpeg gives them."""

from __future__ import annotations

import collections
from collections.abc import Callable
from fractions import Fraction
from typing import Any

TS_DISCONT = 0x0200  # AVFMT_TS_DISCONT: a format whose timestamps are a broadcast's running clock


def timeline_origin(container) -> Fraction:  # noqa: ANN001 - an input av container
    """Seconds to take off every timestamp of the source so the output starts at 0, as the ffmpeg
    tool does: the start of a transport or program stream (.ts, .m2ts, .mpg: a broadcast's or a
    camcorder's clock, often hours in), which a player would otherwise show as that long a blank
    lead-in. A late start in other containers (an edit list, a cut) is the source's own and kept."""
    if not container.format.flags & TS_DISCONT or not container.start_time:
        return Fraction(0)
    return Fraction(container.start_time, 1_000_000)


def from_origin(packet, origin: Fraction):  # noqa: ANN001, ANN201 - an av.Packet
    """`packet` with `origin` seconds taken off its timestamps."""
    if origin and packet.time_base:
        ticks = round(origin / packet.time_base)
        if packet.pts is not None:
            packet.pts -= ticks
        if packet.dts is not None:
            packet.dts -= ticks
    return packet


class PreviewCut:
    """The audio and subtitles of a preview (`--frames N`) end where its picture does. They are
    held until the picture has reached their time, and what is past its last frame is left out:
    a file that stores its sound in long runs ahead of the picture (an iPhone's .mov) gave a
    10-frame preview a second of sound after the picture stopped."""

    def __init__(self, put: Callable[[Any], None], origin: Fraction) -> None:
        self._put = lambda packet: put(from_origin(packet, origin))  # (all times here: the source's)
        self._held: collections.deque = collections.deque()
        self._until: Fraction | None = None  # seconds: the end of the last frame read

    def shown_to(self, until: Fraction) -> None:
        self._until = until
        while self._held and _seconds(self._held[0]) < until:
            self._put(self._held.popleft())

    def hold(self, packet) -> None:  # noqa: ANN001 - an av.Packet
        self._held.append(packet)
        if self._until is not None:
            self.shown_to(self._until)

    def past(self, packet) -> bool:  # noqa: ANN001 - an av.Packet
        """Whether reading can stop at `packet`, the preview's frames all read: a packet of
        another stream from past the picture's end, or a video packet well past it."""
        if self._until is None:
            return True
        at = _seconds(packet)
        return at >= self._until + (2 if packet.stream.type == "video" else 0)

    def release_all(self) -> None:
        while self._held:
            self._put(self._held.popleft())


def _seconds(packet) -> Fraction:  # noqa: ANN001 - an av.Packet
    stamp = packet.pts if packet.pts is not None else packet.dts
    return Fraction(stamp or 0) * (packet.time_base or 1)
