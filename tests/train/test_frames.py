"""Training from video files: frames sampled at a rate, near-duplicates and cross-fades skipped, cached."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")
from typer.testing import CliRunner  # noqa: E402

from tests.train.conftest import shared_dir, tiny_args  # noqa: E402
from train.cli import app  # noqa: E402
from train.frames import FrameSampling, is_blend, sample_frames  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:--vgg random")
FPS = 12


def scene(kind: str, i: int, w: int = 64, h: int = 48) -> np.ndarray:
    """Scene "a": a white square moving right on blue; "b": a dark disc moving down on yellow."""
    image = np.empty((h, w, 3), np.uint8)
    if kind == "a":
        image[:] = (30, 60, 200)
        cv2.rectangle(image, (4 + 3 * i, 12), (20 + 3 * i, 28), (255, 255, 255), -1)
    else:
        image[:] = (230, 210, 40)
        cv2.circle(image, (32, 8 + 2 * i), 9, (20, 20, 20), -1)
    return image


def write_clip(path: Path) -> Path:
    """1 s of motion (a), 1 s held still, a 1 s cross-fade to (b), 1 s of motion (b): 48 frames."""
    frames = [scene("a", i) for i in range(FPS)]
    frames += [scene("a", FPS - 1)] * FPS
    still, other = scene("a", FPS - 1).astype(np.float32), scene("b", 0).astype(np.float32)
    frames += [((1 - k / FPS) * still + k / FPS * other).round().astype(np.uint8) for k in range(FPS)]
    frames += [scene("b", i) for i in range(FPS)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=FPS)  # lossless: the test sees the mixes it made
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        stream.time_base = Fraction(1, FPS)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_blend_rule() -> None:
    a, b = np.zeros((4, 4), np.float32), np.full((4, 4), 100, np.float32)
    sampling = FrameSampling()
    assert is_blend(a, (a + b) / 2, b, sampling)  # the middle of a mix
    assert not is_blend(a, b, b, sampling)  # a hard cut: the frame is one of the shots
    assert not is_blend(a, a + 1, a + 2, sampling)  # hardly any change: no verdict


def test_sampling_skips_holds_and_fades_and_is_cached(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mkv")
    sampling = FrameSampling(rate=4)  # every 3rd frame: 16 candidates
    frames = sample_frames(clip, sampling=sampling)
    assert frames.folder == tmp_path / ".cartoonize-frames" / "clip.mkv" and frames.decoded
    manifest = json.loads((frames.folder / "manifest.json").read_text())
    times = [f["time"] for f in manifest["frames"]]
    # motion: 4 kept; the hold: 1 kept, then 1.25 .. 2.0 s duplicates (the fade starts from the held
    # picture); the fade at 2.25, 2.5, 2.75 s: blends; then (b): 4 kept
    assert frames.duplicates == 4 and frames.blends == 3, (times, frames)
    assert times == pytest.approx([0, 0.25, 0.5, 0.75, 1.0, 3.0, 3.25, 3.5, 3.75])
    assert frames.kept == len(times) == len(list(frames.folder.glob("frame_*.jpg")))
    first = cv2.cvtColor(cv2.imread(str(frames.folder / "frame_000000.jpg")), cv2.COLOR_BGR2RGB)
    assert np.abs(first.astype(int) - scene("a", 0)).mean() < 3  # the frame itself (JPEG 95)

    again = sample_frames(clip, sampling=sampling)
    assert not again.decoded and again.kept == frames.kept
    coarser = sample_frames(clip, sampling=FrameSampling(rate=1))
    assert (
        coarser.decoded and coarser.kept == len(list(frames.folder.glob("frame_*.jpg"))) == 3
    )  # 0, 1, 3 s; 2 s holds 1 s


def test_train_from_two_generated_clips(tmp_path: Path) -> None:
    photos, cartoons = write_clip(tmp_path / "photos.mkv"), write_clip(tmp_path / "anime.mkv")
    out = tmp_path / "runs" / "x"
    args = ["--photos", str(photos), "--cartoons", str(cartoons), "--out", str(out), "--frame-rate", "4"]
    result = CliRunner().invoke(app, [*args, *tiny_args(init_decay_epochs=0, decay_epochs=0)])
    assert result.exit_code == 0, result.output
    assert "9 frames from" in " ".join(result.output.split())
    assert (out / "last.pt").exists()
    edges = tmp_path / ".cartoonize-frames" / "anime.mkv" / ".cartoonize-edges" / "40-stretch"
    assert len(list(edges.glob("*.png"))) == 2 * 9  # each frame at the training scale, and smoothed


def test_not_a_video(tmp_path: Path) -> None:
    fake = tmp_path / "clip.mp4"
    fake.write_text("not a video")
    code = CliRunner().invoke(
        app, ["--photos", str(fake), "--cartoons", str(fake), "--out", str(tmp_path / "r"), "--vgg", "random"]
    )  # (the VGG weights are checked first: offline, that error would come before this one)
    assert code.exit_code == 1 and "cannot open the video" in code.output and "Traceback" not in code.output


@pytest.mark.shared
def test_train_from_shared_clips(tmp_path: Path) -> None:
    media = shared_dir() / "media"
    photos, cartoons = media / "street_portrait.mp4", media / "big_buck_bunny_1s.webm"
    if not (photos.exists() and cartoons.exists()):
        pytest.skip(f"needs the shared clips in {media}")
    out = tmp_path / "runs" / "x"
    args = ["--photos", str(photos), "--cartoons", str(cartoons), "--out", str(out)]
    args += ["--frame-cache", str(tmp_path / "frames"), "--frame-rate", "4"]  # ../shared is read-only
    result = CliRunner().invoke(app, [*args, *tiny_args(init_decay_epochs=0, decay_epochs=0)])
    assert result.exit_code == 0, result.output
    for clip in (photos, cartoons):
        folder = tmp_path / "frames" / clip.name
        kept = sorted(folder.glob("frame_*.jpg"))
        assert len(kept) >= 2
        image = cv2.imread(str(kept[0]))
        if clip == photos:  # a portrait clip stays portrait
            assert image.shape[0] > image.shape[1]
    assert (out / "last.pt").exists()
