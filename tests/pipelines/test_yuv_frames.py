"""The YUV frame path (`VideoJob(yuv_frames=True)`): the decoder's planes go to the runner, which
converts on its device, and planes come back for the encoder. Against FFmpeg's path on the CPU:
the same frames (within the conversions' few levels), timestamps, orientation, size and audio."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cartoonize.media.files import EncoderSettings
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
@pytest.mark.parametrize(("clip", "max_side"), [("sintel_5s.mp4", None), ("iphone_rotated.mov", None),
                                               ("sintel_5s.mp4", 320), ("iphone_rotated.mov", 256)])  # fmt: skip
def test_yuv_path_on_the_shared_clips(clip: str, max_side: int | None, tmp_path: Path) -> None:
    """Real footage (H.264, MP3/AAC, a rotated phone clip), at its size and scaled down for
    --max-side: same timestamps, size and audio notes; encoded losslessly, frames within half a level
    on average (99 % within 3 levels)."""
    (pts_a, frames_a, _), (pts_b, frames_b, _), (rep_a, rep_b) = both(
        SHARED_MEDIA / clip,
        tmp_path,
        max_frames=72,
        max_side=max_side,  # Sintel fades in from black
        encoder=EncoderSettings(crf=0),  # lossless: what differs is the two paths, not two encodes
    )
    assert pts_a == pts_b and rep_a.streams == rep_b.streams and frames_a[0].shape == frames_b[0].shape
    assert (rep_a.frame_path, rep_b.frame_path) == ("rgb", "yuv")
    diff = np.abs(np.stack(frames_a).astype(int) - np.stack(frames_b).astype(int))
    print(
        f"{clip} {max_side}: max {diff.max()}, mean {diff.mean():.2f}, 99th percentile {np.percentile(diff, 99):.0f}"
    )
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 3


def test_yuv_path_scales_for_max_side_on_the_device(tmp_path: Path) -> None:
    """--max-side on the plane path: the frames are scaled where the runner runs (after the
    conversion to RGB, before rotating), to the size FFmpeg's path gives; the same timestamps."""
    src = make_video(tmp_path / "src.mp4", width=128, height=96, frames=4, audio=None)
    set_display_rotation(src, 90)
    (pts_a, frames_a, _), (pts_b, frames_b, _), (rep_a, rep_b) = both(src, tmp_path, max_side=48)
    assert (rep_a.frame_path, rep_b.frame_path) == ("rgb", "yuv") and not rep_b.not_planes
    assert pts_a == pts_b and frames_a[0].shape == frames_b[0].shape == (48, 36, 3)  # upright
    diff = np.abs(np.stack(frames_a).astype(int) - np.stack(frames_b).astype(int))
    print(f"--max-side 48: mean {diff.mean():.2f}, max {diff.max()}")
    assert diff.mean() < 4.0  # a hard-edged pattern: the two scalers and chroma filters differ there


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


class Tint(TensorRunner):
    """A fixed per-pixel 'cartoon' (colours turned, brighter, lower contrast), on `device`: the
    stages have something to correct, and both paths give it the same input."""

    name = "tint"

    def __init__(self, device: str = "cpu") -> None:
        self.device = device

    def load(self) -> None:
        pass

    def infer_tensor(self, frames):  # noqa: ANN001, ANN201
        return (frames[..., [1, 2, 0]].float() * 0.6 + 70).round().to(frames.dtype)


