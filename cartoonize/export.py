"""Frames in, frames out: the export wrapper and ONNX export (checked against PyTorch by `cartoonize.parity`).

Every backend runs `FrameModel`: uint8 (N, H, W, 3) RGB frames in, uint8 frames of the same shape
out. Scaling to [-1, 1], the BGR swap of the released styles and its inverse live inside the graph,
so TensorRT fuses them and no runner repeats them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cartoonize import __version__
from cartoonize.errors import CartoonizeError
from cartoonize.model import Checkpoint, Generator

INPUT_NAME = "frames"
OUTPUT_NAME = "cartoon"
# dB in uint8 against fp32; below this an export or engine fails. bf16 (8-bit mantissa): 38 dB;
# the Hayao network measured 50.6 dB at 160x92 against fp32 on this project's CPU.
PSNR_THRESHOLDS = {"fp32": 45.0, "fp16": 38.0, "bf16": 38.0}
# the opsets the exporter writes: torch's ONNX exporter emits opset 18 and onnxscript's converter
# takes it up to 25. Down to 17 there is no adapter for Pad (the network's reflection padding); past
# 25 onnxscript hands over to onnx's C converter (26-28 with onnx 1.23; 29 and up stay at 18). A
# failed conversion is only logged (a traceback), so these are refused before any work.
OPSETS = range(18, 26)


class Fp32InstanceNorm(nn.Module):
    """Runs a norm in fp32 inside an fp16 network: eps = 1e-9 is 0 in fp16, and the variance of
    a 256-channel activation overflows fp16's range at high resolution."""

    def __init__(self, norm: nn.InstanceNorm2d) -> None:
        super().__init__()
        self.norm = norm.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.float()).to(x.dtype)


def half_with_fp32_norms(model: nn.Module) -> nn.Module:
    """Convert to fp16 in place, keeping every instance norm in fp32."""
    model.half()
    for name, child in list(model.named_children()):
        if isinstance(child, nn.InstanceNorm2d):
            setattr(model, name, Fp32InstanceNorm(child))
        else:
            half_with_fp32_norms(child)
    return model


class FrameModel(nn.Module):
    """uint8 (N, H, W, 3) RGB -> uint8 (N, H, W, 3) RGB cartoon. H and W multiples of 4."""

    def __init__(self, generator: Generator, bgr: bool, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.generator = generator
        self.bgr = bgr
        self.dtype = dtype

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # cast before any other op: TensorRT takes uint8 only straight into and out of a Cast
        x = frames.to(self.dtype).permute(0, 3, 1, 2)  # (N, 3, H, W)
        if self.bgr:
            x = x.flip(1)
        x = x / 127.5 - 1.0
        y = self.generator(x)  # (N, 3, H, W) in [-1, 1]
        if self.bgr:
            y = y.flip(1)
        y = ((y.float() + 1.0) * 127.5).round().clamp(0, 255)
        return y.permute(0, 2, 3, 1).to(torch.uint8).contiguous()  # (N, H, W, 3)


def frame_model(checkpoint: Checkpoint, precision: str = "fp32") -> FrameModel:
    generator = checkpoint.generator()
    dtype = torch.float32
    if precision == "fp16":
        half_with_fp32_norms(generator)
        dtype = torch.float16
    elif precision == "bf16":
        # bf16 keeps fp32's exponent range, so the norms (eps = 1e-9) need no fp32 island; weights
        # channels_last, the layout oneDNN's bf16 convolutions run in (the input, NHWC frames
        # permuted, already is). The torch, compile and AOTInductor paths all take this model.
        generator.to(dtype=torch.bfloat16, memory_format=torch.channels_last)  # type: ignore[call-overload]
        dtype = torch.bfloat16
    elif precision != "fp32":
        raise CartoonizeError(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    return FrameModel(generator, checkpoint.io.channel_order == "BGR", dtype).eval()


def reference_photo(height: int = 256, width: int = 256) -> np.ndarray:
    """A real photo (scikit-image's astronaut, CC0) as uint8 (1, H, W, 3); a smooth synthetic
    scene where scikit-image is not installed."""
    try:
        from skimage import data
        from skimage.transform import resize

        photo = resize(data.astronaut(), (height, width), anti_aliasing=True, preserve_range=True)
        return photo.astype(np.uint8)[None]
    except ImportError:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        rgb = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 9) * np.cos(yy / 13)], -1)
        return (rgb * 255).astype(np.uint8)[None]


