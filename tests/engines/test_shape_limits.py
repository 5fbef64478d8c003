"""Frame sizes that `bench` and `build-engine` cannot run, refused in one line before any work: a
side below the network's smallest, frames too large for the memory free on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from cartoonize.architecture import MIN_SIDE
from cartoonize.engines.store import parse_shape
from cartoonize.errors import CartoonizeError
from cartoonize.pipelines import memory
from tests.helpers import run_main

# a frame no machine holds the network's activations for (1e16 pixels, about 2e19 bytes)
HUGE = "100000000x100000000"


def one_error_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error:"), (code, err)
    return lines[0]


def test_a_side_below_the_smallest_is_not_a_shape() -> None:
    """4x4 is a multiple of 4, but after the two stride-2 stages the residual blocks would see 1x1
    (no frame runs below MIN_SIDE: it is padded up)."""
    assert MIN_SIDE == 8
    assert parse_shape("8x12") == (8, 12)
    for text, fix in (("4x4", "use 8x8"), ("4x64", "use 8x64"), ("64x0", "use 64x8")):
        with pytest.raises(CartoonizeError, match=f"at least 8 .*{fix}"):
            parse_shape(text)


@pytest.mark.parametrize("command", ["bench", "build-engine"])
def test_a_side_below_the_smallest_is_one_line_before_any_work(
    command: str, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # noqa: ANN001
    """bench said "use multiples of 4, e.g. 8x8" of 4x4; build-engine exported the model and
    ended in a traceback from the instance norms."""
    monkeypatch.setenv("CARTOONIZE_ENGINES", str(tmp_path / "engines"))
    code, _, err = run_main([command, "--model", str(tiny_checkpoint), "--shape", "4x4"], capsys)
    assert "at least 8" in one_error_line(code, err) and "use 8x8" in err
    assert not (tmp_path / "engines").exists()


needs_meminfo = pytest.mark.skipif(
    memory.available_memory() is None, reason="the memory free is not known on this system"
)


@needs_meminfo
def test_bench_refuses_frames_beyond_the_memory_free(tiny_checkpoint: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """It made the reference photo at that size first: a MemoryError's traceback, or (a size that
    only just does not fit) the kernel's OOM killer."""
    json_path = tmp_path / "bench.json"
    args = ["bench", "--model", str(tiny_checkpoint), "-e", "eager", "--iters", "1", "--json", str(json_path)]
    code, _, err = run_main([*args, "--shape", HUGE], capsys)
    line = one_error_line(code, err)
    assert "GB on the CPU" in line and "GB is free" in line and "use a smaller --shape" in line
    code, _, err = run_main([*args, "--shape", "100000x100000", "--batch", "2"], capsys)
    assert "× 2 frames" in one_error_line(code, err) and "--batch" in err
    assert not json_path.exists()


@needs_meminfo
@pytest.mark.parametrize(
    "shapes", [["--shape", HUGE], ["--min-shape", "8x8", "--opt-shape", HUGE, "--max-shape", HUGE]]
)
def test_build_engine_refuses_frames_beyond_the_memory_free_before_compiling(
    shapes: list[str], tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # noqa: ANN001
    """The parity gate runs the engine at the opt shape on the CPU: it was found out there, after
    the export and minutes of compiling (or in a traceback on the way)."""
    monkeypatch.setenv("CARTOONIZE_ENGINES", str(tmp_path / "engines"))
    args = ["build-engine", "--model", str(tiny_checkpoint), "--backend", "aoti", "--device", "cpu", *shapes]
    code, _, err = run_main(args, capsys)
    option = "--shape" if shapes[0] == "--shape" else "--opt-shape"
    assert f"{option} {HUGE}: the network needs" in one_error_line(code, err)
    assert not (tmp_path / "engines").exists()


@needs_meminfo
@pytest.mark.parametrize("shape", ["4x4", HUGE])
def test_bench_refuses_a_shape_before_a_styles_first_download(
    shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # noqa: ANN001
    """The style (45 MB on a user's machine) was downloaded first, then the shape refused."""
    monkeypatch.setenv("CARTOONIZE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CARTOONIZE_WEIGHTS_URL", (tmp_path / "no-server").as_uri())  # a download fails
    code, _, err = run_main(["bench", "--style", "paprika", "-e", "eager", "--shape", shape], capsys)
    assert "use 8x8" in one_error_line(code, err) or "GB on the CPU" in err
    assert not (tmp_path / "cache" / "styles" / "paprika.pt").exists()
