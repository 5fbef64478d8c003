"""Checks what the README's first command made (run by .ci/run after it):

    python -m tests.readme_first sintel_cartoon.mp4 ../shared/media/sintel_5s.mp4 [--max-side N]

Every frame of the input is there, at the input's times, at the input's size (or scaled so the
longer side is --max-side, where the command downscaled), H.264 video, and as many audio tracks as the input had, with sound in them.
Exits 1 with one line per problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def problems(output: Path, source: Path, max_side: int | None = None) -> list[str]:
    import av

    from cartoonize.media.files import fit_within

    found = []
    with av.open(str(source)) as c:
        stream = c.streams.video[0]
        times_in = [float(f.pts * stream.time_base) for f in c.decode(stream)]
        w, h = fit_within(stream.codec_context.width, stream.codec_context.height, max_side)
        audio_in = len(c.streams.audio)
    if not output.is_file():
        return [f"{output} was not written"]
    with av.open(str(output)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        times_out = [float(f.pts * stream.time_base) for f in frames]
        codec = stream.codec_context.name
    with av.open(str(output)) as c:  # reopened: decoding the video read the file to its end
        sizes = {a.index: 0 for a in c.streams.audio}
        for packet in c.demux(*c.streams.audio) if sizes else ():
            sizes[packet.stream.index] += packet.size
        audio = list(sizes.values())
    if len(frames) != len(times_in):
        found.append(f"{len(frames)} frames, the input has {len(times_in)}")
    elif max(abs(a - b) for a, b in zip(times_in, times_out, strict=True)) > 0.002:
        found.append("frame times differ from the input's")
    if frames and (frames[0].width, frames[0].height) != (w, h):
        found.append(f"{frames[0].width}x{frames[0].height}, expected {w}x{h}")
    if codec != "h264":
        found.append(f"video codec {codec}, expected h264")
    if len(audio) != audio_in or not all(audio):
        found.append(f"{len(audio)} audio tracks ({audio} bytes), the input has {audio_in}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("source", type=Path)
    parser.add_argument("--max-side", type=int, default=None)
    args = parser.parse_args(argv)
    found = problems(args.output, args.source, args.max_side)
    for line in found:
        print(f"readme command 1: {line}", file=sys.stderr)
    if not found:
        print(f"readme command 1: {args.output} is complete (every frame, size, H.264, audio)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
