"""`cartoonize export` writes ONNX under a name that opens as ONNX: every command here opens a
file by its suffix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_main


@pytest.mark.parametrize("name", ["hayao.pt", "hayao", "hayao.pt2", "hayao.onnx.tmp"])
def test_an_export_name_that_is_not_onnx_is_refused_before_any_work(
    name: str, tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    """`-o hayao.pt` wrote the ONNX graph, which `--engine hayao.pt` (or `--model`) then read as a
    checkpoint: "not a readable checkpoint (UnpicklingError)"; `-o hayao` one no runner opens."""
    output = tmp_path / "out" / name
    code, _, err = run_main(["export", "--model", str(tiny_checkpoint), "-o", str(output)], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert f"use {output.with_suffix('.onnx')}" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written, no folder made for it


def test_an_onnx_name_in_any_case_is_taken() -> None:
    from cartoonize.export import check_onnx_output

    for name in ("hayao.onnx", "HAYAO.ONNX", "my.model.Onnx"):
        check_onnx_output(Path(name))  # opened by suffix case-blind (choose.runner_from_path)
