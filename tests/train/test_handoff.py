"""A trained run hands over to the rest of the toolkit: `cartoonize train` through the main CLI
(in a child process, as the plugin registers itself in an installed package), then
`cartoonize export --model` and `cartoonize video --model` on its checkpoint (the whole CLI in this
process, where torch and its exporter are already warm: a cold child spends ~20 s on them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("cv2")

from tests.helpers import make_video, read_video, run_main  # noqa: E402
from tests.train.conftest import REPO, tiny_args  # noqa: E402


def cartoonize(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cartoonize", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_trained_checkpoint_exports_and_cartoonizes_video(
    folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos, cartoons = folders
    result = cartoonize("train", "--photos", str(photos), "--cartoons", str(cartoons), "--out", "runs/mine",
                        *tiny_args(init_epochs=1, init_decay_epochs=0, adv_epochs=1, decay_epochs=0), cwd=tmp_path)  # fmt: skip
    if "No such command 'train'" in result.stderr:
        pytest.skip("the train plugin is not registered (install the package: pip install -e .)")
    assert result.returncode == 0, result.stderr
    checkpoint = tmp_path / "runs" / "mine" / "last.pt"

    onnx = tmp_path / "mine.onnx"
    code, _, err = run_main(["export", "--model", str(checkpoint), "-o", str(onnx)], capsys)
    assert code == 0, err
    assert "PSNR" in err and onnx.exists()

    clip = make_video(tmp_path / "clip.mp4", width=48, height=32, frames=6, audio="aac")
    out = tmp_path / "out.mp4"
    code, _, err = run_main(
        ["video", str(clip), str(out), "--model", str(checkpoint), "--engine", "torch"], capsys
    )
    assert code == 0, err
    assert len(read_video(out)[1]) == 6
