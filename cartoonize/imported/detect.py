"""What an ONNX cartoonizer's graph tells about its I/O, and what must be asked or assumed.

The graph tells the rank, which axis holds the 3 channels (so the layout), the dtype and which
dimensions are dynamic; probing it with ONNX Runtime at odd sizes tells the smallest size multiple
that runs. The value range is told only when the output ends in a bounded activation (Tanh:
[-1, 1], Sigmoid: [0, 1]); the channel order never is: those are options, with defaults said as
assumptions. A graph that already takes and gives the toolkit's uint8 frames (`cartoonize export`
writes them) tells everything: it is taken as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cartoonize.errors import CartoonizeError
from cartoonize.export import INPUT_NAME, OUTPUT_NAME
from cartoonize.imported.store import WrapSpec

DTYPES = {1: "float32", 10: "float16"}  # ONNX TensorProto element types it can wrap
UINT8 = 2  # the contract's own: `frames` in, `cartoon` out
NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}
RANGES = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0), "0,255": (0.0, 255.0)}
LAYOUTS = ("nhwc", "nchw")
CHANNELS = ("rgb", "bgr")
CHANNEL_AXIS = {"nhwc": 3, "nchw": 1}
MULTIPLES = (1, 2, 4, 8, 16, 32, 64)  # probed in turn; the first that runs is the model's
NOT_A_PICTURE = {"Softmax": "a Softmax: class probabilities", "LogSoftmax": "a LogSoftmax: class scores",
                 "ArgMax": "an ArgMax: class labels", "ArgMin": "an ArgMin: labels"}  # fmt: skip
DEFAULT_RANGE = "-1,1"  # CartoonGAN, AnimeGAN v2/v3, White-box: tanh networks on [-1, 1]
_ELEM_NAMES = {0: "undefined", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
               8: "string", 9: "bool", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}  # fmt: skip


def range_text(value_range: tuple[float, float]) -> str:
    return f"{value_range[0]:g},{value_range[1]:g}"


@dataclass(frozen=True)
class Tensor:
    name: str
    elem_type: int
    dims: tuple[int | None, ...]  # None: dynamic (a symbolic or missing dimension)

    @property
    def dtype(self) -> str:
        return DTYPES.get(self.elem_type) or _ELEM_NAMES.get(self.elem_type, f"type {self.elem_type}")

    def shape_text(self) -> str:
        return "(" + ", ".join("?" if d is None else str(d) for d in self.dims) + ")"


@dataclass(frozen=True)
class GraphIO:
    input: Tensor
    output: Tensor
    output_activation: str | None  # the op that makes the output (Tanh, Sigmoid, ...)
    opset: int
    output_bounds: tuple[float, float] | None = None  # a Clip's (min, max) where the output is clipped


@dataclass
class Options:
    """What the user said (None: detect, else assume a default)."""

    layout: str | None = None
    value_range: str | None = None  # "-1,1" | "0,1" | "0,255"
    channels: str | None = None
    multiple: int | None = None


@dataclass
class Detection:
    spec: WrapSpec
    detected: dict[str, Any] = field(default_factory=dict)
    assumed: dict[str, str] = field(default_factory=dict)  # option -> why

    def notes(self) -> list[str]:
        told = ", ".join(f"{k} {v}" for k, v in self.detected.items())
        lines = [f"detected: {told}"]
        lines += [f"assumed {k}: {why}" for k, why in self.assumed.items()]
        return lines


def load_source(path: Path) -> Any:  # -> onnx.ModelProto
    """The model with its weights inside it: external data (`model.onnx.data`, ...) is read from the
    .onnx file's own folder, wherever the command runs, so the wrapped model needs no other file."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model, uses_external_data

    path = Path(path)
    if not path.is_file():
        raise CartoonizeError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a protobuf DecodeError
        raise CartoonizeError(
            f"{path.name} is not an ONNX model ({type(exc).__name__}); `models add` takes a .onnx file"
        ) from None
    if not model.graph.node or not model.graph.output:
        raise CartoonizeError(f"{path.name} is not an ONNX model (no graph in it)")
    external = sorted(
        {ExternalDataInfo(t).location for t in model.graph.initializer if uses_external_data(t)}
    )
    try:
        load_external_data_for_model(model, str(path.absolute().parent))
    except Exception as exc:  # a missing or short data file, or a location outside the folder
        raise CartoonizeError(
            f"{path.name} keeps its weights in {', '.join(external) or 'external data'}, which cannot be read "
            f"in {path.absolute().parent} ({type(exc).__name__}); keep the data files beside the .onnx file"
        ) from None
    return model


