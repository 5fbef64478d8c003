"""`cartoonize webcam` without a camera: files and lavfi sources stand in for one (paced at their
own rate, so frames drop as they would live); outputs, the low-latency capture and every error."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cartoonize.cli import main
from cartoonize.media.capture import CaptureSpec, LatestFrame, Source, resolve_source
from cartoonize.pipelines.webcam import WebcamJob, run_webcam
from cartoonize.runners.base import Runner
from tests.bound_children import webcam_child
from tests.conftest import ROOT, SHARED_MEDIA
from tests.helpers import cpu_auto, interrupt, read_video

BUNNY = SHARED_MEDIA / "big_buck_bunny_1s.webm"
LAVFI = ["--input-format", "lavfi", "--input", "testsrc2=size=320x240:rate=30"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the CLI in this process; (exit code, everything it printed)."""
    try:
        main(["webcam", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    captured = capsys.readouterr()
    return code, " ".join((captured.out + captured.err).split())  # rich wraps long lines


def assert_playable(path: Path, frames: int | None = None) -> list[int]:
    pts, images, time_base = read_video(path)
    assert pts, f"{path} has no frames"
    assert all(b > a for a, b in zip(pts, pts[1:], strict=False)), f"timestamps not increasing: {pts}"
    if frames is not None:
        assert len(pts) == frames
    assert images[0].std() > 5  # a picture, not a blank frame
    return pts


class SlowRunner(Runner):
    """A real runner that takes `delay` seconds a call (a CPU far slower than the camera)."""

    name = "slow"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def load(self) -> None:
        pass

    def infer(self, frames: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        return 255 - frames


# -- the "done when" runs ---------------------------------------------------------------------


@pytest.mark.shared
def test_file_input_records_playable_output(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    out = tmp_path / "out.mp4"
    code, text = run_cli(["--input", str(BUNNY), "--no-preview", "--output", str(out), "--frames", "20",
                          "--max-side", "160", "--model", str(tiny_checkpoint)], capsys)  # fmt: skip
    assert code == 0, text
    shown = int(text.split(" frames shown")[0].split()[-1])
    dropped = int(text.split(" dropped")[0].split()[-1])
    # a file is paced like a camera: frames the engine is too slow for are dropped, not queued, so
    # how many are shown depends on the machine's load (all 20 on an idle one; 4 seen on a loaded
    # one); every frame read is either shown or dropped, up to the 20 asked for or the file's end
    assert 2 <= shown <= 20 and (shown == 20 or shown + dropped >= 23), text
    pts = assert_playable(out, shown)
    assert f"wrote {out}: {shown} frames" in text
    # capture times: never closer than the file's 1/24 s (a file read as fast as it decodes would
    # put them milliseconds apart), however many frames were dropped in between
    assert (pts[-1] - pts[0]) / 90000 * 24 / (shown - 1) > 0.5, pts


def test_lavfi_input_records_playable_output(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    out = tmp_path / "out.mkv"
    code, text = run_cli([*LAVFI, "--no-preview", "--output", str(out), "--frames", "20", "--max-side", "160",
                          "--model", str(tiny_checkpoint)], capsys)  # fmt: skip
    assert code == 0, text
    assert "20 frames shown" in text and "latency median" in text and "stopped: 20 frames shown" in text
    assert_playable(out, 20)
    assert not list(tmp_path.glob(".*partial*")), "the temporary file was left behind"


def test_infer_side_shows_full_size_from_small_inference(
    tmp_path: Path, tiny_checkpoint: Path, capsys
) -> None:
    out = tmp_path / "out.mkv"
    code, text = run_cli([*LAVFI, "--no-preview", "--output", str(out), "--frames", "8", "--infer-side", "80",
                          "--model", str(tiny_checkpoint)], capsys)  # fmt: skip
    assert code == 0, text
    runner, precision = cpu_auto(tiny_checkpoint)
    assert (
        f"(320x240, {runner} (cpu, {precision}), inferring at 80x60; stages: guided upsampling" in text
    )  # first, then the other stages
    assert read_video(out)[1][0].shape == (240, 320, 3)
    # the network at full size: the stages are named all the same (they were left out)
    code, text = run_cli([*LAVFI, "--no-preview", "--output", str(out), "--frames", "2", "--overwrite", "--infer-side", "320",
                          "--model", str(tiny_checkpoint)], capsys)  # fmt: skip
    assert (
        code == 0 and f"(320x240, {runner} (cpu, {precision}); stages: guided upsampling + stabilize" in text
    ), text


@pytest.mark.shared
@pytest.mark.slow
def test_real_style_on_a_file(tmp_path: Path, hayao_checkpoint: Path, capsys) -> None:
    """The real Hayao network (~3 fps at 160 px on a 2-core CPU): a 1 s clip paced like a camera
    shows a few frames, drops the rest, and the recording holds exactly the frames shown."""
    out = tmp_path / "out.mp4"
    code, text = run_cli(["--input", str(BUNNY), "--no-preview", "--output", str(out), "--frames", "20",
                          "--max-side", "160", "--model", str(hayao_checkpoint)], capsys)  # fmt: skip
    assert code == 0, text
    shown = int(text.split(" frames shown")[0].split()[-1])
    assert shown >= 2, text
    assert_playable(out, shown)
    print(text)


# -- low latency ------------------------------------------------------------------------------


def test_latest_frame_keeps_only_the_newest() -> None:
    from cartoonize.media.capture import Captured

    slot = LatestFrame()
    for i in range(3):
        slot.put(Captured(float(i), i + 1, rgb=np.zeros((2, 2, 3), np.uint8)))
    item = slot.take(timeout=0.1)
    assert item is not None and item.index == 3
    assert (slot.delivered, slot.dropped) == (3, 2)
    assert slot.take(timeout=0.01) is None


def test_slow_engine_drops_frames_and_latency_stays_bounded(tmp_path: Path) -> None:
    delay = 0.08  # ~12 fps against a 50 fps source: three frames of four must be dropped
    spec = CaptureSpec("testsrc2=size=96x64:rate=50", "lavfi")
    job = WebcamJob(spec, preview=False, output=str(tmp_path / "slow.mp4"), frames=40)
    report = run_webcam(job, lambda _size: SlowRunner(delay))
    assert report.shown == 40
    # bounds that a busy machine cannot break: load slows the loop, so everything is measured
    # against the loop's own pace (one frame per `period` seconds), never against the clock
    period = report.seconds / (report.shown - 1)
    assert period >= delay * 0.95, report.summary()  # no frame skips the engine: fps <= 1 / delay
    assert report.dropped >= report.shown, report.summary()  # 4 source frames a call: 3 dropped nominally
    first, second = report.latencies[:20], report.latencies[20:]
    # queued frames would wait longer and longer (40 frames x 3 dropped x 20 ms = 2.4 s by the end,
    # some 30 periods); dropped ones keep each frame's delay at its own inference plus at most one
    # source interval: about one period, however slow the machine
    assert np.median(second) < np.median(first) + period, report.latencies
    # (the 90th percentile: a stall of the whole machine, two cores under another job's load, made
    # one frame of 40 wait 5 periods; queued frames would put most of them past this)
    assert np.percentile(report.latencies, 90) < 3 * period, (period, report.latencies)
    assert_playable(tmp_path / "slow.mp4", 40)


@pytest.mark.parametrize(
    ("sent", "code", "said"),
    [
        (signal.SIGINT, 130, "interrupted (Ctrl-C)"),
        (signal.SIGTERM, 143, "terminated (SIGTERM)"),
        (signal.SIGHUP, 129, "terminated (SIGHUP)"),
    ],
    ids=["ctrl-c", "kill", "hangup"],
)
def test_interrupt_finalizes_the_recording(
    sent: signal.Signals, code: int, said: str, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """Ctrl-C, a `kill` or a closed terminal ends the live session with the recording finished and playable."""
    out = tmp_path / "live.mp4"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        webcam_child([*LAVFI, "--no-preview", "--max-side", "160", "--output", str(out), "--model",
                      str(tiny_checkpoint)]),
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".live.*partial.mp4")) and time.monotonic() < deadline:
            time.sleep(0.2)  # the recording opens once the model is loaded
        time.sleep(1.5)
        text = interrupt(proc, sent)
    finally:
        proc.kill()
    assert proc.returncode == code, text
    assert said in text and "Traceback" not in text
    assert_playable(out)
    assert not list(tmp_path.glob(".*partial*"))


# -- outputs ----------------------------------------------------------------------------------


def test_udp_output_streams_mpegts(tiny_checkpoint: Path, capsys) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(20)
    port = receiver.getsockname()[1]
    received = bytearray()

    def receive() -> None:
        try:
            while len(received) < 10_000:
                received.extend(receiver.recv(65536))
        except OSError:
            pass

    listener = threading.Thread(target=receive, daemon=True)
    listener.start()
    code, text = run_cli([*LAVFI, "--no-preview", "--frames", "15", "--max-side", "160",
                          "--output", f"udp://127.0.0.1:{port}?pkt_size=1316", "--model", str(tiny_checkpoint)],
                         capsys)  # fmt: skip
    listener.join(5)
    receiver.close()
    assert code == 0, text
    assert f"streamed to udp://127.0.0.1:{port}" in text
    assert len(received) >= 188 * 10 and received[0] == 0x47 and received[188] == 0x47  # MPEG-TS packets


def test_virtual_cam_stream_as_raw_yuyv(tmp_path: Path) -> None:
    """v4l2loopback cannot be loaded here: the same writer goes to a raw file instead of the
    device, which checks the frames a video-call app would get (YUYV, even size)."""
    from cartoonize.media.outputs import VirtualCam

    cam = VirtualCam(str(tmp_path / "cam.yuv"), 161, 90, 30, muxer="rawvideo")
    for i in range(5):
        cam.write(np.full((90, 161, 3), i * 40, np.uint8))
    cam.close()
    data = np.fromfile(tmp_path / "cam.yuv", np.uint8)
    assert data.size == 5 * 162 * 90 * 2
    luma = data.reshape(5, 90, 162, 2)[..., 0]
    assert np.all(np.diff(luma.mean(axis=(1, 2))) > 20)


# -- errors: one line, exit 1, never a traceback ----------------------------------------------


def assert_error(code: int, text: str, *needles: str) -> None:
    assert code == 1, text
    assert text.startswith("error:") and "Traceback" not in text, text
    for needle in needles:
        assert needle in text, text


def test_no_camera(capsys) -> None:
    code, text = run_cli(["--input", "/dev/video9", "--no-preview"], capsys)
    assert_error(code, text, "no camera at /dev/video9", "--list", "lavfi")


def test_not_a_camera(capsys) -> None:
    code, text = run_cli(["--input", "/dev/null", "--input-format", "v4l2", "--no-preview"], capsys)
    assert_error(code, text, "/dev/null is not a camera")


@pytest.mark.parametrize(
    ("code_", "args", "needles"),
    [
        (errno.EBUSY, [], ["camera /dev/video0 is busy", "another program"]),
        (errno.EACCES, [], ["no permission", "video` group"]),
        (errno.EINVAL, ["--size", "4000x3000", "--fps", "60"], ["does not offer 4000x3000 at 60 fps", "list_formats"]),
    ],
)  # fmt: skip
def test_camera_open_failures(
    monkeypatch, capsys, tiny_checkpoint: Path, code_: int, args: list[str], needles: list[str]
) -> None:
    """A busy camera, one we may not open, one without the size asked: FFmpeg's errors as a
    camera gives them (there is no camera here to give them for real)."""
    import av

    def refuse(url: str, *a, **k):
        raise av.error.OSError(code_, os.strerror(code_), url)

    monkeypatch.setattr(av, "open", refuse)
    monkeypatch.setattr(sys, "platform", "linux")
    code, text = run_cli(["--no-preview", "--model", str(tiny_checkpoint), *args], capsys)
    assert_error(code, text, *needles)


def test_camera_substituting_another_size(monkeypatch) -> None:
    """Some drivers open at a size they have instead of the one asked: refused, not used."""
    from cartoonize.errors import CartoonizeError
    from cartoonize.media.capture import Capture

    source = resolve_source(CaptureSpec("testsrc2=size=320x240:rate=30", "lavfi"))
    camera_like = Source(source.url, "lavfi", {}, "camera", "camera test")
    with pytest.raises(CartoonizeError, match=r"camera test does not offer 1280x720 \(it offered 320x240"):
        Capture(CaptureSpec(size=(1280, 720)), camera_like)


def test_camera_unplugged_mid_stream(monkeypatch, tmp_path: Path, tiny_checkpoint: Path, small_video: Path,
                                     capsys) -> None:  # fmt: skip
    """A camera whose stream ends (a file standing in, at its real-time rate): a clean stop with a
    message and exit 1, the recording so far finalized."""
    import cartoonize.media.capture as capture

    camera = Source(str(small_video), None, {}, "camera", "camera /dev/video0")
    monkeypatch.setattr(capture, "resolve_source", lambda spec: camera)
    monkeypatch.setattr(capture.Source, "paced", property(lambda self: True))
    out = tmp_path / "until-unplugged.mp4"
    code, text = run_cli(["--no-preview", "--output", str(out), "--model", str(tiny_checkpoint)], capsys)
    assert code == 1, text
    assert "camera /dev/video0 stopped delivering frames (unplugged?)" in text and "Traceback" not in text
    assert "frames shown" in text  # the summary comes first
    assert_playable(out)


def test_network_source_that_never_answers(monkeypatch, tiny_checkpoint: Path, capsys) -> None:
    import cartoonize.media.capture as capture

    monkeypatch.setattr(capture, "OPEN_TIMEOUT", 1.0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        url = f"udp://127.0.0.1:{silent.getsockname()[1]}"
    started = time.monotonic()
    code, text = run_cli(["--input", url, "--no-preview", "--model", str(tiny_checkpoint)], capsys)
    assert_error(code, text, f"no answer from {url} within 1 s")
    assert time.monotonic() - started < 10


def test_file_ending_is_a_clean_stop(
    tmp_path: Path, tiny_checkpoint: Path, small_video: Path, capsys
) -> None:
    code, text = run_cli(
        ["--input", str(small_video), "--no-preview", "--model", str(tiny_checkpoint)], capsys
    )
    assert code == 0, text
    assert "stopped: the input ended" in text


def test_source_without_frames(tiny_checkpoint: Path, capsys) -> None:
    code, text = run_cli(["-f", "lavfi", "-i", "nullsrc=d=0", "--no-preview", "--frames", "3", "--model", str(tiny_checkpoint)],
                         capsys)  # fmt: skip
    assert_error(code, text, "delivered no frame")


def test_missing_loopback_device(tiny_checkpoint: Path, capsys) -> None:
    code, text = run_cli(
        [*LAVFI, "--no-preview", "--virtual-cam", "--frames", "3", "--model", str(tiny_checkpoint)], capsys
    )
    assert_error(code, text, "v4l2loopback", "sudo modprobe v4l2loopback devices=1 exclusive_caps=1")
    code, text = run_cli([*LAVFI, "--no-preview", "--virtual-cam", "--virtual-cam-device", "/dev/video42",
                          "--model", str(tiny_checkpoint)], capsys)  # fmt: skip
    assert_error(code, text, "/dev/video42 does not exist", "sudo modprobe v4l2loopback")


def test_no_display_for_the_window(monkeypatch, tiny_checkpoint: Path, capsys) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    code, text = run_cli([*LAVFI, "--frames", "3", "--model", str(tiny_checkpoint)], capsys)
    assert_error(code, text, "cannot open a preview window (no display", "--no-preview", "--serve")


def test_port_in_use(tiny_checkpoint: Path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, text = run_cli(
            [*LAVFI, "--serve", str(port), "--frames", "3", "--model", str(tiny_checkpoint)], capsys
        )
    assert_error(code, text, f"--serve 127.0.0.1:{port}: the port is in use")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--input", "/nonexistent/clip.mp4"], ["input /nonexistent/clip.mp4 does not exist"]),
        ([*LAVFI, "--size", "640x480"], ["camera options", "--max-side"]),
        (["--size", "big"], ["--size big: give WIDTHxHEIGHT"]),
        ([*LAVFI, "--serve", "localhost:http"], ["give PORT or HOST:PORT"]),
        ([*LAVFI, "--output", "ftp://example.org/x"], ["cannot stream to ftp://"]),
        ([*LAVFI, "--output", "out.xyz"], ["unsupported output type"]),
        ([*LAVFI, "--output", "out.avi"], ["AVI stores one fixed frame rate; record .mp4"]),
        (["-f", "lavfi", "-i", "nosuchsource=1"], ["not a valid FFmpeg source graph"]),
    ],
)
def test_bad_arguments(args: list[str], needles: list[str], tiny_checkpoint: Path, capsys) -> None:
    code, text = run_cli([*args, "--no-preview", "--frames", "3", "--model", str(tiny_checkpoint)], capsys)
    assert_error(code, text, *needles)


def test_existing_output_is_kept(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:
    out = tmp_path / "taken.mp4"
    out.write_bytes(b"precious")
    code, text = run_cli(
        [*LAVFI, "--no-preview", "--output", str(out), "--model", str(tiny_checkpoint)], capsys
    )
    assert_error(code, text, "exists; pass --overwrite")
    assert out.read_bytes() == b"precious"


def test_list_cameras_on_this_machine(capsys) -> None:
    code, text = run_cli(["--list"], capsys)
    assert code == 0, text
    assert "no cameras found" in text or "/dev/video" in text


def test_platform_camera_defaults() -> None:
    def where(source: Source) -> tuple[str, str | None]:
        return source.url, source.format

    assert where(resolve_source(CaptureSpec(), "linux")) == ("/dev/video0", "v4l2")
    assert where(resolve_source(CaptureSpec(), "darwin")) == ("0", "avfoundation")
    assert where(resolve_source(CaptureSpec(input="1"), "win32")) == ("video=1", "dshow")
    mjpeg = resolve_source(CaptureSpec(size=(1280, 720), fps=30, mjpeg=True), "linux")
    assert mjpeg.options == {"video_size": "1280x720", "framerate": "30", "input_format": "mjpeg"}
    assert resolve_source(CaptureSpec("rtsp://cam.local/stream")).kind == "network"


def test_list_reads_camera_names_from_sysfs(tmp_path: Path) -> None:
    from cartoonize.media.capture import _v4l2_cameras

    for index, name in [(10, "Dummy video device (0x0000)"), (0, "Integrated Camera: Integrated C")]:
        node = tmp_path / "sys" / f"video{index}"
        node.mkdir(parents=True)
        (node / "name").write_text(name + "\n")
    cameras = _v4l2_cameras(tmp_path / "sys", tmp_path / "dev")  # no device nodes: names only
    assert [(c.id, c.name) for c in cameras] == [
        (str(tmp_path / "dev" / "video0"), "Integrated Camera: Integrated C"),
        (str(tmp_path / "dev" / "video10"), "Dummy video device (0x0000)"),
    ]


def test_serve_addresses() -> None:
    from cartoonize.media.mjpeg import parse_address

    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_address("[::1]:9000") == ("::1", 9000)


def test_auto_infer_side_only_where_it_pays() -> None:
    from cartoonize.pipelines.webcam import CPU_WEBCAM_INFER_SIDE, auto_infer_side

    assert auto_infer_side("cpu") == CPU_WEBCAM_INFER_SIDE
    assert auto_infer_side("cpu", max_side=2 * CPU_WEBCAM_INFER_SIDE + 1) == CPU_WEBCAM_INFER_SIDE
    assert auto_infer_side("cpu", max_side=160) is None  # already small: run it at full size
    assert auto_infer_side("cuda") is None


def test_the_stages_get_each_frames_capture_time(monkeypatch, tmp_path: Path) -> None:
    """Temporal stages weigh their memory by the time between frames: the webcam hands the chain
    each shown frame's arrival time in seconds, so frames the loop dropped count as time passed
    (here three of every four: the gaps are the engine's pace, not the camera's 1/50 s)."""
    import cartoonize.pipelines.webcam as webcam
    from cartoonize.stages.base import StageChain

    seen: list[float | None] = []

    class Times:
        name = "times"

        def __call__(self, source: np.ndarray, cartoon: np.ndarray, at: float | None = None) -> np.ndarray:
            seen.append(at)
            return cartoon

        def reset(self) -> None:
            seen.clear()  # the warm-up call is forgotten like any state

    monkeypatch.setattr(webcam, "build_stages", lambda _options: StageChain([Times()]))
    delay = 0.08
    job = WebcamJob(CaptureSpec("testsrc2=size=96x64:rate=50", "lavfi"), preview=False, frames=12)
    report = run_webcam(job, lambda _size: SlowRunner(delay))
    assert report.shown == len(seen) == 12
    gaps = np.diff(np.array(seen, dtype=np.float64))
    assert (gaps > 0).all(), seen
    assert gaps.mean() >= 0.95 * delay, gaps  # the loop's pace, dropped frames included


@pytest.mark.parametrize(
    ("display", "says"), [(None, "(no display"), (":77", "(the X display :77 cannot be opened")]
)
def test_no_display_says_one_line_and_nothing_of_sdl(
    display: str | None, says: str, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """Without a display (and as root, without XDG_RUNTIME_DIR) SDL's Wayland probe prints its own
    "error: XDG_RUNTIME_DIR is invalid ..." to file descriptor 2: only our line reaches stderr. A
    DISPLAY that is not there is named (it was "DISPLAY and WAYLAND_DISPLAY are not set")."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "SDL_VIDEODRIVER")
    }
    if display:
        env["DISPLAY"] = display
    result = subprocess.run([sys.executable, "-m", "cartoonize", "webcam", "-f", "lavfi", "-i",
                             "testsrc2=size=160x120:rate=10", "--frames", "3", "--model", str(tiny_checkpoint)],
                            env={**env, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot open a preview window {says}"), lines


def test_an_unknown_input_format_is_named(tiny_checkpoint: Path, capsys) -> None:
    code, text = run_cli(["-f", "bogusfmt", "-i", "testsrc2", "--no-preview", "--frames", "3",
                          "--model", str(tiny_checkpoint)], capsys)  # fmt: skip
    assert_error(code, text, "unknown --input-format bogusfmt", "ffmpeg -demuxers")
    assert "does not exist" not in text
