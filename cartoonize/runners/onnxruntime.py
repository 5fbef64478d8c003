"""ONNX Runtime runner: the CPU default; CUDA and TensorRT providers with onnxruntime-gpu."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.export import INPUT_NAME, OUTPUT_NAME
from cartoonize.runners.base import Runner

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0) -> None:
        if device not in PROVIDERS:
            raise CartoonizeError(f"onnxruntime device must be one of {', '.join(PROVIDERS)}")
        wanted = PROVIDERS[device][0]
        if wanted not in available_providers():
            raise CartoonizeError(
                f"onnxruntime has no {wanted} here; install onnxruntime-gpu "
                "(`pip install 'cartoonize[gpu]'`) or use --device cpu"
            )
        self.path = Path(path)
        self.device = device
        self.threads = threads
        self.session = None

    def load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            session = ort.InferenceSession(str(self.path), options, providers=PROVIDERS[self.device])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CartoonizeError(f"onnxruntime cannot load {self.path}: {first}") from None
        self.precision = session.get_modelmeta().custom_metadata_map.get("precision", "fp32")
        self.session = session

    def infer(self, frames: np.ndarray) -> np.ndarray:
        assert self.session is not None, "use the runner as a context manager"
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: frames})[0]

    def close(self) -> None:
        self.session = None
