"""The YUV frame path (`VideoJob(yuv_frames=True)`): the decoder's planes go to the runner, which
converts on its device, and planes come back for the encoder. Against FFmpeg's path on the CPU:
the same frames (within the conversions' few levels), timestamps, orientation, size and audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.pipelines.video import VideoJob, cartoonize_video
from cartoonize.runners.base import TensorRunner
from cartoonize.stages import StageOptions
from tests.conftest import SHARED_MEDIA
from tests.helpers import make_video, read_video, set_display_rotation


class Identity(TensorRunner):
    """Frames through as they are: what is compared is the path around the network (a random
    test network turns a 1-level difference at its input into several at its output)."""

    name = "identity"

    def load(self) -> None:
        pass

    def infer_tensor(self, frames):  # noqa: ANN001, ANN201
        return frames


def both(src: Path, tmp_path: Path, **job) -> tuple[tuple, tuple, list]:
    outs, reports = [], []
    for yuv in (False, True):
        out = tmp_path / f"out-{yuv}.mp4"
        raw = StageOptions(raw=True)  # the plane path runs only where no frame stage needs RGB on the host
        reports.append(
            cartoonize_video(VideoJob(src, out, yuv_frames=yuv, stages=raw, **job), lambda size: Identity())
        )
        outs.append(read_video(out))
    return outs[0], outs[1], reports


@pytest.mark.parametrize(("width", "height", "degrees"), [(64, 48, 0), (37, 23, 0), (64, 48, 90)],
                         ids=["even", "odd", "rotated"])  # fmt: skip
def test_yuv_path_gives_what_ffmpeg_path_gives(tmp_path: Path, width: int, height: int, degrees: int) -> None:
    src = make_video(tmp_path / "src.mp4", width=width, height=height, frames=6, audio="aac")
    if degrees:
        set_display_rotation(src, degrees)
    (pts_a, frames_a, tb_a), (pts_b, frames_b, tb_b), (rep_a, rep_b) = both(src, tmp_path)
    assert pts_a == pts_b and tb_a == tb_b and len(frames_a) == 6
    assert frames_a[0].shape == frames_b[0].shape and (rep_a.width, rep_a.height) == (
        rep_b.width,
        rep_b.height,
    )
    if degrees in (90, 270):
        assert frames_a[0].shape[:2] == (width, height)  # upright
    diff = np.abs(np.stack(frames_a).astype(int) - np.stack(frames_b).astype(int))
    print(f"{width}x{height} rot {degrees}: max {diff.max()}, mean {diff.mean():.2f}")
    # a synthetic pattern of hard edges: the two chroma filters differ there by a few levels
    assert diff.mean() < 4.0 and rep_a.streams == rep_b.streams and rep_a.colour == rep_b.colour
    assert (rep_a.frame_path, rep_b.frame_path) == ("rgb", "yuv")


@pytest.mark.shared
@pytest.mark.parametrize("clip", ["sintel_5s.mp4", "iphone_rotated.mov"])
def test_yuv_path_on_the_shared_clips(clip: str, tmp_path: Path) -> None:
    """Real footage (H.264, MP3/AAC, a rotated phone clip): same timestamps, size, audio notes,
    and frames within a couple of levels on average."""
    (pts_a, frames_a, _), (pts_b, frames_b, _), (rep_a, rep_b) = both(
        SHARED_MEDIA / clip, tmp_path, max_frames=24
    )
    assert pts_a == pts_b and rep_a.streams == rep_b.streams and frames_a[0].shape == frames_b[0].shape
    assert (rep_a.frame_path, rep_b.frame_path) == ("rgb", "yuv")
    diff = np.abs(np.stack(frames_a).astype(int) - np.stack(frames_b).astype(int))
    print(f"{clip}: max {diff.max()}, mean {diff.mean():.2f}, 99th percentile {np.percentile(diff, 99):.0f}")
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4


def test_yuv_path_stays_off_where_rgb_is_needed(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """--max-side scaling is FFmpeg's job: the switch then changes nothing."""
    src = make_video(tmp_path / "src.mp4", width=64, height=48, frames=3, audio=None)
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    out = tmp_path / "o.mp4"
    report = cartoonize_video(
        VideoJob(src, out, max_side=32, yuv_frames=True, stages=StageOptions(raw=True)),
        lambda s: runner_for(request, s),
    )
    assert report.frames == 3 and (report.width, report.height) == (32, 24) and report.frame_path == "rgb"