def _tensor(value_info: Any) -> Tensor:
    tensor_type = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type"):
        raise CartoonizeError(f"{value_info.name} is not a tensor; the toolkit wraps image networks only")
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in tensor_type.shape.dim)  # fmt: skip
    return Tensor(value_info.name, tensor_type.elem_type, dims)


def graph_io(model: Any, name: str) -> GraphIO:
    """The one image input and one image output of the graph."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    outputs = list(model.graph.output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise CartoonizeError(
            f"{name} has {len(inputs)} inputs and {len(outputs)} outputs; an image-to-image network has "
            "one of each (an image in, an image out)"
        )
    output = _tensor(outputs[0])
    producer = _activation_before(model, output.name)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    bounds = _clip_bounds(model, producer) if producer is not None and producer.op_type == "Clip" else None
    return GraphIO(_tensor(inputs[0]), output, producer and producer.op_type, opset, bounds)


LAYOUT_OPS = {"Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten"}  # keep the values


def _activation_before(model: Any, tensor: str) -> Any:  # -> onnx.NodeProto | None
    """The op that makes the output's values, looking through ops that only move them (tf2onnx
    ends an NHWC network with a Transpose after its Tanh)."""
    makers = {out: node for node in model.graph.node for out in node.output}
    node = makers.get(tensor)
    while node is not None and node.op_type in LAYOUT_OPS and node.input:
        node = makers.get(node.input[0])
    return node


def _clip_bounds(model: Any, clip: Any) -> tuple[float, float] | None:
    """A Clip's (min, max), from its attributes (opset < 11) or its constant inputs; None where
    either is missing or computed."""
    from onnx import numpy_helper

    attrs = {a.name: a.f for a in clip.attribute}
    if "min" in attrs and "max" in attrs:
        return attrs["min"], attrs["max"]
    constants = {t.name: t for t in model.graph.initializer}
    constants |= {n.output[0]: a.t for n in model.graph.node if n.op_type == "Constant"
                  for a in n.attribute if a.name == "value"}  # fmt: skip
    values = [numpy_helper.to_array(constants[name]) for name in clip.input[1:3] if name in constants]
    if len(values) != 2 or any(v.size != 1 for v in values):
        return None
    return float(values[0].reshape(())), float(values[1].reshape(()))


def _layout_of(tensor: Tensor, which: str, asked: str | None) -> str | None:
    """nhwc or nchw from where the 3 channels are; raises for 1- or 4-channel images."""
    dims = tensor.dims
    if asked is not None:
        c = dims[CHANNEL_AXIS[asked]]
        if c is not None and c != 3:
            other = f"; it is {_three_at(dims)[0]}: drop --layout" if _three_at(dims) else ""
            raise CartoonizeError(
                f"{which} {tensor.shape_text()} has {c} channels on axis {CHANNEL_AXIS[asked]} "
                f"(--layout {asked}); the toolkit wraps 3-channel images{other}"
            )
        if c is None and (found := [f for f in _three_at(dims) if f != asked]):
            # (?, 3, ?, ?) read as NHWC would fix H at 3 and leave W dynamic: name the layout instead
            raise CartoonizeError(
                f"{which} {tensor.shape_text()} looks {found[0].upper()} (3 channels on axis "
                f"{CHANNEL_AXIS[found[0]]}), not {asked.upper()} (axis {CHANNEL_AXIS[asked]} is dynamic): "
                f"drop --layout, or give --layout {found[0]}"
            )
        return asked
    found = _three_at(dims)
    if len(found) == 1:
        return found[0]
    if not found:
        for layout, axis in CHANNEL_AXIS.items():
            c = dims[axis]
            if c in (1, 4):
                kind = "grayscale (1-channel)" if c == 1 else "4-channel (RGBA)"
                raise CartoonizeError(
                    f"{which} {tensor.shape_text()} is a {kind} image in {layout.upper()}; the toolkit "
                    "wraps 3-channel RGB or BGR networks only"
                )
        if any(dims[axis] is not None for axis in CHANNEL_AXIS.values()):
            raise CartoonizeError(
                f"{which} {tensor.shape_text()} has no 3-channel axis (axis 1 for NCHW, 3 for NHWC); "
                "the toolkit wraps 3-channel image networks only"
            )
    return None  # both dynamic, or both 3: ambiguous


def _output_like_input(io: GraphIO, name: str, layout: str) -> None:
    """An output whose channels are not the input's 3 on the same axis: what it is, in one line."""
    axis, dims = CHANNEL_AXIS[layout], io.output.dims
    c = dims[axis]
    shape = io.output.shape_text()
    if c is not None and c != 3:
        kind = {1: "a mask or a grayscale image", 2: "two maps, not a picture",
                4: "a 4-channel (RGBA) image"}.get(c, "scores per pixel, a segmentation")  # fmt: skip
        raise CartoonizeError(
            f"{name}: the output {shape} has {c} channel{'s' if c > 1 else ''} on axis {axis} ({kind}), "
            f"the input {io.input.shape_text()} 3; the toolkit wraps networks that give a 3-channel picture"
        )
    if c is None and (found := [f for f in _three_at(dims) if f != layout]):
        raise CartoonizeError(
            f"{name}: the input {io.input.shape_text()} is {layout.upper()} but the output {shape} is "
            f"{found[0].upper()}; the wrapper needs one layout in and out (end the network with a Transpose)"
        )