def onnx_metadata(checkpoint: Checkpoint, precision: str) -> dict[str, str]:
    return {
        "cartoonize_version": __version__,
        "style": checkpoint.io.style,
        "io": json.dumps(asdict(checkpoint.io)),
        "config": json.dumps(asdict(checkpoint.config)),
        "precision": precision,
        "input": f"{INPUT_NAME}: uint8 (N, H, W, 3) RGB, H and W multiples of 4",
        "output": f"{OUTPUT_NAME}: uint8 (N, H, W, 3) RGB",
    }


@contextlib.contextmanager
def quiet_torch(logger_name: str) -> Iterator[None]:
    """torch.export, the ONNX exporter and Inductor log registry chatter (missing torchvision
    ops), autotuning notes and deprecation warnings that mean nothing to a user; a failure still
    raises."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def check_opset(opset: int) -> None:
    """Refuse, before any work, an opset the exporter cannot write."""
    if opset not in OPSETS:
        raise CartoonizeError(
            f"--opset {opset}: the exporter writes opsets {OPSETS.start} to {OPSETS[-1]}; choose one of "
            f"those ({OPSETS.start}, the default, is what TensorRT 10 and ONNX Runtime ≥ 1.14 read)"
        )


def check_onnx_output(output: Path) -> None:
    """Refuse, before any work, an export name that is not `.onnx`: everything here opens a file
    by its suffix, so `-o model.pt` wrote an ONNX graph that `--engine model.pt` then read as a
    checkpoint ("not a readable checkpoint (UnpicklingError)"), and `-o model` one no runner took."""
    if output.suffix.lower() != ".onnx":
        raise CartoonizeError(
            f"--output {output}: an export is an ONNX graph, opened by its suffix; use {output.with_suffix('.onnx')}"
        )


def onnx_from_checkpoint(
    checkpoint: Checkpoint, output: Path, precision: str = "fp32", opset: int = 18
) -> Path:
    """Export `FrameModel` with dynamic N, H, W at `opset`; check the graph; write atomically."""
    import onnx

    check_opset(opset)
    model = frame_model(checkpoint, precision)
    example = torch.from_numpy(reference_photo(64, 64))
    # unbounded: an ONNX graph's dims are symbolic names only (bounds would reach nothing but a
    # torch metadata string); what sizes an engine takes is its builder's choice (its profiles)
    n, h4, w4 = torch.export.Dim("N"), torch.export.Dim("h4"), torch.export.Dim("w4")
    dynamic = {"frames": {0: n, 1: 4 * h4, 2: 4 * w4}}
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with quiet_torch("torch.onnx"), quiet_torch("onnxscript"), torch.no_grad():
            program = torch.onnx.export(
                model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                opset_version=opset, dynamo=True, dynamic_shapes=dynamic, verbose=False,
            )  # fmt: skip
        assert program is not None  # dynamo export returns the program or raises
        proto = program.model_proto
        # a conversion that fails is only logged, and the graph stays at the exporter's own opset
        written = {o.domain: o.version for o in proto.opset_import}.get("")
        if written != opset:
            raise CartoonizeError(
                f"the exporter could not convert the graph to opset {opset} (it stayed at {written}); "
                f"nothing was written: use --opset {OPSETS.start}"
            )
        for key, value in onnx_metadata(checkpoint, precision).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, tmp)
        onnx.checker.check_model(str(tmp), full_check=True)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    return output
