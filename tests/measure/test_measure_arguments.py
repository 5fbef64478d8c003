"""Bad arguments to the benchmarks are one line before anything is measured, never a traceback
after minutes of work: a count of 0 (nothing to take the median of), a worker list or webcam
configuration that does not parse, a folder or clip name that is not there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cartoonize.measure import (
    benchmarks,
    cpu_precision,
    faststart,
    handoffs,
    quality_clips,
    run_module,
    upsampling,
    webcam,
)


@pytest.fixture(autouse=True)
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A weights mirror without any style: whatever slips past the arguments fails at once."""
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", str(tmp_path / "mirror"))
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CARTOONIZE_ENGINES", str(tmp_path / "engines"))


def run(
    main: Callable[[list[str]], Any], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Exit status and the last line on stderr of `python -m cartoonize.measure.X ARGV`."""
    with pytest.raises(SystemExit) as exit_:
        run_module(lambda: main(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return int(exit_.value.code or 0), err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("main", "argv", "says"),
    [
        (
            benchmarks.main,
            ["--iters", "0", "--sizes", "32x32", "--engines", "onnxruntime", "--no-scaling"],
            "--iters",
        ),
        (
            benchmarks.main,
            ["--frames", "0", "--sizes", "32x32", "--engines", "onnxruntime", "--no-scaling"],
            "--frames",
        ),
        (benchmarks.main, ["--scaling-only", "--scaling-workers", "1,x"], "--scaling-workers"),
        (benchmarks.main, ["--scaling-only", "--scaling-kinds", "local,rya"], "--scaling-kinds"),
        (cpu_precision.main, ["--iters", "0", "--sizes", "32x32"], "--iters"),
        (faststart.main, ["--repeats", "0", "missing.mp4"], "--repeats"),
        (webcam.main, ["--cpu-cost", "128,big"], "--cpu-cost"),
        (upsampling.main, ["--infer-side", "0", "--clips", "chaplin.mp4"], "--infer-side"),
        (handoffs.main, ["--frames", "0"], "--frames"),
    ],
)
def test_a_count_that_does_not_parse_is_a_usage_error(
    main: Callable[[list[str]], Any], argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = run(main, argv, capsys)
    assert code == 2 and says in line and "error" in line, line


def test_a_webcam_configuration_that_does_not_parse_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, line = run(webcam.main, ["--configs", "max32,torch@big", "--frames", "1"], capsys)
    assert code == 1 and line.startswith("error: config 'torch@big'"), line


def test_quality_clips_names_a_missing_folder_or_clip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = run(quality_clips.main, [str(tmp_path / "nowhere")], capsys)
    assert code == 1 and line == f"error: {tmp_path / 'nowhere'} is not a folder of clips", line
    (tmp_path / "a.mp4").write_bytes(b"")  # only its name is looked at before the names are checked
    code, line = run(quality_clips.main, [str(tmp_path), "--only", "a,b"], capsys)
    assert code == 1 and line.startswith("error: --only: no clip b in "), line
    code, line = run(quality_clips.main, [str(tmp_path), "--only", "a", "--time-clip", "sintel_5s"], capsys)
    assert code == 1 and line.startswith("error: --time-clip: no clip sintel_5s in "), line
