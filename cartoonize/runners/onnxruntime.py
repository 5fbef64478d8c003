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
        self.fixed_batch: int | None = None
        self.style: str | None = None

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
        inputs = session.get_inputs()
        frames_in = inputs[0]
        if (
            len(inputs) != 1
            or frames_in.name != INPUT_NAME
            or frames_in.type != "tensor(uint8)"
            or len(frames_in.shape) != 4
        ):
            raise CartoonizeError(
                f"{self.path.name} takes {frames_in.name} {frames_in.type}, not uint8 frames: it is not a "
                f"cartoonize model; import it first: `cartoonize models add {self.path} --name NAME`"
            )
        metadata = session.get_modelmeta().custom_metadata_map
        self.precision = metadata.get("precision", "fp32")
        # an imported model says its own multiple, and its graph may fix N or H and W
        self.size_multiple = int(metadata.get("size_multiple", self.size_multiple))
        n, h, w, _ = frames_in.shape
        self.fixed_size = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self.fixed_batch = n if isinstance(n, int) else None
        self.style = metadata.get("style") if "imported_from_sha256" in metadata else None
        self.session = session

    def infer(self, frames: np.ndarray) -> np.ndarray:
        assert self.session is not None, "use the runner as a context manager"
        step = self.fixed_batch or len(frames)
        if len(frames) % step:
            raise CartoonizeError(f"{self.path.name} takes batches of {step} frames; use --batch {step}")
        parts = [self.session.run([OUTPUT_NAME], {INPUT_NAME: frames[i : i + step]})[0]
                 for i in range(0, len(frames), step)]  # fmt: skip
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def describe(self) -> str:
        imported = f" {self.style} (imported)" if self.style else ""  # an imported model's name
        return f"{self.name}{imported} ({self.device}, {self.precision})"

    def close(self) -> None:
        self.session = None
