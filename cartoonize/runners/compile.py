"""`torch.compile` runner: the generator compiled by Inductor, one static graph per frame size and
batch, fp16 on CUDA and fp32 on the CPU.

- Inductor's caches (the FX graph cache and the autotuning results) live under the cartoonize
  cache folder (`$CARTOONIZE_CACHE/inductor`), so a second run at a size already seen loads the
  compiled code instead of compiling it again.
- A size seen for the first time prints one line ("compiling the engine for 1080x1920, first run
  only, ~N s"); N is the last compile time recorded for this model, device and precision.
- Each compiled graph is compared once with the eager fp32 reference on a photo of that size, with
  `build-engine`'s thresholds (fp32 ≥ 45 dB, fp16 ≥ 38 dB); the result is remembered per
  (model, size, batch, device, precision, torch version) in `$CARTOONIZE_CACHE/compile/checks.json`.
- Anything that fails (Inductor cannot compile here, no C++ compiler, the parity check) falls back
  to eager PyTorch for that size with one warning, never a traceback.

Mode and layout (`default`, NCHW) are a plan until measured on the GPU: DESIGN.md's H200 figures
show `default` and `max-autotune-no-cudagraphs` within 6 % at 1080p (84 vs 89 fps) for a 4-11×
longer compile (7-19 s vs 83 s), and NCHW and channels_last level once compiled; eager
channels_last was slower (instance norm). `python -m tests.gpu_check` times every mode × layout at
720p and 1080p (step `compile-modes`); the default here follows what it measures.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cartoonize.errors import CartoonizeError
from cartoonize.export import PSNR_THRESHOLDS, FrameModel, frame_model, reference_photo
from cartoonize.media.files import write_atomic
from cartoonize.model import Checkpoint
from cartoonize.runners.base import TensorRunner

MODES = ("default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune")
DEFAULT_MODE = "default"
PARITY_DB = PSNR_THRESHOLDS  # build-engine's gate: fp32 ≥ 45 dB, fp16 ≥ 38 dB
FIRST_GUESS_S = {"cuda": 20.0, "cpu": 30.0}  # before anything was recorded here (DESIGN.md; this CPU)


def inductor_cache_dir() -> Path:
    from cartoonize.styles import cache_dir

    return cache_dir() / "inductor"


@contextlib.contextmanager
def inductor_caches() -> Iterator[None]:
    """Point Inductor's on-disk caches at the cartoonize cache while compiling (Inductor reads
    the folder from the environment when it writes or looks up an entry). Where that folder cannot
    be written (a read-only cache), Inductor keeps its own default caches: it compiles all the
    same, and a later run compiles again."""
    from cartoonize.styles import cache_folder

    try:
        folder = cache_folder(inductor_cache_dir().name)
    except CartoonizeError:
        yield
        return
    saved = {k: os.environ.get(k) for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")
    from torch._inductor import config

    with config.patch(fx_graph_cache=True, autotune_local_cache=True):
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


class ChecksFile:
    """`$CARTOONIZE_CACHE/compile/checks.json`: parity results and compile times, by key."""

    def __init__(self) -> None:
        from cartoonize.styles import cache_dir

        self.path = cache_dir() / "compile" / "checks.json"
        self._unsaved: dict[str, Any] = {}  # this run's records, where the file cannot be written

    def read(self) -> dict[str, Any]:
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):  # none yet, unreadable or corrupt
            saved = {}
        return {**saved, **self._unsaved}

    def update(self, key: str, **values: Any) -> None:
        data = self.read()
        data[key] = {**data.get(key, {}), **values}
        try:
            write_atomic(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        except OSError:  # a read-only cache: remembered for this run only
            self._unsaved[key] = data[key]


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


class CompileRunner(TensorRunner):
    name = "compile"

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: str = "cpu",
        precision: str | None = None,
        frame_size: tuple[int, int] | None = None,
        mode: str = DEFAULT_MODE,
        channels_last: bool = False,
        model_key: str = "",
        notify: Callable[[str], None] | None = None,
    ) -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise CartoonizeError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu")
        precision = precision or ("fp16" if device == "cuda" else "fp32")
        if precision == "fp16" and device != "cuda":
            raise CartoonizeError("fp16 runs on a CUDA GPU; on the CPU use --precision fp32")
        if mode not in MODES:
            raise CartoonizeError(f"compile mode {mode!r}: use one of {', '.join(MODES)}")
        self.checkpoint = checkpoint
        self.device = device
        self.precision = precision
        self.frame_size = frame_size
        self.mode = mode
        self.channels_last = channels_last
        self.model_key = model_key or checkpoint.io.style or "model"
        self.notify = notify or (lambda line: print(line, file=sys.stderr, flush=True))
        self.eager: FrameModel | None = None
        self.compiled: Any = None
        self.shapes: dict[tuple[int, ...], bool] = {}  # (N, H, W) -> compiled (True) or eager (False)
        self.compile_seconds: dict[tuple[int, ...], float] = {}
        self.checks = ChecksFile()

    # -- loading -------------------------------------------------------------------------------

    def load(self) -> None:
        model = frame_model(self.checkpoint, self.precision).to(self.device).eval()
        if self.channels_last:
            model.generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.eager = model
        from torch._dynamo import config as dynamo_config

        # one graph per (size, batch): allow many before dynamo gives up and runs eager silently
        for limit in ("recompile_limit", "cache_size_limit"):
            if hasattr(dynamo_config, limit):
                setattr(dynamo_config, limit, max(64, getattr(dynamo_config, limit)))
        self.compiled = torch.compile(model, mode=self.mode, dynamic=False, fullgraph=True)
        if self.frame_size is not None:
            from cartoonize.engines.store import padded

            h, w = padded(self.frame_size)
            self._prepare((1, h, w))

    def key(self, shape: tuple[int, ...]) -> str:
        n, h, w = shape
        layout = ".cl" if self.channels_last else ""
        return (f"{self.model_key}.{self.device}.{self.precision}.{h}x{w}.b{n}.{self.mode}{layout}"
                f".torch{torch.__version__}")  # fmt: skip

    def _estimate(self, key: str) -> float:
        records = self.checks.read()
        if key in records and "compile_s" in records[key]:
            return float(records[key]["compile_s"])
        prefix = f"{self.model_key}.{self.device}.{self.precision}."
        times = [
            float(r["compile_s"]) for k, r in records.items() if k.startswith(prefix) and "compile_s" in r
        ]
        return max(times) if times else FIRST_GUESS_S[self.device]

    def _prepare(self, shape: tuple[int, ...]) -> bool:
        """Compile for `shape` (N, H, W) and check it once; whether the compiled graph serves it."""
        if shape in self.shapes:
            return self.shapes[shape]
        n, h, w = shape
        key = self.key(shape)
        before = self.checks.read().get(key, {})
        if "compile_s" in before:  # compiled by an earlier run: Inductor's caches hold it
            self.notify(f"loading the compiled engine for {h}x{w} (batch {n}) from the cache, "
                        f"~{before.get('load_s', before['compile_s']):.0f} s")  # fmt: skip
        else:
            self.notify(
                f"compiling the engine for {h}x{w} (batch {n}), first run only, ~{self._estimate(key):.0f} s"
            )
        photo = reference_photo(h, w)
        frames = torch.from_numpy(np.ascontiguousarray(np.repeat(photo, n, axis=0))).to(self.device)
        started = time.perf_counter()
        try:
            with inductor_caches(), torch.inference_mode():
                out = self.compiled(frames)
                if self.device == "cuda":
                    torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001 - Inductor raises many kinds (BackendCompilerFailed, ...)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            _warn(f"torch.compile failed for {h}x{w} ({type(exc).__name__}: {first}); running eager PyTorch")
            self.shapes[shape] = False
            return False
        seconds = time.perf_counter() - started
        self.compile_seconds[shape] = seconds
        if "compile_s" in before:
            self.checks.update(key, load_s=round(seconds, 2))
        else:
            self.checks.update(key, compile_s=round(seconds, 2))
        self.shapes[shape] = self._parity_ok(key, photo, out[:1])
        return self.shapes[shape]

    def _parity_ok(self, key: str, photo: Any, out: torch.Tensor) -> bool:
        remembered = self.checks.read().get(key, {})
        if "psnr_db" in remembered:
            passed = bool(remembered["passes"])
        else:
            from cartoonize.runners.torch import TorchRunner

            with TorchRunner(self.checkpoint, self.device, "fp32") as reference:
                expected = _fp32_exactly(reference, photo)
            diff = expected.astype(np.float64) - out.cpu().numpy().astype(np.float64)
            mse = float(np.mean(diff**2))
            db = 999.0 if mse == 0 else min(999.0, 10 * float(np.log10(255.0**2 / mse)))
            passed = db >= PARITY_DB[self.precision]
            self.checks.update(key, psnr_db=round(db, 2), max_abs_diff=int(np.abs(diff).max()), passes=passed,
                               threshold_db=PARITY_DB[self.precision])  # fmt: skip
        if not passed:
            db = self.checks.read()[key]["psnr_db"]
            _warn(f"the compiled engine disagrees with eager fp32 ({db} dB, needs ≥ {PARITY_DB[self.precision]} dB); "
                  "running eager PyTorch")  # fmt: skip
        return passed

    # -- running ---------------------------------------------------------------------------------

    def infer_tensor(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) on this runner's device -> uint8 on the same device."""
        assert self.eager is not None, "use the runner as a context manager"
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
        shape = (int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2]))
        frames = standard_strides(frames)
        use_compiled = self._prepare(shape)
        # no `inductor_caches()` here: the caches are read while compiling (`_prepare`), and
        # setting environment variables every frame, while FFmpeg's threads run, costs the engine
        # thread time and is not thread-safe (setenv against another thread's getenv)
        with torch.inference_mode():
            if use_compiled:
                if self.mode == "reduce-overhead":  # CUDA graphs: the output buffer is reused
                    torch.compiler.cudagraph_mark_step_begin()
                    return self.compiled(frames).clone()
                return self.compiled(frames)
            return self.eager(frames)

    def describe(self) -> str:
        layout = ", channels_last" if self.channels_last else ""
        compiled = [s for s, ok in self.shapes.items() if ok]
        state = "" if compiled or not self.shapes else ", fell back to eager"
        return f"compile ({self.device}, {self.precision}, {self.mode}{layout}{state})"

    def close(self) -> None:
        self.compiled = self.eager = None
        if self.device == "cuda":
            torch.cuda.empty_cache()


def standard_strides(frames: torch.Tensor) -> torch.Tensor:
    """The frames with row-major strides, even on size-1 dimensions (where any stride is
    "contiguous"): the compiled graph guards on strides, and a batch of one made by `expand` has
    stride 0 there, which would compile the graph a second time."""
    n, h, w, c = frames.shape
    strides = (h * w * c, w * c, c, 1)
    if frames.stride() == strides:
        return frames
    if frames.is_contiguous():
        return frames.as_strided(frames.shape, strides)
    return frames.contiguous()


def _fp32_exactly(reference: TensorRunner, photo: Any) -> Any:
    """The reference in true fp32 (no TF32 convolutions on a GPU)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return reference(photo)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
