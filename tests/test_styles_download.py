"""Pulling a style from servers that misbehave, over real HTTP on 127.0.0.1: a tiny fake style
(two small files, a tiny generator for the conversion), so each case takes milliseconds."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cartoonize import styles
from cartoonize.errors import CartoonizeError
from cartoonize.styles import COMMIT, REPOSITORY, WEIGHTS_DIR, Style, pull_style, style_checkpoint_path

FILES = {"a.npy": b"\x93NUMPY tiny first file", "b.npy": os.urandom(300_000)}  # b.npy misbehaves


@dataclass
class Mirror:
    """What the server does with b.npy (`mode`), and the paths it was asked for."""

    url: str
    mode: str = "ok"
    requests: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # ends a stall
    pause_s: float = 0.0  # mode "pause": how long the server waits mid-file


def _handler(mirror: Mirror, root: Path) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def send(
            self, code: int, body: bytes, length: bool = True, kind: str = "application/octet-stream"
        ) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header(
                "Content-Length" if length else "Connection", str(len(body)) if length else "close"
            )
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            mirror.requests.append(self.path)
            path = self.path.removeprefix("/moved")
            file = root / path.lstrip("/")
            body = file.read_bytes() if file.is_file() else None
            mode = mirror.mode if file.name == "b.npy" else "ok"
            if body is None or mode == "404":
                return self.send_error(404)
            if mode == "500":
                return self.send_error(500)
            if mode == "redirect" and not self.path.startswith("/moved"):
                self.send_response(302)
                self.send_header("Location", "/moved" + self.path)
                self.send_header("Content-Length", "0")
                return self.end_headers()
            if mode == "html":  # a captive portal: 200, a login page
                return self.send(200, b"<html><body>Log in to the hotel wifi</body></html>", kind="text/html")
            if mode == "wrong":
                return self.send(200, body[::-1])
            if mode == "nolen":
                self.close_connection = True
                return self.send(200, body, length=False)
            if mode in ("short", "reset", "stall"):  # the whole length announced, half sent
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                if mode == "stall":
                    mirror.release.wait(30)
                elif mode == "reset":  # RST instead of FIN
                    import socket
                    import struct

                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return None
            if mode == "trickle":  # the whole length announced, then a byte at a time, never stalling
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for byte in body:
                    if mirror.release.wait(0.02):
                        break
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the client gave up
                        break
                self.close_connection = True
                return None
            if mode == "pause":  # half, a pause (given in the mirror's `pause_s`), the rest
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                time.sleep(mirror.pause_s)
                self.wfile.write(body[len(body) // 2 :])
                return None
            if mode == "slow":
                time.sleep(0.3)
            return self.send(200, body)

    return Handler


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Mirror]:
    """The fake style `tiny` served on 127.0.0.1, an empty cache, and a conversion that makes a
    tiny generator's checkpoint (the real one needs the 94 real files)."""
    from cartoonize.model import Checkpoint, Generator, GeneratorConfig, ModelIO

    root = tmp_path / "mirror"
    folder = root / REPOSITORY / COMMIT / WEIGHTS_DIR / "tiny"
    folder.mkdir(parents=True)
    for name, body in FILES.items():
        (folder / name).write_bytes(body)
    digests = {name: hashlib.sha256(body).hexdigest() for name, body in FILES.items()}
    monkeypatch.setitem(styles.STYLES, "tiny", Style("tiny", "a test style", digests))
    config = GeneratorConfig(base_channels=4, residual_blocks=1)
    state = Generator(config).state_dict()
    monkeypatch.setattr(
        styles,
        "checkpoint_from_npy_folder",
        lambda style, _folder: Checkpoint(state, config, ModelIO(style="tiny")),
    )
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    mirror = Mirror("")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(mirror, root))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mirror.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", mirror.url)
    yield mirror
    mirror.release.set()
    server.shutdown()
    server.server_close()


def cache_entries() -> list[str]:
    folder = style_checkpoint_path("tiny").parent
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def cached_whole() -> bool:
    """tiny.pt is there and nothing else is, but the digest recorded beside it (`digest_matches`)."""
    return [name for name in cache_entries() if name != "tiny.pt.sha256"] == ["tiny.pt"]


