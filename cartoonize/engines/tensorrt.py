"""TensorRT: parse the ONNX, one optimization profile, build a plan, then check its layer precisions.

Written for TensorRT 10 and 11. On 10, fp16 comes from `BuilderFlag.FP16` on the fp32 graph, with
the instance norms pinned to fp32. On 11 every network is strongly typed and the precision flags
are gone: fp16 means building from the fp16 ONNX (`onnx_from_checkpoint(..., "fp16")`, norms kept
fp32 inside it). Either way the built engine's real layer precisions are read back from the engine
inspector and the build fails if its convolutions did not come out in the precision asked for.

Everything that needs `tensorrt` imports it inside a function; `layer_precisions` and
`precision_problems` are plain Python over the inspector's JSON and tested without it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cartoonize.engines.store import BuildSpec
from cartoonize.errors import CartoonizeError
from cartoonize.export import INPUT_NAME

DEFAULT_WORKSPACE_GIB = 4.0
DEFAULT_OPT_LEVEL = 3  # TensorRT's own default; 4-5 search longer for faster kernels

# ---------------------------------------------------------------------------------------------
# the engine inspector's JSON (plain Python)


@dataclass(frozen=True)
class LayerPrecision:
    name: str
    kind: str  # the inspector's LayerType, e.g. CaskConvolution
    dtypes: frozenset[str]  # of its inputs and outputs: fp32, fp16, int8, ...

    @property
    def is_convolution(self) -> bool:
        return bool(re.search(r"conv", self.kind, re.I)) or bool(re.search(r"/Conv(Transpose)?\b", self.name))

    @property
    def is_norm(self) -> bool:
        return bool(re.search(r"norm", f"{self.kind} {self.name}", re.I))


def _dtype(tensor: dict[str, Any]) -> str | None:
    """A tensor's data type in the inspector JSON: TensorRT 11 writes 'DataType' ('Half',
    'Float'); TensorRT 10 one 'Format/Datatype' text ('Row major linear FP16 format')."""
    text = str(tensor.get("DataType") or tensor.get("Format/Datatype") or "")
    for pattern, name in ((r"FP16|Half", "fp16"), (r"BF16|BFloat16", "bf16"), (r"FP8", "fp8"),
                          (r"U?Int8|INT8", "int8"), (r"FP32|Float", "fp32"), (r"Int32|INT32", "int32"),
                          (r"Int64|INT64", "int64"), (r"Bool", "bool")):  # fmt: skip
        if re.search(pattern, text, re.I):
            return name
    return None


def layer_precisions(inspector_json: str) -> list[LayerPrecision]:
    info = json.loads(inspector_json)
    layers = info.get("Layers", [])
    if layers and not isinstance(layers[0], dict):
        raise CartoonizeError(
            "the engine inspector shows layer names only; build with profiling verbosity DETAILED"
        )
    out = []
    for layer in layers:
        tensors = [*layer.get("Inputs", []), *layer.get("Outputs", [])]
        dtypes = frozenset(d for d in (_dtype(t) for t in tensors if isinstance(t, dict)) if d)
        out.append(LayerPrecision(str(layer.get("Name", "?")), str(layer.get("LayerType", "?")), dtypes))
    return out


def precision_problems(inspector_json: str, precision: str) -> list[str]:
    """Layers that did not come out in `precision`. fp16: every convolution runs in fp16 (the
    norms may stay fp32); fp32: no layer runs in a narrower float type."""
    layers = layer_precisions(inspector_json)
    problems = []
    if precision == "fp16":
        convs = [layer for layer in layers if layer.is_convolution and not layer.is_norm]
        if not convs:
            return ["no convolution layers found in the engine inspector's report"]
        problems = [f"{c.name} runs in {'/'.join(sorted(c.dtypes))}" for c in convs if c.dtypes != {"fp16"}]
    elif precision == "fp32":
        narrow = {"fp16", "bf16", "fp8", "int8"}
        problems = [f"{layer.name} runs in {'/'.join(sorted(layer.dtypes & narrow))}"
                    for layer in layers if layer.dtypes & narrow and "int8" not in layer.dtypes]  # fmt: skip
    return problems


def check_precisions(inspector_json: str, precision: str) -> None:
    problems = precision_problems(inspector_json, precision)
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise CartoonizeError(f"the built engine is not {precision}: {shown}; nothing was written")


# ---------------------------------------------------------------------------------------------
# building (needs tensorrt)


def trt_major(version: str) -> int:
    return int(version.split(".")[0])


def onnx_precision(onnx_path: Path) -> str:
    """The precision an ONNX file was exported in (its metadata; fp32 when it does not say)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}.get("precision", "fp32")


