"""Pulling the pretrained styles: over real HTTP on 127.0.0.1, verified, converted, cached once."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cartoonize.errors import CartoonizeError
from cartoonize.styles import STYLES, cache_folder, pull_style, style_checkpoint_path
from tests.conftest import SHARED_WEIGHTS


def test_registry_lists_four_styles_with_pinned_files() -> None:
    assert set(STYLES) == {"hayao", "hosoda", "paprika", "shinkai"}
    for style in STYLES.values():
        assert len(style.files) == 94
        assert all(len(digest) == 64 for digest in style.files.values())
        assert style.channel_order == "BGR"


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Serves ../shared/weights; can corrupt one file or cut one short, as a bad server would."""

    corrupt: str | None = None
    truncate: str | None = None

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        name = self.path.rsplit("/", 1)[-1]
        if name not in (self.corrupt, self.truncate):
            return super().do_GET()
        body = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name == self.corrupt:
            self.wfile.write(body[:-4] + b"\x00\x00\x00\x00")
        else:
            self.wfile.write(body[: len(body) // 2])  # then the connection drops


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[type[MirrorHandler]]:
    """A real HTTP server on 127.0.0.1 serving the mirror, and an empty cache for this test."""
    if not SHARED_WEIGHTS.is_dir():
        pytest.skip(f"needs the shared weights at {SHARED_WEIGHTS}")
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    handler = type("Handler", (MirrorHandler,), {})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(SHARED_WEIGHTS))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", f"http://127.0.0.1:{server.server_address[1]}")
    yield handler
    server.shutdown()


def nothing_cached(name: str) -> bool:
    folder = style_checkpoint_path(name).parent
    return not style_checkpoint_path(name).exists() and not [
        p for p in folder.glob("*") if p.name.startswith(".")
    ]


@pytest.mark.shared
def test_pull_over_http_verifies_converts_and_caches(mirror: type[MirrorHandler], tmp_path: Path) -> None:
    path = pull_style("paprika")
    assert path == style_checkpoint_path("paprika") and path.exists()
    raw = torch.load(path, weights_only=True)
    assert raw["io"]["channel_order"] == "BGR" and raw["config"]["norm_eps"] == 1e-9
    mtime = path.stat().st_mtime_ns
    assert pull_style("paprika") == path and path.stat().st_mtime_ns == mtime  # cached: no second download


@pytest.mark.shared
def test_corrupted_file_caches_nothing(mirror: type[MirrorHandler]) -> None:
    mirror.corrupt = "conv05_2.weight.npy"
    with pytest.raises(CartoonizeError, match=r"conv05_2\.weight\.npy failed its sha256 check"):
        pull_style("hayao")
    assert nothing_cached("hayao")


@pytest.mark.shared
def test_connection_cut_mid_file_caches_nothing(mirror: type[MirrorHandler]) -> None:
    mirror.truncate = "conv03_2.weight.npy"
    with pytest.raises(CartoonizeError, match="conv03_2.weight.npy"):
        pull_style("hayao")
    assert nothing_cached("hayao")


@pytest.mark.shared
def test_missing_file_is_a_clear_error(mirror: type[MirrorHandler]) -> None:
    with pytest.raises(CartoonizeError, match="HTTP 404"):
        pull_style("shinkai")  # its files are not in the mirror
    assert nothing_cached("shinkai")


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", "http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(CartoonizeError, match="download failed"):
        pull_style("hosoda")
    assert nothing_cached("hosoda")


def test_a_cache_that_cannot_be_written_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A cache folder that cannot be made (here a file is in the way; a read-only home alike) is
    one line saying which folder and what to set, before anything is downloaded."""
    (tmp_path / "cache").write_text("a file, not a folder")
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(
        CartoonizeError, match=r"^cannot write the cache folder .*cache/styles \(.*set CARTOONIZE_CACHE"
    ):
        pull_style("hosoda")
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "fresh"))
    assert cache_folder("onnx") == tmp_path / "fresh" / "onnx" and (tmp_path / "fresh" / "onnx").is_dir()


def test_unknown_style() -> None:
    with pytest.raises(CartoonizeError, match="unknown style 'ghibli'"):
        pull_style("ghibli")


# --- golden test: our modules against the reference network's own arithmetic --------------------


def reference_forward(w: dict[str, torch.Tensor], bgr: torch.Tensor) -> torch.Tensor:
    """The reference port's forward pass, written from its layer list with raw tensors: its
    hand-written instance norm (biased variance, eps 1e-9), BGR in [-1, 1]."""

    def norm(x: torch.Tensor, name: str) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
        x = (x - mean) / torch.sqrt(var + 1e-9)
        return x * w[f"{name}.scale"][None, :, None, None] + w[f"{name}.shift"][None, :, None, None]

    def conv(x: torch.Tensor, name: str, stride: int = 1, pad: int = 0) -> torch.Tensor:
        return F.conv2d(x, w[f"{name}.weight"], w[f"{name}.bias"], stride=stride, padding=pad)

    def deconv(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.conv_transpose2d(
            x, w[f"{name}.weight"], w[f"{name}.bias"], stride=2, padding=1, output_padding=1
        )

    y = F.relu(norm(conv(F.pad(bgr, (3, 3, 3, 3), mode="reflect"), "conv01_1"), "in01_1"))
    y = F.relu(norm(conv(conv(y, "conv02_1", 2, 1), "conv02_2", 1, 1), "in02_1"))
    t = F.relu(norm(conv(conv(y, "conv03_1", 2, 1), "conv03_2", 1, 1), "in03_1"))
    for i in range(4, 12):
        y = F.relu(norm(conv(F.pad(t, (1, 1, 1, 1), mode="reflect"), f"conv{i:02d}_1"), f"in{i:02d}_1"))
        y = norm(conv(F.pad(y, (1, 1, 1, 1), mode="reflect"), f"conv{i:02d}_2"), f"in{i:02d}_2")
        t = t + y
    y = F.relu(norm(conv(deconv(t, "deconv01_1"), "deconv01_2", 1, 1), "in12_1"))
    y = F.relu(norm(conv(deconv(y, "deconv02_1"), "deconv02_2", 1, 1), "in13_1"))
    return torch.tanh(conv(F.pad(y, (3, 3, 3, 3), mode="reflect"), "deconv03_1"))


@pytest.mark.shared
def test_hayao_matches_the_reference_arithmetic_on_a_real_photo(hayao_checkpoint: Path) -> None:
    pytest.importorskip("skimage")
    from cartoonize.export import reference_photo
    from cartoonize.model import load_checkpoint
    from cartoonize.runners.torch import TorchRunner

    folder = next(SHARED_WEIGHTS.rglob("pretrained_weights/hayao"))
    weights = {p.name.removesuffix(".npy"): torch.from_numpy(np.load(p)) for p in folder.glob("*.npy")}
    photo = reference_photo(128, 128)  # scikit-image's astronaut, RGB uint8
    bgr = torch.from_numpy(photo[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        expected_bgr = reference_forward(weights, bgr)
    expected = ((expected_bgr.flip(1) + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    with TorchRunner(load_checkpoint(hayao_checkpoint)) as runner:
        actual = runner(photo)
    assert np.abs(actual.astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(actual.astype(int) - photo.astype(int)).mean() > 10  # and it is not the identity


@pytest.mark.shared
def test_styles_list_and_pull_through_the_cli(mirror: type[MirrorHandler]) -> None:
    """`cartoonize styles list | styles pull hayao` as a user runs them, from the 127.0.0.1 mirror."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "200"}

    def cli(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "cartoonize", *args], env=env, capture_output=True,
                                text=True, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout + result.stderr  # the table and messages go to the console (stderr)

    def downloaded(listing: str) -> dict[str, str]:
        rows = [line.replace("│", " ").split() for line in listing.splitlines()]
        # the "here" column: "downloaded", or "downloads on first use"
        return {
            row[0]: "yes" if row[-1] == "downloaded" else "no" for row in rows if row and row[0] in STYLES
        }

    assert downloaded(cli("styles", "list")) == dict.fromkeys(STYLES, "no")
    assert "hayao" in cli("styles", "pull", "hayao")
    assert style_checkpoint_path("hayao").is_file()
    assert downloaded(cli("styles", "list")) == {**dict.fromkeys(STYLES, "no"), "hayao": "yes"}


@pytest.mark.shared
def test_the_weights_mirror_can_be_a_folder_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CARTOONIZE_WEIGHTS_URL=/path/to/weights (no file://) pulls from that folder, not urllib's
    `unknown url type`; a relative path is taken from where it runs."""
    from cartoonize.styles import weights_url

    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", str(SHARED_WEIGHTS.absolute()))
    assert weights_url() == SHARED_WEIGHTS.resolve().as_uri()
    assert pull_style("paprika").exists()
    monkeypatch.chdir(SHARED_WEIGHTS.parent)
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", SHARED_WEIGHTS.name)  # relative to where it runs
    assert weights_url() == SHARED_WEIGHTS.resolve().as_uri()


def test_a_weights_url_that_is_neither_url_nor_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", str(tmp_path / "no-mirror"))
    with pytest.raises(
        CartoonizeError, match=r"^CARTOONIZE_WEIGHTS_URL=.*no-mirror is neither a URL .* nor a folder"
    ):
        pull_style("hosoda")
    assert nothing_cached("hosoda")


def test_pull_all_tries_every_style_and_names_each_failure(tmp_path: Path) -> None:
    """`styles pull all` from a mirror that has none of them: a line for each style, then exit 1."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "PYTHONPATH": str(root), "CARTOONIZE_WEIGHTS_URL": str(tmp_path / "empty")}
    result = subprocess.run([sys.executable, "-m", "cartoonize", "styles", "pull", "all"], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert [line.split(":")[1].strip() for line in errors[:-1]] == list(STYLES), result.stderr
    assert errors[-1] == f"error: {len(STYLES)} of {len(STYLES)} styles failed: {', '.join(STYLES)}"
