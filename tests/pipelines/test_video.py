"""`cartoonize video` on generated clips: frames, timestamps, audio, rotation, sizes, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.errors import CartoonizeError
from cartoonize.media.files import EncoderSettings
from cartoonize.pipelines.batch import SplitOptions, cartoonize_many
from cartoonize.pipelines.video import (
    VideoJob,
    VideoProbe,
    VideoReport,
    Window,
    _check_complete,
    _reason,
    cartoonize_video,
    damage_note,
    probe,
)
from cartoonize.pipelines.workers import InProcess
from cartoonize.stages import StageOptions
from tests.helpers import (
    STOPS,
    child_env,
    make_video,
    pattern,
    read_subtitles,
    read_video,
    set_display_rotation,
    stoppable,
    with_subtitles,
)

ROOT = Path(__file__).resolve().parents[2]  # the repository root (this file is in tests/pipelines/)


def run(src: Path, out: Path, checkpoint: Path, **job) -> None:
    request = EngineRequest(engine="torch", model=checkpoint, device="cpu")
    cartoonize_video(VideoJob(src, out, **job), lambda size: runner_for(request, size))


def seconds(pts: list[int], time_base: Fraction) -> np.ndarray:
    return np.array([float(p * time_base) for p in pts])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


def test_frames_timestamps_and_audio_kept(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    run(small_video, out, tiny_checkpoint)
    pts_in, frames_in, tb_in = read_video(small_video)
    pts_out, frames_out, tb_out = read_video(out)
    assert len(frames_out) == len(frames_in) == 24
    tick = max(float(tb_in), float(tb_out))
    assert np.abs(seconds(pts_out, tb_out) - seconds(pts_in, tb_in)).max() <= tick
    assert frames_out[0].shape == frames_in[0].shape
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.audio[0].frames > 0
    assert leftovers(tmp_path) == []


def test_variable_frame_rate_stays_variable(tiny_checkpoint: Path, tmp_path: Path) -> None:
    durations = [3000, 6000, 9000, 3000, 3000, 6000, 12000, 3000]
    src = make_video(tmp_path / "vfr.mp4", frames=len(durations), durations=durations, audio=None)
    out = tmp_path / "out.mkv"
    run(src, out, tiny_checkpoint)
    pts_in, _, tb_in = read_video(src)
    pts_out, _, tb_out = read_video(out)
    gaps = np.diff(seconds(pts_out, tb_out))
    assert len(pts_out) == len(durations)
    assert np.allclose(gaps, np.diff(seconds(pts_in, tb_in)), atol=float(tb_out))
    assert gaps.max() / gaps.min() == pytest.approx(4, rel=0.05)


def test_audio_reencoded_only_where_container_refuses(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.webm"  # webm cannot hold AAC: it becomes Opus
    request = EngineRequest(engine="torch", model=tiny_checkpoint)
    report = cartoonize_video(VideoJob(small_video, out), lambda size: runner_for(request, size))
    assert any("re-encoded to libopus" in note for note in report.streams)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
        audio = c.streams.audio[0]
        assert audio.codec_context.name == "opus"
        decoded = sum(f.samples for f in c.decode(audio))
    assert decoded == pytest.approx(48000 * 2, rel=0.05)  # 2 s of sound survived


CUES = [(0.0, 0.4, "hello"), (0.5, 1.25, "a second line")]


def test_subtitles_copied_with_their_timing(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = with_subtitles(small_video, CUES, tmp_path / "subbed.mkv")
    cues = read_subtitles(src)  # Matroska shifts every track by the AAC priming delay (~21 ms)
    assert [text for *_, text in cues] == [text for *_, text in CUES]
    assert [b - a for a, b, _ in cues] == pytest.approx([b - a for a, b, _ in CUES])
    out = tmp_path / "out.mkv"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size))
    assert any(note.startswith("subtitle #2 subrip: copied") for note in report.streams), report.streams
    assert read_subtitles(out) == cues
    pts_in, _, tb_in = read_video(src)
    pts_out, _, tb_out = read_video(out)  # and the picture did not move against them
    assert abs(pts_in[0] * tb_in - pts_out[0] * tb_out) <= max(tb_in, tb_out)
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio", "subtitle"]


def spoken(path: Path) -> list[tuple[float, float, str]]:
    """(start s, end s, text) of each cue of the first subtitle track, decoded as a player does
    (an MP4 track's empty samples between cues left out)."""
    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        tb = stream.time_base
        return [(float(p.pts * tb), float((p.pts + p.duration) * tb), cue.dialogue.decode())
                for p in c.demux(stream) if p.size for cue in p.decode()]  # fmt: skip


@pytest.mark.parametrize(
    ("suffix", "codec"), [(".mp4", "mov_text"), (".mov", "mov_text"), (".webm", "webvtt")]
)
def test_text_subtitles_converted_where_the_container_needs_its_own(
    suffix: str, codec: str, small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """SubRip from a .mkv into .mp4/.mov (mov_text) or .webm (WebVTT): every cue's text and time."""
    src = with_subtitles(small_video, CUES, tmp_path / "subbed.mkv")
    out = tmp_path / f"out{suffix}"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size))
    container = {".mp4": "mp4", ".mov": "mov", ".webm": "webm"}[suffix]
    assert f"subtitle #2 subrip: converted to {codec} ({container} cannot store subrip)" in report.streams
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio", "subtitle"]
        assert c.streams.subtitles[0].codec_context.name == codec
    got, expected = spoken(out), spoken(src)  # the source's cues as a player reads them
    assert [text for *_, text in got] == [text for *_, text in CUES]
    times = [t for a, b, _ in got for t in (a, b)]
    assert times == pytest.approx([t for a, b, _ in expected for t in (a, b)], abs=0.002)


