"""AOTInductor: `torch.export` the export wrapper, then compile it ahead of time into a `.pt2`.

On CUDA the package holds generated Triton kernels for this GPU architecture; on the CPU, C++
compiled with the machine's compiler for its vector ISA. Either way it is tied to this PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cartoonize.engines import BuildSpec, ShapeProfile
from cartoonize.errors import CartoonizeError
from cartoonize.export import INPUT_NAME, frame_model, quiet_torch
from cartoonize.model import SIZE_MULTIPLE, Checkpoint


def dynamic_shapes(profile: ShapeProfile) -> dict[str, dict[int, Any]] | None:
    """None for a static profile; else H and/or W as 4 × a symbol bounded by the profile."""
    if profile.is_static:
        return None
    dims: dict[int, Any] = {}
    for axis, side in ((1, "h"), (2, "w")):
        lo, hi = profile.min[axis - 1], profile.max[axis - 1]
        if lo == hi:
            continue
        if lo < 2 * SIZE_MULTIPLE:  # export specializes a symbol of 0 or 1
            raise CartoonizeError(f"--min-shape: a side that varies must be at least {2 * SIZE_MULTIPLE}")
        dims[axis] = SIZE_MULTIPLE * torch.export.Dim(f"{side}4", min=lo // SIZE_MULTIPLE,
                                                      max=hi // SIZE_MULTIPLE)  # fmt: skip
    return {INPUT_NAME: dims}


def exported_frame_model(checkpoint: Checkpoint, spec: BuildSpec) -> torch.export.ExportedProgram:
    model = frame_model(checkpoint, spec.precision).to(spec.device)
    example = torch.zeros((spec.batch, *spec.profile.opt, 3), dtype=torch.uint8, device=spec.device)
    with quiet_torch("torch._inductor"), torch.no_grad():
        return torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes(spec.profile))


def aoti_from_checkpoint(checkpoint: Checkpoint, spec: BuildSpec, output: Path) -> dict[str, Any]:
    """Export and compile `checkpoint` for `spec` into the package `output` (written atomically)."""
    from torch._inductor import aoti_compile_and_package

    if spec.precision == "fp16" and spec.device != "cuda":
        raise CartoonizeError("fp16 AOTInductor engines are for CUDA; on the CPU use --precision fp32")
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise CartoonizeError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu")
    options = {"max_autotune": spec.max_autotune}
    program = exported_frame_model(checkpoint, spec)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.partial.pt2")  # the packager wants a .pt2 suffix
    try:
        with quiet_torch("torch._inductor"):
            aoti_compile_and_package(program, package_path=str(tmp), inductor_configs=dict(options))
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    return {**options, "dynamic": not spec.profile.is_static, "torch_cuda": torch.version.cuda}
