"""ONNX export: the frame-level wrapper, dynamic shapes, metadata, fp16, parity."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from cartoonize.errors import CartoonizeError
from cartoonize.export import onnx_from_checkpoint, quiet_torch, reference_photo
from cartoonize.model import load_checkpoint
from cartoonize.parity import Parity, export_with_parity, parity
from tests.helpers import child_env, everything_printed
from tests.reference import reference_frames

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ObservedExport:
    """One fp32 export of the tiny model, watched while it ran."""

    path: Path
    check: Parity
    printed: str  # everything it wrote to the terminal
    warned: list[str]  # the warnings it let out (pytest would otherwise collect them unseen)
    levels: list[int]  # torch.onnx's logger level each time the real exporter was called
    logger_after: bool  # that logger's own level afterwards equals what it was before


@pytest.fixture(scope="module")
def fp32_export(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> ObservedExport:
    """The export with parity that `cartoonize export` does, run once for this module's checks (each
    dynamo export of even the tiny model takes 10-20 s on a 2-core machine). It watches the real
    exporter: torch.onnx's logger level while it runs, and all that the export prints."""
    import torch

    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    logger = logging.getLogger("torch.onnx")
    before, export, levels = logger.level, torch.onnx.export, []

    def watched(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the real exporter, observed
        levels.append(logger.getEffectiveLevel())
        return export(*args, **kwargs)

    with (
        pytest.MonkeyPatch.context() as patch,
        everything_printed() as printed,
        warnings.catch_warnings(record=True) as warned,
    ):
        warnings.simplefilter("always")
        patch.setattr(torch.onnx, "export", watched)
        check = export_with_parity(tiny_checkpoint, out, "fp32", photo_size=64)
    return ObservedExport(
        out, check, "".join(printed), [str(w.message) for w in warned], levels, logger.level == before
    )


def test_fp32_export_is_checked_and_carries_metadata(
    fp32_export: ObservedExport, tiny_checkpoint: Path
) -> None:
    check = fp32_export.check
    assert check.psnr_db >= 45 and check.max_abs_diff <= 1
    model = onnx.load(fp32_export.path)
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
    # N, H and W are symbolic (any batch, any size of multiples of 4), the channels fixed at 3
    for value in (inp, model.graph.output[0]):
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims == ["N", "4*h4", "4*w4", 3], value.name
    # opset 18: what TensorRT 10's ONNX parser and ONNX Runtime (>= 1.14) both read
    assert {o.domain: o.version for o in model.opset_import}[""] == 18


def test_export_prints_nothing(fp32_export: ObservedExport) -> None:
    # the exporter's progress lines (verbose) and its registry warnings (torch.onnx's logger, about
    # torchvision ops) mean nothing to a user building an engine
    assert fp32_export.printed == "" and fp32_export.warned == []


def test_the_exporter_runs_with_torch_onnx_quiet_and_opset_18_by_default(fp32_export: ObservedExport) -> None:
    """The registry warnings come once per process (a test that exports second sees none), so
    what keeps them out is checked where it acts: while the real exporter runs, torch.onnx's
    logger (the parent of the one that warns) is at ERROR; after it, as it was. The default
    opset is 18 (TensorRT 10's parser and ONNX Runtime >= 1.14 both read it)."""
    assert fp32_export.levels == [logging.ERROR] and fp32_export.logger_after
    assert {o.domain: o.version for o in onnx.load(fp32_export.path).opset_import}[""] == 18


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


def test_dynamic_batch_and_size(fp32_export: ObservedExport, tiny_checkpoint: Path) -> None:
    session = ort.InferenceSession(str(fp32_export.path), providers=["CPUExecutionProvider"])
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
    fp32_export: ObservedExport, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exported graph that disagrees with its checkpoint fails the gate and leaves no file. Here
    the checkpoint holds other weights, and the "export" writes the graph of the tiny model's."""
    import torch

    import cartoonize.parity as parity_module  # the gate calls the export by the name it imported

    tiny = load_checkpoint(tiny_checkpoint)
    torch.manual_seed(123)
    other = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in tiny.state_dict.items()}
    other_path = tmp_path / "models" / "other.pt"
    other_path.parent.mkdir()
    type(tiny)(other, tiny.config, tiny.io).save(other_path)

    def export_the_tiny_graph(checkpoint, output, precision="fp32", opset=18):  # noqa: ANN001, ANN202
        shutil.copyfile(fp32_export.path, output)
        return output

    monkeypatch.setattr(parity_module, "onnx_from_checkpoint", export_the_tiny_graph)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CartoonizeError, match="disagrees with PyTorch"):
        export_with_parity(other_path, out / "x.onnx", photo_size=32)
    assert list(out.iterdir()) == []


