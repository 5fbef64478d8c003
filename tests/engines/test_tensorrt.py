"""TensorRT by the book: the parts that are plain Python run here (the engine inspector's JSON in
each spelling, the I/O checks, alignment, the timing-cache file, the GPU-model check); the rest
runs where `tensorrt` imports (marker `tensorrt`, skipped here with the reason).

The inspector samples are shaped as TensorRT's developer guide prints a DETAILED layer ("Name",
"LayerType", "Inputs"/"Outputs" with "Dimensions" and "Format/Datatype", "OutMaps", "TacticName"),
with this exporter's node names (`node_conv2d_N`, `node_convolution_N`).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cartoonize.errors import CartoonizeError

TEXT = {"fp16": "Channel major FP16 format where channel % 8 == 0", "fp32": "Row major linear FP32 format",
        "uint8": "Row major linear UInt8 format", "na": "N/A due to dynamic shapes"}  # fmt: skip
SHORT = {"fp16": "Half", "fp32": "Float", "uint8": "UInt8", "na": "N/A due to dynamic shapes"}


def tensor(dtype: str, channels: int, spelling: str) -> dict[str, Any]:
    t: dict[str, Any] = {"Name": f"t{channels}", "Location": "Device", "Dimensions": [1, channels, 64, 64]}
    if spelling == "format/datatype":  # TensorRT 8-10, as the developer guide prints it
        t["Format/Datatype"] = TEXT[dtype]
    elif spelling == "short":  # some 10.x builds: "Half" / "Float"
        t["Format/Datatype"] = SHORT[dtype]
    elif spelling == "datatype":  # the split spelling the issue suspects on 11
        t.update(Datatype=SHORT[dtype], Format="kLINEAR")
    else:  # "DataType"
        t.update(DataType=SHORT[dtype], Format="kLINEAR")
    return t


def layer(name: str, kind: str, cin: int, cout: int, din: str, dout: str, spelling: str,
          tactic: str = "sm90_xmma_fprop_implicit_gemm_f16f16_f16f16_f16_nhwckrsc_nhwc") -> dict[str, Any]:  # fmt: skip
    d = {"Name": name, "LayerType": kind, "Inputs": [tensor(din, cin, spelling)],
         "Outputs": [tensor(dout, cout, spelling)], "TacticName": tactic}  # fmt: skip
    if "Convolution" in kind:
        d.update(ParameterType="Convolution", Kernel=[3, 3], OutMaps=cout)
    return d


def report(layers: list[dict[str, Any]]) -> str:
    return json.dumps({"Layers": layers, "Bindings": ["frames", "cartoons"]})


def fp16_engine(spelling: str, extra: list[dict[str, Any]] | None = None) -> str:
    """An fp16 build as TensorRT 10 makes it from the FP16 flag: the 3-channel first conv kept in
    fp32, a conv that feeds an fp32 norm writing fp32, the norm in fp32, a reformat copy node
    whose name ends in a conv's name, the last (3-channel) conv in fp32."""
    s = spelling
    return report([
        layer("node_cast_0", "Cast", 3, 3, "uint8", "fp32", s, ""),
        layer("node_conv2d_0", "CaskConvolution", 3, 64, "fp32", "fp32", s, "sm90_xmma_fprop_f32f32"),
        layer("node_instance_norm_1", "Normalization", 64, 64, "fp32", "fp32", s, ""),
        layer("Reformatting CopyNode for Input Tensor 0 to node_conv2d_2", "Reformat", 64, 64, "fp32", "fp16", s, ""),
        layer("node_conv2d_2", "CaskConvolution", 64, 128, "fp16", "fp32", s),
        layer("node_convolution_9 + node_relu_9", "CaskDeconvolution", 128, 64, "fp16", "fp16", s),
        *(extra or []),
        layer("node_conv2d_20", "CaskConvolution", 64, 3, "fp32", "fp32", s, "sm90_xmma_fprop_f32f32"),
    ])  # fmt: skip


