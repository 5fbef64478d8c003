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
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from cartoonize.architecture import SIZE_MULTIPLE, run_side
from cartoonize.errors import CartoonizeError


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
        return run_side(h, multiple), run_side(w, multiple)
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
        padded, h, w = self.fitted_batch(frames)
        result = self.start(padded)

        def cropped() -> np.ndarray:
            out = result()
            return out[:, :h, :w] if out.shape[1:3] != (h, w) else out

        return cropped

    def fitted_batch(self, frames: np.ndarray) -> tuple[np.ndarray, int, int]:
        """A batch checked and padded to a size this model takes, with the frames' own height and
        width (to crop the cartoons back to)."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
        _, h, w, _ = frames.shape
        size = fitted_size((h, w), self.size_multiple, self.fixed_size, self.describe())
        return np.ascontiguousarray(pad_to(frames, size)), h, w

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


@dataclass(frozen=True)
class DeviceFrame:
    """One frame left where a TensorRunner ran it: the frame the network saw and its cartoon, uint8
    (H, W, 3) tensors on the runner's device. `ready` is the CUDA event after which both hold their
    values (None on the CPU, where they do at once)."""

    source: Any
    cartoon: Any
    ready: Any = None

    def take(self) -> tuple[Any, Any]:
        """The two tensors, for work queued on the current stream: the stream waits for `ready` (on
        the device, the host does not), and their memory is kept from reuse until that stream's
        work on them ends (the caching allocator knows only the runner's stream otherwise)."""
        if self.ready is None:
            return self.source, self.cartoon
        import torch

        stream = torch.cuda.current_stream(self.source.device)
        stream.wait_event(self.ready)
        for tensor in (self.source, self.cartoon):
            tensor.record_stream(stream)
        return self.source, self.cartoon


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

    def submit_on_device(self, frames: np.ndarray) -> Callable[[], list[DeviceFrame]]:
        """`submit`, with each frame and its cartoon left on this runner's device (`DeviceFrame`s)
        for a frame stage that runs there (`stages.device`): no download and upload between the
        network and the stages. Nothing waits for the GPU here; the stage's stream waits on the
        batch's event."""
        import torch

        padded, h, w = self.fitted_batch(frames)
        x = torch.from_numpy(padded)
        ready = None
        if self.device == "cpu":
            y = self.infer_tensor(x)
        else:
            with torch.cuda.stream(self.work_stream()):
                x = x.pin_memory().to(self.device, non_blocking=True)
                y = self.infer_tensor(x)
                ready = torch.cuda.Event()
                ready.record()
        out = [DeviceFrame(x[i, :h, :w], y[i, :h, :w], ready) for i in range(len(padded))]
        return lambda: out


def _reflect_index(n: int, size: int) -> list[int]:
    """Indices that extend 0..n-1 to `size` by reflection (edge-held where n is tiny)."""
    out = list(range(n))
    while len(out) < size:
        k = len(out)
        out.append(2 * (n - 1) - k if n > 1 and 2 * (n - 1) - k >= 0 else n - 1)
    return out


def _select(frames: Any, rows: Any, cols: Any) -> Any:
    """(N, H, W, C) frames with these rows and columns (index tensors; None keeps them all)."""
    if rows is not None:
        frames = frames.index_select(1, rows)
    return frames if cols is None else frames.index_select(2, cols)


class YuvFrames:
    """The GPU frame path of a TensorRunner: the decoder's 4:2:0 planes in, 4:2:0 planes for the
    encoder out; YUV -> RGB, the scaling for `--max-side`, rotation, the pad to a multiple of 4,
    the network, the crop, the pad to even sides and RGB -> YUV all run where the runner does (on
    its own CUDA stream on a GPU), with one upload and one download of compact planes per batch."""

    def __init__(
        self,
        runner: TensorRunner,
        source: Any,
        target: Any,
        rotation: int = 0,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.runner = runner
        self.source, self.target = source, target  # cartoonize.media.yuv.YuvSpec of the decoder / encoder
        self.k = rotation // 90 % 4
        self.size = size  # (width, height) to scale the decoded frames to, before rotating; None: as they are
        self._indexes: dict[tuple[int, int], tuple[Any, ...]] = {}  # (H, W) -> index tensors, or None

    def _index_tensors(self, h: int, w: int, device: Any) -> tuple[Any, ...]:
        """Row and column indexes for an upright (h, w) frame: the reflect-pad up to the network's
        multiple; None where an index is the identity (no copy). Made on the device once per size:
        a `torch.tensor(list, device="cuda")` each batch is a blocking copy from pageable memory on
        the work stream, which waits for the batch already in flight and so ends the overlap."""
        if (h, w) not in self._indexes:
            import torch

            ph, pw = run_side(h, self.runner.size_multiple), run_side(w, self.runner.size_multiple)
            self._indexes[(h, w)] = tuple(
                None if index == list(range(n)) else torch.tensor(index, device=device)
                for index, n in ((_reflect_index(h, ph), h), (_reflect_index(w, pw), w))
            )
        return self._indexes[(h, w)]

    def _stream(self) -> Any:
        """The context the batch's work is queued in: the runner's own stream on CUDA."""
        import contextlib

        import torch

        return (
            torch.cuda.stream(self.runner.work_stream())
            if self.runner.device == "cuda"
            else contextlib.nullcontext()
        )

    def _network(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[Any, Any, int, int]:
        """Inside `_stream`: the planes uploaded and converted, and the network queued on them.
        Gives the upright RGB frames (N, h, w, 3), their cartoons at the network's padded size, and
        (h, w)."""
        import torch

        from cartoonize.media.yuv import resized, yuv420_to_rgb

        planes = [torch.from_numpy(p) for p in (y, u, v)]
        if self.runner.device == "cuda":
            planes = [p.pin_memory().to("cuda", non_blocking=True) for p in planes]
        rgb = yuv420_to_rgb(planes[0], planes[1], planes[2], self.source)  # (N, H, W, 3)
        if self.size is not None and (rgb.shape[2], rgb.shape[1]) != self.size:
            rgb = resized(rgb, self.size[1], self.size[0])  # --max-side
        if self.k:
            rgb = torch.rot90(rgb, self.k, dims=(1, 2))
        _, h, w, _ = rgb.shape
        pad_rows, pad_cols = self._index_tensors(h, w, rgb.device)
        return rgb, self.runner.infer_tensor(_select(rgb, pad_rows, pad_cols).contiguous()), h, w

    def submit(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> Callable[[], tuple[np.ndarray, ...]]:
        """Batched planes (N, H, W), (N, ceil(H/2), ceil(W/2)) -> a callable giving the output planes."""
        import torch

        from cartoonize.media.yuv import even_sides, rgb_to_yuv420

        with self._stream():
            rgb, cartoon, h, w = self._network(y, u, v)
            # back to (h, w), then the last row/column repeated to even sides, as 4:2:0 encoders want
            out = rgb_to_yuv420(even_sides(cartoon[:, :h, :w]), self.target)
            if self.runner.device != "cuda":
                result = tuple(p.numpy() for p in out)
                return lambda: result
            host = [torch.empty(p.shape, dtype=p.dtype, pin_memory=True) for p in out]
            for dst, src in zip(host, out, strict=True):
                dst.copy_(src, non_blocking=True)
            finished = torch.cuda.Event()
            finished.record()

        def collect() -> tuple[np.ndarray, ...]:
            finished.synchronize()
            return tuple(p.numpy().copy() for p in host)

        return collect

    def submit_on_device(
        self, y: np.ndarray, u: np.ndarray, v: np.ndarray
    ) -> Callable[[], list[DeviceFrame]]:
        """`submit`, with each upright frame and its cartoon left on the runner's device
        (`DeviceFrame`s at the frame's own size) for the frame stages there, which convert the
        result to planes themselves (`stages.device`). Nothing waits for the GPU here."""
        import torch

        with self._stream():
            rgb, cartoon, h, w = self._network(y, u, v)
            ready = None
            if self.runner.device == "cuda":
                ready = torch.cuda.Event()
                ready.record()
        out = [DeviceFrame(rgb[i], cartoon[i, :h, :w], ready) for i in range(rgb.shape[0])]
        return lambda: out
