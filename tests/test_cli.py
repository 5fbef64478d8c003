"""The CLI answers at once and loads nothing heavy until a command runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_importing_the_cli_loads_no_heavy_module() -> None:
    code = (
        "import sys, cartoonize.cli as c; c._load_plugins(); "
        "print(sorted(m for m in ('torch', 'av', 'onnxruntime', 'onnx', 'numpy', 'tensorrt', 'cv2') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_help_is_fast_and_lists_the_commands() -> None:
    def seconds(*args: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], env=ENV, capture_output=True, text=True, check=True)
        return time.perf_counter() - start

    result = subprocess.run(
        [sys.executable, "-m", "cartoonize", "--help"], env=ENV, capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("video", "image", "export", "styles"):
        assert command in result.stdout
    # against a baseline in the same run (a loaded machine slows both): the CLI's own imports
    # (typer, rich, the plugins) and nothing heavy; importing torch takes some 15 times the baseline
    baseline = min(seconds("-c", "import typer, rich.console"), seconds("-c", "import typer, rich.console"))
    elapsed = min(seconds("-m", "cartoonize", "--help"), seconds("-m", "cartoonize", "--help"))
    assert elapsed < 4 * baseline + 1.0, (elapsed, baseline)


def test_every_command_has_help() -> None:
    for command in (["video"], ["image"], ["export"], ["styles", "pull"], ["styles", "list"],
                    ["models", "add"], ["models", "list"], ["models", "remove"]):  # fmt: skip
        result = subprocess.run([sys.executable, "-m", "cartoonize", *command, "--help"], env=ENV,
                                capture_output=True, text=True)  # fmt: skip
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage" in result.stdout


def test_version() -> None:
    from cartoonize import __version__

    result = subprocess.run(
        [sys.executable, "-m", "cartoonize", "--version"], env=ENV, capture_output=True, text=True
    )
    assert result.stdout.strip() == f"cartoonize {__version__}"


def test_usage_error_exits_2_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cartoonize", "video"], env=ENV, capture_output=True, text=True
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_style_and_model_together_is_an_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cartoonize", "video", "a.mp4", "b.mp4", "--style", "hayao",
                             "--model", "m.pt"], env=ENV, cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 1 and "either --style or --model" in result.stderr


def test_segments_and_segment_length_together_is_an_error(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """Both ways to split a video: one was used and the other dropped without a word."""
    from tests.helpers import run_main

    code, _, err = run_main(["video", "a.mp4", "b.mp4", "--segments", "2", "--segment-length", "1"], capsys)
    assert (
        code == 1
        and err.strip() == "error: give --segments or --segment-length, not both (one would be left unused)"
    )


def test_main_many_times_in_one_process_registers_plugins_once() -> None:
    """Tests and notebooks call main() again and again: the plugin commands and the warning hook
    are added once, not once per call (the command tree, and its build time, stayed the same)."""
    import warnings

    from cartoonize.cli import _load_plugins, _show_warnings_as_lines, app

    for _ in range(3):
        _load_plugins()
        _show_warnings_as_lines()
    names = [info.name for info in app.registered_groups]
    assert len(names) == len(set(names)) and "train" in names, names
    hook = warnings.showwarning
    _show_warnings_as_lines()
    assert warnings.showwarning is hook


def test_main_in_process_gives_the_stop_signals_back() -> None:
    """main() turns SIGTERM and SIGHUP into a clean stop only while it runs: a test or a notebook
    that calls it keeps its own handling afterwards (the default, or what it set, which main leaves
    alone: `nohup` ignores SIGHUP)."""
    import signal

    from cartoonize.cli import main

    numbers = (signal.SIGTERM, signal.SIGHUP)
    original = {
        number: signal.getsignal(number) for number in numbers
    }  # pytest's own (nohup: SIGHUP ignored)
    try:
        for before in (signal.SIG_DFL, signal.SIG_IGN):
            for number in numbers:
                signal.signal(number, before)
            with pytest.raises(SystemExit) as exit_:
                main(["--version"])
            assert exit_.value.code in (0, None)
            assert all(signal.getsignal(number) is before for number in numbers)
    finally:
        for number, handler in original.items():
            signal.signal(number, handler)


@pytest.mark.parametrize(
    "command", [["video", "missing.mp4", "out.mp4"], ["image", "missing.mp4", "-o", "out"]]
)
def test_a_bad_input_is_refused_before_torch_loads(tmp_path: Path, command: list[str]) -> None:
    """A missing input is a one-line error in well under a second: the job checks its input
    before it imports torch (here torch cannot be imported at all) and before it fetches the
    style (here from an empty cache and a weights mirror that does not exist)."""
    code = f"import sys; sys.modules['torch'] = None; from cartoonize.cli import main; main({command!r})"
    env = {**ENV, "CARTOONIZE_CACHE": str(tmp_path / "cache"),
           "CARTOONIZE_WEIGHTS_URL": (tmp_path / "no-mirror").as_uri()}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1, result.stderr
    assert "missing.mp4 does not exist" in result.stdout + result.stderr
    assert not (tmp_path / "cache").exists(), "the style was fetched before the input was checked"
    assert "Traceback" not in result.stderr


def test_a_cache_that_cannot_be_written_is_one_line(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """ONNX Runtime needs the model exported into the cache: where the cache folder cannot be
    made (a read-only home; here a file in its place), one line says which folder and what to set."""
    from cartoonize.pipelines.image import write_image

    write_image(tmp_path / "in.png", np.zeros((16, 16, 3), np.uint8))
    (tmp_path / "cache").write_text("a file, not a folder")
    result = subprocess.run(
        [sys.executable, "-m", "cartoonize", "image", "in.png", "-o", "out.png", "--model", str(tiny_checkpoint),
         "--engine", "onnxruntime"], env={**ENV, "CARTOONIZE_CACHE": str(tmp_path / "cache")}, cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "error: cannot write the cache folder" in result.stderr and "CARTOONIZE_CACHE" in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_a_slow_runs_rate_is_not_printed_as_zero() -> None:
    """The summary said "6 frames in 225 s (0.0 fps ...)" for a full-size network on a CPU."""
    from cartoonize.cli import _fps

    assert (_fps(0.0218), _fps(0.5), _fps(12.34), _fps(0.0)) == (
        "0.022 fps",
        "0.5 fps",
        "12.3 fps",
        "0.0 fps",
    )
