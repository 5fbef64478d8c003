"""An HDR video (10-bit, BT.2020, PQ or HLG, as phones and HDR cameras record it) through
`cartoonize video`: the engine sees the SDR picture the HDR master was made from, and the output is
SDR BT.709, tagged so and said so. Before, the engine saw the grey, flat code values, and the
8-bit output kept the source's HDR tags: players showed it over-saturated and clipped."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from cartoonize.media import hdr
from cartoonize.media.scheduling import open_encoder
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.stages import StageOptions
from tests.helpers import pattern
from tests.media.test_hdr import hdr_frame, hlg_encode, nits_of_sdr, pq_encode
from tests.pipelines.test_yuv_frames import Identity

ENCODE = {hdr.PQ: pq_encode, hdr.HLG: hlg_encode}


def sdr_frames(count: int) -> list[np.ndarray]:
    """Test pictures between 40 and 200 of 255: below the highlight knee, and above the darkest
    levels, where 10-bit PQ's rounding, raised by the display curve's slope, lifts a saturated
    colour's darkest channel a few levels (media.hdr)."""
    return [(40 + pattern(64, 48, k).astype(np.float64) * 160 / 255).round() for k in range(count)]


def make_hdr_clip(path: Path, trc: int, frames: list[np.ndarray]) -> None:
    """10-bit 4:2:0 H.264, near lossless, tagged BT.2020 and `trc`, limited range."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p10le"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = 9, 9, trc, 1
        for i, sdr in enumerate(frames):
            frame = hdr_frame(ENCODE[trc](nits_of_sdr(sdr)), trc).reformat(format="yuv420p10le")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def make_sdr_clip(path: Path, frames: list[np.ndarray]) -> None:
    """The same pictures as 8-bit SDR BT.709, as the HDR master's SDR grade would be."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        ctx = stream.codec_context
        ctx.colorspace = ctx.color_primaries = ctx.color_trc = ctx.color_range = 1
        for i, sdr in enumerate(frames):
            rgb = av.VideoFrame.from_ndarray(sdr.astype(np.uint8), format="rgb24")
            frame = rgb.reformat(
                format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG
            )
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def read_back(path: Path) -> tuple[tuple[int, int, int, int], list[np.ndarray]]:
    import av

    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        tags = (ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range)
        return tags, [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.mark.parametrize("trc", [hdr.PQ, hdr.HLG], ids=["pq", "hlg"])
def test_an_hdr_video_comes_out_as_its_sdr_picture_tagged_sdr(trc: int, tmp_path: Path) -> None:
    """The pictures come back within a level of what the same pictures made as an SDR clip give
    through the same pipeline (whose 8-bit 4:2:0 encode and decode cost about 1.7 levels)."""
    frames = sdr_frames(4)
    make_hdr_clip(tmp_path / "hdr.mp4", trc, frames)
    make_sdr_clip(tmp_path / "sdr.mp4", frames)
    reports = [
        cartoonize_video(VideoJob(tmp_path / f"{kind}.mp4", tmp_path / f"{kind}-out.mp4", stages=StageOptions(raw=True)),
                         lambda size: Identity())
        for kind in ("hdr", "sdr")
    ]  # fmt: skip
    report = reports[0]
    tags, written = read_back(tmp_path / "hdr-out.mp4")
    _, sdr_written = read_back(tmp_path / "sdr-out.mp4")
    assert tags == (1, 1, 1, 1)  # BT.709 matrix, primaries and transfer, limited range
    assert report.hdr.startswith(f"HDR source ({hdr.TRANSFER_NAMES[trc]}, BT.2020) tone-mapped to SDR")
    assert "BT.709" in report.colour and len(written) == len(frames)
    for source, got, sdr_got in zip(frames, written, sdr_written, strict=True):
        smooth = (
            local_range(source) <= 24
        )  # away from the sharp edges, where 4:2:0 in PQ and in BT.709 differ
        error = np.abs(got.astype(float) - source)[smooth].mean()
        sdr_error = np.abs(sdr_got.astype(float) - source)[smooth].mean()  # 4:2:0 and 8 bits: about 1.7
        assert error <= sdr_error + 1.0, (error, sdr_error)


def local_range(picture: np.ndarray, radius: int = 2) -> np.ndarray:
    """Each pixel's largest difference to a pixel within `radius`, over the channels."""
    padded = np.pad(picture, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    h, w = picture.shape[:2]
    windows = [
        padded[dy : dy + h, dx : dx + w] for dy in range(2 * radius + 1) for dx in range(2 * radius + 1)
    ]
    stack = np.stack(windows)
    return (stack.max(axis=0) - stack.min(axis=0)).max(axis=-1)


def test_the_yuv_frame_path_gives_way_for_hdr(tmp_path: Path) -> None:
    """--yuv-frames converts with a matrix alone: an HDR source takes the tone-mapped path and the
    summary says why."""
    make_hdr_clip(tmp_path / "hdr.mp4", hdr.PQ, sdr_frames(2))
    job = VideoJob(tmp_path / "hdr.mp4", tmp_path / "out.mp4", yuv_frames=True, stages=StageOptions(raw=True))
    report = cartoonize_video(job, lambda size: Identity())
    assert report.frame_path == "rgb" and "HDR source is tone-mapped" in report.not_planes


def test_an_sdr_video_is_left_as_it_was(tmp_path: Path) -> None:
    from tests.helpers import make_video

    src = make_video(tmp_path / "sdr.mp4", width=64, height=48, frames=3)
    report = cartoonize_video(
        VideoJob(src, tmp_path / "out.mp4", stages=StageOptions(raw=True)), lambda size: Identity()
    )
    assert report.hdr == ""


def write_avif(path: Path, frame) -> None:  # noqa: ANN001 - an av.VideoFrame, tagged
    import av

    with av.open(str(path), "w", format="avif") as out:
        stream = out.add_stream("libsvtav1", rate=1)
        stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, frame.format.name
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_primaries = frame.colorspace, frame.color_primaries
        ctx.color_trc, ctx.color_range = frame.color_trc, frame.color_range
        stream.options = {"crf": "4"}
        frame.pts = 0
        open_encoder(stream)  # (SVT-AV1 as root: media/scheduling)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


def test_an_hdr_photo_reads_as_its_sdr_picture(tmp_path: Path) -> None:
    """An AVIF photo in PQ (as HDR cameras and some phones save) reads within a level of the same
    picture saved as an SDR AVIF (which loses about 2 levels to AV1 and 4:2:0 on its own)."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    from cartoonize.pipelines.image import read_image

    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this FFmpeg has no AV1 encoder (libsvtav1)")
    source = sdr_frames(1)[0]
    write_avif(
        tmp_path / "hdr.avif",
        hdr_frame(pq_encode(nits_of_sdr(source)), hdr.PQ).reformat(format="yuv420p10le"),
    )
    sdr = av.VideoFrame.from_ndarray(source.astype(np.uint8), format="rgb24").reformat(
        format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG
    )
    sdr.colorspace = sdr.color_primaries = sdr.color_trc = sdr.color_range = 1
    write_avif(tmp_path / "sdr.avif", sdr)
    smooth = local_range(source) <= 24
    error, sdr_error = (
        np.abs(read_image(tmp_path / name).astype(float) - source)[smooth].mean()
        for name in ("hdr.avif", "sdr.avif")
    )
    assert error <= sdr_error + 1.0, (error, sdr_error)