@pytest.mark.parametrize(
    ("width", "height", "degrees", "batch", "max_side", "device"),
    [
        (96, 64, 0, 1, None, "cpu"),
        (94, 62, 90, 2, None, "cpu"),
        (192, 128, 90, 1, 96, "cpu"),
        pytest.param(96, 64, 90, 2, None, "cuda", marks=pytest.mark.gpu),
        pytest.param(192, 128, 0, 2, 96, "cuda", marks=pytest.mark.gpu),
    ],
    ids=["plain", "rotated-batch2", "rotated-max-side", "cuda", "cuda-max-side"],
)
def test_yuv_path_runs_the_stages_on_the_device(
    tmp_path: Path, width: int, height: int, degrees: int, batch: int, max_side: int | None, device: str
) -> None:
    """With the frame stages on the runner's device (`stages.device`), the plane path runs them
    there too: the RGB frame is made from the planes on the device, the flow is computed ahead from
    the decoder's luma, and the stages hand back the encoder's planes. Against the RGB path with the
    same stages (the engine's frames kept on the device): the same timestamps, upright size, audio
    and colour, every flow taken from `ahead`, and frames no further apart than the two paths give
    without stages (their conversions differ by a few levels at this pattern's hard edges; the
    flow's input differs by the matrix's weights). With --max-side, the frames are scaled on the
    device and the flow, computed on the decoder's full-size luma, is scaled to them."""
    from cartoonize.media.files import EncoderSettings
    from cartoonize.stages.base import StageChain
    from cartoonize.stages.device import DeviceStages

    src = make_video(tmp_path / "src.mp4", width=width, height=height, frames=14, audio="aac")
    if degrees:
        set_display_rotation(src, degrees)
    results, reports, stages = [], [], []
    for yuv in (False, True):
        out = tmp_path / f"out-{yuv}.mp4"
        chain = DeviceStages(device)
        job = VideoJob(src, out, max_side, batch, EncoderSettings(crf=0), yuv_frames=yuv)
        reports.append(
            cartoonize_video(job, lambda size: Tint(device), make_chain=lambda _o, c=chain: StageChain([c]))
        )
        results.append(read_video(out))
        stages.append(chain)
    (pts_a, frames_a, tb_a), (pts_b, frames_b, tb_b) = results
    assert [r.frame_path for r in reports] == ["device", "yuv"] and not any(r.not_planes for r in reports)
    assert pts_a == pts_b and tb_a == tb_b and len(frames_b) == 14
    assert reports[0].streams == reports[1].streams and reports[0].colour == reports[1].colour
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    upright = (width, height) if degrees in (90, 270) else (height, width)
    assert frames_a[0].shape[:2] == frames_b[0].shape[:2] == tuple(round(n * scale) for n in upright)
    assert all(s.stabilize is not None and s.stabilize.used_ahead == 13 for s in stages)
    a, b = np.stack(frames_a).astype(int), np.stack(frames_b).astype(int)
    raw = []
    for yuv in (False, True):
        out = tmp_path / f"raw-{yuv}.mp4"
        job = VideoJob(
            src, out, max_side, batch, EncoderSettings(crf=0), yuv_frames=yuv, stages=StageOptions(raw=True)
        )
        cartoonize_video(job, lambda size: Tint(device))
        raw.append(np.stack(read_video(out)[1]).astype(int))
    diff, raw_diff = np.abs(a - b).mean(), np.abs(raw[0] - raw[1]).mean()
    print(
        f"{width}x{height} rot {degrees} batch {batch} max side {max_side}: staged paths {diff:.2f} apart, "
        f"raw paths {raw_diff:.2f}"
    )
    assert diff < 1.5 and diff <= raw_diff + 0.25
    assert np.abs(raw[1] - b).mean() > 3  # the stages did run


def test_yuv_path_with_stages_needs_them_on_the_device_at_full_size(tmp_path: Path) -> None:
    """The plane path with stages only where the device stages take the engine's frames there:
    not with --infer-side (the network's frame is shrunk on the host), nor when the frames are sent
    to the host and back (`keep_on_device=False`)."""
    from cartoonize.stages.base import StageChain
    from cartoonize.stages.device import DeviceStages

    def on_device(options: StageOptions) -> StageChain:  # as build_stages makes it on a GPU
        return StageChain([DeviceStages("cpu", upsample=bool(options.infer_side))])

    src = make_video(tmp_path / "src.mp4", width=64, height=48, frames=3, audio=None)
    for n, job in enumerate((
        VideoJob(src, tmp_path / "a.mp4", yuv_frames=True, keep_on_device=False),
        VideoJob(src, tmp_path / "b.mp4", yuv_frames=True, stages=StageOptions(infer_side=32)),
    )):  # fmt: skip
        report = cartoonize_video(job, lambda size: Tint(), make_chain=on_device)
        assert report.frame_path == "rgb" and report.frames == 3, n
        assert (
            report.not_planes
            == (
                "the frame stages run on the host",
                "--infer-side shrinks the frames for the network on the host",
            )[n]
        )


