"""Generated scenes for the stage tests, and the per-frame cartoons of a tiny generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cartoonize.choose import EngineRequest, runner_for

H, W = 48, 64


def texture(seed: int, h: int = H, w: int = W, cells: int = 4) -> np.ndarray:
    """A smooth random picture with full contrast (blurred noise): something flow can follow."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (max(2, h // cells), max(2, w // cells), 3)).astype(np.float32)
    smooth = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (30 + 200 * smooth).astype(np.uint8)


def with_noise(frame: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).round().astype(np.uint8)


def cartoons(frames: list[np.ndarray], checkpoint: Path) -> list[np.ndarray]:
    """The network's per-frame output (a real generator, with instance norms like CartoonGAN's)."""
    request = EngineRequest(engine="torch", model=checkpoint, device="cpu")
    with runner_for(request, frames[0].shape[:2]) as runner:
        return list(runner(np.stack(frames)))


def luma_mean(frame: np.ndarray) -> float:
    return float((frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).mean())