def test_a_graph_that_fails_the_full_check_writes_nothing(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter's graph is checked with shape inference (the full check) before it is moved into
    place: a graph whose types do not add up (uint8 + float, which the structural check lets pass)
    raises and leaves no file, not even the temporary one."""
    import types

    import torch
    from onnx import TensorProto, helper, numpy_helper

    frames = helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", 4, 4, 3])
    cartoon = helper.make_tensor_value_info("cartoon", TensorProto.UINT8, ["N", 4, 4, 3])
    half = numpy_helper.from_array(np.full((1,), 0.5, np.float32), "half")
    add = helper.make_node("Add", ["frames", "half"], ["cartoon"])
    bad = helper.make_model(
        helper.make_graph([add], "bad", [frames], [cartoon], [half]),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    onnx.checker.check_model(bad)  # structurally valid: only the full check sees it
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: types.SimpleNamespace(model_proto=bad))
    with pytest.raises(onnx.shape_inference.InferenceError, match="inconsistent type"):
        onnx_from_checkpoint(load_checkpoint(tiny_checkpoint), tmp_path / "out" / "x.onnx")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("opset", [17, 26, 99])
def test_an_opset_the_exporter_cannot_write_is_refused_up_front(
    opset: int, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--opset 17` (which --help allowed) and 99 printed onnxscript's traceback, then "wrote
    o17.onnx (opset 17)" for a file of opset 18. Now one line, before any export, with the range
    that --help states too."""
    import torch
    import typer

    from cartoonize.cli import app
    from tests.engines.test_engines import run_cli

    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: pytest.fail("exported"))
    code, text = run_cli("export", "--model", str(tiny_checkpoint), "-o", str(tmp_path / "o.onnx"),
                         "--opset", str(opset))  # fmt: skip
    assert (code, text) == (1, f"error: --opset {opset}: the exporter writes opsets 18 to 25; choose one "
                               "of those (18, the default, is what TensorRT 10 and ONNX Runtime ≥ 1.14 read)")  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    from cartoonize.export import OPSETS

    (option,) = [p for p in typer.main.get_command(app).commands["export"].params if p.name == "opset"]  # type: ignore[attr-defined]
    assert f"{OPSETS.start} to {OPSETS[-1]}" in (option.help or "")


