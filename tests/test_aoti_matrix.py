"""The AOTInductor crash matrix (tests/aoti_matrix.py), on the CPU with the tiny generator standing
in for Hayao: its variants differ in exactly what they say, its outcomes read the real messages."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.aoti_matrix import RECIPE_VARIANTS, first_working_recipe, main, outcome, write_variants


def test_each_variant_changes_one_thing(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from cartoonize.model import load_checkpoint

    base = load_checkpoint(tiny_checkpoint)
    variants = {v.name: v for v in write_variants(tiny_checkpoint, tmp_path, "fp16")}
    assert list(variants)[: len(RECIPE_VARIANTS)] == list(RECIPE_VARIANTS)
    assert {variants[r].recipe for r in RECIPE_VARIANTS} == set(RECIPE_VARIANTS)
    assert variants["fp32"].precision == "fp32" and variants["default"].precision == "fp16"
    loaded = {name: load_checkpoint(v.checkpoint) for name, v in variants.items()}
    assert loaded["rgb"].io.channel_order == "RGB" and loaded["rgb"].config == base.config
    assert loaded["eps1e-5"].config.norm_eps == 1e-5 and loaded["eps1e-5"].io == base.io
    assert loaded["width8"].config.base_channels == 8
    assert loaded["width8"].config.residual_blocks == base.config.residual_blocks
    assert loaded["blocks1"].config.residual_blocks == 1
    for name in ("rgb", "eps1e-5"):  # the same weights
        assert all(loaded[name].state_dict[k].equal(base.state_dict[k]) for k in base.state_dict)


def test_outcomes_read_the_real_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cartoonize.pipelines.build as build
    from cartoonize.errors import CartoonizeError

    crash = [sys.executable, "-X", "faulthandler", "-c", "import ctypes; ctypes.string_at(0)"]
    monkeypatch.setattr(build, "_child_argv", lambda *_: crash)
    with pytest.raises(CartoonizeError) as info:
        build.run_isolated(tmp_path / "x.pt2", np.zeros((1, 8, 8, 3), np.uint8))
    assert outcome(1, f"error: {info.value}\n").startswith("crash (SIGSEGV in string_at (")
    parity = (
        "error: x.pt2 fails the parity gate: max |diff| 40/255, PSNR 21.5 dB on (1, 64, 64, 3) against ..."
    )
    assert outcome(1, parity) == "parity (max |diff| 40/255, PSNR 21.5 dB)"
    assert outcome(0, "built ...") == "ok" and outcome("timeout", "") == "timeout"
    assert outcome(1, "compiling\nerror: out of memory\n") == "error (error: out of memory)"
    # recipes that leave the kernels alone come before nchw, which changes them
    picked = first_working_recipe({"default": "crash (SIGSEGV)", "nchw": "ok", "plain-constants": "ok"})
    assert picked == "plain-constants"
    assert first_working_recipe({"default": "crash (SIGSEGV)", "rgb": "ok"}) is None


@pytest.mark.slow
def test_matrix_runs_real_builds(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARTOONIZE_ENGINES", str(tmp_path / "store"))
    out = tmp_path / "matrix"
    assert main(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--device", "cpu",
                 "--precision", "fp32", "--only", "default,fp16"]) == 0  # fmt: skip
    report = json.loads((out / "matrix.json").read_text())
    assert report["variants"]["default"]["outcome"] == "ok" and report["first_working_recipe"] == "default"
    assert report["variants"]["fp16"]["outcome"].startswith(
        "error (error: fp16 AOTInductor engines are for CUDA"
    )
    assert (out / "default.pt2").is_file() and (out / "default.pt2.json").is_file()


def test_gpu_check_hands_the_working_recipe_to_the_builds() -> None:
    from tests.gpu_check import Step, hand_over_recipe

    variants = {"default": {"outcome": "crash (SIGSEGV in _load_aoti (…))", "changes": ""},
                "nchw": {"outcome": "crash (SIGSEGV)", "changes": ""},
                "weights-beside": {"outcome": "ok", "changes": ""}}  # fmt: skip
    matrix = Step("aoti-matrix", [], 1, result={"report": {"variants": variants}})
    builds = [Step("build-aoti-720x1280", [], 1), Step("bench-aoti-720x1280", [], 1)]
    hand_over_recipe([matrix], builds)
    assert builds[0].env == {"CARTOONIZE_AOTI_RECIPES": "weights-beside"} and builds[1].env == {}
    variants["weights-beside"]["outcome"] = "crash (SIGSEGV)"
    nothing = [Step("build-aoti-720x1280", [], 1)]
    hand_over_recipe([matrix], nothing)  # none worked: the build tries its own fallback order
    assert nothing[0].env == {}
