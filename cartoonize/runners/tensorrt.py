"""TensorRT runner: a plan file run through the name-based tensor API on torch's CUDA stream.

Frames stay torch tensors on the GPU (`infer_tensor`); TensorRT reads and writes their memory
directly. Static-shape engines are captured once into a CUDA graph and replayed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cartoonize.engines.store import Manifest, check_engine, size_multiple
from cartoonize.errors import CartoonizeError
from cartoonize.export import INPUT_NAME, OUTPUT_NAME
from cartoonize.runners.base import TensorRunner
from cartoonize.runners.device import TensorFn, check_frames, cuda_graphs_wanted, run_fixed_batch, try_graph


class TensorRTRunner(TensorRunner):
    name = "tensorrt"
    device = "cuda"

    def __init__(self, path: Path, manifest: Manifest | None = None, cuda_graph: bool | None = None) -> None:
        if not torch.cuda.is_available():
            raise CartoonizeError("TensorRT engines run on a CUDA GPU; PyTorch sees none here")
        self.path = Path(path)
        self.manifest = manifest or check_engine(self.path)
        self.spec = self.manifest.spec
        self.precision = self.spec.precision
        self.size_multiple = size_multiple(self.manifest)
        if cuda_graph is None:
            cuda_graph = cuda_graphs_wanted()
        self.cuda_graph = cuda_graph and self.spec.profile.is_static
        self.engine: Any = None
        self.context: Any = None
        self._run: TensorFn | None = None

    def load(self) -> None:
        import tensorrt as trt

        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise CartoonizeError(
                f"TensorRT {trt.__version__} cannot load {self.path.name} (see its log above)"
            )
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        if names != {INPUT_NAME, OUTPUT_NAME}:
            raise CartoonizeError(
                f"{self.path.name}: expected tensors {INPUT_NAME}, {OUTPUT_NAME}; has {sorted(names)}"
            )
        self.context = self.engine.create_execution_context()
        example = torch.zeros((self.spec.batch, *self.spec.profile.opt, 3), dtype=torch.uint8, device="cuda")
        self._enqueue(example)  # warm-up: lazy kernel loading, first-call allocations
        torch.cuda.synchronize()
        self._run = try_graph(self._enqueue, example, self.path.name) if self.cuda_graph else self._enqueue

    def _enqueue(self, frames: torch.Tensor) -> torch.Tensor:
        """One engine call on torch's current stream: no host synchronisation, no copies."""
        frames = frames.contiguous()
        if not self.context.set_input_shape(INPUT_NAME, tuple(frames.shape)):
            raise CartoonizeError(f"{self.path.name} does not accept input of shape {tuple(frames.shape)}")
        out = torch.empty(tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=torch.uint8, device="cuda")
        self.context.set_tensor_address(INPUT_NAME, frames.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, out.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise CartoonizeError(f"TensorRT failed to run {self.path.name} (see its log above)")
        return out

    def infer_tensor(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) on the GPU -> uint8 on the GPU, on torch's current stream."""
        assert self._run is not None, "use the runner as a context manager"
        check_frames(frames, self.spec, "cuda")
        return run_fixed_batch(frames, self.spec.batch, self._run)

    def describe(self) -> str:
        return f"tensorrt {self.path.name} ({self.precision})"

    def close(self) -> None:
        self._run = self.context = self.engine = None
        torch.cuda.empty_cache()