def tagged_bars(path: Path, matrix: str, full: bool, pix_fmt: str) -> Path:
    """Lossless FFV1 colour bars in `pix_fmt`, converted and tagged with `matrix` (BT.601 or
    BT.709) and range, as a camera or an editor would write them."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    code = {"bt601": 6, "bt709": 1}[matrix]  # AVCOL_SPC_SMPTE170M, AVCOL_SPC_BT709
    space = {"bt601": Colorspace.ITU601, "bt709": Colorspace.ITU709}[matrix]
    levels = ColorRange.JPEG if full else ColorRange.MPEG
    bars = np.repeat(np.repeat(np.array([[[235, 235, 235], [235, 235, 16], [16, 235, 235], [16, 235, 16],
                                          [235, 16, 235], [235, 16, 16], [16, 16, 235], [60, 90, 200]]],
                                        np.uint8), 48, 0), 16, 1)  # fmt: skip
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=12)
        stream.width, stream.height, stream.pix_fmt = 128, 48, pix_fmt
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_range = code, int(levels)
        rgb = av.VideoFrame.from_ndarray(bars, format="rgb24")
        for i in range(4):
            frame = rgb.reformat(format=pix_fmt, dst_colorspace=space, dst_color_range=levels)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


class Seeing(Identity):
    """Identity that keeps the RGB frames it was given: what the network would see."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def infer_tensor(self, frames):  # noqa: ANN001, ANN201
        self.seen.extend(np.asarray(frames.cpu()))
        return frames


@pytest.mark.parametrize(
    ("matrix", "full", "pix_fmt"),
    [("bt709", False, "yuv420p"), ("bt709", True, "yuv420p"), ("bt601", True, "yuv420p"),
     ("bt709", False, "yuv420p10le")],
    ids=["709-limited", "709-full", "601-full", "709-limited-10bit"],
)  # fmt: skip
def test_yuv_path_reads_the_sources_matrix_range_and_depth(
    matrix: str, full: bool, pix_fmt: str, tmp_path: Path
) -> None:
    """The plane path converts with the source's own matrix, range and bit depth: the network is
    given, inside colour bars (away from the edges, where the two paths' chroma filters differ),
    the RGB that FFmpeg's conversion gives, within two levels (a wrong matrix moves the bars by
    about 9 levels, a wrong range by about 15, a wrong depth by most of the range); and the
    cartoon written back matches within a level on average."""
    src = tagged_bars(tmp_path / "bars.mkv", matrix, full, pix_fmt)
    seen, frames, reports = [], [], []
    for yuv in (False, True):
        runner = Seeing()
        out = tmp_path / f"out-{yuv}.mp4"
        job = VideoJob(src, out, yuv_frames=yuv, stages=StageOptions(raw=True))
        reports.append(cartoonize_video(job, lambda size, runner=runner: runner))
        seen.append(np.stack(runner.seen).astype(int))
        frames.append(np.stack(read_video(out)[1]).astype(int))
    assert [r.frame_path for r in reports] == ["rgb", "yuv"] and reports[0].colour == reports[1].colour

    def inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.abs(a - b).reshape(4, 48, 8, 16, 3)[:, 4:-4, :, 4:-4]  # each bar less 4 px a side

    given = inside(*seen)  # what the network is given: the same RGB (0 levels here)
    assert given.mean() < 0.5 and given.max() <= 2, (given.mean(), given.max())
    written = inside(*frames)  # each output went through x264 on its own: within a level on average
    assert written.mean() < 1.0, (written.mean(), written.max())


def test_yuv_path_stays_off_for_stages_and_other_pixel_formats(tmp_path: Path) -> None:
    """Frame stages need RGB on the host, and an encoder that takes another pixel format gets
    FFmpeg's conversion: in both cases the switch changes nothing."""
    from cartoonize.media.files import EncoderSettings

    src = make_video(tmp_path / "src.mp4", width=64, height=48, frames=3, audio=None)
    staged = cartoonize_video(
        VideoJob(src, tmp_path / "staged.mp4", yuv_frames=True), lambda size: Identity()
    )
    assert staged.frame_path == "rgb" and staged.stages != "none"
    other = cartoonize_video(
        VideoJob(src, tmp_path / "o.mkv", yuv_frames=True, stages=StageOptions(raw=True),
                 encoder=EncoderSettings(codec="libx264", pix_fmt="yuv444p")),
        lambda size: Identity(),
    )  # fmt: skip
    assert other.frame_path == "rgb"
