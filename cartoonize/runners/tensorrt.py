"""TensorRT runner: a plan file run through the name-based tensor API on a stream of its own.

Frames stay torch tensors on the GPU (`infer_tensor`); TensorRT reads and writes their memory
directly, so the runner checks what the plan's I/O tensors are (names, modes, uint8) before the
first call and that every address it hands over is one TensorRT takes (256-byte aligned, the
`set_tensor_address` result checked). `enqueueV3` on the legacy default stream makes TensorRT add
device-wide synchronisation ("Using default stream may lead to performance issues due to
additional cudaDeviceSynchronize() calls"): called from the default stream, the runner enqueues on
its own stream, ordered after the caller's work and before the caller's next. Static-shape engines
can be captured once into a CUDA graph and replayed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cartoonize.engines.store import Manifest, check_engine, size_multiple
from cartoonize.errors import CartoonizeError
from cartoonize.export import INPUT_NAME, OUTPUT_NAME
from cartoonize.runners.base import TensorRunner
from cartoonize.runners.device import (
    TENSOR_ALIGNMENT,
    TensorFn,
    aligned,
    check_frames,
    cuda_graphs_wanted,
    run_fixed_batch,
    try_graph,
)

# what the plan's I/O must be: name -> (TensorIOMode name, DataType name)
EXPECTED_IO = {INPUT_NAME: ("INPUT", "UINT8"), OUTPUT_NAME: ("OUTPUT", "UINT8")}


def io_problems(tensors: dict[str, tuple[str, str]]) -> list[str]:
    """What is wrong with a plan's I/O tensors ({name: (mode, dtype)}, TensorRT's enum names):
    another name, an input where an output belongs, or float where the frames are uint8 (TensorRT
    would write 4 bytes an element into a 1-byte buffer)."""
    if set(tensors) != set(EXPECTED_IO):
        return [
            f"expected tensors {', '.join(sorted(EXPECTED_IO))}; has {', '.join(sorted(tensors)) or 'none'}"
        ]
    problems = []
    for name, (mode, dtype) in EXPECTED_IO.items():
        got_mode, got_dtype = tensors[name]
        if got_mode != mode:
            problems.append(f"{name} is an {got_mode.lower()} tensor, expected {mode.lower()}")
        if got_dtype != dtype:
            problems.append(f"{name} is {got_dtype.lower()}, expected uint8 frames")
    return problems


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
        self.stream: torch.cuda.Stream | None = None
        self._run: TensorFn | None = None

    def load(self) -> None:
        import tensorrt as trt

        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise CartoonizeError(
                f"TensorRT {trt.__version__} cannot load {self.path.name} (see its log above)"
            )
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        found = {
            n: (self.engine.get_tensor_mode(n).name, self.engine.get_tensor_dtype(n).name) for n in names
        }
        problems = io_problems(found)
        if problems:
            raise CartoonizeError(f"{self.path.name} is not a cartoonize engine: {'; '.join(problems)}")
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise CartoonizeError(f"TensorRT cannot create an execution context for {self.path.name}")
        self.stream = torch.cuda.Stream()
        example = torch.zeros((self.spec.batch, *self.spec.profile.opt, 3), dtype=torch.uint8, device="cuda")
        self._enqueue(example)  # warm-up: lazy kernel loading, first-call allocations
        torch.cuda.synchronize()
        self._run = try_graph(self._enqueue, example, self.path.name) if self.cuda_graph else self._enqueue

    def _address(self, name: str, tensor: torch.Tensor) -> None:
        if tensor.data_ptr() % TENSOR_ALIGNMENT or not self.context.set_tensor_address(
            name, tensor.data_ptr()
        ):
            raise CartoonizeError(f"TensorRT refused the address of {name} for {self.path.name}")

    def _enqueue(self, frames: torch.Tensor) -> torch.Tensor:
        """One engine call, ordered on the caller's stream: no host synchronisation, no copies
        (but one where a batch does not start on a 256-byte boundary)."""
        frames = aligned(frames)
        if not self.context.set_input_shape(INPUT_NAME, tuple(frames.shape)):
            raise CartoonizeError(f"{self.path.name} does not accept input of shape {tuple(frames.shape)}")
        out = torch.empty(tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=torch.uint8, device="cuda")
        self._address(INPUT_NAME, frames)
        self._address(OUTPUT_NAME, out)
        caller = torch.cuda.current_stream()
        stream = self.stream if caller.cuda_stream == 0 and self.stream is not None else caller
        if stream is not caller:
            stream.wait_stream(caller)  # the frames were written on the caller's stream
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise CartoonizeError(f"TensorRT failed to run {self.path.name} (see its log above)")
        if stream is not caller:
            caller.wait_stream(stream)  # the caller reads `out` (and may reuse `frames`) after this
        return out

    def infer_tensor(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) on the GPU -> uint8 on the GPU, ordered on torch's current stream."""
        assert self._run is not None, "use the runner as a context manager"
        check_frames(frames, self.spec, "cuda")
        return run_fixed_batch(frames, self.spec.batch, self._run)

    def describe(self) -> str:
        return f"tensorrt {self.path.name} ({self.precision})"

    def close(self) -> None:
        self._run = self.context = self.engine = None
        self.stream = None
        torch.cuda.empty_cache()
