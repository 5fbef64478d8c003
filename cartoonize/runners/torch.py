"""PyTorch eager runner: the reference every other backend is compared against."""

from __future__ import annotations

import torch

from cartoonize.errors import CartoonizeError
from cartoonize.export import FrameModel, frame_model
from cartoonize.model import Checkpoint
from cartoonize.runners.base import TensorRunner


class TorchRunner(TensorRunner):
    name = "torch"

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: str = "cpu",
        precision: str = "fp32",
        channels_last: bool = False,
    ) -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise CartoonizeError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu")
        if precision == "fp16" and device != "cuda":
            raise CartoonizeError("fp16 runs on a CUDA GPU; on the CPU use --precision fp32 or bf16")
        if precision == "bf16" and device == "cpu":
            from cartoonize.engines.cpu import warn_if_slow_bf16

            warn_if_slow_bf16()
        self.checkpoint = checkpoint
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        self.model: FrameModel | None = None

    def load(self) -> None:
        model = frame_model(self.checkpoint, self.precision).to(self.device)
        if self.channels_last:
            model.generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model = model

    def infer_tensor(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) on this runner's device -> uint8 on the same device."""
        assert self.model is not None, "use the runner as a context manager"
        with torch.inference_mode():
            return self.model(frames)

    def close(self) -> None:
        self.model = None
        if self.device == "cuda":
            torch.cuda.empty_cache()
