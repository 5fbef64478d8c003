"""Fixtures for the training tests: small generated image folders and a tiny-run config."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """../shared beside the repository (CARTOONIZE_SHARED overrides, e.g. in a git worktree)."""
    return Path(os.environ.get("CARTOONIZE_SHARED", REPO.parent / "shared"))


def write_images(
    folder: Path, count: int, seed: int, size: tuple[int, int] = (72, 88), noisy: bool = False
) -> None:
    """Flat colour fields with a rectangle and a disc: real edges, real flat regions."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    for i in range(count):
        image = np.empty((h, w, 3), np.uint8)
        image[:] = rng.integers(0, 256, 3)
        colour = [int(c) for c in rng.integers(0, 256, 3)]
        cv2.rectangle(image, (8 + i % 9, 8), (w // 2, h // 2 + i % 7), colour, -1)
        cv2.circle(image, (w * 2 // 3, h // 2), h // 5, [int(c) for c in rng.integers(0, 256, 3)], -1)
        if noisy:
            image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        sub = folder / "part2" if i % 2 else folder  # recursive search
        sub.mkdir(exist_ok=True)
        cv2.imwrite(str(sub / f"{i:03d}.{'png' if i % 3 else 'jpg'}"), image)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    photos, cartoons = tmp_path / "photos", tmp_path / "cartoons"
    write_images(photos, 6, seed=1, noisy=True)
    write_images(cartoons, 6, seed=2)
    return photos, cartoons


TINY = {
    "image_size": 32,
    "load_size": 40,  # a whole-frame view with room for a random crop
    "batch_size": 2,
    "steps_per_epoch": 3,
    "workers": 0,
    "base_channels": 8,
    "residual_blocks": 1,
    "init_epochs": 1,
    "init_decay_epochs": 1,
    "adv_epochs": 1,
    "decay_epochs": 1,
    "vgg": "random",
    "sample_count": 2,
}


def tiny_args(**changes) -> list[str]:
    args = []
    for key, value in {**TINY, **changes}.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


@pytest.fixture(scope="session")
def vgg():
    """The random VGG19 of `--vgg random` (seed 0), built once: a fixed network for value tests."""
    import warnings

    from train.vgg import load_vgg_content

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_vgg_content("random", seed=0)
