"""Colour through `cartoonize video`: decoded with the source's matrix and range, encoded with the
same, and the output tagged like the source (an untagged source: the size-based default players
use, tagged explicitly).

The sources are colour bars made with PyAV (75 % bars, as SMPTE's), the frames go through the real
pipeline with an identity runner (the network is not what is tested), and the output is read back
through FFmpeg's own conversion honouring the output's tags (swscale with accurate rounding: its
fast path alone is off by up to 3 levels on these bars). Bar interiors must come back within 2
levels of the intended RGB.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from cartoonize.runners.base import Runner

BARS = np.array([[191, 191, 191], [191, 191, 0], [0, 191, 191], [0, 191, 0],
                 [191, 0, 191], [191, 0, 0], [0, 0, 191], [16, 16, 16]], np.uint8)  # fmt: skip


class Identity(Runner):
    name = "identity"

    def load(self) -> None:
        pass

    def infer(self, frames: np.ndarray) -> np.ndarray:
        return frames


def bars(width: int, height: int) -> np.ndarray:
    return np.repeat(np.repeat(BARS[None], height, 0), width // len(BARS), 1)


def interiors(rgb: np.ndarray) -> list[np.ndarray]:
    w = rgb.shape[1] // len(BARS)
    return [rgb[8:-8, i * w + 8 : (i + 1) * w - 8].reshape(-1, 3).astype(int) for i in range(len(BARS))]


def make_source(path: Path, width: int, height: int, bt709: bool) -> None:
    """Lossless H.264 bars: tagged BT.709 (matrix, primaries, transfer, limited range), or
    untagged with swscale's default BT.601 matrix (what an untagged SD file holds)."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        if bt709:
            ctx = stream.codec_context
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1
            ctx.color_range = 1
        rgb = av.VideoFrame.from_ndarray(bars(width, height), format="rgb24")
        for i in range(6):
            if bt709:
                frame = rgb.reformat(
                    format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG
                )
            else:
                frame = rgb.reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def read_back(path: Path) -> tuple[dict[str, int], list[np.ndarray]]:
    import av
    from av.video.reformatter import Interpolation

    accurate = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        tags = {"matrix": ctx.colorspace, "primaries": ctx.color_primaries, "trc": ctx.color_trc,
                "range": ctx.color_range}  # fmt: skip
        frames = [f.to_ndarray(format="rgb24", interpolation=accurate) for f in container.decode(video=0)]
    return tags, frames


def levels(frames: list[np.ndarray]) -> tuple[int, float]:
    errors = [np.abs(got - want) for rgb in frames for got, want in zip(interiors(rgb), BARS, strict=True)]
    return max(int(e.max()) for e in errors), float(np.mean([e.mean() for e in errors]))


@pytest.mark.parametrize(
    ("size", "bt709", "expected"),
    [((1280, 720), True, {"matrix": 1, "primaries": 1, "trc": 1, "range": 1}),
     ((640, 480), False, {"matrix": 6, "primaries": 6, "trc": 6, "range": 1})],
    ids=["hd-bt709-tagged", "sd-untagged"],
)  # fmt: skip
def test_colour_round_trip(
    tmp_path: Path, size: tuple[int, int], bt709: bool, expected: dict[str, int]
) -> None:
    from cartoonize.pipelines.video import VideoJob, cartoonize_video

    source, output = tmp_path / "bars.mp4", tmp_path / "out.mp4"
    make_source(source, *size, bt709)
    report = cartoonize_video(VideoJob(source, output), lambda _size: Identity())
    tags, frames = read_back(output)
    assert tags == expected, report.colour
    worst, mean = levels(frames)
    print(f"{size[0]}x{size[1]} {report.colour}: max {worst} levels, mean {mean:.2f}")
    assert len(frames) == 6 and worst <= 2, (worst, mean)
    assert ("untagged" in report.colour) == (not bt709)


def test_untagged_defaults_follow_the_players() -> None:
    from cartoonize.media.files import BT470BG, BT709, SMPTE170M, default_colour

    assert default_colour(1920, 1080).matrix == BT709 and default_colour(1280, 720).matrix == BT709
    assert default_colour(720, 576).matrix == BT470BG and default_colour(720, 480).matrix == SMPTE170M
    assert default_colour(640, 360).matrix == SMPTE170M and not default_colour(640, 360).tagged


def test_an_output_that_stores_no_colour_tags_is_encoded_as_players_read_it(tmp_path: Path) -> None:
    """AVI's MPEG-4 Part 2 stores no colour tags: a player reads the file by its size (BT.709 for
    HD). An HD source tagged BT.601 (Big Buck Bunny's 720p is) was encoded with BT.601 all the
    same, and played with its colours off; it is now encoded with what the player will assume."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    from cartoonize.media.files import BT470BG, default_colour, to_rgb
    from cartoonize.pipelines.video import VideoJob, cartoonize_video

    source, output = tmp_path / "bars.mp4", tmp_path / "out.avi"
    with av.open(str(source), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}
        stream.codec_context.colorspace, stream.codec_context.color_range = BT470BG, 1
        rgb = av.VideoFrame.from_ndarray(bars(1280, 720), format="rgb24")
        for i in range(6):
            frame = rgb.reformat(
                format="yuv420p", dst_colorspace=Colorspace.ITU601, dst_color_range=ColorRange.MPEG
            )
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    cartoonize_video(VideoJob(source, output), lambda _size: Identity())
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
        decoded = list(container.decode(video=0))
        assert decoded[0].colorspace == 2  # untagged: the player assumes
        frames = [to_rgb(f, default_colour(1280, 720)) for f in decoded]
    worst, mean = levels(frames)
    # MPEG-4 Part 2 at qscale 3 rings by a few levels; encoded with BT.601 it was 31 off, 6.9 on average
    assert len(frames) == 6 and worst <= 10 and mean < 1.0, (worst, mean)


def test_where_an_output_stores_its_colour() -> None:
    from cartoonize.media.files import BT470BG, FULL, JPEG_COLOUR, Colour, default_colour, stored_colour

    bt601 = Colour(BT470BG, 1, 5, 6)
    for container, codec in (
        ("mp4", "h264"),
        ("matroska", "ffv1"),
        ("avi", "libx264"),
        ("avi", "mpeg2video"),
    ):
        assert stored_colour(bt601, container, codec, 1280, 720) == bt601, (container, codec)
    assert stored_colour(bt601, "avi", "mpeg4", 1280, 720) == default_colour(1280, 720)
    assert stored_colour(bt601, "avi", "ffv1", 640, 360) == default_colour(640, 360)
    assert stored_colour(bt601, "avi", "mjpeg", 1280, 720) == JPEG_COLOUR and JPEG_COLOUR.range == FULL
