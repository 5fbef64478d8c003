"""Tiny ONNX cartoonizers built with onnx.helper, each with a known I/O: a 1×1 colour mix (rows sum
to 1, so the values stay inside whatever range the network works in) in NHWC (MatMul on the
channel axis) or NCHW (a 1×1 Conv), float32 or float16, optionally ending in Tanh/Sigmoid, needing
a size multiple (an average pool and an upsample whose sum only lines up at multiples), or with a
fixed size; and the bad ones (a classifier, 1- or 4-channel, other dtypes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIX = np.array([[0.6, 0.3, 0.1], [0.1, 0.6, 0.3], [0.3, 0.1, 0.6]], np.float32)  # out_c x in_c
ELEM = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "float64": TensorProto.DOUBLE,
        "int64": TensorProto.INT64, "uint8": TensorProto.UINT8}  # fmt: skip
NP = {"float32": np.float32, "float16": np.float16, "float64": np.float64}


def save(path: Path, nodes: list, inputs: list, outputs: list, inits: list, opset: int = 17) -> Path:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def mix_model(path: Path, layout: str = "nhwc", dtype: str = "float32", ending: str | None = None,
              multiple: int = 1, fixed: tuple[int, int] | None = None, channels: int = 3,
              scale_to_255: bool = False) -> Path:  # fmt: skip
    """y = ending(MIX @ x) per pixel (x in the network's own channel order and range)."""
    h, w = fixed or ("H", "W")
    shape = ["N", h, w, channels] if layout == "nhwc" else ["N", channels, h, w]
    elem, np_dtype = ELEM[dtype], NP.get(dtype, np.float32)
    mix = np.eye(channels, dtype=np.float32) if channels != 3 else MIX
    inits, nodes = [], []
    if layout == "nhwc":
        inits.append(numpy_helper.from_array(mix.T.astype(np_dtype), "mix"))
        nodes.append(helper.make_node("MatMul", ["x", "mix"], ["mixed"]))
    else:
        inits.append(numpy_helper.from_array(mix[:, :, None, None].astype(np_dtype), "mix"))
        nodes.append(helper.make_node("Conv", ["x", "mix"], ["mixed"]))
    last = "mixed"
    if multiple > 1:  # + 0 × upsample(pool(x)): the shapes agree only where H and W divide by `multiple`
        assert layout == "nchw"
        inits += [numpy_helper.from_array(np.array([1, 1, multiple, multiple], np.float32), "scales"),
                  numpy_helper.from_array(np.array(0, np_dtype), "zero")]  # fmt: skip
        nodes += [
            helper.make_node("AveragePool", ["x"], ["pooled"], kernel_shape=[multiple] * 2, strides=[multiple] * 2),
            helper.make_node("Resize", ["pooled", "", "scales"], ["up"], mode="nearest"),
            helper.make_node("Mul", ["up", "zero"], ["nothing"]),
            helper.make_node("Add", [last, "nothing"], ["summed"]),
        ]  # fmt: skip
        last = "summed"
    if scale_to_255:  # a [0, 255] network with a nonlinearity that only makes sense in that range
        inits += [numpy_helper.from_array(np.array(v, np_dtype), k) for k, v in
                  (("c128", 128.0), ("c32", 32.0), ("c255", 255.0))]  # fmt: skip
        nodes += [helper.make_node("Sub", [last, "c128"], ["centred"]),
                  helper.make_node("Div", ["centred", "c32"], ["scaled"]),
                  helper.make_node("Sigmoid", ["scaled"], ["squashed"]),
                  helper.make_node("Mul", ["squashed", "c255"], ["back"])]  # fmt: skip
        last = "back"
    if ending:
        nodes.append(helper.make_node(ending, [last], ["ended"]))
        last = "ended"
    nodes.append(helper.make_node("Identity", [last], ["y"]))  # after the activation, as tf2onnx ends
    return save(path, nodes, [helper.make_tensor_value_info("x", elem, shape)],
                [helper.make_tensor_value_info("y", elem, shape)], inits)  # fmt: skip


def classifier(path: Path) -> Path:
    """(N, 3, H, W) -> (N, 3) scores: rank-2 output."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["y"]),
    ]
    return save(path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [])  # fmt: skip


def typed_identity(path: Path, dtype: str) -> Path:
    """x * 1 in another dtype (float64, int64, uint8), NHWC 3 channels."""
    nodes = [helper.make_node("Identity", ["x"], ["y"])]
    shape = ["N", "H", "W", 3]
    return save(path, nodes, [helper.make_tensor_value_info("x", ELEM[dtype], shape)],
                [helper.make_tensor_value_info("y", ELEM[dtype], shape)], [])  # fmt: skip


# the same pre/post, written again here by hand: the check the product's own numpy must agree with
def by_hand(raw: onnx.ModelProto | Path, frames: np.ndarray, layout: str, value_range: tuple[float, float],
            channels: str, dtype: str = "float32") -> np.ndarray:  # fmt: skip
    import onnxruntime as ort

    lo, hi = value_range
    x = frames.astype(np.float64)
    if channels == "bgr":
        x = x[..., [2, 1, 0]]
    x = lo + x / 255.0 * (hi - lo)
    if layout == "nchw":
        x = np.moveaxis(x, 3, 1)
    session = ort.InferenceSession(str(raw), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(x.astype(NP[dtype]))}
    y = session.run(None, feed)[0].astype(np.float64)
    if layout == "nchw":
        y = np.moveaxis(y, 1, 3)
    if channels == "bgr":
        y = y[..., [2, 1, 0]]
    y = (y - lo) / (hi - lo) * 255.0
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)
