"""The network's arithmetic against an independent re-implementation (tests/reference.py): the
generator, the uint8 wrapper's scaling and channel order, and every CPU runner and the ONNX
export, for weights that expect RGB and weights that expect BGR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cartoonize.choose import EngineRequest, runner_for
from cartoonize.export import reference_photo
from cartoonize.model import Checkpoint, load_checkpoint
from cartoonize.parity import PSNR_THRESHOLDS, parity
from tests.reference import reference_frames, reference_generator, seeded_checkpoint


def frames_to_check(h: int, w: int) -> np.ndarray:
    """A real photo and seeded noise: smooth regions and every value 0..255."""
    noise = np.random.default_rng(3).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    return np.concatenate([reference_photo(h, w), noise])


def assert_matches_reference(checkpoint_path: Path, frames: np.ndarray, out: np.ndarray) -> None:
    expected = reference_frames(load_checkpoint(checkpoint_path), frames)
    check = parity(expected, out)
    assert check.psnr_db >= PSNR_THRESHOLDS["fp32"] and check.max_abs_diff <= 2, check.describe()
    # fp32 against float64 differs only where a value lies on a rounding boundary: a scale off by
    # one level in 255 (x 128.5 for x 127.5) stays within 2 levels but moves every pixel
    assert np.abs(out.astype(np.int16) - expected).mean() < 0.02, check.describe()


def saturated(checkpoint: Checkpoint) -> Checkpoint:
    """The same network with its last bias pushed to +-6 on red and blue: tanh saturates there,
    so the output holds exact 0s and 255s (the ends of the uint8 wrapper's range)."""
    state = dict(checkpoint.state_dict)
    state["out.1.bias"] = state["out.1.bias"] + torch.tensor([6.0, 0.0, -6.0])
    return Checkpoint(state, checkpoint.config, checkpoint.io)


def test_the_wrapper_reaches_both_ends_of_the_range(tmp_path: Path) -> None:
    """Where the generator's tanh saturates, the cartoon is exactly 255 and 0 (not 254 or 1)."""
    path = tmp_path / "saturated.pt"
    saturated(seeded_checkpoint()).save(path)
    frames = frames_to_check(32, 32)
    with runner_for(EngineRequest(engine="torch", model=path, device="cpu")) as runner:
        out = runner(frames)
    assert (out[..., 0] == 255).mean() > 0.5 and (out[..., 2] == 0).mean() > 0.5
    assert_matches_reference(path, frames, out)


@pytest.mark.parametrize("seed", [0, 1])
def test_generator_computes_the_reference(seed: int) -> None:
    checkpoint = seeded_checkpoint(seed=seed)
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        y = checkpoint.generator()(x)
    expected = reference_generator(checkpoint.state_dict, checkpoint.config, x)
    assert y.shape == expected.shape
    assert torch.allclose(y.double(), expected, atol=1e-4), (y.double() - expected).abs().max()
    assert expected.std() > 0.05  # the seeded network is not flat: the comparison means something


def test_reference_tells_the_channel_orders_apart(tiny_bgr_checkpoint: Path) -> None:
    """The reference is itself sensitive to what it checks: the same weights read as RGB give
    another picture."""
    frames = frames_to_check(32, 32)
    bgr = load_checkpoint(tiny_bgr_checkpoint)
    as_rgb = type(bgr)(bgr.state_dict, bgr.config, type(bgr.io)(channel_order="RGB"))
    assert parity(reference_frames(bgr, frames), reference_frames(as_rgb, frames)).psnr_db < 35


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
@pytest.mark.parametrize("which", ["rgb", "bgr"])
def test_cpu_runners_compute_the_reference(
    engine: str, which: str, tiny_checkpoint: Path, tiny_bgr_checkpoint: Path
) -> None:
    """Each runner (ONNX Runtime through the exported graph) gives what the reference gives,
    on a size that needs the reflect-pad to 4 and crop."""
    checkpoint = tiny_checkpoint if which == "rgb" else tiny_bgr_checkpoint
    frames = frames_to_check(37, 46)
    with runner_for(EngineRequest(engine=engine, model=checkpoint, device="cpu")) as runner:
        out = runner(frames)
    assert_matches_reference(checkpoint, frames, out)
