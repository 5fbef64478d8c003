"""The initialization phase really trains G towards the photo (content loss only, real photos)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")
cv2 = pytest.importorskip("cv2")
from rich.console import Console  # noqa: E402

from tests.train.test_run import rows  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.run import train  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # shipped inside the scikit-image wheel


def psnr_of_grid(path: Path) -> float:
    """A sample grid is photo | G(photo), one row per validation photo."""
    grid = cv2.imread(str(path)).astype(np.float64)
    half = grid.shape[1] // 2
    mse = ((grid[:, :half] - grid[:, half:]) ** 2).mean()
    return 10 * np.log10(255**2 / mse)


@pytest.mark.slow
def test_init_phase_raises_reconstruction_psnr(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in PHOTOS:
        image = getattr(skimage_data, name)()
        cv2.imwrite(str(photos / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "run"
    config = TrainConfig(
        photos=photos,
        cartoons=photos,  # unused by the init phase
        out=out,
        edge_cache=tmp_path / "edges",
        image_size=64,  # conv4_4 sees 8x8 positions
        batch_size=2,
        steps_per_epoch=150,
        init_lr=1e-3,  # 5x the recipe's 2e-4: a few hundred steps must show it
        # the paper's nominal weight: at the author's effective balance (0.029) the content
        # gradient is ~350x smaller and Adam's eps slows a 150-step init run too much to show
        content_weight=10.0,
        init_epochs=1,
        init_decay_epochs=0,
        adv_epochs=0,
        decay_epochs=0,
        base_channels=8,
        residual_blocks=1,
        vgg="random",
        workers=0,
    )
    train(config, console=Console(file=io.StringIO()))
    before, after = (
        psnr_of_grid(out / "samples" / "epoch_000.png"),
        psnr_of_grid(out / "samples" / "epoch_001.png"),
    )
    content = [float(r["content"]) for r in rows(out)]
    first, last = np.mean(content[:20]), np.mean(content[-20:])
    print(
        f"init phase, 150 steps: PSNR {before:.2f} -> {after:.2f} dB; content loss {first:.4f} -> {last:.4f}"
    )
    assert last < first  # measured 7.59 -> 7.08 with the author's init and whole-frame crops
    assert after > before + 2.0  # measured 10.52 -> 14.92 dB with the author's recipe (10.15 -> 13.20 before)
