"""Networks that run but are not image-to-image cartoonizers of the same size (super-resolution,
masks, segmentation, mixed layouts), and ranges the graph tells or a check catches: each is
refused with one line that says what the network is, or detected, never imported as a wrong
picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from cartoonize.imported.store import find_model
from tests.helpers import run_main as run
from tests.imported.test_models_cli import folder_is_empty, one_line_error
from tests.imported.tiny import by_hand, save

NCHW = ["N", 3, "H", "W"]


def _io(shape_in: list, shape_out: list, elem_out: int = TensorProto.FLOAT) -> tuple[list, list]:
    return ([helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_in)],
            [helper.make_tensor_value_info("y", elem_out, shape_out)])  # fmt: skip


def _const(name: str, values: object) -> object:
    return numpy_helper.from_array(np.asarray(values, np.float32), name)


def upscaler(path: Path, factor: int, fixed: int | None = None) -> Path:
    """Resize by `factor` then Tanh: a super-resolution network's I/O."""
    shape_in = [1, 3, fixed, fixed] if fixed else NCHW
    shape_out = [1, 3, fixed * factor, fixed * factor] if fixed else ["N", 3, "H2", "W2"]
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["big"], mode="linear"),
             helper.make_node("Tanh", ["big"], ["y"])]  # fmt: skip
    return save(path, nodes, *_io(shape_in, shape_out), [_const("scales", [1, 1, factor, factor])])


def scorer(path: Path, channels: int, ending: str | None) -> Path:
    """A 1×1 Conv to `channels` maps, then `ending` (Sigmoid: a mask; Softmax/ArgMax: classes)."""
    weights = np.random.default_rng(0).normal(size=(channels, 3, 1, 1))
    nodes = [helper.make_node("Conv", ["x", "w"], ["scores" if ending else "y"])]
    elem = TensorProto.FLOAT
    if ending == "ArgMax":
        nodes.append(helper.make_node("ArgMax", ["scores"], ["y"], axis=1, keepdims=1))
        elem = TensorProto.INT64
    elif ending:
        nodes.append(
            helper.make_node(ending, ["scores"], ["y"], **({"axis": 1} if ending == "Softmax" else {}))
        )
    out_channels = 1 if ending == "ArgMax" else channels
    return save(path, nodes, *_io(NCHW, ["N", out_channels, "H", "W"], elem), [_const("w", weights)])


def nhwc_in_nchw_out(path: Path) -> Path:
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Tanh", ["t"], ["y"]),
    ]
    return save(path, nodes, *_io(["N", "H", "W", 3], NCHW), [])


def contrast01(path: Path, clip: str | None) -> Path:
    """A [0, 1] network with a curve that only makes sense there: sigmoid(4 (x - 0.5)), ending in
    Clip(0, 1) (bounds as constant inputs, or as opset-10 attributes) or in a Mul by 1 (unbounded)."""
    nodes = [helper.make_node("Sub", ["x", "half"], ["centred"]), helper.make_node("Mul", ["centred", "k"], ["steep"]),
             helper.make_node("Sigmoid", ["steep"], ["curve"])]  # fmt: skip
    inits = [_const("half", 0.5), _const("k", 4.0)]
    opset = 17
    if clip == "inputs":
        nodes.append(helper.make_node("Clip", ["curve", "lo", "hi"], ["y"]))
        inits += [_const("lo", 0.0), _const("hi", 1.0)]
    elif clip == "attributes":
        nodes.append(helper.make_node("Clip", ["curve"], ["y"], min=0.0, max=1.0))
        opset = 11 - 1  # Clip's bounds were attributes before opset 11
    else:
        nodes.append(helper.make_node("Mul", ["curve", "one"], ["y"]))
        inits.append(_const("one", 1.0))
    return save(path, nodes, *_io(NCHW, NCHW), inits, opset=opset)


def all_dynamic_nhwc(path: Path) -> Path:
    """(?, ?, ?, ?) in and out, NHWC inside (a MatMul on the last axis): the layout cannot be read."""
    nodes = [helper.make_node("MatMul", ["x", "m"], ["mixed"]), helper.make_node("Tanh", ["mixed"], ["y"])]
    return save(path, nodes, *_io(["N", "H", "W", "C"], ["N", "H", "W", "C"]), [_const("m", np.eye(3) * 0.9)])