def onnx_size_multiple(onnx_path: Path) -> int:
    """The H and W multiple an ONNX file says it needs (an imported model's own; 4 otherwise)."""
    import onnx

    from cartoonize.model import SIZE_MULTIPLE

    model = onnx.load(str(onnx_path), load_external_data=False)
    return int({p.key: p.value for p in model.metadata_props}.get("size_multiple", SIZE_MULTIPLE))


def onnx_precision_for(precision: str, trt_version: str) -> str:
    """The ONNX to export for a TensorRT build: fp16 engines on TensorRT 11+ need the fp16 graph."""
    return "fp16" if precision == "fp16" and trt_major(trt_version) >= 11 else "fp32"


def engine_from_onnx(onnx_path: Path, spec: BuildSpec, output: Path, timing_cache: Path) -> dict[str, Any]:
    """Build a plan for `spec` from `onnx_path` into `output`; reuse and update `timing_cache`."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    graph_precision = onnx_precision(onnx_path)
    use_fp16_flag = spec.precision == "fp16" and graph_precision == "fp32"
    if use_fp16_flag and not hasattr(trt.BuilderFlag, "FP16"):
        raise CartoonizeError(
            f"TensorRT {trt.__version__} builds strongly typed networks only: an fp16 engine needs an "
            f"fp16 ONNX (`cartoonize export --precision fp16 -o model-fp16.onnx`), or build from "
            "--style/--model, which exports it"
        )
    if spec.precision == "fp32" and graph_precision != "fp32":
        raise CartoonizeError(
            f"{onnx_path.name} is an {graph_precision} graph; an fp32 engine needs the fp32 ONNX"
        )
    flags = 0
    has_flag = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    if not use_fp16_flag and has_flag:  # on 10 the precise choice; 11 is strongly typed regardless
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    strongly_typed = trt_major(trt.__version__) >= 11 or (not use_fp16_flag and has_flag)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if hasattr(trt, "OnnxParserFlag") and hasattr(trt.OnnxParserFlag, "NATIVE_INSTANCENORM"):
        # TensorRT's own normalization layer, not the InstanceNormalization plugin: the layer the
        # fp16 build pins to fp32 (on by default since 10.0; said here for any build that differs)
        parser.set_flag(trt.OnnxParserFlag.NATIVE_INSTANCENORM)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise CartoonizeError(
            f"TensorRT cannot parse {onnx_path.name}: {' | '.join(errors) or 'unknown error'}"
        )

    config = builder.create_builder_config()
    workspace = spec.workspace_gib if spec.workspace_gib is not None else DEFAULT_WORKSPACE_GIB
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace * (1 << 30)))
    opt_level = spec.opt_level if spec.opt_level is not None else DEFAULT_OPT_LEVEL
    config.builder_optimization_level = opt_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the inspector check needs it
    profile = builder.create_optimization_profile()
    p, n = spec.profile, spec.batch
    profile.set_shape(INPUT_NAME, (n, *p.min, 3), (n, *p.opt, 3), (n, *p.max, 3))
    config.add_optimization_profile(profile)
    if spec.precision == "fp32" and not strongly_typed and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: TF32 convolutions are on by default
    if use_fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
        _pin_norms_fp32(trt, network, config)

    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise CartoonizeError(
            "TensorRT could not build the engine (its log above says why); nothing was written"
        )
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))

    check_precisions(inspect_plan(bytes(plan)), spec.precision)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_bytes(bytes(plan))
    tmp.replace(output)
    return {"workspace_gib": workspace, "opt_level": opt_level, "strongly_typed": strongly_typed,
            "fp16_flag": use_fp16_flag, "onnx_precision": graph_precision,
            "timing_cache": timing_cache.name}  # fmt: skip


def _pin_norms_fp32(trt: Any, network: Any, config: Any) -> None:
    """TensorRT 10, weakly typed fp16: keep every normalization layer in fp32 (eps = 1e-9 is 0 in
    fp16 and a 256-channel variance overflows it), as the fp16 ONNX does on TensorRT 11."""
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.NORMALIZATION:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            pinned += 1
    if pinned:
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)


def inspect_plan(plan: bytes) -> str:
    """The engine inspector's JSON report of every layer of a serialized plan."""
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise CartoonizeError("TensorRT cannot load the engine it just built")
    inspector = engine.create_engine_inspector()
    return inspector.get_engine_information(trt.LayerInformationFormat.JSON)
