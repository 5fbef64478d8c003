"""`cartoonize video`'s options together: a codec given by its codec name, an --infer-side that
does not shrink the frame, an input given twice."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.errors import CartoonizeWarning
from cartoonize.media.files import EncoderSettings
from cartoonize.pipelines.batch import find_videos
from cartoonize.pipelines.video import VideoJob, VideoReport, cartoonize_video
from cartoonize.stages import StageOptions
from tests.helpers import make_video, read_video

RAW = StageOptions(raw=True)


def run(src: Path, out: Path, checkpoint: Path, **job) -> VideoReport:  # noqa: ANN003
    request = EngineRequest(engine="torch", model=checkpoint, device="cpu")
    return cartoonize_video(VideoJob(src, out, **job), lambda size: runner_for(request, size))


def _svt_is_av1() -> bool:
    try:
        return av.Codec("av1", "w").name == "libsvtav1"
    except ValueError:
        return False


@pytest.mark.skipif(not _svt_is_av1(), reason="this FFmpeg's AV1 encoder is not SVT-AV1")
def test_codec_by_its_codec_name_takes_crf(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`--codec av1` is SVT-AV1, with --crf as `--codec libsvtav1` has it: under the codec's name
    the encoder got no options, and every --crf gave the same file."""
    sizes = {}
    for crf in (0, 40):
        out = tmp_path / f"crf{crf}.mkv"
        run(small_video, out, tiny_checkpoint, max_frames=6, stages=RAW, encoder=EncoderSettings("av1", crf))
        sizes[crf] = out.stat().st_size
        assert len(read_video(out)[1]) == 6
    assert sizes[0] > 1.3 * sizes[40]  # (the same bytes when --crf went unused)


def test_infer_side_not_smaller_than_the_frame_runs_no_upsampling(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The network runs at the frame's size (no upscaling), so nothing is upsampled and the
    summary does not say so; with --max-side the frame is the smaller one that is cartoonized."""
    report = run(small_video, tmp_path / "big.mp4", tiny_checkpoint, max_frames=3,
                 stages=StageOptions(raw=True, infer_side=1000))  # fmt: skip
    assert (report.width, report.height, report.stages) == (64, 48, "none")
    report = run(small_video, tmp_path / "max.mp4", tiny_checkpoint, max_frames=3, max_side=32,
                 stages=StageOptions(raw=True, infer_side=40))  # fmt: skip
    assert (report.width, report.height, report.stages) == (32, 24, "none")
    report = run(small_video, tmp_path / "small.mp4", tiny_checkpoint, max_frames=3,
                 stages=StageOptions(raw=True, infer_side=32))  # fmt: skip
    assert (report.width, report.height, report.stages) == (64, 48, "guided upsampling")


def test_an_input_given_twice_is_cartoonized_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same file twice (or by two spellings) is one video for one output, done once with a
    warning, as `cartoonize image` does: not refused as two inputs that "would both be written"
    to one output, "to rename one"."""
    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "clip.mp4", frames=2, audio=None)
    (tmp_path / "sub").mkdir()
    given = [Path("clip.mp4"), Path("sub/../clip.mp4"), Path("clip.mp4")]
    with pytest.warns(CartoonizeWarning) as said:
        assert find_videos(given, Path("out")) == [(Path("clip.mp4"), Path("out/clip.mp4"))]
    assert [str(w.message) for w in said] == [
        "sub/../clip.mp4 is given more than once; it is cartoonized once",
        "clip.mp4 is given more than once; it is cartoonized once",
    ]
