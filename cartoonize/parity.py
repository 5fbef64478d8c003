"""Runners compared against the reference: PSNR in uint8 between two frame batches, the
thresholds an export or an engine must pass, and the export that is checked before it is kept.

It sits above `export` and `runners` (it runs both), so neither of them imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.export import PSNR_THRESHOLDS, onnx_from_checkpoint, reference_photo
from cartoonize.model import Checkpoint, load_checkpoint
from cartoonize.runners.onnxruntime import OnnxRuntimeRunner
from cartoonize.runners.torch import TorchRunner

__all__ = ["PSNR_THRESHOLDS", "Parity", "export_with_parity", "onnx_parity", "parity"]


@dataclass(frozen=True)
class Parity:
    max_abs_diff: int
    psnr_db: float
    shape: tuple[int, ...]

    def passes(self, precision: str) -> bool:
        return self.psnr_db >= PSNR_THRESHOLDS[precision]

    def describe(self) -> str:
        if self.max_abs_diff == 0:  # an infinite PSNR: it printed "PSNR inf dB"
            return f"identical to the reference, bit for bit, on {self.shape}"
        return f"max |diff| {self.max_abs_diff}/255, PSNR {self.psnr_db:.1f} dB on {self.shape}"


def parity(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """Compare two uint8 frame batches."""
    diff = reference.astype(np.int16) - candidate.astype(np.int16)
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    psnr = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    return Parity(int(np.abs(diff).max()), psnr, tuple(reference.shape))


def onnx_parity(checkpoint: Checkpoint, onnx_path: Path, precision: str, photo: np.ndarray) -> Parity:
    """ONNX Runtime (CPU) on the exported graph against the fp32 PyTorch reference."""
    with TorchRunner(checkpoint, device="cpu", precision="fp32") as ref:
        expected = ref(photo)
    with OnnxRuntimeRunner(onnx_path, device="cpu") as run:
        actual = run(photo)
    return parity(expected, actual)


def export_with_parity(
    checkpoint_path: Path, output: Path, precision: str = "fp32", opset: int = 18, photo_size: int = 256
) -> Parity:
    """Export, then compare ONNX Runtime with PyTorch fp32 on a real photo; an export that fails
    the precision's PSNR threshold is removed and reported."""
    checkpoint = load_checkpoint(checkpoint_path)
    onnx_from_checkpoint(checkpoint, output, precision, opset)
    check = onnx_parity(checkpoint, output, precision, reference_photo(photo_size, photo_size))
    if not check.passes(precision):
        output.unlink(missing_ok=True)
        raise CartoonizeError(
            f"the exported {precision} ONNX disagrees with PyTorch ({check.describe()}; "
            f"needs ≥ {PSNR_THRESHOLDS[precision]} dB); nothing was written"
        )
    return check
