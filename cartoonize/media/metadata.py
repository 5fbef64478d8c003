"""What a source says of itself, carried into the output as the ffmpeg tool carries it by default:
its global tags (a film's title and artist; a phone's creation time, place, make and model) and
its chapters.

Left out are the tags the output's muxer writes for itself (`encoder`) or that describe only the
source's file (`major_brand` and its kin, which FFmpeg's MP4 demuxer reports). What the output's
container cannot store its muxer leaves out (WebM keeps a title but no artist; GIF keeps nothing).
Chapters keep their titles and times, on the output's clock: a transport stream's start taken off
(media.clock), and for a preview those past its end dropped or cut short.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

# tags of the source file, not of the work in it (an "-eng" variant included)
FILE_OWN = frozenset({"encoder", "major_brand", "minor_version", "compatible_brands"})


def global_tags(source: Any) -> dict[str, str]:  # an input av container
    """The source's global tags, less those of its file alone (FILE_OWN)."""
    return {key: value for key, value in source.metadata.items() if key.lower().split("-")[0] not in FILE_OWN}


def chapters(
    source: Any, origin: Fraction = Fraction(0), until: Fraction | None = None
) -> list[dict[str, Any]]:
    """The source's chapters with `origin` seconds taken off their times; with `until` (seconds),
    those that start after it are dropped and the last is cut there. Times stay in each chapter's
    own time base."""
    kept = []
    for chapter in source.chapters():
        time_base = Fraction(chapter["time_base"])
        start = chapter["start"] * time_base - origin
        end = chapter["end"] * time_base - origin
        if until is not None:
            end = min(end, until)
        if end <= 0 or end <= start:
            continue  # before the output's start, or after its end
        kept.append(
            {**chapter, "start": round(max(start, Fraction(0)) / time_base), "end": round(end / time_base)}
        )
    return kept


def carry(source: Any, output: Any, origin: Fraction = Fraction(0), until: Fraction | None = None) -> int:
    """Give `output` (not yet started: no packet written) the source's tags and chapters; the
    number of chapters given."""
    output.metadata.update(global_tags(source))
    kept = chapters(source, origin, until)
    if kept:
        output.set_chapters(kept)
    return len(kept)
