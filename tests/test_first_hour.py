"""A new user's first hour with `cartoonize video` and `cartoonize image`: the mistakes people make
(a URL or `-` where a file goes, a photo given to `video`, Ctrl-C or a `kill` in the middle) each
give one line saying what to do, and leave nothing under the output's name."""

from __future__ import annotations

import functools
import http.server
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from tests.helpers import child_env, make_video, pattern, run_main, stoppable

ROOT = Path(__file__).resolve().parents[1]  # the repository root (this file is in tests/)


def one_line_error(code: int, err: str) -> str:
    """The error line of a run that must have failed with one, no traceback."""
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def write_photo(path: Path, frames: int = 1) -> Path:
    """A photo (or, with `frames` > 1, an animation) of a test pattern, written by FFmpeg."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(
            {".png": "png", ".jpg": "mjpeg", ".gif": "gif", ".webp": "libwebp"}[path.suffix]
        )
        stream.width, stream.height = 48, 32
        stream.pix_fmt = {".png": "rgb24", ".jpg": "yuvj420p", ".gif": "rgb8", ".webp": "yuv420p"}[
            path.suffix
        ]
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(48, 32, i), format="rgb24").reformat(
                format=stream.pix_fmt
            )
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving `tmp_path/served`: the URL of that folder."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            thread.join()


def test_a_url_as_input_is_said_to_be_one(server: str, tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:  # noqa: ANN001
    """A URL where a file goes (the video is there, served): read as a file name, it was "input
    http:/127.0.0.1:PORT/clip.mp4 does not exist", the URL mangled and the reason wrong."""
    make_video(tmp_path / "served" / "clip.mp4", frames=4, audio=None)
    write_photo(tmp_path / "served" / "photo.png")
    out = tmp_path / "out"
    out.mkdir()
    for args in (["video", f"{server}/clip.mp4", str(out / "clip.mp4")],
                 ["image", f"{server}/photo.png", "-o", str(out / "photo.png")]):  # fmt: skip
        line = one_line_error(*run_main([*args, "--model", str(tiny_checkpoint)], capsys)[::2])
        assert f"{args[1]} is a URL" in line and f"curl -LO {args[1]}" in line, line
    line = one_line_error(*run_main(["video", f"file://{tmp_path}/served/clip.mp4", str(out / "c.mp4"),
                                     "--model", str(tiny_checkpoint)], capsys)[::2])  # fmt: skip
    assert line.endswith(f"give the file's path: {tmp_path}/served/clip.mp4"), line
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["video", "-", "out.mp4"], "input - (standard input) cannot be read"),
        (["image", "-", "-o", "out.png"], "input - (standard input) cannot be read"),
        (["video", "clip.mp4", "-"], "output - (standard output) is not supported"),
        # it made a folder named `-` holding the cartoon
        (["image", "photo.png", "-o", "-"], "output - (standard output) is not supported"),
        (["video", "~/no-such-clip-h5.mp4", "out.mp4"], "a shell expands ~ only outside quotes"),
    ],
    ids=["video-stdin", "image-stdin", "video-stdout", "image-stdout", "quoted-tilde"],
)
def test_dash_and_a_quoted_tilde_are_said(
    args: list[str], said: str, tmp_path: Path, tiny_checkpoint: Path, capsys, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:  # fmt: skip
    make_video(tmp_path / "clip.mp4", frames=4, audio=None)
    write_photo(tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    line = one_line_error(*run_main([*args, "--model", str(tiny_checkpoint)], capsys)[::2])
    assert said in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "photo.png"]


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_a_photo_given_to_video_is_refused(
    suffix: str, tmp_path: Path, tiny_checkpoint: Path, capsys
) -> None:  # noqa: ANN001
    """`cartoonize video photo.jpg out.mp4` made a video of one frame, 40 ms long, without a word;
    `image` given a video says what it does, so `video` given a photo says what to run instead."""
    photo = write_photo(tmp_path / f"photo{suffix}")
    out = tmp_path / "out.mp4"
    line = one_line_error(
        *run_main(["video", str(photo), str(out), "--model", str(tiny_checkpoint)], capsys)[::2]
    )
    assert f"{photo} is a photo, not a video" in line and f"cartoonize image {photo} -o" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == [photo.name]


def test_an_animation_given_to_video_is_still_a_video(tmp_path: Path, tiny_checkpoint: Path, capsys) -> None:  # noqa: ANN001
    """A GIF's frames are a video's (FFmpeg's gif demuxer, not an image one): cartoonized, each."""
    gif = write_photo(tmp_path / "anim.gif", frames=3)
    out = tmp_path / "out.mp4"
    code, _, err = run_main(
        ["video", str(gif), str(out), "--model", str(tiny_checkpoint), "--raw", "-q"], capsys
    )
    assert code == 0, err
    with av.open(str(out)) as video:
        assert len(list(video.decode(video=0))) == 3


@pytest.mark.parametrize(
    ("sent", "code", "how"), [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_a_stopped_video_says_how_far_it_got(
    sent: signal.Signals, code: int, how: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Ctrl-C or a `kill` in the middle of a video: the bar (drawn to be cleared) vanished and
    the job ended without a word, in a terminal and in a log. Now one line: how far it got, and
    that the output was not written."""
    src = make_video(tmp_path / "long.mp4", width=160, height=120, frames=400, rate=25, audio="aac")
    proc = subprocess.Popen(stoppable([sys.executable, "-m", "cartoonize", "video", str(src), "out.mp4", "--model",
                                       str(tiny_checkpoint), "--engine", "torch"]), cwd=tmp_path,
                            env=child_env(PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    # frames are being encoded once the hidden partial file holds more than the muxer's header
    while time.monotonic() < deadline and proc.poll() is None:
        partial = [p for p in tmp_path.iterdir() if "partial" in p.name]
        if partial and partial[0].stat().st_size > 4096:
            break
        time.sleep(0.05)
    proc.send_signal(sent)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code and "Traceback" not in stderr, stderr
    said = re.search(rf"^stopped \({how}\) after (\d+) of 400 frames: out.mp4 not written$", stderr, re.M)
    assert said and 0 < int(said[1]) < 400, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


@pytest.mark.parametrize("command", ["video", "image"])
def test_sizes_in_the_help_have_units_and_defaults(command: str) -> None:
    """--max-side and --infer-side say their unit (pixels) and what they are when not given;
    --max-side said "before inference" and not that the output is smaller too."""
    result = subprocess.run([sys.executable, "-m", "cartoonize", command, "--help"], env=child_env(
        PYTHONPATH=str(ROOT), COLUMNS="400"), capture_output=True, text=True, timeout=60)  # fmt: skip
    text = " ".join(result.stdout.split())
    for option in ("--max-side", "--infer-side"):
        help_text = text.split(f" {option} ", 1)[1].split(" │ --", 1)[0]
        assert "N pixels" in help_text and "[default:" in help_text, help_text
    assert "and so the output" in text


def test_what_crf_does_not_touch_is_said() -> None:
    """--crf changes nothing in an .avi or a .gif (the same bytes at 5 and 45): its help says so."""
    result = subprocess.run([sys.executable, "-m", "cartoonize", "video", "--help"],
                            env=child_env(PYTHONPATH=str(ROOT), COLUMNS="400"), capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    help_text = " ".join(result.stdout.split()).split(" --crf ", 1)[1].split(" │ --", 1)[0]
    assert ".avi" in help_text and ".gif" in help_text and "0-63" in help_text, help_text


def test_a_video_into_a_folder_that_is_not_there_makes_it(
    small_video: Path, tmp_path: Path, tiny_checkpoint: Path, capsys  # noqa: ANN001
) -> None:  # fmt: skip
    """`video in.mp4 new/sub/out.mp4` was "output folder new/sub does not exist", where `image -o
    new/sub/out.png`, `export -o new/sub/x.onnx` and `video in.mp4 new/` make the folders. A job
    that fails leaves none of them behind."""
    args = ["--model", str(tiny_checkpoint), "--frames", "2", "--raw", "-q"]
    code, _, err = run_main(
        ["video", str(small_video), str(tmp_path / "new" / "sub" / "out.mp4"), *args], capsys
    )
    assert code == 0, err
    assert [p.name for p in (tmp_path / "new" / "sub").iterdir()] == ["out.mp4"]
    (tmp_path / "text.mp4").write_text("not a video\n")
    code, _, err = run_main(["video", str(tmp_path / "text.mp4"), str(tmp_path / "gone" / "sub" / "out.mp4"), *args],
                            capsys)  # fmt: skip
    assert "text.mp4 is not a readable video" in one_line_error(code, err)
    assert not (tmp_path / "gone").exists()
