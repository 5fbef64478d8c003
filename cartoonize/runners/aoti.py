"""AOTInductor runner: a `.pt2` package compiled ahead of time for one PyTorch build and device."""

from __future__ import annotations

from pathlib import Path

import torch

from cartoonize.engines.store import Manifest, check_engine
from cartoonize.runners.base import TensorRunner
from cartoonize.runners.device import TensorFn, check_frames, cuda_graphs_wanted, run_fixed_batch, try_graph


class AotiRunner(TensorRunner):
    name = "aoti"

    def __init__(self, path: Path, manifest: Manifest | None = None, cuda_graph: bool | None = None) -> None:
        self.path = Path(path)
        self.manifest = manifest or check_engine(self.path)
        self.spec = self.manifest.spec
        self.device = self.spec.device
        self.precision = self.spec.precision
        if cuda_graph is None:
            cuda_graph = cuda_graphs_wanted()
        self.cuda_graph = cuda_graph and self.device == "cuda" and self.spec.profile.is_static
        self._run: TensorFn | None = None
        self._weights: dict[str, torch.Tensor] = {}

    def load(self) -> None:
        from torch._inductor import aoti_load_package

        from cartoonize.engines.aoti import packaged_weights

        # single-threaded: no runner locks, which CUDA-graph capture cannot contain
        model = aoti_load_package(str(self.path), run_single_threaded=self.cuda_graph)
        # a `weights-beside` package: the weights are handed over the way torch's own pt2 loader
        # does (user-managed: the model reads these tensors, which the runner keeps alive)
        self._weights = packaged_weights(self.path, self.device)
        if self._weights:
            model.load_constants(self._weights, check_full_update=True, user_managed=True)
        example = torch.zeros((self.spec.batch, *self.spec.profile.opt, 3), dtype=torch.uint8,
                              device=self.device)  # fmt: skip
        with torch.inference_mode():
            model(example)  # warm-up: first-call allocations and lazy CUDA module loads
            self._run = try_graph(model, example, self.path.name) if self.cuda_graph else model

    def infer_tensor(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) on the engine's device -> uint8 on the same device; no host copies."""
        assert self._run is not None, "use the runner as a context manager"
        check_frames(frames, self.spec, self.device)
        with torch.inference_mode():
            return run_fixed_batch(frames, self.spec.batch, self._run)

    def describe(self) -> str:
        return f"aoti {self.path.name} ({self.device}, {self.precision})"

    def close(self) -> None:
        self._run = None
        self._weights = {}
        if self.device == "cuda":
            torch.cuda.empty_cache()
