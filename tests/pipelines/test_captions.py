"""Closed captions inside the video stream (CEA-608 in H.264 SEI user data, as broadcast
recordings carry them) cannot follow the re-drawn frames; the summary says so instead of
dropping them without a word."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from cartoonize.media.captions import NOTE
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.stages import StageOptions
from tests.helpers import pattern
from tests.pipelines.test_yuv_frames import Identity

AUD = b"\x00\x00\x00\x01\x09"  # an access unit delimiter: one starts each frame (x264's aud=1)


def odd_parity(byte: int) -> int:
    return byte | (0x80 if bin(byte).count("1") % 2 == 0 else 0)


def caption_sei(first: int, second: int) -> bytes:
    """An SEI NAL unit of ATSC A/53 user data (GA94) with one CEA-608 field-1 byte pair."""
    triplets = bytes([0xFC, odd_parity(first), odd_parity(second)])
    payload = bytes([0xB5, 0x00, 0x31]) + b"GA94" + bytes([0x03, 0x40 | 1, 0xFF]) + triplets + b"\xff"
    body, escaped, zeros = bytes([4, len(payload)]) + payload, bytearray(), 0
    for byte in body:  # emulation prevention: no 00 00 0x (x <= 3) inside a NAL unit
        if zeros >= 2 and byte <= 3:
            escaped.append(3)
            zeros = 0
        escaped.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return b"\x00\x00\x00\x01\x06" + bytes(escaped) + b"\x80"


def raw_clip(path: Path, captions: bool) -> Path:
    with av.open(str(path), "w", format="h264") as out:
        video = out.add_stream("libx264", rate=Fraction(24))
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"x264-params": "aud=1"}
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(pattern(64, 48, i), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    if captions:
        data = path.read_bytes().split(AUD)
        text = b"HELLO CAPTIONS".ljust(2 * len(data), b" ")
        parts = [data[0]] + [
            p[:1] + caption_sei(text[2 * k], text[2 * k + 1]) + p[1:] for k, p in enumerate(data[1:])
        ]
        path.write_bytes(AUD.join(parts))
    return path


def test_captions_in_the_video_stream_are_said_to_be_left(tmp_path: Path) -> None:
    with av.open(str(raw_clip(tmp_path / "captioned.h264", captions=True))) as source:
        from av.sidedata.sidedata import Type

        assert all(Type.A53_CC in f.side_data for f in source.decode(video=0))  # the case this is about
    reports = [
        cartoonize_video(
            VideoJob(
                raw_clip(tmp_path / f"{kind}.h264", kind == "captioned"),
                tmp_path / f"{kind}.mp4",
                stages=StageOptions(raw=True),
            ),
            lambda size: Identity(),
        )  # fmt: skip
        for kind in ("captioned", "plain")
    ]
    assert [r.captions for r in reports] == [True, False] and [r.frames for r in reports] == [12, 12]
    assert "EIA-608/708" in NOTE and "not carried" in NOTE