def digest_matches() -> bool:
    path = style_checkpoint_path("tiny")
    return path.with_name("tiny.pt.sha256").read_text().strip() == styles.sha256_of(path)


B_URL = rf"{REPOSITORY}/{COMMIT}/{WEIGHTS_DIR}/tiny/b\.npy"


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("404", rf"{B_URL} answered HTTP 404; the mirror does not have it: check CARTOONIZE_WEIGHTS_URL"),
        ("500", rf"{B_URL} answered HTTP 500; the server failed: try again later"),
        ("html", rf"{B_URL} answered with a web page, not the file \(a captive portal"),
        ("short", rf"{B_URL} \(the connection closed after 150000 of 300000 bytes\); try again"),
        ("reset", rf"{B_URL} \(.*(reset|closed).*\); try again"),
        ("wrong", r"b\.npy failed its sha256 check .* is corrupt or changed: try again"),
    ],
)
def test_a_bad_server_is_one_line_caches_nothing_and_the_next_try_works(
    mirror: Mirror, mode: str, message: str
) -> None:
    mirror.mode = mode
    with pytest.raises(CartoonizeError, match=message) as error:
        pull_style("tiny")
    assert "\n" not in str(error.value)
    assert cache_entries() == []  # not even a hidden scratch folder
    mirror.mode = "ok"
    assert pull_style("tiny") == style_checkpoint_path("tiny") and cached_whole()


@pytest.mark.parametrize("mode", ["redirect", "nolen"])
def test_a_redirect_or_no_content_length_is_fine(mirror: Mirror, mode: str) -> None:
    mirror.mode = mode
    pull_style("tiny")
    assert cached_whole()


