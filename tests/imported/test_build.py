"""`build-engine` with an imported model: a TensorRT spec from its wrapped ONNX, at sizes in its own
multiple; AOTInductor refused with what works instead (no TensorRT needed to check these)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartoonize.engines.store import size_multiple
from cartoonize.errors import CartoonizeError
from cartoonize.imported.add import AddJob, add_model
from cartoonize.imported.detect import Options
from cartoonize.pipelines.build import spec_from_options
from tests.imported.tiny import mix_model


def spec(style: str, backend: str, shape: str):
    return spec_from_options(style, None, None, backend, "fp32", "cuda", shape, None, None, None)


def test_tensorrt_spec_from_an_imported_model(tmp_path: Path) -> None:
    raw = mix_model(tmp_path / "mult8.onnx", "nchw", multiple=8)
    model = add_model(AddJob(raw, "mult8", Options(value_range="0,1"))).model
    built = spec("mult8", "tensorrt", "184x320")
    assert built.source.kind == "onnx" and built.source.name == str(model.onnx_path)
    assert built.source.sha256 == model.manifest.wrapped_sha256
    assert built.file_name("sm90").startswith("mult8-")  # the store names it after the model
    with pytest.raises(CartoonizeError, match=r"multiples of 8; 180x320 is not: use 184x320"):
        spec("mult8", "tensorrt", "180x320")
    with pytest.raises(
        CartoonizeError, match="AOTInductor compiles a PyTorch model and mult8 is an ONNX graph"
    ):
        spec("mult8", "aoti", "184x320")


def test_an_engine_pads_to_the_multiple_its_manifest_records() -> None:
    from cartoonize.engines.store import (
        BuildSpec,
        EngineSource,
        Manifest,
        ShapeProfile,
        compatibility_problems,
        current_machine,
    )

    machine = current_machine()
    build = BuildSpec(
        EngineSource("onnx", "m.onnx", "0" * 64), "aoti", "fp32", "cpu", ShapeProfile.static((184, 320))
    )
    manifest = Manifest(
        build, machine.torch, machine.describe_device("cpu"), "", 0.0, build_options={"size_multiple": 8}
    )
    assert size_multiple(manifest) == 8
    # 180 rows run at 184 for a multiple of 8: inside the profile; at 4 they would not be
    assert compatibility_problems(Path("m.plan"), manifest, machine, (180, 320), check_hash=False) == []
    manifest.build_options = {}
    assert compatibility_problems(Path("m.plan"), manifest, machine, (180, 320), check_hash=False)