def test_export_onto_its_own_checkpoint_is_refused(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """`export --model tiny.pt -o tiny.pt --overwrite` replaced the trained checkpoint with ONNX."""
    from tests.helpers import run_main

    model = tmp_path / "tiny.pt"
    model.write_bytes(tiny_checkpoint.read_bytes())
    code, _, err = run_main(["export", "--model", str(model), "-o", str(model), "--overwrite"], capsys)
    assert code == 1 and "is the input" in err, err
    assert model.read_bytes() == tiny_checkpoint.read_bytes()


def test_the_newest_opset_is_written_as_asked(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The exporter writes opset 18 and onnxscript converts it up: the file holds the opset asked
    for, and it runs and agrees with PyTorch."""
    from tests.engines.test_engines import run_cli

    code, text = run_cli("export", "--model", str(tiny_checkpoint), "-o", str(tmp_path / "o25.onnx"),
                         "--opset", "25")  # fmt: skip
    assert code == 0 and "(fp32, opset 25)" in text and "PSNR" in text, text
    assert {o.domain: o.version for o in onnx.load(tmp_path / "o25.onnx").opset_import}[""] == 25


def test_a_conversion_that_fails_is_one_error_and_no_file(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were an opset let through that the converter cannot reach (17: no adapter for Pad), torch
    logs the converter's traceback and returns the graph at opset 18: that is an error here, with
    nothing printed and nothing written, never a file of another opset than the one named."""
    import cartoonize.export as export

    monkeypatch.setattr(export, "OPSETS", range(17, 26))
    with (
        everything_printed() as printed,
        pytest.raises(
            CartoonizeError,
            match=r"could not convert the graph to opset 17 \(it stayed at 18\); nothing was written",
        ),
    ):
        onnx_from_checkpoint(load_checkpoint(tiny_checkpoint), tmp_path / "o17.onnx", opset=17)
    assert "".join(printed) == "" and list(tmp_path.iterdir()) == []


def test_reference_photo_is_the_astronaut_and_has_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("skimage", reason="the reference photo is scikit-image's astronaut")
    photo = reference_photo()
    assert photo.shape == (1, 256, 256, 3) and photo.dtype == np.uint8  # the parity checks' default size
    assert reference_photo(48, 80).shape == (1, 48, 80, 3)
    # shrunk with anti-aliasing, as a camera would see it: close to the mean of each 8x8 block of
    # the 512 px original (3.8 levels); sampled without it, the photo aliases (8.0)
    from skimage import data

    blocks = data.astronaut().astype(np.float32).reshape(64, 8, 64, 8, 3).mean((1, 3))
    assert np.abs(reference_photo(64, 64)[0] - blocks).mean() < 5.5
    # without scikit-image: a smooth synthetic scene of the size asked, spanning the range
    monkeypatch.setitem(sys.modules, "skimage", None)
    scene = reference_photo(40, 24)
    assert scene.shape == (1, 40, 24, 3) and scene.dtype == np.uint8
    assert scene[0, 0, 0].tolist() == [0, 0, 127] and scene[..., :2].max() >= 240  # x/W, y/H ramps
    for axis in (0, 1):  # smooth both ways, not noise (nor a ramp that wrapped around)
        assert np.abs(np.diff(scene[0].astype(int), axis=axis)).max() <= 20, axis


def test_parity_figures() -> None:
    a = np.zeros((1, 4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0, 0] = 10
    p = parity(a, b)
    assert p.max_abs_diff == 10 and p.psnr_db == pytest.approx(10 * np.log10(255**2 / (100 / 48)))
    assert parity(a, a).psnr_db == float("inf")
    assert p.describe() == "max |diff| 10/255, PSNR 44.9 dB on (1, 4, 4, 3)"
    assert (
        parity(a, a).describe() == "identical to the reference, bit for bit, on (1, 4, 4, 3)"
    )  # not "inf dB"
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


def test_frame_model_precisions() -> None:
    """fp32 by default; bf16 is a bf16 generator with channels_last weights (oneDNN's layout)
    that still computes the reference within bf16's parity threshold; anything else is refused
    with the choices named."""
    import torch

    from cartoonize.export import frame_model
    from tests.reference import seeded_checkpoint

    checkpoint = seeded_checkpoint()
    frames = reference_photo(32, 48)
    expected = reference_frames(checkpoint, frames)
    default = frame_model(checkpoint)
    assert default.dtype == torch.float32
    with torch.no_grad():
        assert np.abs(default(torch.from_numpy(frames)).numpy().astype(int) - expected).max() <= 1
    bf16 = frame_model(checkpoint, "bf16")
    weight = bf16.generator.get_parameter("out.1.weight")
    assert bf16.dtype == weight.dtype == torch.bfloat16
    assert weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert parity(expected, bf16(torch.from_numpy(frames)).numpy()).psnr_db >= 38
    with pytest.raises(CartoonizeError, match=r"unknown precision 'int8'; use fp32, fp16 or bf16"):
        frame_model(checkpoint, "int8")


def export_into(output: Path, tiny_checkpoint: Path, capsys) -> tuple[int, str, str]:  # noqa: ANN001
    """`cartoonize export` of the tiny model, in this process."""
    from tests.helpers import run_main

    return run_main(["export", "--model", str(tiny_checkpoint), "-o", str(output)], capsys)


@pytest.fixture
def copying_exporter(fp32_export: ObservedExport, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporter stands in by copying the module's export of the tiny model (seconds, not a
    dynamo export); the parity check runs as it is."""
    import cartoonize.parity as parity_module  # the gate calls the export by the name it imported

    def copy(checkpoint, output, precision="fp32", opset=18):  # noqa: ANN001, ANN202
        return shutil.copyfile(fp32_export.path, output)

    monkeypatch.setattr(parity_module, "onnx_from_checkpoint", copy)


@pytest.mark.usefixtures("copying_exporter")
def test_export_makes_a_missing_output_folder(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:
    """`-o new/deeper/x.onnx` makes the folders, as `image` and `video` into a folder do (it said
    "output folder new/deeper does not exist")."""
    output = tmp_path / "new" / "deeper" / "x.onnx"
    code, _, err = export_into(output, tiny_checkpoint, capsys)
    assert code == 0 and "parity vs PyTorch fp32" in err, err
    assert list(output.parent.iterdir()) == [output]  # and no partial file beside it


@pytest.mark.usefixtures("copying_exporter")
@pytest.mark.parametrize(
    ("where", "stop", "code"),
    [("onnx_from_checkpoint", CartoonizeError("the exporter failed"), 1), ("onnx_parity", KeyboardInterrupt(), 130)],
    ids=["export-failed", "stopped-in-the-parity-check"],
)  # fmt: skip
def test_an_export_that_fails_or_is_stopped_leaves_no_folder_it_made(
    where: str, stop: BaseException, code: int, tiny_checkpoint: Path, tmp_path: Path, capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The folders the export made are removed again, and with them the file written before a stop
    in the parity check; a folder that was there before stays."""
    import cartoonize.parity as parity_module

    def stopped(*args: object, **kwargs: object) -> None:
        raise stop

    monkeypatch.setattr(parity_module, where, stopped)
    (tmp_path / "there").mkdir()
    assert export_into(tmp_path / "there" / "new" / "deeper" / "x.onnx", tiny_checkpoint, capsys)[0] == code
    assert list(tmp_path.iterdir()) == [tmp_path / "there"] and list((tmp_path / "there").iterdir()) == []


def test_the_cached_onnx_is_kept_only_once_checked(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ONNX that `auto` exports into the cache takes its name only after the parity check: a
    run stopped during the check (Ctrl-C, a killed segment worker) leaves nothing a later run
    would load unchecked; the next run exports it again and keeps it."""
    import cartoonize.parity as parity_module
    from cartoonize.choose import cached_onnx
    from cartoonize.styles import cache_dir

    def stopped(*args: object) -> None:
        raise KeyboardInterrupt

    checkpoint = tmp_path / "stopped.pt"  # a name no other test has exported into the cache
    shutil.copyfile(tiny_checkpoint, checkpoint)
    folder = cache_dir() / "onnx"
    before = set(folder.iterdir()) if folder.exists() else set()
    with monkeypatch.context() as patch:
        patch.setattr(parity_module, "onnx_parity", stopped)
        with pytest.raises(KeyboardInterrupt):
            cached_onnx(checkpoint, "fp32")
    assert set(folder.iterdir()) == before  # neither the graph nor its temporary file
    path = cached_onnx(checkpoint, "fp32")
    assert path.parent == folder and onnx.load(path).graph.node
