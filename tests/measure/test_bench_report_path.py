"""`cartoonize bench --json` never writes its report over a file the benchmark reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import run_main


def test_the_report_is_not_written_over_the_checkpoint(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """`--json model.pt` replaced the checkpoint it had just timed with the JSON report."""
    model = tmp_path / "mine.pt"
    shutil.copy(tiny_checkpoint, model)
    before = model.read_bytes()
    args = [
        "bench",
        "--model",
        str(model),
        "--shape",
        "16x16",
        "-e",
        "eager",
        "--iters",
        "1",
        "--warmup",
        "0",
    ]
    code, _, err = run_main([*args, "--json", str(model)], capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "a file the benchmark reads" in lines[0], err
    assert model.read_bytes() == before
    code, _, err = run_main([*args, "--json", str(tmp_path / "report.json")], capsys)  # another name is taken
    assert code == 0, err
    assert (tmp_path / "report.json").read_text().startswith("{")


@pytest.mark.parametrize("which", ["engine", "manifest"])
def test_the_report_is_not_written_over_an_engine_or_its_manifest(which: str, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """Refused before the engine is opened: a stand-in file is enough."""
    engine = tmp_path / "x.aoti.fp32.32x32.cpu.pt2"
    engine.write_bytes(b"an engine")
    (tmp_path / "x.aoti.fp32.32x32.cpu.pt2.json").write_text("{}")
    target = engine if which == "engine" else tmp_path / "x.aoti.fp32.32x32.cpu.pt2.json"
    before = target.read_bytes()
    code, _, err = run_main(
        ["bench", "--shape", "32x32", "-e", f"eager,{engine}", "--json", str(target)], capsys
    )
    assert code == 1 and "a file the benchmark reads" in err, err
    assert target.read_bytes() == before