def size_changed(name: str, size: tuple[int, int], out: tuple[int, int]) -> CartoonizeError:
    """The error for a network whose picture is not the size of its input (super-resolution, a resize)."""
    ratio = out[0] / size[0]
    what = (f"{ratio:g}x the size: a super-resolution or upscaling network" if out[1] / size[1] == ratio > 1
            else "another size")  # fmt: skip
    return CartoonizeError(
        f"{name} gives {out[0]}x{out[1]} for a {size[0]}x{size[1]} input ({what}); the toolkit wraps "
        "networks whose picture keeps the input's size"
    )


def _three_at(dims: tuple[int | None, ...]) -> list[str]:
    return [layout for layout, axis in CHANNEL_AXIS.items() if dims[axis] == 3]


def detect(model: Any, name: str, options: Options) -> Detection:
    """Resolve the wrap from the graph and the options; `spec.multiple` is 0 until probed."""
    io = graph_io(model, name)
    if in_contract(io):
        return detect_exported(model, name, io, options)
    if io.output_activation in NOT_A_PICTURE:
        raise CartoonizeError(
            f"{name}: the output {io.output.name} comes from {NOT_A_PICTURE[io.output_activation]} "
            "(a segmentation or a mask), not a picture; the toolkit wraps networks that give an image"
        )
    for which, tensor in (("input", io.input), ("output", io.output)):
        if len(tensor.dims) != 4:
            what = " (a classifier's scores or an embedding, not an image)" if len(tensor.dims) <= 2 else ""
            raise CartoonizeError(
                f"{name}: the {which} {tensor.name} {tensor.shape_text()} has rank {len(tensor.dims)}{what}; "
                "an image network takes and gives rank-4 (N, H, W, C) or (N, C, H, W) images"
            )
        if tensor.elem_type == UINT8:  # frames, but not under the contract's names and shape
            raise CartoonizeError(
                f"{name}: the {which} {tensor.name} {tensor.shape_text()} is uint8; the wrapper takes float32 "
                f"or float16 networks, or uint8 ones with the toolkit's own I/O ({INPUT_NAME} in, "
                f"{OUTPUT_NAME} out, (N, H, W, 3) RGB), as `cartoonize export` writes them"
            )
        if tensor.elem_type not in DTYPES:
            raise CartoonizeError(
                f"{name}: the {which} {tensor.name} is {tensor.dtype}; the wrapper takes float32 or "
                "float16 networks only (convert the model, e.g. with onnxconverter-common)"
            )
    if io.input.elem_type != io.output.elem_type:
        raise CartoonizeError(
            f"{name}: input is {io.input.dtype} but output is {io.output.dtype}; the wrapper needs one dtype"
        )
    if io.opset < 11:
        raise CartoonizeError(f"{name} uses ONNX opset {io.opset}; the wrapper needs opset 11 or later")
    detection = Detection(WrapSpec("nhwc", io.input.dtype, (-1.0, 1.0), "rgb", 0))
    told, assumed = detection.detected, detection.assumed
    told["rank"] = 4
    told["input"] = f"{io.input.name} {io.input.shape_text()} {io.input.dtype}"
    told["output"] = f"{io.output.name} {io.output.shape_text()} {io.output.dtype}"

    layout = _layout_of(io.input, f"{name}: the input", options.layout)
    if layout is None:
        layout = "nchw"
        assumed["layout"] = ("nchw: the graph does not say which axis holds the channels "
                             "(give --layout nhwc if colours come out scrambled)")  # fmt: skip
    elif options.layout is None:
        told["layout"] = f"{layout} (3 channels on axis {CHANNEL_AXIS[layout]})"
    if options.layout is None:  # the input's layout, not the user's: an output off it is no --layout matter
        _output_like_input(io, name, layout)
    out_layout = _layout_of(io.output, f"{name}: the output", layout)
    assert out_layout == layout
    h_axis, w_axis = (1, 2) if layout == "nhwc" else (2, 3)
    dynamic = [axis for axis, d in zip("NHW", (io.input.dims[0], io.input.dims[h_axis], io.input.dims[w_axis]), strict=True)
               if d is None]  # fmt: skip
    told["dynamic"] = ",".join(dynamic) or "none"
    fixed_h, fixed_w = io.input.dims[h_axis], io.input.dims[w_axis]
    if (fixed_h is None) != (fixed_w is None):
        raise CartoonizeError(
            f"{name}: the input {io.input.shape_text()} fixes one of H and W but not the other; "
            "the wrapper takes both dynamic or both fixed"
        )
    fixed_size = (fixed_h, fixed_w) if fixed_h is not None and fixed_w is not None else None
    fixed_batch = io.input.dims[0]
    out_size = (io.output.dims[h_axis], io.output.dims[w_axis])
    if fixed_size is not None and None not in out_size and out_size != fixed_size:
        raise size_changed(name, fixed_size, out_size)  # type: ignore[arg-type]

    clip_range = next((k for k, v in RANGES.items() if v == io.output_bounds), None)
    if options.value_range is not None:
        value_range = RANGES[options.value_range]
    elif io.output_activation == "Tanh":
        value_range = RANGES["-1,1"]
        told["range"] = "-1,1 (the output is a Tanh; the input is taken to match)"
    elif io.output_activation == "Sigmoid":
        value_range = RANGES["0,1"]
        told["range"] = "0,1 (the output is a Sigmoid; the input is taken to match)"
    elif clip_range is not None:
        value_range = RANGES[clip_range]
        told["range"] = f"{clip_range} (the output is clipped to it; the input is taken to match)"
    else:
        value_range = RANGES[DEFAULT_RANGE]
        made_by = (
            f"its output comes from a {io.output_activation}" if io.output_activation else "nothing bounds it"
        )
        assumed["range"] = (f"{DEFAULT_RANGE}: the graph does not tell ({made_by}); "
                            "try --range 0,1 or --range 0,255 if the check or the colours say otherwise")  # fmt: skip
    channels = options.channels
    if channels is None:
        channels = "rgb"
        assumed["channels"] = ("rgb: no graph tells its channel order; give --channels bgr for networks "
                               "trained on OpenCV (BGR) images if skin and sky come out wrong")  # fmt: skip
    detection.spec = WrapSpec(layout, io.input.dtype, value_range, channels, 0, fixed_size, fixed_batch)
    return detection


