"""ONNX export: the frame-level wrapper, dynamic shapes, metadata, fp16, parity."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from cartoonize.errors import CartoonizeError
from cartoonize.export import onnx_from_checkpoint, quiet_torch, reference_photo
from cartoonize.model import load_checkpoint
from cartoonize.parity import export_with_parity, parity
from tests.helpers import child_env
from tests.reference import reference_frames

ROOT = Path(__file__).resolve().parents[1]


def test_fp32_export_is_checked_and_carries_metadata(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.onnx"
    check = export_with_parity(tiny_checkpoint, out, "fp32", photo_size=64)
    assert check.psnr_db >= 45 and check.max_abs_diff <= 1
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["style"] == "tiny-test" and meta["precision"] == "fp32"
    assert json.loads(meta["io"])["channel_order"] == "RGB"
    assert "cartoonize_version" in meta
    # what a reader of the file (Netron, another tool) learns: the network's shape and the I/O
    config = json.loads(meta["config"])
    assert (config["base_channels"], config["residual_blocks"]) == (8, 1)
    assert config == vars(load_checkpoint(tiny_checkpoint).config)
    assert meta["input"] == "frames: uint8 (N, H, W, 3) RGB, H and W multiples of 4"
    assert meta["output"] == "cartoon: uint8 (N, H, W, 3) RGB"
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert (inp.name, [o.name for o in model.graph.output]) == ("frames", ["cartoon"])  # as documented
    # opset 18: what TensorRT 10's ONNX parser and ONNX Runtime (>= 1.14) both read
    assert {o.domain: o.version for o in model.opset_import}[""] == 18


def test_export_prints_nothing(
    tiny_checkpoint: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # the exporter's progress lines (verbose) and its registry warnings (torch.onnx's logger, about
    # torchvision ops) mean nothing to a user building an engine
    onnx_from_checkpoint(load_checkpoint(tiny_checkpoint), tmp_path / "tiny.onnx")
    assert capfd.readouterr() == ("", "")


def test_quiet_torch_restores_the_logger_and_lets_errors_through() -> None:
    logger = logging.getLogger("cartoonize-test.quiet")
    logger.setLevel(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="boom"), quiet_torch("cartoonize-test.quiet"):
            assert logger.level == logging.ERROR
            warnings.warn("chatter", DeprecationWarning, stacklevel=1)
            raise RuntimeError("boom")  # a failure still raises
    assert not caught  # the warning was swallowed inside
    assert logger.level == logging.INFO  # and the logger is as it was


def test_dynamic_batch_and_size(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = onnx_from_checkpoint(load_checkpoint(tiny_checkpoint), tmp_path / "tiny.onnx")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for shape in [(1, 32, 32, 3), (3, 48, 80, 3), (2, 100, 36, 3)]:
        frames = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        (result,) = session.run(None, {"frames": frames})
        assert result.shape == shape and result.dtype == np.uint8
        check = parity(reference_frames(load_checkpoint(tiny_checkpoint), frames), result)
        assert check.psnr_db >= 45, check.describe()  # what the network computes, not what torch does


def test_fp16_export_is_a_real_fp16_graph(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny16.onnx"
    check = export_with_parity(tiny_checkpoint, out, "fp16", photo_size=64)
    assert check.psnr_db >= 38
    model = onnx.load(out)
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")}
    types = {i.data_type for i in model.graph.initializer if i.name in conv_weights}
    assert types == {onnx.TensorProto.FLOAT16}
    assert {p.key: p.value for p in model.metadata_props}["precision"] == "fp16"


def test_failed_parity_writes_nothing(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exported graph that disagrees with its checkpoint (here: another model's weights) fails
    the gate and leaves no file."""
    import torch

    import cartoonize.parity as parity_module  # the gate calls the export by the name it imported

    real_export = parity_module.onnx_from_checkpoint

    def export_other_weights(checkpoint, output, precision="fp32", opset=18):  # noqa: ANN001
        torch.manual_seed(123)
        other = {
            k: torch.randn_like(v) if v.is_floating_point() else v for k, v in checkpoint.state_dict.items()
        }
        return real_export(
            type(checkpoint)(other, checkpoint.config, checkpoint.io), output, precision, opset
        )

    monkeypatch.setattr(parity_module, "onnx_from_checkpoint", export_other_weights)
    with pytest.raises(CartoonizeError, match="disagrees with PyTorch"):
        export_with_parity(tiny_checkpoint, tmp_path / "x.onnx", photo_size=32)
    assert list(tmp_path.iterdir()) == []


def test_parity_figures() -> None:
    a = np.zeros((1, 4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0, 0] = 10
    p = parity(a, b)
    assert p.max_abs_diff == 10 and p.psnr_db == pytest.approx(10 * np.log10(255**2 / (100 / 48)))
    assert parity(a, a).psnr_db == float("inf")
    assert reference_photo(40, 60).shape == (1, 40, 60, 3)


@pytest.mark.shared
@pytest.mark.slow  # the full-size network through the CLI; tiny models cover the same code above
def test_export_command_prints_parity_for_hayao(tmp_path: Path) -> None:
    env = child_env(PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "cartoonize", "export", "--style", "hayao", "-o", "h.onnx"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "PSNR" in result.stderr and "max |diff|" in result.stderr
    psnr = float(result.stderr.split("PSNR")[1].split("dB")[0])
    assert psnr >= 45
    assert (tmp_path / "h.onnx").exists()
