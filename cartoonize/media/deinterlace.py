"""Deinterlacing of decoded frames: FFmpeg's bwdif on the frames the decoder flags as interlaced.

Broadcast and camcorder video (1080i, DV, AVCHD, a `.ts` recording) stores two fields, taken 1/50 or
1/60 s apart, woven into one frame. Shown as a whole frame, anything that moves has comb teeth on
its edges, and the network draws them as stripes. bwdif (Bob Weaver Deinterlacing Filter) rebuilds
each frame from its first field, filling the other field's lines from that field and the frames
either side; one frame comes out for each frame in (`send_frame`), at its timestamp, so the
output keeps the source's rate and timing. Frames not flagged interlaced pass through untouched
(`deint=interlaced`), and nothing is filtered until the first interlaced frame: a progressive
video never builds a filter graph. The filter holds one frame to look ahead: `flush` gives the
last ones back at the end.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

FILTER = "bwdif"
OPTIONS = "mode=send_frame:parity=auto:deint=interlaced"


class Deinterlacer:
    """`push` each decoded frame in decoding order, then `flush` once at the end; both return the
    frames ready, in order. `woven(frame)` says whether a frame given back came in flagged
    interlaced (also when not `enabled`, so a summary can say what was left as it was)."""

    def __init__(self, time_base: Fraction, enabled: bool = True) -> None:
        self.time_base = time_base  # the stream's: the frames' timestamps go through unchanged
        self.enabled = enabled  # off: every frame passes through (and interlaced ones are counted)
        self._woven: set[int] = set()  # the timestamps of the frames that came in interlaced
        self._graph: Any = None
        self._shape: tuple[int, int, str] | None = None

    def push(self, frame: Any) -> list[Any]:  # av.VideoFrame in and out
        if frame.interlaced_frame and frame.pts is not None:
            self._woven.add(frame.pts)
        if not self.enabled or (self._graph is None and not frame.interlaced_frame):
            return [frame]  # nothing interlaced yet: no filter
        shape = (frame.width, frame.height, frame.format.name)
        ready: list[Any] = []
        if self._graph is not None and shape != self._shape:
            ready = self.flush()  # the stream changed size or format mid-way: a new graph for it
        if self._graph is None:
            self._open(frame)
        self._graph[0].push(frame)
        return ready + self._pull()

    def woven(self, frame: Any) -> bool:
        """Whether `frame` (one given back) came in interlaced; asked once for each."""
        if frame.pts in self._woven:
            self._woven.discard(frame.pts)
            return True
        return False

    def flush(self) -> list[Any]:
        if self._graph is None:
            return []
        self._graph[0].push(None)
        ready = self._pull()
        self._graph = None
        return ready

    def _open(self, frame: Any) -> None:
        import av.filter

        graph = av.filter.Graph()
        source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                                  time_base=self.time_base)  # fmt: skip
        bwdif = graph.add(FILTER, OPTIONS)
        sink = graph.add("buffersink")
        source.link_to(bwdif)
        bwdif.link_to(sink)
        graph.configure()
        self._graph = (source, sink, graph)  # the graph kept: its filters live only as long
        self._shape = (frame.width, frame.height, frame.format.name)

    def _pull(self) -> list[Any]:
        import av

        ready: list[Any] = []
        while True:
            try:
                frame = self._graph[1].pull()
            except (av.BlockingIOError, av.EOFError):
                return ready
            # bwdif counts in half the stream's ticks (so a field could have its own time): back
            # to the stream's, where every frame's timestamp is the one it came in with, and its
            # duration too (read in the stream's ticks, a frame lasted two: a held last frame's
            # time is written from it, media.held)
            if frame.time_base and frame.time_base != self.time_base:
                scale = frame.time_base / self.time_base
                if frame.pts is not None:
                    frame.pts = round(frame.pts * scale)
                if frame.duration:
                    frame.duration = round(frame.duration * scale)
            frame.time_base = self.time_base
            ready.append(frame)