@pytest.mark.parametrize(
    ("make", "extra", "needles"),
    [
        (lambda p: upscaler(p, 2), [], ["130x162 for a 65x81 input", "2x the size: a super-resolution"]),
        (lambda p: upscaler(p, 2), ["--multiple", "4"], ["2x the size: a super-resolution"]),
        (lambda p: upscaler(p, 4, fixed=64), [], ["256x256 for a 64x64 input", "4x the size"]),
        (lambda p: scorer(p, 1, "Sigmoid"), [], ["(?, 1, ?, ?) has 1 channel on axis 1", "a mask", "3-channel picture"]),
        (lambda p: scorer(p, 21, None), [], ["has 21 channels", "a segmentation"]),
        (lambda p: scorer(p, 3, "Softmax"), [], ["comes from a Softmax", "not a picture"]),
        (lambda p: scorer(p, 3, "ArgMax"), [], ["comes from an ArgMax", "not a picture"]),
        (nhwc_in_nchw_out, [], ["input (?, ?, ?, 3) is NHWC but the output (?, 3, ?, ?) is NCHW", "one layout"]),
        (all_dynamic_nhwc, [], ["the layout nchw was assumed: try --layout nhwc"]),
        (lambda p: contrast01(p, None), [], ["no output level is under 127", "(assumed)", "try --range 0,1"]),
    ],
    ids=["sr-x2", "sr-x2-multiple", "sr-x4-fixed", "mask", "segmentation", "softmax", "argmax", "mixed-layout",
         "all-dynamic-nhwc", "unbounded-0-1"],
)  # fmt: skip
def test_refused_with_what_it_is(tmp_path: Path, capsys, make, extra: list[str], needles: list[str]) -> None:
    path = make(tmp_path / "net.onnx")
    code, _, err = run(["models", "add", str(path), "--name", "net", *extra], capsys)
    line = one_line_error(code, err, *needles)
    assert "--layout nchw)" not in line and "drop --layout" not in line  # no option the user did not give
    folder_is_empty()


def test_the_option_a_refusal_names_imports_it(tmp_path: Path, capsys) -> None:
    for make, option in (
        (all_dynamic_nhwc, ["--layout", "nhwc"]),
        (lambda p: contrast01(p, None), ["--range", "0,1"]),
    ):
        path = make(tmp_path / "net.onnx")
        code, _, err = run(["models", "add", str(path), "--name", "net", *option, "--force"], capsys)
        assert code == 0, err


@pytest.mark.parametrize("clip", ["inputs", "attributes"])
def test_a_clipped_output_tells_the_range(tmp_path: Path, capsys, clip: str) -> None:
    """Clip(0, 1) at the end says [0, 1]: taken as [-1, 1], the picture came out washed out."""
    from cartoonize.runners.onnxruntime import OnnxRuntimeRunner

    path = contrast01(tmp_path / "net.onnx", clip)
    if clip == "attributes":  # opset 10 is refused by the wrapper: it says so, after the range
        code, _, err = run(["models", "add", str(path), "--name", "net"], capsys)
        one_line_error(code, err, "opset 10")
        from cartoonize.imported.detect import GraphIO, graph_io, load_source

        io: GraphIO = graph_io(load_source(path), "net.onnx")
        assert io.output_bounds == (0.0, 1.0)
        return
    code, _, err = run(["models", "add", str(path), "--name", "net"], capsys)
    assert code == 0, err
    assert "range 0,1 (the output is clipped to it" in " ".join(err.split())
    model = find_model("net")
    assert model is not None and model.manifest.spec.value_range == (0.0, 1.0)
    frames = np.random.default_rng(0).integers(0, 256, (1, 24, 32, 3), np.uint8)
    with OnnxRuntimeRunner(model.onnx_path) as runner:
        out = runner(frames)
    assert np.abs(out.astype(int) - by_hand(path, frames, "nchw", (0.0, 1.0), "rgb")).max() <= 1
    assert out.min() < 64  # dark stays dark


@pytest.mark.parametrize(("name", "needles"), [("Hayao", ["built-in style", "hayao-onnx"]),
                                               ("Light", ["lower-case", "(e.g. light)"])])  # fmt: skip
def test_a_name_in_capitals(tmp_path: Path, capsys, name: str, needles: list[str]) -> None:
    """`--style Hayao` is the built-in hayao: a capitalised built-in name says so, not 'lower-case'."""
    path = upscaler(tmp_path / "net.onnx", 1)
    one_line_error(*run(["models", "add", str(path), "--name", name], capsys)[::2], *needles)
    folder_is_empty()