SPELLINGS = ["format/datatype", "short", "datatype", "DataType"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_fp16_check_reads_every_spelling(spelling: str) -> None:
    from cartoonize.engines.tensorrt import layer_precisions, precision_problems

    assert precision_problems(fp16_engine(spelling), "fp16") == []
    convs = [layer.name for layer in layer_precisions(fp16_engine(spelling)) if layer.is_convolution]
    assert convs == ["node_conv2d_0", "node_conv2d_2", "node_convolution_9 + node_relu_9", "node_conv2d_20"]
    bad = fp16_engine(spelling, [layer("node_conv2d_12", "CaskConvolution", 256, 256, "fp32", "fp32", spelling)])
    assert precision_problems(bad, "fp16") == ["node_conv2d_12 reads fp32"]


def test_reformat_nodes_named_after_a_conv_are_not_convolutions() -> None:
    """TorchScript-exported names (`/generator/flat/Conv`): the copy node that feeds one is a copy."""
    from cartoonize.engines.tensorrt import layer_precisions

    text = report([layer("Reformatting CopyNode for Input Tensor 0 to /generator/flat/Conv", "Reformat",
                         64, 64, "fp32", "fp16", "format/datatype", ""),
                   layer("/generator/flat/Conv", "CaskConvolution", 64, 64, "fp16", "fp16", "format/datatype")])  # fmt: skip
    assert [lp.is_convolution for lp in layer_precisions(text)] == [False, True]


def test_myelin_regions_count_for_the_convs_they_absorbed() -> None:
    from cartoonize.engines.tensorrt import precision_problems

    region = "{ForeignNode[node_conv2d_0...node_tanh]}"
    good = report([layer(region, "kgen", 3, 3, "fp16", "fp16", "format/datatype", "")])
    assert precision_problems(good, "fp16") == []
    bad = report([layer(region, "kgen", 3, 3, "fp32", "fp32", "format/datatype", "")])
    assert precision_problems(bad, "fp16") == ["no layer of the engine computes in fp16"]


def test_fp16_with_only_rgb_convs_in_fp32_fails() -> None:
    from cartoonize.engines.tensorrt import precision_problems

    text = report([layer("node_conv2d_0", "CaskConvolution", 3, 3, "fp32", "fp32", "short")])
    assert precision_problems(text, "fp16") == ["no convolution reads fp16"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_fp32_check_catches_fp16_and_tf32(spelling: str) -> None:
    from cartoonize.engines.tensorrt import precision_problems

    f32 = "sm90_xmma_fprop_implicit_gemm_f32f32_f32f32_f32_nchwkcrs_nchw"
    tf32 = "sm90_xmma_fprop_implicit_gemm_tf32f32_tf32f32_f32_nhwckrsc_nchw"
    good = report([layer("node_conv2d_0", "CaskConvolution", 3, 64, "fp32", "fp32", spelling, f32)])
    assert precision_problems(good, "fp32") == []
    tf = report([layer("node_conv2d_0", "CaskConvolution", 3, 64, "fp32", "fp32", spelling, tf32)])
    assert precision_problems(tf, "fp32") == [f"node_conv2d_0 runs a TF32 kernel ({tf32})"]
    assert precision_problems(fp16_engine(spelling), "fp32")  # fp16 layers in an "fp32" engine


def test_a_report_without_types_fails_instead_of_passing() -> None:
    """A dynamic-shape engine inspected without a context says "N/A due to dynamic shapes"."""
    from cartoonize.engines.tensorrt import precision_problems

    text = report([layer("node_conv2d_2", "CaskConvolution", 64, 128, "na", "na", "format/datatype")])
    for precision in ("fp16", "fp32"):
        assert precision_problems(text, precision) == [
            "the engine inspector reported no tensor types (a format this check does not read)"
        ]


def test_inspector_needs_detailed_verbosity() -> None:
    from cartoonize.engines.tensorrt import check_precisions

    with pytest.raises(CartoonizeError, match="DETAILED"):
        check_precisions(json.dumps({"Layers": ["conv1", "conv2"]}), "fp16")


def test_io_checks() -> None:
    from cartoonize.export import INPUT_NAME, OUTPUT_NAME
    from cartoonize.runners.tensorrt import io_problems

    good = {INPUT_NAME: ("INPUT", "UINT8"), OUTPUT_NAME: ("OUTPUT", "UINT8")}
    assert io_problems(good) == []
    assert io_problems({**good, INPUT_NAME: ("INPUT", "FLOAT")}) == [f"{INPUT_NAME} is float, expected uint8 frames"]
    swapped = {INPUT_NAME: ("OUTPUT", "UINT8"), OUTPUT_NAME: ("INPUT", "UINT8")}
    assert len(io_problems(swapped)) == 2
    assert "expected tensors" in io_problems({"x": ("INPUT", "UINT8")})[0]


def test_sliced_batches_are_realigned() -> None:
    """A batch-2 engine fed 3 frames of 36x20 slices at 2160 bytes: not a multiple of 256."""
    import torch

    from cartoonize.runners.device import aligned

    frames = torch.zeros((3, 36, 20, 3), dtype=torch.uint8)
    assert (36 * 20 * 3) % 256 != 0
    tail = frames[1:]
    moved = aligned(tail)
    assert torch.equal(moved, tail)
    if tail.data_ptr() % 256:
        assert moved.data_ptr() != tail.data_ptr()  # copied
    whole = aligned(frames)
    if frames.data_ptr() % 256 == 0:
        assert whole.data_ptr() == frames.data_ptr()  # left as it is


def test_capture_refused_by_the_engine_runs_without_the_graph() -> None:
    import torch

    from cartoonize.runners.device import try_graph

    def run(x: torch.Tensor) -> torch.Tensor:
        return x + 1

    def refusing(run: Any, example: torch.Tensor) -> Any:
        raise CartoonizeError("TensorRT failed to run x.plan (see its log above)")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn = try_graph(run, torch.zeros(1), "x.plan", capture=refusing)
    assert fn is run and "CUDA graph capture failed" in str(caught[0].message)


def test_timing_cache_is_named_by_gpu_model_and_written_atomically(tmp_path: Path) -> None:
    from cartoonize.engines.tensorrt import timing_cache_name, write_atomic

    assert timing_cache_name("NVIDIA H200", "sm90", "10.13.0") == "timing-cache.nvidia-h200.sm90.trt10.13.0.bin"
    assert timing_cache_name("NVIDIA H100 80GB HBM3", "sm90", "11.4.0") != timing_cache_name("NVIDIA H200", "sm90", "11.4.0")
    target = tmp_path / "timing-cache.bin"
    write_atomic(target, b"abc")
    write_atomic(target, b"defg")
    assert target.read_bytes() == b"defg" and [p.name for p in tmp_path.iterdir()] == ["timing-cache.bin"]


def test_tensorrt_plans_are_checked_against_the_gpu_model() -> None:
    """Same compute capability, another card: a TensorRT plan does not run; an AOTInductor package does."""
    from cartoonize.engines.store import (BuildSpec, EngineSource, Machine, Manifest, ShapeProfile,
                                          compatibility_problems)  # fmt: skip

    h100 = {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "capability": "sm90"}
    h200 = Machine("2.13.0", "10.13.0", "NVIDIA H200", "sm90", "x86_64 avx512")
    for backend, version, expected in (("tensorrt", "10.13.0", 1), ("aoti", "2.13.0", 0)):
        spec = BuildSpec(EngineSource("style", "hayao"), backend, "fp16", "cuda", ShapeProfile.static((64, 64)))
        manifest = Manifest(spec, version, h100, "0" * 64, 1.0)
        problems = compatibility_problems(Path("x"), manifest, h200, check_hash=False)
        assert len(problems) == expected
        if expected:
            assert problems[0][0] == "built for NVIDIA H100 80GB HBM3 (sm90); this GPU is NVIDIA H200 (sm90)"


# ---------------------------------------------------------------------------------------------
# where TensorRT imports (a CUDA GPU with the tensorrt package)

SIZE = (36, 20)  # 36·20·3 = 2160 bytes a frame: batch offsets are not multiples of 256


def _build(tiny_checkpoint: Path, precision: str, *extra: str) -> Path:
    """`cartoonize build-engine` of the tiny model at 36x20 into the test's store."""
    from tests.engines.test_engines import run_cli

    store = Path(os.environ["CARTOONIZE_ENGINES"])
    store.mkdir(parents=True, exist_ok=True)  # an --output goes into a folder that exists
    batch = extra[extra.index("--batch") + 1] if "--batch" in extra else "1"
    output = store / f"tiny.{precision}.b{batch}.{len(list(store.glob('*.plan')))}.plan"
    code, text = run_cli("build-engine", "--model", str(tiny_checkpoint), "--backend", "tensorrt",
                         "--precision", precision, "--device", "cuda", "--shape", f"{SIZE[0]}x{SIZE[1]}",
                         "--output", str(output), *extra)  # fmt: skip
    assert code == 0, text
    return output


@pytest.mark.tensorrt
def test_tensorrt_fp32_runs_no_tf32_kernel(tiny_checkpoint: Path) -> None:
    from cartoonize.engines.store import read_manifest
    from cartoonize.engines.tensorrt import inspect_plan, layer_precisions

    engine = _build(tiny_checkpoint, "fp32")
    manifest = read_manifest(engine)
    assert manifest is not None and manifest.build_options["tf32"] is False
    layers = layer_precisions(inspect_plan(engine.read_bytes(), (1, *SIZE, 3)))
    assert any(layer.dtypes for layer in layers), "this TensorRT's inspector types were not read"
    assert not [layer.name for layer in layers if layer.uses_tf32]


@pytest.mark.tensorrt
def test_tensorrt_inspector_is_read_on_this_version(tiny_checkpoint: Path) -> None:
    """The fp16 engine's report, in whatever spelling this TensorRT writes, finds convolutions
    and their types (a check that reads nothing would fail here, not pass)."""
    from cartoonize.engines.tensorrt import inspect_plan, layer_precisions, precision_problems

    engine = _build(tiny_checkpoint, "fp16")
    text = inspect_plan(engine.read_bytes(), (1, *SIZE, 3))
    layers = layer_precisions(text)
    assert any(lp.is_convolution or lp.is_fused_region for lp in layers), [lp.kind for lp in layers]
    assert precision_problems(text, "fp16") == []


@pytest.mark.tensorrt
def test_tensorrt_misaligned_batches_and_the_default_stream(tiny_checkpoint: Path) -> None:
    """Three frames through a batch-2 engine, called from the legacy default stream: the second
    chunk starts 2·2160 bytes in; the runner realigns it and enqueues on its own stream."""
    import torch

    from cartoonize.choose import runner_from_path
    from cartoonize.model import load_checkpoint
    from cartoonize.parity import parity
    from cartoonize.runners.torch import TorchRunner

    engine = _build(tiny_checkpoint, "fp16", "--batch", "2")
    frames = np.random.default_rng(3).integers(0, 256, (3, *SIZE, 3), dtype=np.uint8)
    with TorchRunner(load_checkpoint(tiny_checkpoint)) as ref, runner_from_path(engine) as run:
        expected = ref(frames)
        assert torch.cuda.current_stream().cuda_stream == 0
        x = torch.from_numpy(frames).cuda()
        out = run.infer_tensor(x[1:])  # a slice 2160 bytes in
        torch.cuda.synchronize()
        assert run.stream is not None and run.stream.cuda_stream != 0
        assert parity(expected[1:], out.cpu().numpy()).passes("fp16")
        assert parity(expected, run(frames)).passes("fp16")


@pytest.mark.tensorrt
def test_tensorrt_runner_refuses_float_io(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A plan with the right names but float I/O is refused at load, before any copy."""
    import tensorrt as trt

    from cartoonize.engines.store import read_manifest
    from cartoonize.export import INPUT_NAME, OUTPUT_NAME
    from cartoonize.runners.tensorrt import TensorRTRunner

    real = _build(tiny_checkpoint, "fp32")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    x = network.add_input(INPUT_NAME, trt.float32, (1, *SIZE, 3))
    y = network.add_identity(x).get_output(0)
    y.name = OUTPUT_NAME
    network.mark_output(y)
    plan = builder.build_serialized_network(network, builder.create_builder_config())
    path = tmp_path / "float.plan"
    path.write_bytes(bytes(plan))
    manifest = read_manifest(real)
    with pytest.raises(CartoonizeError, match="is float, expected uint8 frames"):
        with TensorRTRunner(path, manifest):
            pass


@pytest.mark.tensorrt
def test_tensorrt_rejected_timing_cache_is_replaced(tiny_checkpoint: Path) -> None:
    """A cache TensorRT will not take (here: not a cache at all) costs a warning, not the build."""
    from cartoonize.engines.store import current_machine
    from cartoonize.engines.tensorrt import timing_cache_name

    machine = current_machine()
    store = Path(os.environ["CARTOONIZE_ENGINES"])
    store.mkdir(parents=True, exist_ok=True)
    cache = store / timing_cache_name(machine.gpu, machine.capability, machine.tensorrt)
    cache.write_bytes(b"a timing cache from another card")
    _build(tiny_checkpoint, "fp32")
    assert cache.read_bytes() != b"a timing cache from another card" and cache.stat().st_size > 0
