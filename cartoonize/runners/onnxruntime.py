"""ONNX Runtime runner: the CPU default; CUDA and TensorRT providers with onnxruntime-gpu.

A run goes to a thread of the runner's own while the caller waits for it, so that Ctrl-C or a
`kill` (SIGTERM: a container stopping, whose grace period is often 10 s) stops the job within a
node of the graph: Python handles a signal only once the call it is in returns, and one run of a
4K frame takes tens of seconds on a laptop's CPU. The run is told to end (`RunOptions.terminate`)
and the interrupt goes on as before.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.export import INPUT_NAME, OUTPUT_NAME
from cartoonize.runners.base import Runner

# how often the caller wakes while a run goes on: the kernel may hand a process's signal to any of
# its threads (ONNX Runtime's own), and Python's handler runs once the main thread wakes
WAKE_S = 0.05

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
        self._runs: ThreadPoolExecutor | None = None  # the thread the runs go to
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
        parts = [self._run(frames[i : i + step]) for i in range(0, len(frames), step)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _run(self, frames: np.ndarray) -> np.ndarray:
        """One `session.run`, on the runner's thread; an interrupt while it runs ends it (see above)."""
        import onnxruntime as ort

        if self._runs is None:
            self._runs = ThreadPoolExecutor(1, thread_name_prefix="onnxruntime")
        options = ort.RunOptions()
        running = self._runs.submit(self._session_run, frames, options)
        try:
            while True:  # awake every 50 ms: a signal another thread took is handled here then
                try:
                    return running.result(timeout=WAKE_S)
                except FutureTimeout:
                    continue
        except BaseException:
            if not running.done():  # interrupted while it runs: ended at the next node, its error dropped
                options.terminate = True
                _ended(running)
            raise

    def _session_run(self, frames: np.ndarray, options: Any) -> np.ndarray:  # noqa: ANN401 - ort.RunOptions
        assert self.session is not None
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: frames}, options)[0]

    def describe(self) -> str:
        imported = f" {self.style} (imported)" if self.style else ""  # an imported model's name
        return f"{self.name}{imported} ({self.device}, {self.precision})"

    def close(self) -> None:
        if self._runs is not None:
            self._runs.shutdown(wait=True)
            self._runs = None
        self.session = None


def _ended(running: Any) -> None:  # noqa: ANN401 - a concurrent.futures.Future
    """Wait for a run told to terminate; what it raises (ONNX Runtime's "Exiting due to terminate
    flag") is the interrupt's doing, not another error."""
    try:
        running.result()
    except Exception:  # noqa: BLE001, S110 - the run's own end, already reported as the interrupt
        pass
