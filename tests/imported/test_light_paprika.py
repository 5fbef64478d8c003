"""The real third-party model: ../shared/models/light_paprika.onnx (NHWC float32, RGB in [-1, 1],
dynamic size) imported with no option, then `image`, `video` and `webcam` with its --style."""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cartoonize.cli import main
from tests.conftest import SHARED, SHARED_MEDIA
from tests.helpers import read_video, run_main
from tests.imported.tiny import by_hand

pytestmark = [pytest.mark.shared, pytest.mark.slow]
LIGHT_PAPRIKA = SHARED / "models" / "light_paprika.onnx"
BUNNY = SHARED_MEDIA / "big_buck_bunny_1s.webm"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, out, err = run_main(args, capsys)
    return code, " ".join((out + err).split())  # rich wraps long lines


@pytest.fixture(scope="module")
def paprika_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A cache with light-paprika imported by `models add PATH --name light-paprika` alone."""
    if not LIGHT_PAPRIKA.is_file():
        pytest.skip(f"needs {LIGHT_PAPRIKA}")
    cache = tmp_path_factory.mktemp("paprika-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CARTOONIZE_CACHE", str(cache))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                main(["models", "add", str(LIGHT_PAPRIKA), "--name", "light-paprika"])
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
        assert code == 0, err.getvalue()
    yield cache, " ".join(err.getvalue().split())


@pytest.fixture
def paprika(paprika_cache: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CARTOONIZE_CACHE", str(paprika_cache[0]))
    return paprika_cache[1]


def test_add_needs_no_option_and_detects_the_io(paprika: str) -> None:
    from cartoonize.imported.store import find_model

    model = find_model("light-paprika")
    assert model is not None and model.onnx_path.is_file()
    m = model.manifest
    assert (m.spec.layout, m.spec.dtype, m.spec.value_range, m.spec.channels) == (
        "nhwc",
        "float32",
        (-1.0, 1.0),
        "rgb",
    )
    assert m.spec.multiple == 4 and m.spec.fixed_size is None and m.spec.fixed_batch is None
    assert m.detected["dynamic"] == "N,H,W" and "Tanh" in m.detected["range"]
    assert set(m.assumed) == {"channels"}  # range and layout come from the graph
    assert m.source_sha256 == hashlib.sha256(LIGHT_PAPRIKA.read_bytes()).hexdigest()
    assert m.check["max_abs_diff_vs_numpy"] <= 1 and m.check["mean_abs_change"] > 10
    assert "check passed on a photo" in paprika and "imported light-paprika" in paprika


def test_image(paprika: str, tmp_path: Path, capsys) -> None:
    from cartoonize.export import reference_photo
    from cartoonize.pipelines.image import read_image, write_image

    photo = reference_photo(72, 96)[0]
    src, out = tmp_path / "astronaut.png", tmp_path / "cartoon.png"
    write_image(src, photo)
    code, text = run(
        ["image", str(src), "-o", str(out), "--style", "light-paprika", "--raw"], capsys
    )  # the network alone
    assert code == 0, text
    cartoon = read_image(out)
    assert cartoon.shape == photo.shape and np.abs(cartoon.astype(int) - photo).mean() > 10
    expected = by_hand(LIGHT_PAPRIKA, photo[None], "nhwc", (-1.0, 1.0), "rgb")[0]
    assert np.abs(cartoon.astype(int) - expected).max() <= 1


def test_video_keeps_the_audio(paprika: str, tmp_path: Path, capsys) -> None:
    import av

    out = tmp_path / "bunny.mp4"
    code, text = run(["video", str(BUNNY), str(out), "--style", "light-paprika", "--max-side", "64"], capsys)
    assert code == 0, text
    assert "light-paprika (imported)" in text
    pts_in, _, _ = read_video(BUNNY)
    pts_out, frames, _ = read_video(out)
    assert len(pts_out) == len(pts_in) and frames[0].shape[:2] == (36, 64)
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1


def test_webcam_from_a_file(paprika: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "webcam.mp4"
    args = ["webcam", "--input", str(BUNNY), "--no-preview", "--output", str(out), "--frames", "3",
            "--max-side", "64", "--style", "light-paprika"]  # fmt: skip
    code, text = run(args, capsys)
    assert code == 0, text
    assert "light-paprika (imported)" in text
    assert len(read_video(out)[0]) >= 1
