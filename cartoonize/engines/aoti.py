"""AOTInductor: `torch.export` the export wrapper, then compile it ahead of time into a `.pt2`.

On CUDA the package holds generated Triton kernels for this GPU architecture; on the CPU, C++
compiled with the machine's compiler for its vector ISA. Either way it is tied to this PyTorch.

A build follows a *recipe*: a named set of Inductor options. The default recipe is Inductor's own
defaults; the others avoid one piece of machinery each. They exist because the Hayao network's
CUDA package crashed natively when loaded (torch 2.11, H200) while a small generator's did not:
`cartoonize build-engine` rebuilds with the next recipe when the parity gate sees the engine crash,
and `CARTOONIZE_AOTI_RECIPES=name,...` chooses the recipes and their order.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cartoonize.engines.store import BuildSpec, ShapeProfile
from cartoonize.errors import CartoonizeError
from cartoonize.export import INPUT_NAME, frame_model, quiet_torch
from cartoonize.architecture import SIZE_MULTIPLE
from cartoonize.model import Checkpoint


@dataclass(frozen=True)
class AotiRecipe:
    name: str
    configs: dict[str, Any]  # Inductor config keys, as `aoti_compile_and_package` takes them
    what: str


AOTI_RECIPES = (
    AotiRecipe("default", {}, "Inductor's defaults"),
    AotiRecipe("weights-beside", {"aot_inductor.package_constants_in_so": False,
                                  "aot_inductor.package_constants_on_disk_format": "pickle_weights"},
               "weights stored in the package beside the compiled library and loaded by the runner"),
    AotiRecipe("plain-constants", {"aot_inductor.use_consts_asm_build": False},
               "weights compiled into the library as a C++ array, not an assembled blob"),
    AotiRecipe("nchw", {"layout_optimization": False},
               "convolutions kept in NCHW (no channels-last rewrite of the graph)"),
)  # fmt: skip
# What a build tries when not told. The crash seen was in loading, where the weights are copied in:
# first the recipes that store them differently, which leave the compiled kernels as they are.
FALLBACK_ORDER = ("default", "weights-beside", "plain-constants")
RECIPES_ENV = "CARTOONIZE_AOTI_RECIPES"


def recipe_named(name: str) -> AotiRecipe:
    for recipe in AOTI_RECIPES:
        if recipe.name == name:
            return recipe
    known = ", ".join(r.name for r in AOTI_RECIPES)
    raise CartoonizeError(f"unknown AOTInductor recipe {name!r}; known: {known}")


def supported(recipe: AotiRecipe) -> bool:
    """Whether this PyTorch has every Inductor option the recipe sets."""
    import torch._inductor.config as inductor_config

    known = inductor_config.get_config_copy()
    return all(key in known for key in recipe.configs)


def aoti_recipes() -> list[AotiRecipe]:
    """The recipes a build tries, in order: `$CARTOONIZE_AOTI_RECIPES`, else FALLBACK_ORDER, less
    those this PyTorch cannot express."""
    names = [n.strip() for n in os.environ.get(RECIPES_ENV, "").split(",") if n.strip()]
    recipes = [recipe_named(n) for n in names or FALLBACK_ORDER]
    usable = [r for r in recipes if supported(r)]
    if not usable:
        raise CartoonizeError(
            f"{RECIPES_ENV}: none of {', '.join(r.name for r in recipes)} works with torch {torch.__version__}"
        )
    return usable


def packaged_weights(path: Path, device: str) -> dict[str, torch.Tensor]:
    """The weights a `weights-beside` package stores outside its library, on `device`, by name;
    {} for a package whose library holds them. Read the way torch's pt2 archive lays them out:
    `*/data/aotinductor/<model>/weights_config.json` maps name -> [file, shape, stride, offset]
    of tensors saved one per file under `*/data/weights/`."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        configs = [n for n in names if n.endswith("/weights_config.json") and "/data/aotinductor/" in n]
        if not configs:
            return {}
        mapping = json.loads(archive.read(configs[0]))
        files = {n.split("/data/weights/", 1)[1]: n for n in names if "/data/weights/" in n}
        storages: dict[str, torch.Tensor] = {}
        weights = {}
        for name, (file, shape, stride, offset) in mapping.items():
            if file not in storages:
                blob = io.BytesIO(archive.read(files[file]))
                storages[file] = torch.load(blob, map_location="cpu", weights_only=True)
            weights[name] = storages[file].as_strided(shape, stride, offset).to(device)
    return weights


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


def aoti_from_checkpoint(
    checkpoint: Checkpoint, spec: BuildSpec, output: Path, recipe: AotiRecipe = AOTI_RECIPES[0]
) -> dict[str, Any]:
    """Export and compile `checkpoint` for `spec` with `recipe` into the package `output`
    (written atomically); returns the build options for the manifest."""
    from torch._inductor import aoti_compile_and_package

    if spec.precision == "fp16" and spec.device != "cuda":
        raise CartoonizeError("fp16 AOTInductor engines are for CUDA; on the CPU use --precision fp32 or bf16")
    if spec.precision == "bf16" and spec.device == "cpu":
        from cartoonize.engines.cpu import warn_if_slow_bf16

        warn_if_slow_bf16()
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise CartoonizeError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu")
    options = {"max_autotune": spec.max_autotune, **recipe.configs}
    program = exported_frame_model(checkpoint, spec)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.partial.pt2")  # the packager wants a .pt2 suffix
    try:
        with quiet_torch("torch._inductor"):
            aoti_compile_and_package(program, package_path=str(tmp), inductor_configs=dict(options))
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    return {**options, "recipe": recipe.name, "dynamic": not spec.profile.is_static,
            "torch_cuda": torch.version.cuda}  # fmt: skip
