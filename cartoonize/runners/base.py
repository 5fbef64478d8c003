"""The one contract every backend keeps.

A runner is a context manager: `__enter__` loads and allocates, `__exit__` frees. Called with a
batch of frames, uint8 (N, H, W, 3) RGB, it returns cartoon frames of the same shape and dtype.
Backends implement `load`, `infer` (on frames whose H and W are multiples of the model's size
multiple: 4 for CartoonGAN, an imported model's own from its ONNX, or its one fixed size) and
`close`; the padding to that size and the crop back live here, once.

`submit(frames)` starts a batch and returns a callable that gives its cartoons: a GPU runner
queues the work and returns at once, so a caller (the video pipeline) can hand it the next batch
before collecting this one and the GPU never waits on the host; elsewhere it runs at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Self

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.model import SIZE_MULTIPLE


def pad_to_multiple(frames: np.ndarray, multiple: int = SIZE_MULTIPLE) -> np.ndarray:
    """Reflect-pad H and W up to a multiple (reflection keeps the border free of seams)."""
    _, h, w, _ = frames.shape
    return pad_to(frames, fitted_size((h, w), multiple, None, "frames"))


def pad_to(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Reflect-pad H and W up to `size` (H, W), each at least the frames' own."""
    _, h, w, _ = frames.shape
    ph, pw = size[0] - h, size[1] - w
    if ph == 0 and pw == 0:
        return frames
    # reflect needs the padding smaller than the side; edge-pad the (tiny) rest
    widths = ((0, 0), (0, ph), (0, pw), (0, 0))
    if h > ph and w > pw:
        return np.pad(frames, widths, mode="reflect")
    return np.pad(frames, widths, mode="edge")


def fitted_size(
    size: tuple[int, int], multiple: int, fixed: tuple[int, int] | None, what: str
) -> tuple[int, int]:
    """The size frames of `size` (H, W) run at: padded to the multiple, or to a model's one fixed
    size, which they must fit in (else a one-line error with the --max-side that makes them fit)."""
    h, w = size
    if fixed is None:
        return h + -h % multiple, w + -w % multiple
    if h <= fixed[0] and w <= fixed[1]:
        return fixed
    fit = int(max(h, w) * min(fixed[0] / h, fixed[1] / w))
    raise CartoonizeError(
        f"{what} takes frames of {fixed[0]}x{fixed[1]} (HxW, a fixed size; smaller ones are padded "
        f"up to it); these are {h}x{w}: add --max-side {fit}"
    )


class Runner(ABC):
    name: str = "runner"
    device: str = "cpu"
    precision: str = "fp32"
    size_multiple: int = SIZE_MULTIPLE  # H and W are padded to this (a model's own, once loaded)
    fixed_size: tuple[int, int] | None = None  # or to this, for a model with one fixed size

    def __enter__(self) -> Self:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return self.submit(frames)()

    def submit(self, frames: np.ndarray) -> Callable[[], np.ndarray]:
        """Start cartoonizing a batch; the returned callable waits for and returns the cartoons."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
        _, h, w, _ = frames.shape
        size = fitted_size((h, w), self.size_multiple, self.fixed_size, self.describe())
        result = self.start(np.ascontiguousarray(pad_to(frames, size)))

        def cropped() -> np.ndarray:
            out = result()
            return out[:, :h, :w] if out.shape[1:3] != (h, w) else out

        return cropped

    def start(self, frames: np.ndarray) -> Callable[[], np.ndarray]:
        """`infer`, started: by default at once (a runner that can queue work overrides this)."""
        out = self.infer(frames)
        return lambda: out

    def describe(self) -> str:
        return f"{self.name} ({self.device}, {self.precision})"

    @abstractmethod
    def load(self) -> None: ...

    @abstractmethod
    def infer(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) with H, W multiples of `size_multiple` -> uint8 of the same shape."""

    def close(self) -> None:  # noqa: B027 - most backends free by dropping references
        pass


class TensorRunner(Runner):
    """A runner whose work happens on torch tensors (`infer_tensor`: uint8 (N, H, W, 3) on its
    device in, the same out); numpy frames travel through pinned memory to the device and back."""

    _work_stream: Any = None

    @abstractmethod
    def infer_tensor(self, frames: Any) -> Any: ...

    def work_stream(self) -> Any:
        """The CUDA stream this runner's batches run on (its own, made on first use): copies and
        engine calls queued there overlap other streams' work and never wait on unrelated kernels."""
        import torch

        if self._work_stream is None:
            self._work_stream = torch.cuda.Stream()
        return self._work_stream

    def infer(self, frames: np.ndarray) -> np.ndarray:
        return self.start(frames)()

    def start(self, frames: np.ndarray) -> Callable[[], np.ndarray]:
        """On the CPU, at once. On a GPU, queued on torch's current stream: the frames go up
        through pinned memory, the engine runs, the cartoons come back into pinned memory, and an
        event marks the end; only the returned callable waits for it. (The pinned input may be
        dropped before its copy ends: torch's pinned-memory cache keeps it until the copy's event.)"""
        import torch

        x = torch.from_numpy(frames)
        if self.device == "cpu":
            out = self.infer_tensor(x).numpy()
            return lambda: out
        with torch.cuda.stream(self.work_stream()):  # not the legacy default stream, which syncs all
            y = self.infer_tensor(x.pin_memory().to(self.device, non_blocking=True))
            host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
            host.copy_(y, non_blocking=True)
            finished = torch.cuda.Event()
            finished.record()

        def result() -> np.ndarray:
            finished.synchronize()
            return host.numpy().copy()  # into pageable memory: the pinned buffer goes back to the cache

        return result
