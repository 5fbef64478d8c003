"""A stream URL whose protocol this FFmpeg lacks (PyAV's wheels have no srt://) is refused up front,
in one line that names the protocols it has: `--output srt://...` was offered by --help and failed
only once the camera was open, with "cannot connect (this FFmpeg has no such protocol)"."""

from __future__ import annotations

import pytest

from cartoonize.cli import main
from cartoonize.errors import CartoonizeError
from cartoonize.media.capture import has_protocol
from cartoonize.media.outputs import URL_CONTAINERS, check_record_target

MISSING = next((scheme for scheme in URL_CONTAINERS if not has_protocol(scheme)), None)
needs_a_missing_protocol = pytest.mark.skipif(
    MISSING is None, reason="this FFmpeg has every streaming protocol (PyAV's wheels lack srt)"
)


def test_the_protocols_this_ffmpeg_has() -> None:
    assert not has_protocol("nosuch")
    for scheme in ("file", "udp", "tcp", "rtp", "rtmp"):  # built into every FFmpeg with networking
        assert has_protocol(scheme), scheme


@needs_a_missing_protocol
def test_an_output_protocol_this_ffmpeg_lacks_is_refused_before_anything_opens() -> None:
    with pytest.raises(CartoonizeError) as refused:
        check_record_target(f"{MISSING}://127.0.0.1:9000", overwrite=False)
    text = str(refused.value)
    assert f"has no {MISSING}:// protocol" in text and "udp://" in text and f"use {MISSING}://" not in text


@needs_a_missing_protocol
@pytest.mark.parametrize("where", ["--output", "--input"])
def test_the_cli_says_so_before_the_camera_opens(where: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The camera given does not exist: the protocol is the error, so it came first."""
    url = f"{MISSING}://127.0.0.1:9000"
    args = ["--output", url] if where == "--output" else ["--input", url]
    camera = ["--input", "/dev/video9"] if where == "--output" else []
    with pytest.raises(SystemExit) as ended:
        main(["webcam", *camera, *args, "--no-preview", "--frames", "1"])
    text = " ".join(capsys.readouterr().err.split())  # (rich wraps long lines)
    assert ended.value.code == 1, text
    assert text.startswith(f"error: {where} {url}: this FFmpeg") and "Traceback" not in text, text