def test_yuv_path_stays_off_for_stages_and_other_pixel_formats(tmp_path: Path) -> None:
    """The numpy frame stages need RGB on the host, and an encoder that takes another pixel format
    gets FFmpeg's conversion: in both cases the switch changes nothing."""
    from cartoonize.media.files import EncoderSettings

    src = make_video(tmp_path / "src.mp4", width=64, height=48, frames=3, audio=None)
    staged = cartoonize_video(
        VideoJob(src, tmp_path / "staged.mp4", yuv_frames=True), lambda size: Identity()
    )
    assert staged.frame_path == "rgb" and staged.stages != "none"
    assert staged.not_planes == "the frame stages run on the host"
    other = cartoonize_video(
        VideoJob(src, tmp_path / "o.mkv", yuv_frames=True, stages=StageOptions(raw=True),
                 encoder=EncoderSettings(codec="libx264", pix_fmt="yuv444p")),
        lambda size: Identity(),
    )  # fmt: skip
    assert other.frame_path == "rgb" and other.not_planes == "the encoder takes yuv444p, not yuv420p"


def test_the_summary_says_why_yuv_frames_was_not_used(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`--yuv-frames` where it cannot run (here: --infer-side) still writes the video, through
    FFmpeg's path, and the summary says so and why: the option is not dropped in silence."""
    import subprocess
    import sys

    src = make_video(tmp_path / "src.mp4", width=64, height=48, frames=3, audio=None)
    result = subprocess.run(
        [sys.executable, "-m", "cartoonize", "video", str(src), str(tmp_path / "out.mp4"), "--model",
         str(tiny_checkpoint), "--engine", "torch", "--infer-side", "32", "--yuv-frames"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())  # the summary goes to stderr, wrapped to the terminal
    assert (
        "--yuv-frames not used: --infer-side shrinks the frames for the network on the host; FFmpeg converted"
        in said
    ), said
    assert read_video(tmp_path / "out.mp4")[1][0].shape == (48, 64, 3)
    second = make_video(tmp_path / "second.mp4", width=64, height=48, frames=2, audio=None)
    folder = tmp_path / "cartoons"
    result = subprocess.run(
        [sys.executable, "-m", "cartoonize", "video", str(src), str(second), str(folder), "--model",
         str(tiny_checkpoint), "--engine", "torch", "--infer-side", "32", "--yuv-frames"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    said = " ".join((result.stdout + result.stderr).split())  # many videos: one line each
    assert result.returncode == 0 and said.count("--yuv-frames not used: --infer-side") == 2, said


def test_segments_run_the_plane_path_and_join_into_a_single_pass(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """--segments with --yuv-frames: each segment (its pre-roll included) runs the plane path, and
    the joined video, encoded losslessly, is the single pass's frame for frame."""
    from cartoonize.choose import EngineRequest, runner_for
    from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
    from cartoonize.pipelines.workers import InProcess

    src = make_video(tmp_path / "src.mp4", width=64, height=48, frames=48, audio="aac", gop=8)
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    single = tmp_path / "single.mkv"
    job = VideoJob(
        src, single, encoder=EncoderSettings(codec="ffv1"), yuv_frames=True, stages=StageOptions(raw=True)
    )
    assert cartoonize_video(job, lambda size: runner_for(request, size)).frame_path == "yuv"
    joined = tmp_path / "joined.mkv"
    paths: list[str] = []

    class Recording(InProcess):
        """In this process, keeping each piece's frame path."""

        def run(self, pieces, on_event):  # noqa: ANN001, ANN201
            outcomes = super().run(pieces, on_event)
            paths.extend(o.report.frame_path for o in outcomes if o.report is not None)
            return outcomes

    report = cartoonize_many(
        [(src, joined)], replace(job, output=joined), request, Recording(), SplitOptions(3)
    )
    assert report.of("done"), report.lines()
    assert paths == ["yuv"] * 3
    (pts_a, frames_a, tb_a), (pts_b, frames_b, tb_b) = read_video(single), read_video(joined)
    assert (pts_a, tb_a) == (pts_b, tb_b) and len(frames_a) == 48
    assert all(np.array_equal(a, b) for a, b in zip(frames_a, frames_b, strict=True))
