"""Closed captions carried inside a video stream (EIA-608/CEA-708 in H.264 or MPEG-2 user data, as
broadcast recordings and some cameras have): found, so the summary can say they are not kept.

The decoder hands them on as each frame's A53_CC side data; the cartoon's frames are new pictures
made from RGB, and PyAV gives no way to attach side data to a frame for the encoder (libx264 would
embed it), so they cannot follow. A caption track of its own (QuickTime's c608, a subtitle stream)
is carried as the container allows (pipelines.video.map_other_streams).
"""

from __future__ import annotations

NOTE = ("closed captions inside the video stream (EIA-608/708) are not carried: the frames are new "
        "pictures; extract them first (ccextractor, or ffmpeg's lavfi movie=...[out+subcc]) to keep them")  # fmt: skip


def carries_captions(frame) -> bool:  # noqa: ANN001 - a decoded av.VideoFrame
    """Whether the frame has closed-caption data (A53_CC side data)."""
    from av.sidedata.sidedata import Type

    try:
        return Type.A53_CC in frame.side_data
    except ValueError:  # a side-data type this PyAV does not know (FFmpeg 8's EXIF in PyAV 18.1)
        return False