def in_contract(io: GraphIO) -> bool:
    """Whether the graph already takes and gives uint8 (N, H, W, 3) frames under the toolkit's names,
    as `cartoonize export` writes it (the scaling, channel swap and layout inside the graph)."""
    return all(t.name == want and t.elem_type == UINT8 and len(t.dims) == 4 and t.dims[3] == 3
               for t, want in ((io.input, INPUT_NAME), (io.output, OUTPUT_NAME)))  # fmt: skip


def detect_exported(model: Any, name: str, io: GraphIO, options: Options) -> Detection:
    """A graph in the contract (a `cartoonize export`): nothing to wrap, and no option applies but
    --multiple; what it runs in is its own metadata's `precision`."""
    given = [flag for flag, value in (("--layout", options.layout), ("--range", options.value_range),
                                      ("--channels", options.channels)) if value is not None]  # fmt: skip
    if given:
        raise CartoonizeError(
            f"{name} already takes and gives uint8 RGB frames (a `cartoonize export`, its scaling and "
            f"channel order inside): drop {' and '.join(given)}"
        )
    meta = {p.key: p.value for p in model.metadata_props}
    precision = meta.get("precision", "fp32")
    if precision not in ("fp32", "fp16"):
        raise CartoonizeError(
            f"{name} says it runs in {precision!r}; the toolkit runs exports in fp32 or fp16"
        )
    n, h, w, _ = io.input.dims
    if (h is None) != (w is None):
        raise CartoonizeError(
            f"{name}: the input {io.input.shape_text()} fixes one of H and W but not the other; "
            "the wrapper takes both dynamic or both fixed"
        )
    fixed_size = (h, w) if h is not None and w is not None else None
    spec = WrapSpec("nhwc", "uint8", (0.0, 255.0), "rgb", 0, fixed_size, n, precision)
    made_by = f"cartoonize {meta['cartoonize_version']}" if "cartoonize_version" in meta else "unknown"
    detection = Detection(spec)
    detection.detected.update({
        "rank": 4,
        "input": f"{io.input.name} {io.input.shape_text()} uint8",
        "output": f"{io.output.name} {io.output.shape_text()} uint8",
        "export": f"uint8 RGB frames in and out, nothing to wrap (style {meta.get('style', 'not said')}, "
                  f"{precision}, written by {made_by})",
    })  # fmt: skip
    return detection


