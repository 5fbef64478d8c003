"""A trained run hands over to the rest of the toolkit: `cartoonize train` through the main CLI,
then `cartoonize export --model` and `cartoonize video --model` on its checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("cv2")

from tests.helpers import make_video, read_video  # noqa: E402
from tests.train.conftest import REPO, tiny_args  # noqa: E402


def cartoonize(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cartoonize", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_trained_checkpoint_exports_and_cartoonizes_video(folders: tuple[Path, Path], tmp_path: Path) -> None:
    photos, cartoons = folders
    result = cartoonize("train", "--photos", str(photos), "--cartoons", str(cartoons), "--out", "runs/mine",
                        *tiny_args(init_epochs=1, init_decay_epochs=0, adv_epochs=1, decay_epochs=0), cwd=tmp_path)  # fmt: skip
    if "No such command 'train'" in result.stderr:
        pytest.skip("the train plugin is not registered (install the package: pip install -e .)")
    assert result.returncode == 0, result.stderr
    checkpoint = tmp_path / "runs" / "mine" / "last.pt"

    result = cartoonize("export", "--model", str(checkpoint), "-o", "mine.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "PSNR" in result.stderr and (tmp_path / "mine.onnx").exists()

    clip = make_video(tmp_path / "clip.mp4", width=48, height=32, frames=6, audio="aac")
    result = cartoonize(
        "video", str(clip), "out.mp4", "--model", str(checkpoint), "--engine", "torch", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert len(read_video(tmp_path / "out.mp4")[1]) == 6
