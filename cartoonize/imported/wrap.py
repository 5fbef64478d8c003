"""The raw network inside the toolkit's contract, composed in ONNX itself:

    frames uint8 (N, H, W, 3) RGB ─► Cast float32 ─► [Gather 2,1,0: BGR] ─► Mul/Add: to the range
      ─► [Transpose: NCHW] ─► [Cast float16] ─► the network ─► [Cast float32] ─► [Transpose: NHWC]
      ─► [Gather: RGB] ─► Sub/Mul: to 0..255 ─► Round ─► Clip 0..255 ─► Cast uint8 ─► cartoon

The scaling is done in float32 either way (a float16 network gets a Cast at its boundary), and
the cast from uint8 comes first: TensorRT takes uint8 only straight into and out of a Cast.
`numpy_pre` / `numpy_post` do the same by hand, for the check. A graph in the contract already
(uint8 frames in and out: `cartoonize export`) gets nothing around it, only the metadata.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from cartoonize import __version__
from cartoonize.export import INPUT_NAME, OUTPUT_NAME
from cartoonize.imported.detect import NUMPY_DTYPES
from cartoonize.imported.store import WrapSpec

PREFIX = "net/"  # the network's own names, kept apart from the wrapper's


def numpy_pre(frames: np.ndarray, spec: WrapSpec) -> np.ndarray:
    """uint8 (N, H, W, 3) RGB -> the network's input."""
    x = frames.astype(np.float32)
    if spec.channels == "bgr":
        x = x[..., ::-1]
    lo, hi = spec.value_range
    x = x * np.float32((hi - lo) / 255.0) + np.float32(lo)
    if spec.layout == "nchw":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x.astype(NUMPY_DTYPES[spec.dtype]))


def numpy_post(y: np.ndarray, spec: WrapSpec) -> np.ndarray:
    """The network's output -> uint8 (N, H, W, 3) RGB."""
    y = y.astype(np.float32)
    if spec.layout == "nchw":
        y = y.transpose(0, 2, 3, 1)
    if spec.channels == "bgr":
        y = y[..., ::-1]
    lo, hi = spec.value_range
    y = (y - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


class _Graph:
    """Nodes and constants appended in order, each output named after its step."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def const(self, name: str, values: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype), f"wrap/{name}"))
        return f"wrap/{name}"

    def op(self, op_type: str, inputs: list[str], name: str, output: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        out = output or f"wrap/{name}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"wrap/{name}", **attrs))
        return out


def wrap(model: Any, spec: WrapSpec, metadata: dict[str, str]) -> Any:  # -> onnx.ModelProto
    """A new model: uint8 frames in and out around `model` (which is not changed)."""
    import onnx
    from onnx import TensorProto, compose, helper

    if spec.dtype == "uint8":
        return relabelled(model, metadata)

    net = compose.add_prefix(model, PREFIX)
    (raw_in,) = [i for i in net.graph.input if i.name not in {t.name for t in net.graph.initializer}]
    (raw_out,) = net.graph.output
    float16 = spec.dtype == "float16"
    lo, hi = spec.value_range
    pre, post = _Graph(), _Graph()

    x = pre.op("Cast", [INPUT_NAME], "to_float", to=TensorProto.FLOAT)
    if spec.channels == "bgr":
        x = pre.op("Gather", [x, pre.const("bgr", [2, 1, 0], np.int64)], "to_bgr", axis=3)
    x = pre.op("Mul", [x, pre.const("scale_in", (hi - lo) / 255.0)], "scale")
    if lo != 0:
        x = pre.op("Add", [x, pre.const("offset_in", lo)], "offset")
    if spec.layout == "nchw":
        x = pre.op("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2])
    if float16:
        x = pre.op("Cast", [x], "to_float16", to=TensorProto.FLOAT16)
    pre.op("Identity", [x], "into_network", output=raw_in.name)

    y = raw_out.name
    if float16:
        y = post.op("Cast", [y], "from_float16", to=TensorProto.FLOAT)
    if spec.layout == "nchw":
        y = post.op("Transpose", [y], "to_nhwc", perm=[0, 2, 3, 1])
    if spec.channels == "bgr":
        y = post.op("Gather", [y, post.const("rgb", [2, 1, 0], np.int64)], "to_rgb", axis=3)
    if lo != 0:
        y = post.op("Sub", [y, post.const("offset_out", lo)], "unoffset")
    y = post.op("Mul", [y, post.const("scale_out", 255.0 / (hi - lo))], "unscale")
    y = post.op("Round", [y], "round")
    y = post.op("Clip", [y, post.const("zero", 0.0), post.const("full", 255.0)], "clip")
    post.op("Cast", [y], "to_uint8", output=OUTPUT_NAME, to=TensorProto.UINT8)

    n = spec.fixed_batch or "N"
    h, w = spec.fixed_size or ("H", "W")
    graph = helper.make_graph(
        [*pre.nodes, *net.graph.node, *post.nodes],
        net.graph.name or "imported",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, [n, h, w, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.UINT8, [n, h, w, 3])],
        [*pre.initializers, *net.graph.initializer, *post.initializers],
        value_info=list(net.graph.value_info),
    )
    graph.sparse_initializer.extend(net.graph.sparse_initializer)
    wrapped = helper.make_model(graph, opset_imports=list(net.opset_import), ir_version=net.ir_version)
    wrapped.functions.extend(net.functions)
    wrapped.producer_name = "cartoonize"
    wrapped.producer_version = __version__
    for key, value in metadata.items():
        wrapped.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(wrapped)
    return wrapped


def relabelled(model: Any, metadata: dict[str, str]) -> Any:  # -> onnx.ModelProto
    """A copy of a graph already in the contract with `metadata` over its own (an export's `config`
    stays; its `style`, `io` and `precision` become the imported model's)."""
    import onnx

    framed = onnx.ModelProto()
    framed.CopyFrom(model)
    merged = {p.key: p.value for p in model.metadata_props} | metadata
    del framed.metadata_props[:]
    for key, value in merged.items():
        framed.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(framed)
    return framed


def wrap_metadata(name: str, spec: WrapSpec, source_sha256: str, licence: str) -> dict[str, str]:
    """What the wrapped ONNX says about itself (the runners read `size_multiple` and `precision`)."""
    lo, hi = spec.value_range
    return {
        "cartoonize_version": __version__,
        "style": name,
        "imported_from_sha256": source_sha256,
        "io": json.dumps(
            {"layout": spec.layout, "dtype": spec.dtype, "value_range": [lo, hi], "channels": spec.channels}
        ),  # fmt: skip
        "precision": spec.precision,
        "size_multiple": str(spec.multiple),
        "input": f"{INPUT_NAME}: uint8 (N, H, W, 3) RGB, H and W multiples of {spec.multiple}",
        "output": f"{OUTPUT_NAME}: uint8 (N, H, W, 3) RGB",
        "licence": licence,
    }