def session_from_bytes(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failed probe is an answer, not an error to show (3 still logs it)
    try:
        return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CartoonizeError(f"onnxruntime cannot load the model: {first}") from None


def probe_sizes(multiple: int) -> tuple[int, int]:
    """(H, W): odd multiples of `multiple` near 64×80 (multiples of it, of no larger power of 2)."""

    def odd_multiple(near: int) -> int:
        k = max(3, near // multiple)
        return multiple * (k if k % 2 else k + 1)

    return odd_multiple(64), odd_multiple(80)


def _output_size_at(session: Any, spec: WrapSpec, size: tuple[int, int]) -> tuple[int, int] | None:
    """The (H, W) the network gives for an input of `size`, or None where it fails there (or
    gives something that is not a 3-channel picture in its layout)."""
    h, w = size
    n = spec.fixed_batch or 1
    shape = (n, h, w, 3) if spec.layout == "nhwc" else (n, 3, h, w)
    x = np.zeros(shape, NUMPY_DTYPES[spec.dtype])
    try:
        (y,) = session.run(None, {session.get_inputs()[0].name: x})
    except Exception:  # any runtime failure at this size: the size does not work
        return None
    h_axis, w_axis, c_axis = (1, 2, 3) if spec.layout == "nhwc" else (2, 3, 1)
    if y.ndim != 4 or y.shape[0] != n or y.shape[c_axis] != 3:
        return None
    return y.shape[h_axis], y.shape[w_axis]


def _runs_at(session: Any, spec: WrapSpec, size: tuple[int, int]) -> bool:
    """Whether the network runs at `size` and keeps it; a network that runs but gives another
    size at every size (super-resolution) is refused here, whatever multiple is tried."""
    out = _output_size_at(session, spec, size)
    if out is not None and out != size:
        raise size_changed("the model", size, out)
    return out == size


def probe_multiple(
    session: Any, spec: WrapSpec, asked: int | None, layout_assumed: bool = False
) -> tuple[int, str]:
    """The smallest H and W multiple that runs and keeps the size (odd multiples probed with a real
    ONNX Runtime session of the raw network); with --multiple, that one is checked instead."""
    if spec.fixed_size is not None:
        if not _runs_at(session, spec, spec.fixed_size):
            raise CartoonizeError(f"the model does not run at its own fixed size {spec.fixed_size}")
        return 1, f"fixed size {spec.fixed_size[0]}x{spec.fixed_size[1]}: frames are padded up to it"
    if asked is not None:
        size = probe_sizes(asked)
        if not _runs_at(session, spec, size):
            raise CartoonizeError(
                f"--multiple {asked}: the model fails or changes the size at {size[0]}x{size[1]}; "
                "drop --multiple to probe for the right one"
            )
        return asked, f"{asked} (given; checked at {size[0]}x{size[1]})"
    tried: list[str] = []
    changed: CartoonizeError | None = None  # the first size the network ran at but did not keep
    for multiple in MULTIPLES:
        size = probe_sizes(multiple)
        try:
            if _runs_at(session, spec, size) and _runs_at(session, spec, (size[0] + 2 * multiple, size[1])):
                return multiple, f"{multiple} (probed: {', '.join([*tried, f'{size[0]}x{size[1]} runs'])})"
        except CartoonizeError as exc:  # a larger multiple may still keep the size (a stride it crops)
            changed = changed or exc
        tried.append(f"{size[0]}x{size[1]} fails")
    if changed is not None:
        raise changed
    other = "nhwc" if spec.layout == "nchw" else "nchw"
    hint = (f"the layout {spec.layout} was assumed: try --layout {other}" if layout_assumed
            else "give its size multiple with --multiple N, or check --layout")  # fmt: skip
    raise CartoonizeError(f"the model fails at every probed size ({', '.join(tried)}); {hint}")
