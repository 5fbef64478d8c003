"""Helpers shared by the compiled-engine runners (AOTInductor, TensorRT): device tensors in and
out, a fixed batch, a shape check, buffer alignment, and CUDA-graph capture for static shapes."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch

from cartoonize.engines.store import BuildSpec
from cartoonize.errors import CartoonizeError

TensorFn = Callable[[torch.Tensor], torch.Tensor]
TENSOR_ALIGNMENT = 256  # bytes: TensorRT's setTensorAddress wants "at least 256-byte alignment"


def aligned(frames: torch.Tensor, alignment: int = TENSOR_ALIGNMENT) -> torch.Tensor:
    """`frames`, contiguous and starting on an `alignment`-byte boundary; a copy where it is not
    (a batch sliced out of a larger one starts at k·H·W·3 bytes, rarely a multiple of 256)."""
    frames = frames.contiguous()
    if frames.data_ptr() % alignment == 0:
        return frames
    return frames.clone()  # a fresh CUDA allocation starts on a 512-byte boundary


def check_frames(frames: torch.Tensor, spec: BuildSpec, device: str) -> None:
    """uint8 (N, H, W, 3) on the engine's device, with (H, W) inside its shape profile."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    if frames.device.type != device:
        raise ValueError(f"frames are on {frames.device}; this engine runs on {device}")
    size = (int(frames.shape[1]), int(frames.shape[2]))
    if not spec.profile.contains(size):
        from cartoonize.engines.store import ShapeProfile, shape_text

        raise CartoonizeError(
            f"frames of {shape_text(size)} are outside this engine's shape profile "
            f"{spec.profile.describe()}; build one for them: `{spec.command(ShapeProfile.static(size))}`"
        )


def run_fixed_batch(frames: torch.Tensor, batch: int, run: TensorFn) -> torch.Tensor:
    """Run an engine built for exactly `batch` frames on any number: full chunks as they are, the
    last one padded with copies of its final frame (and the extra outputs dropped)."""
    n = frames.shape[0]
    if n == batch:
        return run(frames)
    outputs = []
    for start in range(0, n, batch):
        chunk = frames[start : start + batch]
        short = batch - chunk.shape[0]
        if short:
            chunk = torch.cat([chunk, chunk[-1:].expand(short, *chunk.shape[1:])])
        outputs.append(run(chunk.contiguous())[: batch - short])
    return torch.cat(outputs)


class GraphedCall:
    """Capture `run` on one static input once and replay it: for a static-shape engine at batch 1
    the per-kernel launch cost is a visible share of a 720p frame."""

    def __init__(self, run: TensorFn, example: torch.Tensor) -> None:
        self.input = example.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up off the default stream, as capture requires
            for _ in range(2):
                run(self.input)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = run(self.input)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        self.input.copy_(frames)
        self.graph.replay()
        return self.output.clone()  # the graph reuses its output buffer on the next replay


def cuda_graphs_wanted() -> bool:
    """CUDA-graph replay for static-shape engines is opt-in (`CARTOONIZE_CUDA_GRAPHS=1`): on an
    H200 an AOTInductor fp16 engine at 720p ended in an illegal memory access with capture on
    (2026-11-26), while the same engine family passed at small sizes."""
    return os.environ.get("CARTOONIZE_CUDA_GRAPHS", "0") == "1"


def try_graph(
    run: TensorFn,
    example: torch.Tensor,
    what: str,
    capture: Callable[[TensorFn, torch.Tensor], TensorFn] = GraphedCall,
) -> TensorFn:
    """A CUDA-graphed `run`, or `run` itself (with a warning) where capture fails: a CUDA error
    (RuntimeError) or the engine's own refusal inside the capture (CartoonizeError, e.g. TensorRT's
    enqueue returning false)."""
    try:
        return capture(run, example)
    except (RuntimeError, CartoonizeError) as exc:
        warnings.warn(f"{what}: CUDA graph capture failed ({exc}); running without it", stacklevel=2)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return run