def test_a_stalled_server_times_out(mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    """Half the file, then nothing: an error after STALL_TIMEOUT_S, not a hang."""
    monkeypatch.setattr(styles, "STALL_TIMEOUT_S", 0.5)
    mirror.mode = "stall"
    start = time.monotonic()
    with pytest.raises(CartoonizeError, match=rf"{B_URL} \(no data for 0\.5 s\); try again"):
        pull_style("tiny")
    assert time.monotonic() - start < 10 and cache_entries() == []


def test_ctrl_c_while_downloading_or_saving_leaves_nothing(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(file: str, _n: int) -> None:
        if file == "b.npy":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull_style("tiny", interrupt)
    assert cache_entries() == []

    import torch

    real_save = torch.save

    def save_half_then_interrupt(obj: object, f: str | os.PathLike[str]) -> None:
        Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", save_half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        pull_style("tiny")
    assert cache_entries() == []  # no hidden .tiny.pt.PID.tmp either
    monkeypatch.setattr(torch, "save", real_save)
    pull_style("tiny")
    assert cached_whole()


@pytest.mark.parametrize("damage", ["bit flip", "truncated", "empty"])
def test_a_damaged_cached_checkpoint_is_pulled_again(mirror: Mirror, damage: str) -> None:
    path = pull_style("tiny")
    data = bytearray(path.read_bytes())
    if damage == "bit flip":
        data[len(data) // 2] ^= 0x10  # in a tensor's bytes: torch.load would not notice
    path.write_bytes(
        bytes(data[: len(data) // 2] if damage == "truncated" else b"" if damage == "empty" else data)
    )
    asked = len(mirror.requests)
    assert pull_style("tiny") == path and cached_whole() and digest_matches()
    assert len(mirror.requests) == asked + len(FILES)
    assert pull_style("tiny") == path and len(mirror.requests) == asked + len(FILES)  # whole: no download


def test_a_damaged_cache_that_cannot_be_pulled_again_says_both(mirror: Mirror) -> None:
    path = pull_style("tiny")
    path.write_bytes(b"")
    mirror.mode = "500"
    with pytest.raises(
        CartoonizeError, match=r"^the cached .*tiny\.pt is damaged, and pulling it again failed: .*HTTP 500"
    ):
        pull_style("tiny")


def test_a_checkpoint_cached_before_digests_were_recorded_is_kept(mirror: Mirror) -> None:
    path = pull_style("tiny")
    path.with_name("tiny.pt.sha256").unlink(missing_ok=True)
    asked = len(mirror.requests)
    assert pull_style("tiny") == path and len(mirror.requests) == asked


def test_two_pulls_at_once_download_once_and_leave_one_whole_file(mirror: Mirror) -> None:
    """Two jobs first using a style together (threads here: the folder lock is per open file, so
    they exclude each other as processes do): both get it, and it is downloaded once."""
    mirror.mode = "slow"
    results: list[Path | BaseException] = []

    def pull() -> None:
        try:
            results.append(pull_style("tiny"))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            results.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [style_checkpoint_path("tiny")] * 2 and cached_whole()
    assert sum(path.endswith("/a.npy") for path in mirror.requests) == 1
    assert digest_matches()


def test_a_scratch_folder_that_a_killed_pull_left_is_swept(mirror: Mirror) -> None:
    from cartoonize.media.files import process_tag

    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a process of this machine that has ended
    dead.wait()
    folder = styles.cache_folder("styles")
    left = folder / f".tiny.cartoonize-{process_tag(dead.pid)}.partial-x1y2"
    left.mkdir()
    (left / "a.npy").write_bytes(b"half")
    pull_style("tiny")
    assert cached_whole()


@pytest.mark.parametrize("form", ["http with a trailing slash", "file:// URL", "folder path"])
def test_the_weights_url_forms(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, form: str
) -> None:
    root = (tmp_path / "mirror").resolve()
    value = {
        "http with a trailing slash": mirror.url + "/",
        "file:// URL": root.as_uri(),
        "folder path": str(root),
    }
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", value[form])
    pull_style("tiny")
    assert cached_whole()


def test_a_file_url_to_no_folder_names_it(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", (tmp_path / "nothing").as_uri())
    with pytest.raises(
        CartoonizeError, match=rf"^download failed: file://.*/nothing/{REPOSITORY}/.*a\.npy \("
    ):
        pull_style("tiny")
    assert cache_entries() == []


def test_an_empty_weights_url_means_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CARTOONIZE_WEIGHTS_URL= (set, empty: a blanked line in a .env file) is GitHub, not the
    folder the command runs in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", "")
    assert styles.weights_url() == styles.DEFAULT_WEIGHTS_URL


def test_an_unknown_style_suggests_the_closest() -> None:
    with pytest.raises(
        CartoonizeError, match=r"unknown style 'Hayo'; did you mean 'hayao'\? choose one of hayao, "
    ):
        pull_style("Hayo")
    with pytest.raises(CartoonizeError, match=r"unknown style 'ghibli'; choose one of hayao, "):
        pull_style("ghibli")  # nothing close: no guess
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "cartoonize", "styles", "pull", "shinkay"], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(root)})  # fmt: skip
    assert result.returncode == 1 and "did you mean 'shinkai'?" in result.stderr, result.stderr


def test_styles_pull_and_list_see_a_damaged_checkpoint(
    mirror: Mirror, capsys: pytest.CaptureFixture[str]
) -> None:
    """`styles pull` skipped any file that existed, and `styles list` called it downloaded: a
    damaged one was mended only by the next --style run, with no progress bar."""
    from cartoonize.cli import main

    path = pull_style("tiny")
    path.write_bytes(b"")

    def run(*argv: str) -> str:
        with pytest.raises(SystemExit) as exit_:
            main([*argv])
        assert exit_.value.code in (0, None)
        out = capsys.readouterr()
        return " ".join((out.out + out.err).replace("│", " ").split())

    assert "tiny built-in a test style damaged: downloads again on first use" in run("styles", "list")
    asked = len(mirror.requests)
    assert "downloading style tiny" in run("styles", "pull", "tiny")
    assert len(mirror.requests) == asked + len(FILES) and cached_whole() and digest_matches()
    assert "tiny built-in a test style downloaded" in run("styles", "list")
