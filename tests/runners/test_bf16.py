"""bf16 on the CPU: the capability check (a pure function of torch's report), the torch runner in
bf16, the warning where the CPU emulates it, and `auto`'s measured, remembered choice."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from cartoonize import choose
from cartoonize.choose import CpuChoice, EngineRequest, cpu_choice, runner_for
from cartoonize.engines.cpu import describe_bf16, native_bf16, warn_if_slow_bf16
from cartoonize.errors import CartoonizeError, CartoonizeWarning
from cartoonize.export import reference_photo
from cartoonize.model import load_checkpoint
from cartoonize.parity import parity
from cartoonize.runners.torch import TorchRunner
from cartoonize.styles import cache_dir

# torch.cpu.get_capabilities() of three real CPUs, cut to the flags that matter, with ATen's ISA string
ZEN3 = {"isa": "AVX2", "cpu_name": "AMD EPYC", "avx2": True, "avx512_f": False, "avx512_bf16": False,
        "amx_bf16": False}  # fmt: skip
SKYLAKE_X = {"isa": "AVX512", "cpu_name": "Xeon", "avx512_f": True, "avx512_bf16": False, "amx_bf16": False}
ZEN4 = {
    "isa": "AVX512",
    "cpu_name": "AMD EPYC 9004",
    "avx512_f": True,
    "avx512_bf16": True,
    "amx_bf16": False,
}
SAPPHIRE_RAPIDS = {"isa": "AVX512", "cpu_name": "Xeon", "avx512_f": True, "avx512_bf16": True, "amx_bf16": True,
                   "amx_tile": True}  # fmt: skip


@pytest.mark.parametrize(("caps", "native"), [(ZEN3, False), (SKYLAKE_X, False), (ZEN4, True),
                                              (SAPPHIRE_RAPIDS, True), ({}, False)])  # fmt: skip
def test_native_bf16_from_the_capability_report(caps: dict, native: bool) -> None:
    assert native_bf16(caps) is native


def test_description_names_what_is_missing() -> None:
    assert describe_bf16(ZEN3) == "AVX2, no AVX-512 BF16 or AMX"
    assert describe_bf16(SAPPHIRE_RAPIDS) == "AVX512 with avx512_bf16, amx_bf16"


def test_bf16_where_emulated_warns_it_is_slow() -> None:
    with pytest.warns(CartoonizeWarning, match="emulated and much slower than fp32"):
        warn_if_slow_bf16(SKYLAKE_X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_slow_bf16(ZEN4)  # native: silent


def test_torch_bf16_agrees_with_fp32(tiny_checkpoint: Path) -> None:
    photo = reference_photo(32, 48)
    model = load_checkpoint(tiny_checkpoint)
    with TorchRunner(model, "cpu", "fp32") as ref:
        expected = ref(photo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CartoonizeWarning)  # this CPU may emulate bf16
        with runner_for(
            EngineRequest(engine="torch", model=tiny_checkpoint, device="cpu", precision="bf16")
        ) as run:
            assert run.precision == "bf16"
            actual = run(photo)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert parity(expected, actual).psnr_db >= 38.0


def test_onnxruntime_refuses_bf16(tiny_checkpoint: Path) -> None:
    with pytest.raises(CartoonizeError, match="for bf16 use --engine torch"):
        runner_for(EngineRequest(engine="onnxruntime", model=tiny_checkpoint, device="cpu", precision="bf16"))


@pytest.mark.parametrize(("psnr", "bf16_fps", "ort_fps", "precision"),
                         [(50.0, 3.1, 2.0, "bf16"), (50.0, 1.9, 2.0, "fp32"), (30.0, 9.0, 2.0, "fp32")])  # fmt: skip
def test_decision_wants_parity_and_speed(
    psnr: float, bf16_fps: float, ort_fps: float, precision: str
) -> None:
    choice = CpuChoice.decide(psnr, bf16_fps, ort_fps)
    assert choice.precision == precision, choice.reason


def test_auto_without_native_bf16_is_onnxruntime_fp32(tiny_checkpoint: Path, monkeypatch) -> None:
    monkeypatch.setattr("cartoonize.engines.cpu.cpu_capabilities", lambda: dict(ZEN3))
    monkeypatch.setattr(choose, "measure_cpu_choice", lambda _: pytest.fail("measured without native bf16"))
    request = EngineRequest(model=tiny_checkpoint, device="cpu")
    assert cpu_choice(request).precision == "fp32"
    assert runner_for(request).name == "onnxruntime"


def test_auto_with_native_bf16_measures_once_and_follows_the_figures(
    tiny_checkpoint: Path, monkeypatch
) -> None:
    """A (reported) native-bf16 CPU: the real measurement runs once, is kept in the cache with its
    figures, and the runner follows it; a second request reads the record instead of measuring."""
    monkeypatch.setattr("cartoonize.engines.cpu.cpu_capabilities", lambda: dict(ZEN4))
    measured: list[Path] = []
    real = choose.measure_cpu_choice

    def counting(checkpoint: Path) -> CpuChoice:
        measured.append(checkpoint)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CartoonizeWarning)
            return real(checkpoint)

    monkeypatch.setattr(choose, "measure_cpu_choice", counting)
    request = EngineRequest(model=tiny_checkpoint, device="cpu")
    first = cpu_choice(request)
    assert first.psnr_db is not None and first.psnr_db >= 38.0  # the tiny network agrees in bf16
    assert first.bf16_fps and first.onnxruntime_fps
    assert first.precision == ("bf16" if first.bf16_fps > first.onnxruntime_fps else "fp32")
    (record,) = (cache_dir() / "cpu_choice").glob("tiny.*.json")
    assert json.loads(record.read_text())["choice"]["reason"] == first.reason
    assert cpu_choice(request) == first and len(measured) == 1  # remembered
    runner = runner_for(request)
    assert (runner.name, runner.precision) == (
        ("torch", "bf16") if first.precision == "bf16" else ("onnxruntime", "fp32")
    )