def test_subtitles_dropped_with_a_note_where_the_container_refuses(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    src = with_subtitles(small_video, CUES, tmp_path / "subbed.mkv")
    out = tmp_path / "out.avi"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_video(VideoJob(src, out), lambda size: runner_for(request, size))
    assert "subtitle #2 subrip: dropped (avi cannot store it; use .mkv)" in report.streams
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_phone_video_comes_out_upright(degrees: int, tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_video(tmp_path / "phone.mp4", width=64, height=48, frames=4, audio=None)
    set_display_rotation(src, degrees)
    out = tmp_path / "out.mp4"
    request = EngineRequest(engine="torch", model=tiny_checkpoint)

    seen = []

    class Spy:  # records what the engine was given, then runs the real runner
        def __init__(self, runner):
            self.runner = runner

        def __enter__(self):
            self.runner.__enter__()
            return self

        def __exit__(self, *exc):
            self.runner.__exit__(*exc)

        def submit(self, frames):
            seen.append(frames[0])
            return self.runner.submit(frames)

        def describe(self):
            return self.runner.describe()

    cartoonize_video(VideoJob(src, out), lambda size: Spy(runner_for(request, size)))
    upright = np.rot90(pattern(64, 48, 0), degrees // 90)
    assert seen[0].shape == upright.shape
    assert np.abs(seen[0].astype(int) - upright.astype(int)).mean() < 12  # only codec noise
    _, frames_out, _ = read_video(out)
    assert frames_out[0].shape[:2] == upright.shape[:2]
    with av.open(str(out)) as c:
        assert next(c.decode(video=0)).rotation == 0  # the pixels are upright, no matrix needed


def test_odd_size_is_padded_not_stretched(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_video(
        tmp_path / "odd.mkv", width=63, height=47, frames=3, audio=None, codec="ffv1", pix_fmt="yuv444p"
    )
    out = tmp_path / "out.mp4"
    run(src, out, tiny_checkpoint)
    _, frames, _ = read_video(out)
    assert frames[0].shape == (48, 64, 3)
    assert len(frames) == 3


@pytest.mark.parametrize(("width", "height"), [(1, 1), (7, 1), (3, 5), (2, 30)])
def test_tiny_and_thin_frames_run_with_the_default_stages(
    width: int, height: int, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Any width and height: a side under 8 is reflect/edge-padded to 8 for the network (whose
    innermost 2x2 is the least its norms and padding take) and the flow runs on a stretched copy
    (DIS refuses images under about 12 px); out come the frames at their size, evened for 4:2:0."""
    src = make_video(tmp_path / "tiny.mkv", width=width, height=height, frames=4, audio=None, codec="ffv1",
                     pix_fmt="yuv444p")  # fmt: skip
    out = tmp_path / "out.mp4"
    run(src, out, tiny_checkpoint)  # the default stages: stabilization (the flow), exposure, bars
    _, frames, _ = read_video(out)
    assert len(frames) == 4 and frames[0].shape == (height + height % 2, width + width % 2, 3)


def test_max_side_downscales_keeping_aspect(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_video(tmp_path / "wide.mp4", width=320, height=180, frames=3, audio=None)
    out = tmp_path / "out.mp4"
    run(src, out, tiny_checkpoint, max_side=160)
    _, frames, _ = read_video(out)
    assert frames[0].shape == (90, 160, 3)


def test_batches_keep_order(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    one, five = tmp_path / "b1.mp4", tmp_path / "b5.mp4"
    settings = EncoderSettings(crf=0, preset="ultrafast")  # lossless in YUV: the planes are what was encoded
    raw = StageOptions(raw=True)  # the network's frames: the stages would amplify batched-conv rounding
    run(small_video, one, tiny_checkpoint, batch=1, encoder=settings, stages=raw)
    run(
        small_video, five, tiny_checkpoint, batch=5, encoder=settings, stages=raw
    )  # 24 frames: last batch short

    def planes(path: Path) -> list[np.ndarray]:
        with av.open(str(path)) as container:
            return [frame.to_ndarray().astype(int) for frame in container.decode(video=0)]

    a, b = planes(one), planes(five)
    assert len(a) == len(b) == 24
    # Each frame is nearest its own counterpart, and a batched conv's rounding flips the network's
    # uint8 output by at most 1 per channel: |ΔY|, |ΔCb|, |ΔCr| ≤ 0.88 of that, so at most 1 level.
    # (Read back as RGB, 1 level in Y and Cb together shows as 3 in blue.)
    nearest = [int(np.argmin([np.abs(x - y).mean() for y in a])) for x in b]
    assert nearest == list(range(24))
    assert max(np.abs(x - y).max() for x, y in zip(a, b, strict=True)) <= 1


def test_next_batch_starts_before_the_last_is_collected(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The pipeline keeps one batch in flight (what lets a GPU run while the host prepares the
    next): a runner that only computes when collected sees submit, submit, collect, ... and the
    video is the same as with a runner that computes at once."""
    from cartoonize.model import load_checkpoint
    from cartoonize.runners.torch import TorchRunner

    class Deferred(TorchRunner):
        def __init__(self) -> None:
            super().__init__(load_checkpoint(tiny_checkpoint), "cpu")
            self.log: list[str] = []

        def start(self, frames: np.ndarray):  # noqa: ANN202
            index = sum(entry.startswith("submit") for entry in self.log)
            self.log.append(f"submit {index}")

            def collect() -> np.ndarray:
                self.log.append(f"collect {index}")
                return TorchRunner.start(self, frames)()  # the computation happens only now

            return collect

    settings = EncoderSettings(crf=0, preset="ultrafast")
    deferred = Deferred()
    cartoonize_video(VideoJob(small_video, tmp_path / "d.mp4", batch=5, encoder=settings), lambda _: deferred)
    run(small_video, tmp_path / "s.mp4", tiny_checkpoint, batch=5, encoder=settings)
    expected = (
        ["submit 0"] + [e for i in range(1, 5) for e in (f"submit {i}", f"collect {i - 1}")] + ["collect 4"]
    )
    assert deferred.log == expected  # 24 frames in batches of 5: five batches
    pts_d, a, _ = read_video(tmp_path / "d.mp4")
    pts_s, b, _ = read_video(tmp_path / "s.mp4")
    assert pts_d == pts_s and len(a) == 24
    assert max(np.abs(x.astype(int) - y.astype(int)).max() for x, y in zip(a, b, strict=True)) <= 2


# --- bad input: one line, non-zero exit, nothing left behind -------------------------------------


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = child_env(PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "cartoonize", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:"), result.stderr
    assert needle in " ".join(lines), result.stderr


def test_missing_input(tmp_path: Path, tiny_checkpoint: Path) -> None:
    result = cli("video", "nope.mp4", "out.mp4", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_not_a_video(tmp_path: Path, tiny_checkpoint: Path) -> None:
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 50)
    result = cli("video", "notes.mp4", "out.mp4", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, "not a readable video")
    assert result.stderr.splitlines() == [  # stderr is a pipe here: no progress bar, no empty line
        "error: notes.mp4 is not a readable video (Invalid data found when processing input)"
    ]
    assert not (tmp_path / "out.mp4").exists()


def test_a_video_stream_without_a_picture_size_is_refused(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A header that lost the picture's size (Matroska PixelWidth and PixelHeight of 0; FFmpeg
    opens it, and its decoder would fail later): a one-line error that names the cause. (With one
    of the two at 0, FFmpeg refuses the file itself: "not a readable video".)"""
    src = make_video(tmp_path / "in.mkv", frames=4, audio=None, codec="ffv1")
    data = bytearray(src.read_bytes())
    video = data.index(b"\xe0")  # the track's Video element, then PixelWidth (0xB0) and PixelHeight (0xBA)
    for element, size in ((b"\xb0\x81", 64), (b"\xba\x81", 48)):
        at = data.index(element, video)
        assert data[at + 2] == size
        data[at + 2] = 0
    (tmp_path / "broken.mkv").write_bytes(bytes(data))
    with pytest.raises(CartoonizeError, match=r"broken.mkv: the video stream has no picture size \(corrupt"):
        probe(tmp_path / "broken.mkv", None)
    result = cli("video", "broken.mkv", "out.mp4", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, "broken.mkv: the video stream has no picture size")
    assert not (tmp_path / "out.mp4").exists()


def test_audio_only_file_has_no_video(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from tests.helpers import _write_sine

    with av.open(str(tmp_path / "sound.m4a"), "w") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "stereo"
        _write_sine(out, stream, 0.5)
    result = cli("video", "sound.m4a", "out.mp4", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, "no video stream")
    with pytest.raises(CartoonizeError, match=r"sound\.m4a has no video stream$"):
        probe(tmp_path / "sound.m4a", None)  # the same, in process


def test_output_is_input(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = tmp_path / "clip.mp4"
    src.write_bytes(small_video.read_bytes())
    before = src.read_bytes()
    result = cli("video", "clip.mp4", "./clip.mp4", "-y", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, "is the input")
    assert src.read_bytes() == before


def test_existing_output_needs_overwrite(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "out.mp4").write_bytes(b"keep me")
    result = cli("video", str(small_video), "out.mp4", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, "--overwrite")
    assert (tmp_path / "out.mp4").read_bytes() == b"keep me"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", ["video", "export"])
def test_a_folder_nothing_can_be_created_in(command: str, small_video: Path, tiny_checkpoint: Path,
                                            tmp_path: Path) -> None:  # fmt: skip
    """/proc is writable by os.access's answer (and every folder is, to root), yet no file can be
    made there: tried before any work (it was a traceback once the model had run)."""
    args = [str(small_video), "/proc/out.mp4"] if command == "video" else ["-o", "/proc/out.onnx"]
    result = cli(command, *args, "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, "output folder /proc is not writable")


def test_unwritable_folder_is_refused(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    from cartoonize.media.files import check_output

    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):  # root: the OS lets us write; /proc takes no new file from anyone
            # (a missing folder is made, as `image` and `export` make it: tests/test_first_hour.py)
            result = cli(
                "video",
                str(small_video),
                "/proc/missing/out.mp4",
                "--model",
                str(tiny_checkpoint),
                cwd=tmp_path,
            )
            assert_one_line_error(result, "not writable")
        else:
            with pytest.raises(CartoonizeError, match="not writable"):
                check_output(locked / "out.mp4", overwrite=False)
    finally:
        os.chmod(locked, 0o700)


def test_unsupported_output_type(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    result = cli("video", str(small_video), "out.xyz", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, "unsupported output type")


@pytest.mark.parametrize(("output", "codec", "needle"), [
    ("out.webm", "libx264", "--codec libx264 cannot go in a .webm file (FFmpeg's webm muxer refuses it); write .mp4"),
    ("out.gif", "h264", "--codec h264 cannot go in a .gif file"),
    ("out.mp4", "gif", "--codec gif cannot go in a .mp4 file"),
    ("out.mp4", "nosuch", "--codec nosuch: this FFmpeg build has no such encoder (try h264, hevc"),
])  # fmt: skip
def test_a_codec_the_container_cannot_hold(output: str, codec: str, needle: str, small_video: Path,
                                            tiny_checkpoint: Path, tmp_path: Path) -> None:  # fmt: skip
    result = cli(
        "video", str(small_video), output, "--model", str(tiny_checkpoint), "--codec", codec, cwd=tmp_path
    )
    assert_one_line_error(result, needle)
    assert list(tmp_path.iterdir()) == []


def test_a_mistyped_preset(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Refused by the command line with the presets there are (it was a PyAV traceback from
    x264 once the model had loaded)."""
    result = cli("video", str(small_video), "out.mp4", "--model", str(tiny_checkpoint), "--preset", "ultrafastt",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'ultrafastt' is not one of" in result.stderr and "'veryslow'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_truncated_input(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_video(tmp_path / "long.mkv", width=64, height=48, frames=60, rate=12, audio=None)
    data = src.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 3])
    result = cli("video", "cut.mkv", "out.mp4", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, "truncated")
    assert not (tmp_path / "out.mp4").exists()
    assert leftovers(tmp_path) == []


def test_truncated_mp4_without_index(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    data = small_video.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end
    result = cli("video", "cut.mp4", "out.mp4", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, str(Path("cut.mp4")))
    assert not (tmp_path / "out.mp4").exists()


def test_corrupt_input(tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = make_video(tmp_path / "clip.mkv", width=64, height=48, frames=24, audio=None)
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(0)
    start = len(data) // 5
    data[start:] = rng.integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    (tmp_path / "bad.mkv").write_bytes(bytes(data))
    result = cli("video", "bad.mkv", "out.mp4", "--model", str(tiny_checkpoint), cwd=tmp_path)
    assert_one_line_error(result, "bad.mkv")
    assert not (tmp_path / "out.mp4").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("sent", "code"), STOPS)
def test_interrupt_leaves_nothing(
    sent: signal.Signals, code: int, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Ctrl-C, or a `kill` (SIGTERM: a job scheduler, a container stopping), in the middle of a
    video: the conventional exit code, no traceback, and no file left, hidden partial included."""
    src = make_video(tmp_path / "long.mp4", width=320, height=240, frames=400, rate=25, audio="aac")
    env = child_env(PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(stoppable([sys.executable, "-m", "cartoonize", "video", str(src), "out.mp4", "--model",
                                       str(tiny_checkpoint), "--engine", "torch"]), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not any("partial" in p.name for p in tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(sent)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "out.mp4").exists()
    assert leftovers(tmp_path) == []


def test_ctrl_c_pressed_again_while_stopping(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Ctrl-C every 20 ms until the job has ended, as a user presses it when a job does not stop at
    once: the presses after the first broke the clean-up or the interpreter's shutdown (a
    KeyboardInterrupt traceback from torch's atexit hook, exit -2). Now: exit 130, no traceback,
    no file left."""
    src = make_video(tmp_path / "long.mp4", width=320, height=240, frames=400, rate=25, audio="aac")
    proc = subprocess.Popen(stoppable([sys.executable, "-m", "cartoonize", "video", str(src), "out.mp4", "--model",
                                       str(tiny_checkpoint), "--engine", "torch"]), cwd=tmp_path,
                            env=child_env(PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not any("partial" in p.name for p in tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    while proc.poll() is None:  # again and again until it has ended, as an impatient user does
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr, (proc.returncode, stderr[-2000:])
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def _with_file_size_limit(limit: int, module: str) -> list[str]:
    """`python -m module` with no file larger than `limit` bytes (writes past it fail with EFBIG, as
    they would on a full disk with ENOSPC, instead of the signal that kills). Set in the child
    itself, not by a `preexec_fn` (which forks this many-threaded process)."""
    start = (f"import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
             f"sys.argv[0] = {module!r}; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")  # fmt: skip
    return [sys.executable, "-c", start]


def test_a_full_disk_is_one_line_and_leaves_nothing(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """An output that cannot be written to the end (a full disk, a quota, here a file-size
    limit) stops the job with one line naming the output, exit 1, and no partial file."""
    src = make_video(tmp_path / "clip.mp4", width=160, height=120, frames=48, audio="aac")
    proc = subprocess.run([*_with_file_size_limit(4096, "cartoonize"), "video", str(src), "out.mp4", "--model",
                           str(tiny_checkpoint), "--engine", "torch"], cwd=tmp_path,
                          env=child_env(PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1"),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error: cannot write out.mp4 (File too large)" in proc.stderr, proc.stderr
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def _damaged_copy(tmp_path: Path, index: int) -> tuple[Path, Path, int]:
    """A 24-frame H.264 clip (keyframes every 8) and a copy with its video packet `index` damaged:
    (clip, copy, that packet's pts)."""
    src = make_video(tmp_path / "clip.mp4", width=64, height=48, frames=24, audio="aac", gop=8)
    with av.open(str(src)) as container:
        packets = [(p.pos, p.pts) for p in container.demux(container.streams.video[0]) if p.size]
    data = bytearray(src.read_bytes())
    pos, lost_pts = packets[index]
    data[pos : pos + 4] = b"\xff\xff\xff\xff"  # its first NAL unit's length: past the packet's end
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    return src, tmp_path / "damaged.mp4", lost_pts


def test_a_damaged_packet_is_skipped_not_fatal(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """One damaged video packet (a bad sector, a glitch in a recording): its frame is lost, every
    other frame comes out at its own timestamp, and the report counts it, as a player would go on."""
    src, _, lost_pts = _damaged_copy(tmp_path, 12)
    out = tmp_path / "out.mp4"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_video(VideoJob(tmp_path / "damaged.mp4", out), lambda size: runner_for(request, size))
    assert report.damaged == 1 and report.frames == 23
    assert damage_note(report.damaged).startswith("skipped 1 damaged video packet of the input")
    source_pts, _, source_base = read_video(src)
    pts, frames, base = read_video(out)
    kept = [p for p in source_pts if p != lost_pts]
    assert len(frames) == 23 and np.allclose(seconds(pts, base), seconds(kept, source_base), atol=1e-3)
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1  # the audio is kept


def test_a_damaged_packet_in_a_segment_joins(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """--segments: the segment with the damaged packet is a frame short, and the join allows
    exactly that (it checks the frame count against the source's)."""
    _, damaged, _ = _damaged_copy(tmp_path, 10)
    out = tmp_path / "joined.mp4"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    report = cartoonize_many([(damaged, out)], VideoJob(damaged, out), request, InProcess(), SplitOptions(3))
    (result,) = report.results
    assert result.status == "done", result.message
    assert "skipped 1 damaged video packet" in result.message and len(read_video(out)[1]) == 23
    assert result.frames == 23  # the summary counts what the engine saw, as a single pass does


def test_max_frames_stops_early(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "preview.mp4"
    run(small_video, out, tiny_checkpoint, max_frames=5)
    pts, frames, _ = read_video(out)
    assert len(frames) == 5 and pts == sorted(pts)


@pytest.mark.gpu
def test_video_on_cuda_fp16(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cuda", precision="fp16")
    report = cartoonize_video(VideoJob(small_video, out, batch=4), lambda size: runner_for(request, size))
    assert report.frames == 24 and "cuda" in report.engine
    assert len(read_video(out)[1]) == 24


@pytest.mark.parametrize(("suffix", "segments"), [(".mp4", 1), (".mkv", 1), (".webm", 1), (".mkv", 3)])
def test_an_empty_audio_track_is_left_out(
    suffix: str, segments: int, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """An audio stream declared with no packets is not declared in the output: copied, it made an
    .mkv or .webm with an empty sound track (the MP4 muxer leaves an empty track out itself)."""
    from tests.pipelines.conftest import cartoonize_in

    clip = make_video(tmp_path / "clip.mp4", frames=24, rate=12, audio="aac", gop=6)
    src = tmp_path / "empty_audio.mkv"
    with av.open(str(clip)) as inp, av.open(str(src), "w") as out:
        video = out.add_stream_from_template(inp.streams.video[0])
        out.add_stream_from_template(inp.streams.audio[0])  # declared, never given a packet
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.stream = video
                out.mux(packet)
    output = tmp_path / f"out{suffix}"
    if segments == 1:
        request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
        report = cartoonize_video(VideoJob(src, output), lambda size: runner_for(request, size))
        assert report.streams == ["audio #1 aac: left out (no packets in the input)"]
        assert report.frames == 24
    else:
        cartoonize_in(src, output, tiny_checkpoint, segments)
    with av.open(str(output)) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_infer_side_runs_small_and_writes_full_size(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from cartoonize.stages import StageOptions

    sizes: list[tuple[int, int]] = []
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")

    def make_runner(size: tuple[int, int]):  # noqa: ANN202
        sizes.append(size)
        runner = runner_for(request, size)
        submit = runner.submit
        runner.submit = lambda frames: (fed.add(frames.shape[1:3]), submit(frames))[1]  # type: ignore[method-assign]
        return runner

    fed: set[tuple[int, ...]] = set()
    out = tmp_path / "out.mp4"
    job = VideoJob(small_video, out, stages=StageOptions(infer_side=32))
    report = cartoonize_video(job, make_runner)
    assert sizes == [(24, 32)] and fed == {(24, 32)}  # the network saw 32×24 frames of the 64×48 clip
    assert report.stages.startswith("guided upsampling")  # first, before exposure and stabilization
    _, frames, _ = read_video(out)
    assert len(frames) == 24 and frames[0].shape == (48, 64, 3)


def test_raw_turns_every_stage_off(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    from cartoonize.media.files import EncoderSettings
    from cartoonize.stages import StageOptions

    outs = {}
    # x264 at q 0: what reached the encoder is compared. At CRF 20 its threaded output is not
    # bit-reproducible from run to run (this test then failed about 1 run in 10 before this change)
    lossless = EncoderSettings(crf=0)
    for name, stages in [
        ("raw", StageOptions(raw=True)),
        ("each_off", StageOptions(exposure=False, stabilize=False)),
        ("default", StageOptions()),
    ]:
        outs[name] = tmp_path / f"{name}.mp4"
        run(small_video, outs[name], tiny_checkpoint, stages=stages, max_frames=8, encoder=lossless)
    raw, each_off, default = (
        np.stack(read_video(outs[n])[1]).astype(np.int16) for n in ("raw", "each_off", "default")
    )
    assert len(raw) == len(default) == 8
    # the same frames (a level allowed where two runs' floats land either side of .5)
    assert np.abs(raw - each_off).mean() < 0.05 and np.abs(raw - each_off).max() <= 2
    assert np.abs(raw - default).mean() > 2  # the stages ran


def test_cli_raw_and_no_stabilize_are_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cartoonize", "video", "--help"], capture_output=True, text=True, timeout=120,
        env=child_env(COLUMNS="200"),
    )  # fmt: skip
    assert "--raw" in done.stdout and "--no-stabilize" in done.stdout


def test_a_window_is_half_open_with_open_ends() -> None:
    w = Window(seek=0, preroll=10, start=20, end=30)
    assert [w.skips(p) for p in (9, 10, 25)] == [True, False, False]  # before the preroll only
    assert [w.keeps(p) for p in (10, 19, 20, 29, 30)] == [False, False, True, True, False]  # [start, end)
    assert [w.ended(p) for p in (29, 30, 31)] == [False, True, True]
    everything = Window()
    assert not everything.skips(-5) and everything.keeps(-5) and not everything.ended(10**12)
    assert Window(end=5).keeps(0) and not Window(start=5).keeps(4)


def test_a_window_encodes_its_frames_only(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """One segment (pipelines.segments): frames before the preroll are skipped, the preroll goes
    through the engine but is not written, [start, end) is written, and only the video: the join
    carries the other streams once."""
    pts_in, frames_in, _ = read_video(small_video)
    whole, part = tmp_path / "whole.mp4", tmp_path / "part.mp4"
    run(small_video, whole, tiny_checkpoint, stages=StageOptions(raw=True))
    window = Window(seek=pts_in[0], preroll=pts_in[3], start=pts_in[5], end=pts_in[11])
    seen: list[int] = []

    def counting(size: tuple[int, int]):  # noqa: ANN202
        runner = runner_for(EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu"), size)
        submit = runner.submit
        runner.submit = lambda frames: (seen.append(len(frames)), submit(frames))[1]  # type: ignore[method-assign]
        return runner

    cartoonize_video(VideoJob(small_video, part, stages=StageOptions(raw=True), window=window), counting)
    _, frames_part, _ = read_video(part)
    _, frames_whole, _ = read_video(whole)
    assert sum(seen) == 11 - 3  # the preroll (3, 4) and the window (5..10) went through the engine
    assert len(frames_part) == 6
    for k, got in enumerate(frames_part):  # the same frames as the whole run's 5..10 (encoded apart)
        distance = [np.abs(got.astype(int) - w.astype(int)).mean() for w in frames_whole]
        assert int(np.argmin(distance)) == 5 + k
    with av.open(str(part)) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_report_rates_never_divide_by_zero() -> None:
    report = VideoReport(frames=48, width=64, height=48, seconds=4.0, engine_seconds=3.0, engine="torch",
                         video_codec="h264", stages="none", streams=[])  # fmt: skip
    assert report.fps == 12.0 and report.engine_share == 0.75
    assert replace(report, engine_seconds=5.0).engine_share == 1.0  # overlap can count an engine second twice
    assert replace(report, seconds=0.0).fps == 0.0 and replace(report, seconds=0.0).engine_share == 0.0


def test_reasons_are_one_line() -> None:
    assert _reason(PermissionError(13, "Permission denied")) == "Permission denied"  # the OS's words
    assert _reason(ValueError("first line\nsecond line")) == "first line"
    assert _reason(ValueError()) == "ValueError"


def test_a_short_decode_against_the_declared_duration_is_a_truncation(tmp_path: Path) -> None:
    """`_check_complete`'s rule: the video must reach 90 % of the declared duration, less half a
    second; clips under a second and files that declare nothing are not judged."""

    def check(duration: float | None, decoded_ms: int | None) -> None:
        info = VideoProbe(width=64, height=48, rotation=0, coded_size=(64, 48), frames_estimate=None,
                          duration=None, rate=None, time_base=Fraction(1, 1000), declared=duration)  # fmt: skip
        _check_complete(tmp_path / "in.mp4", info, decoded_ms)

    with pytest.raises(
        CartoonizeError, match=r"in\.mp4 is truncated: it declares 10\.0 s of video but it stops at 8\.0 s"
    ):
        check(10.0, 8000)
    check(10.0, 8500)  # exactly 0.9 * 10 - 0.5: complete
    with pytest.raises(CartoonizeError, match="truncated"):
        check(10.0, 8499)
    with pytest.raises(CartoonizeError, match="truncated"):
        check(1.0, 0)  # a one-second clip is judged
    check(0.9, 0)  # a shorter one is not
    check(None, 0)  # nothing declared
    check(10.0, None)  # no frame had a timestamp


def test_inputs_that_are_not_there_are_named(tmp_path: Path) -> None:
    with pytest.raises(CartoonizeError, match=r"^input .*absent\.mp4 does not exist$"):
        probe(tmp_path / "absent.mp4", None)
    with pytest.raises(CartoonizeError, match=r"^input .* is a folder; give a video file$"):
        probe(tmp_path, None)
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(
        CartoonizeError,
        match=r"notes\.txt is not a readable video \(Invalid data found when processing input\)$",
    ):
        probe(tmp_path / "notes.txt", None)


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_probe_reads_size_rate_duration_and_frame_count(suffix: str, tmp_path: Path) -> None:
    """mp4 declares the video stream's duration and frame count; WebM (Matroska) only the
    container's duration, so the count is estimated from duration and rate (the progress bar's total)."""
    clip = make_video(tmp_path / f"clip{suffix}", width=64, height=48, frames=24, rate=12, audio=None)
    info = probe(clip, None)
    assert (info.width, info.height, info.rotation, info.coded_size) == (64, 48, 0, (64, 48))
    assert info.rate == 12 and info.frames_estimate == 24
    assert info.duration == pytest.approx(2.0, abs=0.09)
    small = probe(clip, 32)  # --max-side scales the frame the engine sees, not what is decoded
    assert (small.width, small.height, small.source_size) == (32, 24, (64, 48))


def test_probe_of_a_stream_that_declares_no_duration(tmp_path: Path) -> None:
    # a raw H.264 elementary stream carries neither a duration nor a frame count: both unknown
    # (the progress bar runs without a total, and no truncation is judged), not zero or empty
    clip = make_video(tmp_path / "clip.h264", audio=None, codec="libx264")
    info = probe(clip, None)
    assert info.duration is None and info.frames_estimate is None
    assert (info.width, info.height) == (64, 48)


def _cut(src: Path, out: Path, keep: float) -> Path:
    data = src.read_bytes()
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def _scrambled(src: Path, out: Path) -> Path:
    """A tenth of the file, from 30 % on, replaced with noise: the header and the first frames
    are intact, so the file opens and the damage is met while decoding (in the decode thread)."""
    data = bytearray(src.read_bytes())
    start, end = int(len(data) * 0.3), int(len(data) * 0.4)
    data[start:end] = np.random.default_rng(0).integers(0, 256, end - start, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("damage", ["cut mkv", "cut mp4", "scrambled"])
def test_damaged_inputs_fail_in_process_and_leave_nothing(
    damage: str, small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The CLI tests above, in process: a failure in the decoding thread reaches the caller as a
    CartoonizeError naming the input, and the other threads stop (the call returns)."""
    if damage == "cut mkv":
        long = make_video(tmp_path / "long.mkv", width=64, height=48, frames=60, rate=12, audio=None)
        bad, needle = _cut(long, tmp_path / "cut.mkv", 1 / 3), r"cut\.mkv is truncated"
    elif damage == "cut mp4":
        bad, needle = _cut(small_video, tmp_path / "cut.mp4", 1 / 2), r"cut\.mp4"
    else:
        clip = make_video(tmp_path / "clip.mkv", width=64, height=48, frames=48, audio=None)
        bad, needle = (
            _scrambled(clip, tmp_path / "bad.mkv"),
            # FFmpeg's frame threads either report the damaged packets (each skipped, and then no
            # frame is left) or drop them and end early, depending on their timing (the second
            # seen once in a loaded CI run); a damaged demuxer stops the file: each is said
            r"bad\.mkv is (corrupt or truncated \((Invalid data found when processing input|no video frame "
            r"could be decoded; \d+ damaged packets)\)$|truncated: it declares)",
        )
    with pytest.raises(CartoonizeError, match=needle):
        run(bad, tmp_path / "out.mp4", tiny_checkpoint)
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_a_pipe_gives_up_when_the_pipeline_stops() -> None:
    """put on a full pipe and get on an empty one wait in short steps, and raise _Stop once the
    pipeline is stopping, instead of blocking forever."""
    import threading

    from cartoonize.pipelines.video import _Pipe, _Stop

    stop = threading.Event()
    pipe = _Pipe(1, stop)
    pipe.put("first")
    assert pipe.get() == "first"
    pipe.put("fills it")
    outcomes: list[str] = []

    def blocked(call: Callable[[], object]) -> threading.Thread:
        def attempt() -> None:
            try:
                call()
                outcomes.append("returned")
            except _Stop:
                outcomes.append("stopped")

        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        return thread

    putting = blocked(lambda: pipe.put("no room"))
    getting = blocked(_Pipe(1, stop).get)
    time.sleep(0.3)
    assert outcomes == []  # both wait while the pipeline runs
    stop.set()
    putting.join(5)
    getting.join(5)
    assert outcomes == ["stopped", "stopped"]


def test_workers_are_named_daemons() -> None:
    # daemon: an interrupted main thread is never kept waiting by a decode or mux thread
    import threading

    from cartoonize.pipelines.video import _Worker

    worker = _Worker("decode", lambda: None, threading.Event())
    assert (worker.name, worker.daemon) == ("decode", True)


def test_progress_counts_to_the_expected_total(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    calls: list[tuple[int, int | None]] = []

    def go(src: Path, **job) -> None:  # noqa: ANN003
        calls.clear()
        out = tmp_path / "out.mp4"
        cartoonize_video(VideoJob(src, out, overwrite=True, **job), lambda s: runner_for(request, s),
                         on_progress=lambda done, total: calls.append((done, total)))  # fmt: skip

    go(small_video, batch=5)
    assert calls[-1] == (24, 24) and [d for d, _ in calls] == [5, 10, 15, 20, 24]
    go(small_video, max_frames=7)
    assert calls[-1] == (7, 7)  # a preview's total is its length
    unknown = make_video(tmp_path / "clip.h264", audio=None, codec="libx264")  # declares no count
    go(unknown)
    assert calls[-1] == (24, None)
    go(unknown, max_frames=7)
    assert calls[-1] == (7, 7)


def test_outputs_are_checked_in_process(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The CLI tests above, in process: an existing output needs overwrite, the input is never the
    output, and an mp4 is written web-ready (the index before the media)."""
    from tests.pipelines.test_web_ready import moov_first

    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(CartoonizeError, match=r"out\.mp4 exists; pass --overwrite to replace it$"):
        run(small_video, out, tiny_checkpoint)
    assert out.read_bytes() == b"keep me"
    run(small_video, out, tiny_checkpoint, overwrite=True)
    assert moov_first(out)
    with pytest.raises(CartoonizeError, match="is the input"):
        run(small_video, small_video, tiny_checkpoint, overwrite=True)


def test_a_stream_without_timestamps_gets_them_from_its_rate(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A raw H.264 stream's frames carry no timestamps; the cartoon's frames are one period apart
    at the stream's own rate (12 fps, from its timing information; not the raw demuxer's 25 fps
    default, tests/pipelines/test_durations.py), not one tick of its 1/1200000 time base apart
    (which played 24 frames in 40 ms)."""
    clip = make_video(tmp_path / "clip.h264", frames=24, audio=None, codec="libx264")
    with av.open(str(clip)) as c:
        assert all(f.pts is None for f in c.decode(video=0))  # the case this is about
    out = tmp_path / "out.mp4"
    run(clip, out, tiny_checkpoint)
    pts, frames, time_base = read_video(out)
    assert len(frames) == 24
    assert np.allclose(np.diff(seconds(pts, time_base)), 1 / 12) and pts[0] == 0


def test_frame_period() -> None:
    from cartoonize.pipelines.video import frame_period

    def info(rate: Fraction | None, time_base: Fraction) -> VideoProbe:
        return VideoProbe(width=2, height=2, rotation=0, coded_size=(2, 2), frames_estimate=None,
                          duration=None, rate=rate, time_base=time_base)  # fmt: skip

    assert frame_period(info(Fraction(25), Fraction(1, 1200000))) == 48000
    assert frame_period(info(Fraction(30000, 1001), Fraction(1, 90000))) == 3003
    assert frame_period(info(Fraction(12), Fraction(1, 12))) == 1
    assert frame_period(info(Fraction(120), Fraction(1, 12))) == 1  # never zero
    assert frame_period(info(None, Fraction(1, 90000))) == 1


def test_an_sd_source_tagged_bt709_keeps_its_tags(tmp_path: Path) -> None:
    """The source's own tags win over the size-based default (an SD frame size would default to
    BT.601): the output is encoded and tagged BT.709 like its source (tests/pipelines/test_colour)."""
    from tests.pipelines.test_colour import Identity, make_source, read_back

    source, output = tmp_path / "bars.mp4", tmp_path / "out.mp4"
    make_source(source, 128, 64, bt709=True)
    cartoonize_video(VideoJob(source, output), lambda _size: Identity())
    tags, _ = read_back(output)
    assert tags == {"matrix": 1, "primaries": 1, "trc": 1, "range": 1}


def test_a_preview_stops_the_audio_with_the_video(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "preview.mp4"
    run(small_video, out, tiny_checkpoint, max_frames=7)  # 7 of 24 frames at 12 fps
    with av.open(str(out)) as c:
        audio_end = max(
            float((p.pts + p.duration) * p.time_base) for p in c.demux(audio=0) if p.pts is not None
        )
    assert 7 / 12 - 0.1 <= audio_end <= 7 / 12 + 0.1  # not the source's whole 2 s


@pytest.mark.parametrize("frames", [1, 22, 23])
def test_a_preview_has_exactly_the_frames_asked(
    frames: int, small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    # near the end the decoder's delayed frames come out of its flush, several at once
    out = tmp_path / "preview.mp4"
    run(small_video, out, tiny_checkpoint, max_frames=frames)
    assert len(read_video(out)[1]) == frames


def test_max_side_scales_the_picture_not_crops_it(tmp_path: Path) -> None:
    """With --max-side the decoded frame is scaled (AREA) to the engine's size: the whole picture,
    undistorted. Checked with an identity engine and every stage off: the output is the source,
    downscaled."""
    from tests.pipelines.test_colour import Identity

    src = make_video(tmp_path / "wide.mp4", width=320, height=180, frames=3, audio=None)
    out = tmp_path / "out.mp4"
    given: list[tuple[int, ...]] = []

    class Seeing(Identity):
        def infer(self, frames: np.ndarray) -> np.ndarray:
            given.append(frames.shape)
            return frames

    cartoonize_video(VideoJob(src, out, max_side=160, stages=StageOptions(raw=True)), lambda _size: Seeing())
    # the engine is given the scaled frame itself, 90 rows reflect-padded to 92 (a multiple of 4);
    # a frame of another size would be quietly resized by the encoder, not refused
    assert given and all(shape[1:] == (92, 160, 3) for shape in given), given
    _, frames, _ = read_video(out)
    _, sources, _ = read_video(src)
    import cv2

    for got, source in zip(frames, sources, strict=True):
        want = cv2.resize(source, (160, 90), interpolation=cv2.INTER_AREA)
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 4


def test_a_failing_stage_reaches_the_caller(small_video: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    from cartoonize.stages.base import StageChain

    class Breaks:
        name = "breaks"
        seen = 0

        def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
            Breaks.seen += 1
            if Breaks.seen == 3:
                raise RuntimeError("stage broke on frame 3")
            return cartoon

        def reset(self) -> None:
            pass

    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    job = VideoJob(small_video, tmp_path / "out.mp4")
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="stage broke on frame 3"):
        cartoonize_video(job, lambda s: runner_for(request, s), make_chain=lambda _o: StageChain([Breaks()]))
    # the failing thread tells the others to stop: nobody waits out a 30 s join for a frame that
    # will never come
    assert time.perf_counter() - started < 15
    assert list(tmp_path.iterdir()) == []


def test_engine_time_is_the_sum_of_the_engine_calls(
    small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """engine_seconds adds up the time spent starting and collecting batches: with an engine that
    takes at least 20 ms to start a batch and 20 ms to collect it, 24 batches take at least 0.96 s
    of it, and never more than the run."""
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")

    def slow(size: tuple[int, int]):  # noqa: ANN202
        runner = runner_for(request, size)
        submit = runner.submit

        def started(frames: np.ndarray) -> Callable[[], np.ndarray]:
            time.sleep(0.02)  # handing the batch over
            collect = submit(frames)
            return lambda: (time.sleep(0.02), collect())[1]  # waiting for the result

        runner.submit = started  # type: ignore[method-assign]
        return runner

    report = cartoonize_video(VideoJob(small_video, tmp_path / "out.mp4"), slow)
    assert 24 * 0.04 <= report.engine_seconds <= report.seconds
    assert 0 < report.engine_share <= 1


def test_repeated_timestamps_are_made_increasing(tiny_checkpoint: Path, tmp_path: Path) -> None:
    # Matroska stores two frames at the same time; an encoder needs strictly increasing timestamps
    clip = make_video(tmp_path / "dup.mkv", frames=6, audio=None, durations=[3000, 0, 3000, 3000, 0, 3000],
                      time_base=Fraction(1, 1000))  # fmt: skip
    with av.open(str(clip)) as c:
        source_pts = [f.pts for f in c.decode(video=0)]
    assert len(set(source_pts)) < len(source_pts)  # the case this is about
    out = tmp_path / "out.mkv"
    run(clip, out, tiny_checkpoint)
    pts, frames, time_base = read_video(out)
    assert len(frames) == 6 and all(b > a for a, b in zip(pts, pts[1:], strict=False))
    # each repeat moves by one tick of the source's time base, the least that makes it increasing
    assert seconds(pts, time_base) == pytest.approx([0, 3, 3.001, 6, 9, 9.001], abs=1e-6)


@pytest.mark.parametrize("max_frames", [None, 7])
def test_the_report_describes_the_run(
    max_frames: int | None, small_video: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """What `cartoonize video` prints at the end comes from this report (in process: the CLI tests
    run in a child)."""
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    t0 = time.perf_counter()
    job = VideoJob(small_video, tmp_path / "out.mp4", max_frames=max_frames)
    report = cartoonize_video(job, lambda s: runner_for(request, s))
    wall = time.perf_counter() - t0
    assert (report.frames, report.width, report.height) == (max_frames or 24, 64, 48)
    assert 0 < report.seconds <= wall and 0 < report.engine_seconds <= report.seconds
    assert (report.engine, report.video_codec) == ("torch (cpu, fp32)", "libx264")
    assert report.stages == "stabilize + exposure + bars" and report.frame_path == "rgb"
    assert report.colour == "BT.601 (525) limited range (untagged source: the size-based default)"
    assert report.streams == ["audio #1 aac: copied"]  # a preview's audio is copied too, not "empty"


def test_the_stages_get_each_frames_time_in_seconds(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Temporal stages weigh their memory by the time between frames (stages.clock): the chain is
    called with each frame's presentation time in seconds, so a variable-frame-rate clip's
    30 fps and 10 fps stretches reach the stages as they are."""
    from cartoonize.stages.base import StageChain

    class Times:
        name = "times"
        seen: list[float | None] = []

        def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
            Times.seen.append(at)
            return cartoon

        def reset(self) -> None:
            pass

    durations = [3000] * 6 + [9000] * 6  # 1/30 s, then 1/10 s (ticks of 1/90000 s)
    src = make_video(tmp_path / "vfr.mp4", frames=12, durations=durations, audio=None)
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    job = VideoJob(src, tmp_path / "out.mp4")
    cartoonize_video(job, lambda s: runner_for(request, s), make_chain=lambda _o: StageChain([Times()]))
    assert len(Times.seen) == 12 and all(isinstance(t, float) for t in Times.seen)
    steps = np.diff(np.array(Times.seen, dtype=np.float64))
    assert steps == pytest.approx([d / 90000 for d in durations[:-1]], abs=1e-4)


def test_decoded_frames_reach_the_stages_ahead_and_the_device_stages_use_them(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The decode thread hands each frame to `chain.ahead` (the flow starts while the network
    runs, `stages.device`): every flow the stage needed was ready, and the video equals the
    numpy stages' within the device stages' tolerance. The chain is told the runner's device."""
    from cartoonize.stages.base import StageChain
    from cartoonize.stages.device import DeviceStages

    src = make_video(tmp_path / "in.mp4", width=96, height=64, frames=16, audio=None)
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    stages = DeviceStages("cpu")
    devices: list[str] = []

    def on_torch_cpu(options: StageOptions) -> StageChain:
        devices.append(options.device)
        return StageChain([stages])

    from cartoonize.media.files import EncoderSettings

    lossless = EncoderSettings(crf=0)  # x264 at q 0: the videos differ only where the stages do
    job = VideoJob(src, tmp_path / "device.mp4", encoder=lossless)
    cartoonize_video(job, lambda s: runner_for(request, s), make_chain=on_torch_cpu)
    run(src, tmp_path / "numpy.mp4", tiny_checkpoint, encoder=lossless)
    assert devices == ["cpu"]
    assert stages.stabilize is not None and stages.stabilize.used_ahead == 15
    got, expected = read_video(tmp_path / "device.mp4")[1], read_video(tmp_path / "numpy.mp4")[1]
    diff = np.abs(np.stack(got).astype(np.int16) - np.stack(expected))
    assert diff.mean() < 0.5 and diff.max() <= 6, [round(float(d.mean()), 2) for d in diff]


@pytest.mark.parametrize(
    ("width", "height", "batch", "device"),
    [(96, 64, 1, "cpu"), (94, 62, 2, "cpu"), pytest.param(94, 62, 2, "cuda", marks=pytest.mark.gpu)],
)
def test_frames_kept_on_the_device_give_what_the_round_trip_gives(
    tiny_checkpoint: Path, tmp_path: Path, width: int, height: int, batch: int, device: str
) -> None:
    """With the device stages on the runner's device, the engine's frames and cartoons reach them
    as `DeviceFrame`s (on a GPU: no download and upload between the network and the stages). The
    video is the one the round trip through numpy gives (bit for bit on the CPU; on CUDA within a
    level, where kernels may differ by a rounding): sides padded for the network and cropped back
    (94x62), and batches of two with a short last one (15 frames)."""
    from cartoonize.media.files import EncoderSettings
    from cartoonize.stages.base import StageChain
    from cartoonize.stages.device import DeviceStages

    src = make_video(tmp_path / "in.mp4", width=width, height=height, frames=15, audio=None)
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device=device)
    reports, frames = {}, {}
    for keep in (True, False):
        out = tmp_path / f"keep_{keep}.mp4"
        job = VideoJob(src, out, batch=batch, encoder=EncoderSettings(crf=0), keep_on_device=keep)
        reports[keep] = cartoonize_video(job, lambda s: runner_for(request, s),
                                         make_chain=lambda _o: StageChain([DeviceStages(device)]))  # fmt: skip
        frames[keep] = np.stack(read_video(out)[1]).astype(np.int16)
    assert (reports[True].frame_path, reports[False].frame_path) == ("device", "rgb")
    assert reports[True].frames == 15 and frames[True].shape == (15, height, width, 3)
    assert np.abs(frames[True] - frames[False]).max() <= (0 if device == "cpu" else 1)
    raw = tmp_path / "raw.mp4"
    run(src, raw, tiny_checkpoint, batch=batch, encoder=EncoderSettings(crf=0), stages=StageOptions(raw=True))
    assert np.abs(frames[True] - np.stack(read_video(raw)[1])).mean() > 1  # the stages did run


def test_keeping_frames_on_the_device_needs_a_stage_there_that_takes_them() -> None:
    from cartoonize.pipelines.video import _keeps_on_device
    from cartoonize.runners.base import Runner
    from cartoonize.runners.torch import TorchRunner
    from cartoonize.stages.base import StageChain
    from cartoonize.stages.device import DeviceStages
    from cartoonize.stages.exposure import Exposure
    from cartoonize.stages.upsample import GuidedUpsample

    class Plain(Runner):  # not a TensorRunner: its frames come back as numpy
        def load(self) -> None: ...

        def infer(self, frames: np.ndarray) -> np.ndarray:
            return frames

    torch_cpu = TorchRunner.__new__(TorchRunner)
    torch_cpu.device = "cpu"
    job = VideoJob(Path("in.mp4"), Path("out.mp4"))
    on_device = StageChain([DeviceStages("cpu")])
    assert _keeps_on_device(job, torch_cpu, on_device)
    assert not _keeps_on_device(replace(job, keep_on_device=False), torch_cpu, on_device)
    assert not _keeps_on_device(job, Plain(), on_device)
    assert not _keeps_on_device(job, torch_cpu, StageChain([Exposure()]))
    assert not _keeps_on_device(job, torch_cpu, StageChain([GuidedUpsample(), DeviceStages("cpu")]))
    infer_side = replace(job, stages=StageOptions(infer_side=256))
    assert not _keeps_on_device(infer_side, torch_cpu, on_device)
    torch_cpu.device = "cuda"  # the stages must be on the runner's device
    assert not _keeps_on_device(job, torch_cpu, on_device)


def test_the_report_says_how_long_each_thread_waited(small_video: Path, tmp_path: Path) -> None:
    """`VideoReport.waits`: seconds each thread spent blocked on a queue. With an engine slower
    than decoding and encoding, the engine hardly waits and the encoder waits for it."""
    import time

    from cartoonize.runners.base import Runner

    class Slow(Runner):
        name, device, precision = "slow", "cpu", "fp32"

        def load(self) -> None:
            pass

        def infer(self, frames: np.ndarray) -> np.ndarray:
            time.sleep(0.04)
            return frames

    job = VideoJob(small_video, tmp_path / "out.mp4", stages=StageOptions(raw=True))
    report = cartoonize_video(job, lambda _size: Slow())
    assert set(report.waits) == {"decode", "engine", "mux"}, report.waits
    assert report.waits["engine"] < 0.25 * report.seconds < report.waits["mux"], (
        report.waits,
        report.seconds,
    )


def test_names_with_a_colon(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg reads "Interview: Part 1.mp4" as the protocol "Interview:" (not found): inputs were
    refused as unreadable and outputs, whose temporary name starts the same, gave a traceback."""
    from cartoonize.pipelines.image import ImageJob, cartoonize_images, read_image, write_image

    monkeypatch.chdir(tmp_path)
    make_video(tmp_path / "Interview: Part 1.mp4", frames=4)
    run(Path("Interview: Part 1.mp4"), Path("take 2: cartoon.mp4"), tiny_checkpoint)
    assert len(read_video(tmp_path / "take 2: cartoon.mp4")[0]) == 4
    write_image(Path("shot: 1.png"), pattern(16, 12, 0))
    request = EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu")
    cartoonize_images(ImageJob((Path("shot: 1.png"),), Path("cartoon: 1.png")), lambda: runner_for(request))
    assert read_image(tmp_path / "cartoon: 1.png").shape == (12, 16, 3)


def test_a_pipe_is_refused_with_why(tmp_path: Path) -> None:
    """`cat in.mp4 | cartoonize video /dev/stdin out.mp4`: the input is probed, then read again,
    which a pipe cannot give; it was reported as "corrupt or truncated". Nothing blocks on a pipe:
    it is refused before it is opened (a device first, which the old code opened and called
    unreadable; then a FIFO, which it would have waited on)."""
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    for source in (Path("/dev/null"), fifo):
        with pytest.raises(
            CartoonizeError, match=rf"{source.name} is a pipe or a device, not a file: .*to a file first"
        ):
            cartoonize_video(VideoJob(source, tmp_path / "out.mp4"), lambda size: None)  # type: ignore[arg-type,return-value]
